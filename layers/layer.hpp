#pragma once
/// @file layer.hpp
/// The Layer base: Keras's lifecycle. The constructor stores and validates options; build()
/// creates named weights with add_weight() once the input shape is known (on the first call);
/// call() computes. Shapes given to build() and compute_output_shape() are per-sample shapes,
/// without the batch axis.
///
/// Layers nest: a layer that owns layers registers them with track() (or creates them with
/// add_layer()), and their weights then appear in weights(), trainable_variables() and
/// count_params() with path names ("dense/kernel"), so a model trains, counts, saves and loads
/// them. Calling a layer on SymbolicTensors (layers/node.hpp) records a node of a Functional
/// graph instead of computing.
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <typeinfo>
#include <vector>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "layers/initializers.hpp"
#include "optim/optimizers.hpp"

namespace xtape::layers {

class Layer;
class Parametrization;
}  // namespace xtape::layers
namespace xtape::detail {
struct SymbolicNode;
}  // namespace xtape::detail
namespace xtape::layers {

/// A symbolic tensor of the Functional API (Keras's KerasTensor): a per-sample shape and the
/// node that produces it. Input() makes one; calling a layer on one records a node.
class SymbolicTensor {
 public:
  SymbolicTensor() = default;
  SymbolicTensor(std::shared_ptr<detail::SymbolicNode> node, int index)
      : node_(std::move(node)), index_(index) {}
  bool defined() const { return node_ != nullptr; }
  /// Per-sample shape (no batch axis).
  const Shape& shape() const;
  /// The producing node and which of its outputs this is.
  const std::shared_ptr<detail::SymbolicNode>& node() const { return node_; }
  int index() const { return index_; }
  /// The layer that produced it (an InputLayer for an Input).
  std::shared_ptr<Layer> layer() const;
  /// An Input converts to its InputLayer, so `Sequential({Input({28, 28, 1}), ...})` reads as
  /// in Keras. Throws std::invalid_argument for a tensor that is not an Input.
  operator std::shared_ptr<Layer>() const;  // NOLINT: implicit on purpose
  /// "(None, 28, 28, 1)".
  std::string shape_str() const;

 private:
  std::shared_ptr<detail::SymbolicNode> node_;
  int index_ = 0;
};

/// A named weight of a layer.
struct Weight {
  std::string name;  ///< short name within the layer ("kernel"), or a path for nested weights
  Tensor value;
  bool trainable = true;
  /// Penalty of the value added to the training loss (Keras's kernel_regularizer); may be empty.
  std::function<Tensor(const Tensor&)> regularizer;
  /// Projection applied after each optimizer update (Keras's kernel_constraint); may be empty.
  std::function<Tensor(const Tensor&)> constraint;
};

/// A layer's state besides its weights (RNG states, counters), saved in checkpoints as
/// metadata strings: key (within the layer) -> value.
using LayerState = std::map<std::string, std::string>;

/// Base class of every layer.
class Layer : public std::enable_shared_from_this<Layer> {
 public:
  /// `name` empty: a unique name is made from the class name on first use (snake_case,
  /// numbered "_1", "_2"... on repeats, as Keras does).
  explicit Layer(std::string name = "");
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  /// Layers move (so a function can return a model by value) while nothing shares them: a
  /// layer held by a std::shared_ptr or called symbolically must stay where it is.
  Layer(Layer&&) = default;
  Layer& operator=(Layer&&) = delete;

  /// Builds on the first call (from inputs.shape() without the batch axis), checks the input
  /// shape against the built one, then runs call(). Throws std::invalid_argument naming the
  /// layer and both shapes when an input of another per-sample shape arrives.
  Tensor operator()(const Tensor& inputs, bool training = false);
  /// The same for a layer of several inputs (merge layers, multi-input models): one output.
  Tensor operator()(const std::vector<Tensor>& inputs, bool training = false);
  /// Every output (models with several outputs), for any number of inputs.
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, bool training = false);

  /// Symbolic call (Functional API): records a node, builds the layer and infers the output
  /// shape without computing. The layer must be held by a std::shared_ptr (make<L>(...)).
  /// Throws std::invalid_argument naming the layer and the shapes on a mismatch.
  SymbolicTensor operator()(const SymbolicTensor& inputs);
  SymbolicTensor operator()(const std::vector<SymbolicTensor>& inputs);
  /// Symbolic call returning every output of a multi-output layer or model.
  std::vector<SymbolicTensor> call_all(const std::vector<SymbolicTensor>& inputs);

