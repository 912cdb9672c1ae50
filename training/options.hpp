#pragma once
/// @file options.hpp
/// Options and results of Model::compile, fit, evaluate and predict (Keras names and
/// defaults), and the batches the training loop works on.
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "losses/losses.hpp"
#include "metrics/metrics.hpp"
#include "optim/optimizers.hpp"

namespace xtape::distributed {
class DataParallel;
}

namespace xtape::layers {

class Callback;
class Dataset;

/// Metric name -> value, as Keras's logs dict.
using Logs = std::map<std::string, double>;

/// A per-sample loss: (y_true, y_pred) -> losses of shape (n,), differentiable in y_pred.
using PerSampleLoss = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;

/// A transformation of the named gradients (each variable's value.grad()) run after backward
/// and before the optimizer applies them: clipping, an all-reduce across processes, noise.
/// Replace a gradient with variable.value.set_grad(...).
using GradientTransform = std::function<void(std::vector<optim::Variable>& variables)>;

/// Options of Model::compile beyond the loss, optimizer and metrics names.
struct CompileOptions {
  /// One loss name for every output, or one per output (Keras's loss list).
  std::vector<std::string> loss = {};
  /// Per-sample callables instead of names (one for all outputs or one per output); a callable
  /// at position i replaces loss[i].
  std::vector<PerSampleLoss> loss_fns = {};
  /// Loss objects (losses/losses.hpp: options such as from_logits, label_smoothing, reduction)
  /// instead of names; an object at position i replaces loss[i] and loss_fns[i].
  std::vector<std::shared_ptr<losses::Loss>> loss_objects = {};
  /// The optimizer (default: "rmsprop", as Keras).
  std::shared_ptr<optim::Optimizer> optimizer = nullptr;
  /// Metric names computed on every output.
  std::vector<std::string> metrics = {};
  /// Metric names per output, by output name (Keras's metrics dict).
  std::map<std::string, std::vector<std::string>> output_metrics = {};
  /// Metric objects (metrics/metrics.hpp, user-defined ones too) for a model of one output.
  std::vector<std::shared_ptr<metrics::Metric>> metric_objects = {};
  /// Scalar weights of the per-output losses in the total loss (default 1 each).
  std::vector<float> loss_weights = {};
  /// Run in order on the gradients of every training step before the optimizer.
  std::vector<GradientTransform> gradient_transforms = {};
};

/// One batch: inputs, targets (one per model output), per-sample weights (undefined: 1) and
/// the rows of the data set it holds (for error messages; may be empty for generated data).
struct Batch {
  std::vector<Tensor> x, y;
  Tensor sample_weight;
  std::vector<std::size_t> rows;
};

/// Arrays held out for validation (Keras's validation_data=(x, y) or (x, y, sample_weight)).
struct ValidationData {
  std::vector<Tensor> x, y;
  Tensor sample_weight = {};
};

/// Options of Model::fit (Keras names and defaults).
struct FitOptions {
  std::size_t batch_size = 32;
  int epochs = 1;
  /// Fraction of the data, taken from the end before shuffling, held out for validation.
  float validation_split = 0.f;
  bool shuffle = true;
  /// 0 silent, 1 progress bar (one line per epoch when stdout is not a terminal), 2 one line.
  int verbose = 1;
  /// Epoch to start from (epochs counts the last epoch, as in Keras).
  int initial_epoch = 0;
  /// Called in order at the beginning and end of training, of every epoch and of every batch;
  /// the progress bar and the history run after them.
  std::vector<std::shared_ptr<Callback>> callbacks = {};
  /// Validation arrays (used instead of validation_split).
  std::optional<ValidationData> validation_data = std::nullopt;
  /// Per-sample weights of the training data (n,).
  Tensor sample_weight = {};
  /// Weights per class index, multiplied into the sample weights (labels from the first
  /// target: integer labels, or the argmax of one-hot rows).
  std::map<int, float> class_weight = {};
  /// Batches per epoch (0: the whole data; required for a Dataset of unknown length).
  std::size_t steps_per_epoch = 0;
  /// Data-parallel training over the ranks of a communicator (distributed/data_parallel.hpp);
  /// null: this process alone. batch_size is then the global batch. With a Dataset, each rank's
  /// Dataset yields that rank's shard and every rank must have the same number of batches.
  std::shared_ptr<distributed::DataParallel> distribute = nullptr;
};

/// Per-epoch metrics of a fit: history["loss"], history["accuracy"], history["val_loss"], ...
struct History {
  std::map<std::string, std::vector<double>> history;
  std::vector<double> epoch_seconds;
};

/// Options of evaluate and predict.
struct EvaluateOptions {
  std::size_t batch_size = 32;
  int verbose = 1;
};

}  // namespace xtape::layers
