#pragma once
/// @file conv.hpp
/// Convolution layers. Conv is the shared base of Conv1D and Conv2D: its call() is
/// convolution_op(inputs, kernel) + bias + activation, and convolution_op() is the extension
/// point a subclass overrides to customise the convolution (e.g. standardize the kernel).
#include <array>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"
#include "layers/activations.hpp"
#include "layers/layer.hpp"

namespace xtape::layers {

/// Keras options of a convolution layer (designated initializers read well:
/// `Conv2D({.filters = 32, .kernel_size = {3, 3}, .activation = "relu"})`).
struct ConvOptions {
  std::size_t filters = 0;
  std::vector<int> kernel_size;    ///< one extent per spatial axis, or one for all
  std::vector<int> strides = {1};  ///< one per spatial axis, or one for all
  std::string padding = "valid";   ///< "valid" or "same"
  std::vector<int> dilation_rate = {1};
  std::string activation = "";  ///< "" or "linear" for none
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  std::string name = "";
};

/// N-d convolution base (rank 1 or 2). Inputs are channels-last.
class Conv : public Layer {
 public:
  /// Validates the options; throws std::invalid_argument naming the layer class and option.
  Conv(int rank, ConvOptions options);

  /// Creates kernel (k..., in_channels, filters) and bias (filters).
  void build(const Shape& input_shape) override;
  /// convolution_op(inputs, kernel()) + bias (when use_bias) + activation.
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;

  /// The convolution itself, with the layer's strides, padding and dilation. Override to
  /// customise; the tape differentiates whatever the override computes.
  virtual Tensor convolution_op(const Tensor& inputs, const Tensor& kernel);
  /// Keras's keys: filters, kernel_size, strides, padding, dilation_rate, activation, ...
  nlohmann::json get_config() const override;
  const ConvOptions& options() const { return options_; }

  Tensor kernel() const { return weight("kernel"); }
  Tensor bias() const { return weight("bias"); }
  bool use_bias() const { return options_.use_bias; }
  std::size_t filters() const { return options_.filters; }
  const std::vector<int>& kernel_size() const { return kernel_size_; }
  const std::vector<int>& dilation_rate() const { return dilation_; }
  Padding padding() const { return padding_; }
  int rank() const { return rank_; }

 protected:
  std::vector<int> strides_;

 private:
  int rank_;
  ConvOptions options_;
  std::vector<int> kernel_size_, dilation_;
  Padding padding_;
  ActivationFn activation_;
};

/// 2-d convolution over (batch, height, width, channels) with a (kh, kw, cin, filters) kernel.
class Conv2D : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv2D(ConvOptions options) : Conv(2, std::move(options)) {}
  /// (stride_h, stride_w), ready for xtape::conv2d.
  std::array<int, 2> strides() const { return {strides_[0], strides_[1]}; }
};

/// 1-d convolution over (batch, steps, channels) with a (k, cin, filters) kernel.
class Conv1D : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv1D(ConvOptions options) : Conv(1, std::move(options)) {}
  int strides() const { return strides_[0]; }
};

}  // namespace xtape::layers
