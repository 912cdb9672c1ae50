#pragma once
/// @file model.hpp
/// Model, the base of every model (Keras's keras.Model), itself a Layer so models nest.
///
/// Three ways to make one, as in Keras:
/// - Functional: `Model model({inputs...}, {outputs...})` over SymbolicTensors from Input() and
///   layer calls; the graph runs eagerly through the tape when the model is called on Tensors.
/// - Sequential (models/sequential.hpp): a stack.
/// - Subclassing: derive from Model, track() the layers you own, override call() with any C++
///   control flow.
/// A model gives summary, count_params, trainable_variables, named_weights, get/set_weights,
/// save/load_weights and checkpoints (saving/weights.cpp), compile, fit, evaluate and predict
/// (training/trainer.cpp).
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/layer.hpp"
#include "layers/losses.hpp"
#include "optim/optimizers.hpp"
#include "training/options.hpp"

namespace xtape::layers {

class Model : public Layer {
 public:
  /// A subclassed model (override call() and track() your layers). `name` empty: from the
  /// class name ("model", "my_model", ...).
  explicit Model(std::string name = "");
  /// A Functional model from Input()s to outputs computed from them. Checks that every output
  /// is computed from the given inputs only, and that the inputs are distinct Input()s; throws
  /// std::invalid_argument naming the tensor otherwise. `name` empty: "functional", ...
  Model(std::vector<SymbolicTensor> inputs, std::vector<SymbolicTensor> outputs,
        std::string name = "");
  Model(const SymbolicTensor& input, const SymbolicTensor& output, std::string name = "");
  ~Model() override;
  Model(Model&&) noexcept;

  /// "Functional" for a graph model, else the C++ class ("Sequential", "MyModel").
  std::string class_name() const override;
  /// The model's layers: a Functional model's in graph order (InputLayers included), a
  /// Sequential's stack, a subclass's tracked layers.
  virtual std::vector<std::shared_ptr<Layer>> layers() const;
  /// The layer called `name`; throws std::invalid_argument listing the names.
  std::shared_ptr<Layer> get_layer(const std::string& name) const;

  /// True for a Functional model.
  bool is_functional() const { return graph_ != nullptr; }
  /// A Functional model's inputs and outputs (empty otherwise).
  const std::vector<SymbolicTensor>& inputs() const;
  const std::vector<SymbolicTensor>& outputs() const;

  /// A Functional model runs its graph; other models run call().
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& input_shapes) const override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build_multi(const std::vector<Shape>& input_shapes) override;
  using Layer::build;
  nlohmann::json get_config() const override;

  /// Prints Keras's summary table: layer, output shape, parameter count (and "Connected to"
  /// for a Functional model that is not a plain chain), then the totals.
  void summary(std::ostream& os) const;
  void summary() const;

  /// Sets the loss, optimizer (by name or object) and metrics by name.
  void compile(const std::string& loss, const std::string& optimizer,
               const std::vector<std::string>& metrics = {});
  void compile(const std::string& loss, std::shared_ptr<optim::Optimizer> optimizer,
               const std::vector<std::string>& metrics = {});
  bool compiled() const { return optimizer_ != nullptr; }
  /// What compile() was given, as Keras's compile config: {"loss": ..., "optimizer": {"name":
  /// ..., "learning_rate": ...}, "metrics": [...]}; null when not compiled.
  nlohmann::json compile_config() const;

