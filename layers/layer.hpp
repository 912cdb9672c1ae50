#pragma once
/// @file layer.hpp
/// The Layer base: Keras's lifecycle. The constructor stores and validates options; build()
/// creates named weights with add_weight() once the input shape is known (on the first call);
/// call() computes. Shapes given to build() and compute_output_shape() are per-sample shapes,
/// without the batch axis.
#include <memory>
#include <string>
#include <vector>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "layers/initializers.hpp"
#include "optim/optimizers.hpp"

namespace xtape::layers {

/// A named weight of a layer.
struct Weight {
  std::string name;  ///< short name within the layer, e.g. "kernel"
  Tensor value;
  bool trainable = true;
};

/// Base class of every layer.
class Layer {
 public:
  /// `name` empty: a unique name is made from the class name on first use (snake_case,
  /// numbered "_1", "_2"... on repeats, as Keras does).
  explicit Layer(std::string name = "");
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  /// Builds on the first call (from inputs.shape() without the batch axis), checks the input
  /// shape against the built one, then runs call(). Throws std::invalid_argument naming the
  /// layer and both shapes when an input of another per-sample shape arrives.
  Tensor operator()(const Tensor& inputs, bool training = false);

  /// The layer's computation. `training` selects training behaviour (dropout).
  virtual Tensor call(const Tensor& inputs, bool training) = 0;
  /// Creates the weights for a per-sample input shape. The default creates none.
  virtual void build(const Shape& input_shape);
  /// Per-sample output shape for a per-sample input shape (default: unchanged).
  virtual Shape compute_output_shape(const Shape& input_shape) const;

  /// Builds the layer if needed (used by Sequential before the first batch).
  void ensure_built(const Shape& input_shape);
  bool built() const { return built_; }
  /// Per-sample input shape the layer was built with.
  const Shape& input_shape() const { return input_shape_; }

  /// The layer's unique name.
  const std::string& name() const;
  /// The C++ class name (e.g. "Conv2D", or a user's "StandardizedConv2DWithCall").
  virtual std::string class_name() const;

  /// Creates a weight named `name` of `shape`, initialised by `init` from the global RNG.
  Tensor add_weight(const std::string& name, const Shape& shape, const Initializer& init,
                    bool trainable = true);
  /// The weight called `name`; throws std::out_of_range naming the layer and the weight.
  Tensor weight(const std::string& name) const;
  const std::vector<Weight>& weights() const { return weights_; }
  /// Trainable weights as optimizer variables named "<layer name>/<weight name>".
  std::vector<optim::Variable> trainable_variables() const;
  /// Number of scalars in all weights.
  std::size_t count_params() const;

 private:
  mutable std::string name_;
  std::vector<Weight> weights_;
  Shape input_shape_;
  bool built_ = false;
};

/// Keras's to_snake_case: "StandardizedConv2DWithCall" -> "standardized_conv2d_with_call".
std::string to_snake_case(const std::string& class_name);

/// A unique layer name for a base name: "dense", then "dense_1", "dense_2"...
std::string unique_name(const std::string& base);

/// Resets the counters of unique_name (a new "session", as keras.backend.clear_session()).
void clear_session();

/// "(None, 26, 26, 32)" for a per-sample shape.
std::string batch_shape_str(const Shape& sample_shape);

}  // namespace xtape::layers
