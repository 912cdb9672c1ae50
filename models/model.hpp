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
#include "optim/optimizers.hpp"
#include "training/dataset.hpp"
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
  /// Keras's compile with every option: per-output losses and weights, per-output metrics,
  /// callables as losses, gradient transforms. Throws std::invalid_argument naming the unknown
  /// loss or metric, or when the loss list does not match the outputs (checked at the first
  /// step, when the outputs are known).
  void compile(CompileOptions options);
  bool compiled() const { return optimizer_ != nullptr; }
  /// What compile() was given, as Keras's compile config: {"loss": ..., "optimizer": {"name":
  /// ..., "learning_rate": ...}, "metrics": [...]}; null when not compiled.
  nlohmann::json compile_config() const;
  /// Appends a gradient transform (see CompileOptions::gradient_transforms).
  void add_gradient_transform(GradientTransform transform);

  /// Trains on x (n, ...) and y (n, ...) for epochs initial_epoch .. epochs-1. Every epoch
  /// shuffles the training rows afresh with the model's own RNG (see save_checkpoint), so
  /// training is a function of the saved state and resumes bitwise. A model that is not built
  /// yet is built first by a call on one sample (under NoGrad, inference mode).
  ///
  /// A batch whose loss is NaN or infinite is not applied (the weights keep their last finite
  /// values). Then, if a callback asked to stop (TerminateOnNaN does), training ends after the
  /// epoch-end hooks, with a message, and fit returns normally; otherwise fit throws
  /// std::runtime_error naming the epoch and step.
  /// Throws std::invalid_argument when the model is not compiled, the arrays disagree in
  /// length, or an option is out of range. A loss or metric that refuses a batch (a label out
  /// of range) is reported with the row of the data set it came from.
  /// fit, evaluate and predict flush denormals to zero while they run, as TensorFlow does
  /// (FlushDenormal, autodiff/tensor.hpp), and restore the caller's mode.
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Several inputs and targets (a Functional model of several inputs and outputs).
  History fit(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
              const FitOptions& options = {});
  /// Batches from a Dataset (validation_split does not apply; use validation_data).
  History fit(Dataset& data, const FitOptions& options = {});
  /// Loss and metrics on (x, y), under NoGrad: {"loss": ..., "accuracy": ...}.
  std::map<std::string, double> evaluate(const Tensor& x, const Tensor& y,
                                         const EvaluateOptions& options = {});
  std::map<std::string, double> evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                         const EvaluateOptions& options = {},
                                         const Tensor& sample_weight = {});
  std::map<std::string, double> evaluate(Dataset& data, const EvaluateOptions& options = {});
  /// Outputs for x in inference mode, under NoGrad (a model of one output).
  Tensor predict(const Tensor& x,
                 const EvaluateOptions& options = {.batch_size = 32, .verbose = 0});
  /// Every output, for several inputs.
  std::vector<Tensor> predict_all(const std::vector<Tensor>& x,
                                  const EvaluateOptions& options = {.batch_size = 32,
                                                                    .verbose = 0});

  /// One training step on one batch, outside fit (Keras's train_on_batch): the running
  /// metrics are reset first; returns the step's logs.
  Logs train_on_batch(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                      const Tensor& sample_weight = {});
  /// One evaluation step (Keras's test_on_batch).
  Logs test_on_batch(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                     const Tensor& sample_weight = {});
  /// Outputs for one batch (Keras's predict_on_batch).
  std::vector<Tensor> predict_on_batch(const std::vector<Tensor>& x);

  /// The training step fit runs on every batch (Keras's train_step): forward, compute_loss,
  /// backward, apply_gradients (the gradient transforms, then the optimizer), update_metrics;
  /// returns the running metrics. Override for custom loops (GANs, two optimizers); fit still
  /// runs the callbacks, the progress bar and the history around it.
  virtual Logs train_step(const Batch& batch);
  /// The evaluation step (forward, loss, metrics), Keras's test_step.
  virtual Logs test_step(const Batch& batch);
  /// The prediction step, Keras's predict_step.
  virtual std::vector<Tensor> predict_step(const Batch& batch);

  /// Names of the logs a step reports, in order: "loss", per-output losses, metrics.
  std::vector<std::string> metrics_names() const;

  /// Trainable weights as variables named by path within the model ("conv2d/kernel",
  /// "block/dense/kernel"), without the model's own name.
  std::vector<optim::Variable> trainable_variables() const;
  optim::Optimizer* optimizer() const { return optimizer_.get(); }

  /// Sets the epoch the running fit starts from, from a callback's on_train_begin (Keras's
  /// BackupAndRestore does this after restoring a checkpoint).
  void set_resume_epoch(int epoch) { resume_epoch_ = epoch; }

  /// Asks fit to stop after the current batch (Keras's model.stop_training); fit clears it when
  /// it starts.
  void set_stop_training(bool stop) { stop_training_ = stop; }
  bool stop_training() const { return stop_training_; }

  /// False only on ranks other than 0 of a data-parallel fit (FitOptions::distribute): the
  /// callbacks that print or write files (progress bar, ModelCheckpoint, CSVLogger,
  /// BackupAndRestore, TensorBoard) do so only when it is true.
  bool is_chief() const;

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
  /// shuffle RNG and of global_rng(), every layer's save_own_state() (Dropout's RNG) as
  /// "state/<layer path>/<key>", and, during fit, every callback's save_state() (EarlyStopping's
  /// wait, ReduceLROnPlateau's cooldown, ModelCheckpoint's best) as "callback/<class>/<key>".
  /// Throws std::logic_error when not built or not compiled.
  void save_checkpoint(const std::string& path, int epoch) const;
  /// Restores a checkpoint written by save_checkpoint into this built, compiled model of the
  /// same structure and returns its epoch: `fit(x, y, {.epochs = E, .initial_epoch = epoch})`
  /// then continues exactly as the original run did (bitwise, with the same thread count).
  /// Checks everything (weights as load_weights; optimizer name, slots, shapes, finite,
  /// non-negative second moments, iterations consistent with the slots; metadata well formed;
  /// every layer's state) before changing anything; throws std::runtime_error naming the file
  /// and the entry, leaving model and optimizer unchanged. Callback states are handed to the
  /// callbacks of the same class when the next fit has begun (or the running fit, when a
  /// callback loads the checkpoint in on_train_begin, as BackupAndRestore does).
  int load_checkpoint(const std::string& path);

 protected:
  /// The compiled losses of `outputs` against batch.y, weighted by batch.sample_weight and
  /// the loss weights: the scalar train_step differentiates. Records each output's loss for
  /// update_metrics.
  Tensor compute_loss(const Batch& batch, const std::vector<Tensor>& outputs);
  /// Runs the gradient transforms over `variables`' gradients, then the optimizer.
  void apply_gradients(std::vector<optim::Variable>& variables);
  /// Adds the batch's loss (`loss_value`, from compute_loss) and metrics to the running means.
  void update_metrics(const Batch& batch, const std::vector<Tensor>& outputs, double loss_value);
  /// The running means as logs ("loss", "<output>_loss", metrics).
  Logs metrics_result() const;
  /// Clears the running means (fit does it at every epoch, evaluate at its start).
  void reset_metrics();
  /// The trainable variables fit trains (computed once per fit; updated when layers change).
  std::vector<optim::Variable>& training_variables();

 private:
  struct Graph;
  struct Compiled;
  Logs run_eval(Dataset& data, std::size_t steps, int verbose);
  History run_fit(Dataset* data, const std::vector<Tensor>* x, const std::vector<Tensor>* y,
                  const FitOptions& options);
  void build_for(const std::vector<Tensor>& x);
  /// Keys of callbacks in checkpoints: "<class in snake_case>", numbered per class.
  static std::vector<std::string> callback_keys(const std::vector<std::shared_ptr<Callback>>& cbs);
  void apply_callback_states(const std::vector<std::shared_ptr<Callback>>& cbs,
                             const std::map<std::string, LayerState>& states);
  Compiled& compiled_state(const char* who);
  void resolve_outputs(std::size_t outputs);
  // Data-parallel fit (training/data_parallel_fit.cpp).
  void broadcast_training_state();
  Logs global_metrics_result();
  bool agree_step(const Batch& batch, bool loss_finite);

  std::unique_ptr<Graph> graph_;
  std::shared_ptr<Compiled> compiled_;
  std::shared_ptr<optim::Optimizer> optimizer_;
  std::vector<optim::Variable> train_vars_;
  double last_loss_ = 0;
  int resume_epoch_ = -1;
  /// The running fit's callbacks (their state goes into checkpoints), and the states a
  /// checkpoint restored for them, applied when the next fit's callbacks have begun.
  const std::vector<std::shared_ptr<Callback>>* active_callbacks_ = nullptr;
  std::map<std::string, LayerState> pending_callback_states_;
  Rng shuffle_rng_;
  bool stop_training_ = false;
  /// The strategy of the running data-parallel fit, or null.
  distributed::DataParallel* data_parallel_ = nullptr;

  friend class ModelIo;
};

}  // namespace xtape::layers
