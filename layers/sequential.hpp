#pragma once
/// @file sequential.hpp
/// Sequential model with Keras's compile / fit / evaluate / predict and summary().
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "layers/losses.hpp"
#include "optim/optimizers.hpp"

namespace xtape::layers {

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

  /// Trains on x (n, ...) and y (n, ...). Throws std::invalid_argument when the model is not
  /// compiled or x and y disagree in length.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Loss and metrics on (x, y), under NoGrad: {"loss": ..., "accuracy": ...}.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y,
                                         const EvaluateOptions& options = {});
  /// Outputs for x in inference mode, under NoGrad.
  Tensor predict(const Tensor& x, const EvaluateOptions& options = {.batch_size = 32, .verbose = 0});

  std::vector<optim::Variable> trainable_variables() const;
  std::size_t count_params() const;
  optim::Optimizer* optimizer() const { return optimizer_.get(); }

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
};

}  // namespace xtape::layers
