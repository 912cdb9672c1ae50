#pragma once
/// @file activation_layers.hpp
/// Keras 3's activation layers (keras/src/layers/activations/): ReLU, LeakyReLU, PReLU, ELU,
/// Softmax. (Activation, by name, is in layers/core.hpp.) Each keeps its input's shape and
/// propagates NaN; option errors throw std::invalid_argument naming the layer, the option and
/// the value received, as Keras does.
#include <optional>
#include <string>
#include <vector>

#include "layers/layer.hpp"

namespace xtape::layers {

/// Options of ReLU (Keras defaults).
struct ReLUOptions {
  std::optional<float> max_value;  ///< >= 0; none: unbounded
  float negative_slope = 0.f;      ///< >= 0
  float threshold = 0.f;           ///< >= 0
  std::string name = "";
};

/// keras.layers.ReLU: max_value if x >= max_value, x if threshold <= x < max_value,
/// negative_slope * (x - threshold) otherwise.
class ReLU : public Layer {
 public:
  using Options = ReLUOptions;
  explicit ReLU(ReLUOptions options = {});
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  /// Keras's keys: max_value (null when none), negative_slope, threshold.
  nlohmann::json get_config() const override;
  const ReLUOptions& options() const { return options_; }

 private:
  ReLUOptions options_;
};

/// Options of LeakyReLU (the layer's Keras default slope is 0.3; the function's is 0.2).
struct LeakyReLUOptions {
  float negative_slope = 0.3f;  ///< >= 0
  std::string name = "";
};

/// keras.layers.LeakyReLU: x for x > 0, negative_slope * x otherwise.
class LeakyReLU : public Layer {
 public:
  using Options = LeakyReLUOptions;
  explicit LeakyReLU(LeakyReLUOptions options = {});
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  LeakyReLUOptions options_;
};

/// Options of PReLU.
struct PReLUOptions {
  std::string alpha_initializer = "zeros";
  /// Axes (1-based, counting the batch axis as 0, as Keras) along which alpha is shared: {1, 2}
  /// after a Conv2D gives one alpha per channel.
  std::vector<int> shared_axes = {};
  std::string name = "";
};

/// keras.layers.PReLU: relu(x) - alpha * relu(-x), alpha a trainable weight of the per-sample
/// input shape with the shared axes of extent 1.
class PReLU : public Layer {
 public:
  using Options = PReLUOptions;
  explicit PReLU(PReLUOptions options = {});
  /// Creates "alpha"; throws std::invalid_argument for a shared axis outside 1..rank.
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  /// Keras's keys: alpha_initializer, alpha_regularizer, alpha_constraint, shared_axes.
  nlohmann::json get_config() const override;
  Tensor alpha() const { return weight("alpha"); }

 private:
  PReLUOptions options_;
};

/// Options of ELU.
struct ELUOptions {
  float alpha = 1.f;
  std::string name = "";
};

/// keras.layers.ELU: x for x > 0, alpha * (exp(x) - 1) otherwise.
class ELU : public Layer {
 public:
  using Options = ELUOptions;
  explicit ELU(ELUOptions options = {});
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  ELUOptions options_;
};

/// Options of Softmax.
struct SoftmaxOptions {
  int axis = -1;  ///< of the full input (batch axis 0); negative counts from the end
  std::string name = "";
};

/// keras.layers.Softmax over one axis. Throws std::invalid_argument when the axis is outside
/// the input's rank.
class Softmax : public Layer {
 public:
  using Options = SoftmaxOptions;
  explicit Softmax(SoftmaxOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  SoftmaxOptions options_;
};

}  // namespace xtape::layers