  /// The layer's computation on one input. `training` selects training behaviour (dropout).
  /// The default forwards to the list form; a layer overrides one of the two.
  virtual Tensor call(const Tensor& inputs, bool training);
  /// The computation on a list of inputs. The default requires exactly one input and runs
  /// call(inputs[0]); merge layers override it.
  virtual Tensor call(const std::vector<Tensor>& inputs, bool training);
  /// Every output; the default is the one result of call(). Models of several outputs
  /// override it.
  virtual std::vector<Tensor> forward(const std::vector<Tensor>& inputs, bool training);

  /// Creates the weights for a per-sample input shape. The default creates none.
  virtual void build(const Shape& input_shape);
  /// Builds for several inputs; the default requires one and calls build(shape).
  virtual void build_multi(const std::vector<Shape>& input_shapes);
  /// Per-sample output shape for a per-sample input shape. The default infers it by running
  /// the layer once on a batch of one zero sample under NoGrad (layers that keep the shape,
  /// or know it, override this to infer without computing).
  virtual Shape compute_output_shape(const Shape& input_shape) const;
  /// Shapes for several inputs; the default requires one.
  virtual Shape compute_output_shape_multi(const std::vector<Shape>& input_shapes) const;
  /// Every output's shape (several for multi-output models); default: one.
  virtual std::vector<Shape> compute_output_shapes(const std::vector<Shape>& input_shapes) const;

  /// Builds the layer if needed (used by Sequential before the first batch).
  void ensure_built(const Shape& input_shape);
  void ensure_built_multi(const std::vector<Shape>& input_shapes);
  bool built() const { return built_; }
  /// Per-sample input shape the layer was built with (the first, for several inputs).
  const Shape& input_shape() const;
  /// Every per-sample input shape the layer was built with.
  const std::vector<Shape>& input_shapes() const { return input_shapes_; }

  /// The layer's unique name.
  const std::string& name() const;
  /// The C++ class name (e.g. "Conv2D", or a user's "StandardizedConv2DWithCall").
  virtual std::string class_name() const;

  /// Creates a weight named `name` of `shape`, initialised by `init` from the global RNG.
  Tensor add_weight(const std::string& name, const Shape& shape, const Initializer& init,
                    bool trainable = true,
                    std::function<Tensor(const Tensor&)> regularizer = {},
                    std::function<Tensor(const Tensor&)> constraint = {});
  /// Adds a scalar to the loss of the current forward pass (Keras's add_loss): collected by
  /// losses() until the next outermost call of this layer or a layer containing it.
  void add_loss(const Tensor& loss);
  /// The losses of the last forward pass added by this layer and its sub-layers, then the
  /// penalties of their weights' regularizers (recorded: they train). Model::compute_loss
  /// adds their sum to the compiled loss.
  std::vector<Tensor> losses() const;
  /// Applies every weight's constraint (this layer's and its sub-layers'), as Keras's
  /// optimizer does after each update.
  void apply_constraints();
  /// Internal: drops the losses this layer added (the outermost call does it for its tree).
  void clear_own_call_losses() { call_losses_.clear(); }
  /// The weight called `name` (its own, or a path "dense/kernel" into a sub-layer); throws
  /// std::out_of_range naming the layer and the weight. A parametrized weight
  /// (layers/parametrize.hpp) reads as its parametrization's result.
  Tensor weight(const std::string& name) const;
  /// The stored value of weight `name` (of a parametrized one, the original the optimizer
  /// updates); throws std::out_of_range as weight() does.
  Tensor stored_weight(const std::string& name) const;

  /// A parametrization registered on one of the layer's own weights.
  struct ParametrizedWeight {
    std::string weight;
    std::shared_ptr<Parametrization> parametrization;
  };
  /// Registration order; several on one weight compose in that order.
  const std::vector<ParametrizedWeight>& parametrizations() const { return parametrizations_; }
  /// Internal (use parametrize()): registers, attaching at once when built, else at build.
  void add_parametrization(const std::string& weight_name, std::shared_ptr<Parametrization> p);
  /// Internal (use remove_parametrizations()): drops those of `weight_name`.
  void drop_parametrizations(const std::string& weight_name);
  /// The weights this layer created itself with add_weight.
  const std::vector<Weight>& own_weights() const { return weights_; }
  /// Every weight of the layer and its sub-layers, own first, then each tracked layer's in
  /// tracking order, named by path ("kernel", "dense/kernel", "block/dense_1/bias"); a weight
  /// is trainable when it was created trainable and neither its layer nor an enclosing one is
  /// frozen. A weight shared by two tracked paths appears once, at its first path.
  std::vector<Weight> weights() const;
  /// Trainable weights as optimizer variables named "<layer name>/<weight path>".
  std::vector<optim::Variable> trainable_variables() const;
  /// Number of scalars in all weights (nested ones included).
  std::size_t count_params() const;

