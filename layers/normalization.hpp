#pragma once
/// @file normalization.hpp
/// Keras 3's normalization layers (keras/src/layers/normalization/): BatchNormalization,
/// LayerNormalization, GroupNormalization, UnitNormalization. Axes count the batch axis as 0,
/// as Keras does (negative axes from the end); they must not be the batch axis. Each keeps its
/// input's shape. Option and shape errors throw std::invalid_argument naming the layer, what
/// was expected and what was received.
#include <string>
#include <vector>

#include "layers/layer.hpp"

namespace xtape::layers {

/// Options of BatchNormalization (Keras defaults).
struct BatchNormalizationOptions {
  int axis = -1;  ///< the features axis (kept); statistics over every other axis
  float momentum = 0.99f;
  float epsilon = 1e-3f;
  bool center = true;  ///< add beta
  bool scale = true;   ///< multiply by gamma
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
  std::string moving_mean_initializer = "zeros";
  std::string moving_variance_initializer = "ones";
  std::string name = "";
};

/// keras.layers.BatchNormalization. Weights "gamma", "beta" (trainable, shape (c,)) and
/// "moving_mean", "moving_variance" (non-trainable, (c,)). In training (training = true and
/// the layer trainable, as Keras: a frozen layer runs in inference mode) it normalizes with the
/// batch's mean and population variance, computed in one pass over the input, and updates
///   moving = moving * momentum + batch_statistic * (1 - momentum);
/// in inference it uses the moving statistics. Either way the output is one fused pass
/// x * a + b with a = gamma / sqrt(var + epsilon), b = beta - mean * a per channel.
class BatchNormalization : public Layer {
 public:
  using Options = BatchNormalizationOptions;
  explicit BatchNormalization(BatchNormalizationOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  /// Keras's keys: axis, momentum, epsilon, center, scale, the four initializers, regularizers
  /// and constraints (null), synchronized (false).
  nlohmann::json get_config() const override;
  const BatchNormalizationOptions& options() const { return options_; }
  Tensor moving_mean() const { return weight("moving_mean"); }
  Tensor moving_variance() const { return weight("moving_variance"); }

 private:
  BatchNormalizationOptions options_;
  int axis_ = 0;  ///< normalised, of the full input
};

/// Options of LayerNormalization (Keras defaults).
struct LayerNormalizationOptions {
  std::vector<int> axis = {-1};  ///< the axes normalized over
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
  /// As Keras 3: x / sqrt(var + epsilon) * gamma (x not centred; var is still the variance),
  /// with gamma whatever `scale` says and no beta whatever `center` says.
  bool rms_scaling = false;
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
  std::string name = "";
};

/// keras.layers.LayerNormalization: per sample, (x - mean) / sqrt(var + epsilon) over `axis`,
/// times gamma plus beta (weights of the shape of those axes). Same in training and inference.
class LayerNormalization : public Layer {
 public:
  using Options = LayerNormalizationOptions;
  explicit LayerNormalization(LayerNormalizationOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  LayerNormalizationOptions options_;
  std::vector<int> axes_;  ///< normalised, sorted, of the full input
};

/// Options of GroupNormalization (Keras defaults).
struct GroupNormalizationOptions {
  int groups = 32;  ///< -1: one group per channel (instance normalization)
  int axis = -1;    ///< the channels axis
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
  std::string name = "";
};

/// keras.layers.GroupNormalization: the channels split into `groups` groups, each normalized
/// per sample over its channels and every other non-batch axis; then gamma and beta per
/// channel. Throws at build when the channels are fewer than, or not a multiple of, the groups.
class GroupNormalization : public Layer {
 public:
  using Options = GroupNormalizationOptions;
  explicit GroupNormalization(GroupNormalizationOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  GroupNormalizationOptions options_;
  int axis_ = 0;
  int groups_ = 0;  ///< resolved (-1 becomes the channel count)
};

/// Options of UnitNormalization.
struct UnitNormalizationOptions {
  std::vector<int> axis = {-1};
  std::string name = "";
};

/// keras.layers.UnitNormalization: x / sqrt(max(sum(x^2 over axis), 1e-12)), unit L2 norm.
class UnitNormalization : public Layer {
 public:
  using Options = UnitNormalizationOptions;
  explicit UnitNormalization(UnitNormalizationOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  UnitNormalizationOptions options_;
  std::vector<int> axes_;
};

}  // namespace xtape::layers
