#pragma once
/// @file sequential.hpp
/// Sequential model with Keras's compile / fit / evaluate / predict and summary(), callbacks
/// (layers/callbacks.hpp), and saving: weights and full checkpoints in the safetensors format
/// (layers/saving.hpp).
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/layer.hpp"
#include "layers/losses.hpp"
#include "optim/optimizers.hpp"

namespace xtape::layers {

class Callback;

/// Options of Sequential::fit (Keras names and defaults).
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
  /// Called in order at the beginning and end of training, of every epoch and of every batch.
  std::vector<std::shared_ptr<Callback>> callbacks = {};
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

/// A linear stack of layers.
class Sequential {
 public:
  /// `name` empty: "sequential", "sequential_1", ...
  explicit Sequential(std::vector<std::shared_ptr<Layer>> layers = {}, std::string name = "");

  /// Appends a layer. An InputLayer first fixes the input shape and builds every layer.
  void add(std::shared_ptr<Layer> layer);
  const std::vector<std::shared_ptr<Layer>>& layers() const { return layers_; }
  const std::string& name() const { return name_; }

  /// Builds every layer for a per-sample input shape (shape inference through the stack).
  void build(const Shape& input_shape);
  bool built() const { return built_; }

  /// Runs the layers in order.
  Tensor operator()(const Tensor& x, bool training = false);

  /// Prints Keras's summary table (layer, output shape, parameter count, totals).
  void summary(std::ostream& os) const;
  void summary() const;

  /// Sets the loss, optimizer (by name or object) and metrics by name.
  void compile(const std::string& loss, const std::string& optimizer,
               const std::vector<std::string>& metrics = {});
  void compile(const std::string& loss, std::shared_ptr<optim::Optimizer> optimizer,
               const std::vector<std::string>& metrics = {});

  /// Trains on x (n, ...) and y (n, ...) for epochs initial_epoch .. epochs-1. Every epoch
  /// shuffles the training rows afresh with the model's own RNG (see save_checkpoint), so
  /// training is a function of the saved state and resumes bitwise.
  ///
  /// A batch whose loss is NaN or infinite is not applied (the weights keep their last finite
  /// values). Then, if a callback asked to stop (TerminateOnNaN does), training ends after the
  /// epoch-end hooks, with a message, and fit returns normally; otherwise fit throws
  /// std::runtime_error naming the epoch and step, as before callbacks existed.
  /// Throws std::invalid_argument when the model is not compiled or x and y disagree in length.
  /// fit, evaluate and predict flush denormals to zero while they run, as TensorFlow does
  /// (FlushDenormal, autodiff/tensor.hpp), and restore the caller's mode when they return.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Loss and metrics on (x, y), under NoGrad: {"loss": ..., "accuracy": ...}.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y,
                                         const EvaluateOptions& options = {});
  /// Outputs for x in inference mode, under NoGrad.
  Tensor predict(const Tensor& x,
                 const EvaluateOptions& options = {.batch_size = 32, .verbose = 0});

  std::vector<optim::Variable> trainable_variables() const;
  std::size_t count_params() const;
  optim::Optimizer* optimizer() const { return optimizer_.get(); }

  /// Asks fit to stop after the current batch (Keras's model.stop_training); fit clears it when
  /// it starts.
  void set_stop_training(bool stop) { stop_training_ = stop; }
  bool stop_training() const { return stop_training_; }

  /// Every weight (trainable or not) as "<layer name>/<weight name>", in layer order: the names
  /// of saved files.
  std::vector<std::pair<std::string, Tensor>> named_weights() const;
  /// Copies of every weight's values, in named_weights() order (Keras's get_weights).
  std::vector<Tensor> get_weights() const;
  /// Copies `values` into the weights, in named_weights() order. Checks every count and shape
  /// first; throws std::invalid_argument naming the weight and both shapes, weights unchanged.
  void set_weights(const std::vector<Tensor>& values);

  /// Writes every weight to a safetensors file (F32, names as named_weights()), atomically.
  /// Throws std::logic_error when the model is not built, std::runtime_error when the file
  /// cannot be written.
  /// Refuses (std::runtime_error) weights holding a NaN or an infinity: such a file could not be
  /// loaded back.
  void save_weights(const std::string& path) const;
  /// Reads weights written by save_weights (or by any safetensors tool with the same names;
  /// a checkpoint's extra optimizer entries are ignored). Everything is checked before any
  /// weight changes: the model must be built; every weight must be present, no unknown tensor
  /// may appear, each must be F32 of the weight's shape and finite; plus every check of
  /// parse_safetensors. Throws std::runtime_error naming the file and the tensor; the model is
  /// then unchanged.
  void load_weights(const std::string& path);

  /// Writes a full checkpoint atomically: the weights, the optimizer's slots (as
  /// "optimizer/<variable name>/<slot name>"), and in the metadata the number of completed
  /// epochs `epoch`, the optimizer's name, iterations and learning rate, and the states of the
  /// shuffle RNG, of every Dropout layer's RNG and of global_rng(). Throws std::logic_error
  /// when the model is not built or not compiled.
  void save_checkpoint(const std::string& path, int epoch) const;
  /// Restores a checkpoint written by save_checkpoint into this built, compiled model and
  /// returns its epoch: `fit(x, y, {.epochs = E, .initial_epoch = epoch})` then continues
  /// exactly as the original run did (bitwise, with the same thread count). Checks as
  /// load_weights and also the optimizer (same name and slots, every slot of each variable
  /// present with its shape, finite), the metadata (present, well formed) and the Dropout layers
  /// (same names) before changing anything; throws std::runtime_error naming the file and the
  /// entry, leaving model and optimizer unchanged.
  int load_checkpoint(const std::string& path);

 private:
  std::map<std::string, double> run_eval(const Tensor& x, const Tensor& y, std::size_t begin,
                                         std::size_t end, std::size_t batch_size, int verbose);

  std::string name_;
  std::vector<std::shared_ptr<Layer>> layers_;
  Shape input_shape_;
  bool built_ = false;
  std::string loss_name_;
  LossFn loss_;
  std::vector<std::pair<std::string, MetricFn>> metrics_;
  std::shared_ptr<optim::Optimizer> optimizer_;
  Rng shuffle_rng_;
  bool stop_training_ = false;
};

}  // namespace xtape::layers