  /// Trains on x (n, ...) and y (n, ...) for epochs initial_epoch .. epochs-1. Every epoch
  /// shuffles the training rows afresh with the model's own RNG (see save_checkpoint), so
  /// training is a function of the saved state and resumes bitwise. A model that is not built
  /// yet is built first by a call on one sample (under NoGrad, inference mode).
  ///
  /// A batch whose loss is NaN or infinite is not applied (the weights keep their last finite
  /// values). Then, if a callback asked to stop (TerminateOnNaN does), training ends after the
  /// epoch-end hooks, with a message, and fit returns normally; otherwise fit throws
  /// std::runtime_error naming the epoch and step.
  /// Throws std::invalid_argument when the model is not compiled, x and y disagree in length,
  /// or an option is out of range (batch_size 0 or more than the data, a negative or too large
  /// initial_epoch). fit, evaluate and predict flush denormals to zero while they run, as
  /// TensorFlow does (FlushDenormal, autodiff/tensor.hpp), and restore the caller's mode.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Loss and metrics on (x, y), under NoGrad: {"loss": ..., "accuracy": ...}.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y,
                                         const EvaluateOptions& options = {});
  /// Outputs for x in inference mode, under NoGrad.
  Tensor predict(const Tensor& x,
                 const EvaluateOptions& options = {.batch_size = 32, .verbose = 0});

  /// Trainable weights as variables named by path within the model ("conv2d/kernel",
  /// "block/dense/kernel"), without the model's own name.
  std::vector<optim::Variable> trainable_variables() const;
  optim::Optimizer* optimizer() const { return optimizer_.get(); }

  /// Asks fit to stop after the current batch (Keras's model.stop_training); fit clears it when
  /// it starts.
  void set_stop_training(bool stop) { stop_training_ = stop; }
  bool stop_training() const { return stop_training_; }

  /// Every weight (trainable or not) by path ("conv2d/kernel", "block/dense/bias"), in layer
  /// order.
  std::vector<std::pair<std::string, Tensor>> named_weights() const;
  /// Copies of every weight's values, in named_weights() order (Keras's get_weights).
  std::vector<Tensor> get_weights() const;
  /// Copies `values` into the weights, in named_weights() order. Checks every count and shape
  /// first; throws std::invalid_argument naming the weight and both shapes, weights unchanged.
  void set_weights(const std::vector<Tensor>& values);

  /// Writes every weight to a safetensors file (F32), atomically. Tensors are named by their
  /// place in the model's structure, not by layer names (as Keras 3 saves): each layer is
  /// "<class in snake_case>" numbered within its parent ("conv2d", "conv2d_1", "block/dense"),
  /// so a model built twice in one process (whose layers are named "conv2d_2", ...) loads the
  /// other's file. Throws std::logic_error when the model is not built, std::runtime_error
  /// when the file cannot be written or a weight holds NaN or infinity.
  void save_weights(const std::string& path) const;
  /// Reads weights written by save_weights into a model of the same structure. Everything is
  /// checked before any weight changes: every weight present, no unknown tensor, each F32 of
  /// the weight's shape and finite; plus every check of parse_safetensors. Throws
  /// std::runtime_error naming the file, the path and both shapes; the model is then unchanged.
  void load_weights(const std::string& path);

  /// Writes a full checkpoint atomically: the weights, the optimizer's slots (as
  /// "optimizer/<weight path>/<slot name>"), and in the metadata the number of completed
  /// epochs `epoch`, the optimizer's name, iterations and learning rate, the states of the
  /// shuffle RNG and of global_rng(), and every layer's save_own_state() (Dropout's RNG) as
  /// "state/<layer path>/<key>". Throws std::logic_error when not built or not compiled.
  void save_checkpoint(const std::string& path, int epoch) const;
  /// Restores a checkpoint written by save_checkpoint into this built, compiled model of the
  /// same structure and returns its epoch: `fit(x, y, {.epochs = E, .initial_epoch = epoch})`
  /// then continues exactly as the original run did (bitwise, with the same thread count).
  /// Checks everything (weights as load_weights; optimizer name, slots, shapes, finite,
  /// non-negative second moments, iterations consistent with the slots; metadata well formed;
  /// every layer's state) before changing anything; throws std::runtime_error naming the file
  /// and the entry, leaving model and optimizer unchanged.
  int load_checkpoint(const std::string& path);

 protected:
  /// The training loop's loss and metrics (set by compile).
  const LossFn& loss_fn() const { return loss_; }
  const std::vector<std::pair<std::string, MetricFn>>& metric_fns() const { return metrics_; }

 private:
  struct Graph;
  std::map<std::string, double> run_eval(const Tensor& x, const Tensor& y, std::size_t begin,
                                         std::size_t end, std::size_t batch_size, int verbose);
  void build_for(const Tensor& x);

  std::unique_ptr<Graph> graph_;
  std::string loss_name_;
  LossFn loss_;
  std::vector<std::pair<std::string, MetricFn>> metrics_;
  std::shared_ptr<optim::Optimizer> optimizer_;
  Rng shuffle_rng_;
  bool stop_training_ = false;

  friend class ModelIo;
};

}  // namespace xtape::layers