  /// Keras's layer.trainable. Setting it sets it on every tracked sub-layer too; a frozen
  /// layer's weights stop requiring gradients and are left out of trainable_variables().
  bool trainable() const { return trainable_; }
  virtual void set_trainable(bool trainable);

  /// Registers `layer` as a sub-layer (libtorch's register_module): its weights become this
  /// layer's, under "<its name>/...". Returns `layer`, so members read
  /// `LayerRef<Dense> proj_ = track(make<Dense>({.units = 8}));`. Throws on null or on
  /// tracking a layer into itself.
  template <class L>
  std::shared_ptr<L> track(std::shared_ptr<L> layer) {
    track_layer(layer);
    return layer;
  }
  /// Tracked sub-layers in tracking order.
  const std::vector<std::shared_ptr<Layer>>& sublayers() const { return sublayers_; }

  /// Layer state besides the weights, for checkpoints (an RNG: Dropout). Default: none.
  virtual LayerState save_own_state() const { return {}; }
  /// Checks `state` (as save_own_state wrote it) and restores it; throws
  /// std::invalid_argument naming the key on a missing or malformed entry. Default: none.
  virtual void load_own_state(const LayerState& state);

  /// The layer's options as Keras config JSON ({"name": ..., "trainable": ..., "filters": ...}).
  /// The default holds name and trainable; layers add their options. Layers created back from
  /// a config (layers/registry.hpp) read the same keys.
  virtual nlohmann::json get_config() const;

  /// Number of symbolic calls so far (Keras's node index of the next call).
  int node_count() const { return node_count_; }

 protected:
  /// Sets the weights' requires_grad from trainable flags (after freezing or unfreezing).
  void refresh_requires_grad(bool enclosing_trainable);

 private:
  void track_layer(const std::shared_ptr<Layer>& layer);
  Tensor checked_call(const std::vector<Tensor>& inputs, bool training, bool all,
                      std::vector<Tensor>* outputs);
  std::vector<Shape> sample_shapes(const std::vector<Tensor>& inputs) const;
  std::vector<Shape> probe_output_shapes(const std::vector<Shape>& input_shapes) const;
  Tensor parametrized(const std::string& name, const Tensor& stored) const;
  friend class ParametrizationScope;

  mutable std::string name_;
  std::vector<Weight> weights_;
  std::vector<Tensor> call_losses_;
  std::vector<std::shared_ptr<Layer>> sublayers_;
  std::vector<Shape> input_shapes_;
  std::vector<ParametrizedWeight> parametrizations_;
  // Within a call: the training flag and each parametrized weight computed so far.
  mutable std::map<std::string, Tensor> parametrized_cache_;
  int parametrization_depth_ = 0;
  bool parametrization_training_ = false;
  bool built_ = false;
  bool trainable_ = true;
  int node_count_ = 0;
};

/// A shared handle to a layer that calls it directly: `LayerRef<Dense> d = make<Dense>(...);
/// y = d(x);` (also on SymbolicTensors). Converts to std::shared_ptr<Layer>.
template <class L>
class LayerRef : public std::shared_ptr<L> {
 public:
  LayerRef() = default;
  LayerRef(std::shared_ptr<L> p) : std::shared_ptr<L>(std::move(p)) {}  // NOLINT: implicit
  Tensor operator()(const Tensor& x, bool training = false) const { return base()(x, training); }
  Tensor operator()(const std::vector<Tensor>& xs, bool training = false) const {
    return base()(xs, training);
  }
  SymbolicTensor operator()(const SymbolicTensor& x) const { return base()(x); }
  SymbolicTensor operator()(const std::vector<SymbolicTensor>& xs) const { return base()(xs); }

 private:
  Layer& base() const { return **this; }
};

/// Creates a layer held by a LayerRef: `make<Dense>({.units = 64, .activation = "relu"})`.
template <class L, class... A>
LayerRef<L> make(A&&... args) {
  return LayerRef<L>(std::make_shared<L>(std::forward<A>(args)...));
}
/// The same with a layer's options struct given in braces (designated initializers).
template <class L>
LayerRef<L> make(typename L::Options options) {
  return LayerRef<L>(std::make_shared<L>(std::move(options)));
}

/// A C++ type's name without namespaces or template arguments ("Conv2D", "EarlyStopping").
std::string type_name(const std::type_info& type);

/// Keras's to_snake_case: "StandardizedConv2DWithCall" -> "standardized_conv2d_with_call".
std::string to_snake_case(const std::string& class_name);

/// A unique layer name for a base name: "dense", then "dense_1", "dense_2"...
std::string unique_name(const std::string& base);

/// Resets the counters of unique_name (a new "session", as keras.backend.clear_session()).
void clear_session();

/// "(None, 26, 26, 32)" for a per-sample shape.
std::string batch_shape_str(const Shape& sample_shape);

}  // namespace xtape::layers
