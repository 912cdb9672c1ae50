#pragma once
/// @file conv.hpp
/// Convolution layers. Conv is the shared base of Conv1D, Conv2D and Conv3D: its call() is
/// convolution_op(inputs, kernel) + bias + activation, and convolution_op() is the extension
/// point a subclass overrides to customise the convolution (e.g. standardize the kernel).
#include <array>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"
#include "layers/activations.hpp"
#include "layers/layer.hpp"
#include "layers/regularizers.hpp"

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
  /// Transposed convolutions: one per spatial axis, or one for all; empty is Keras's None.
  std::vector<int> output_padding = {};
  /// Depthwise and separable convolutions: filters per input channel.
  std::size_t depth_multiplier = 1;
  std::string depthwise_initializer = "glorot_uniform";  ///< depthwise and separable
  std::string pointwise_initializer = "glorot_uniform";  ///< separable
  Regularizer kernel_regularizer = {};    ///< every kernel (depthwise and pointwise too)
  Regularizer bias_regularizer = {};
  Regularizer activity_regularizer = {};  ///< on the output, added at every call
  Constraint kernel_constraint = {};      ///< every kernel, after each optimizer update
  Constraint bias_constraint = {};
  /// Regular convolutions: input channels and filters split into this many groups, each
  /// convolved separately (kernel (k..., in / groups, filters)), outputs concatenated.
  std::size_t groups = 1;
};

/// What a Conv layer computes: a convolution, a transposed convolution, a depthwise one, or a
/// depthwise one followed by a 1x1 (pointwise) one.
enum class ConvKind { regular, transpose, depthwise, separable };

/// N-d convolution base (rank 1, 2, or 3 for a regular convolution). Inputs are channels-last. Padding "causal" is for the
/// regular 1-d convolution (Conv1D) only.
class Conv : public Layer {
 public:
  /// Validates the options; throws std::invalid_argument naming the layer class and option.
  Conv(int rank, ConvOptions options, ConvKind kind = ConvKind::regular);

  /// Creates the weights: kernel (k..., in_channels, filters), or (k..., filters, in_channels)
  /// for a transposed convolution, or (k..., in_channels, depth_multiplier) for a depthwise one;
  /// a separable one has depthwise_kernel and pointwise_kernel (1..., in * multiplier, filters).
  /// Then bias (one per output channel).
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

  /// The kernel convolution_op() receives ("depthwise_kernel" for a separable convolution).
  Tensor kernel() const {
    return weight(kind_ == ConvKind::separable ? "depthwise_kernel" : "kernel");
  }
  /// A separable convolution's 1x1 kernel.
  Tensor pointwise_kernel() const { return weight("pointwise_kernel"); }
  Tensor bias() const { return weight("bias"); }
  ConvKind kind() const { return kind_; }
  bool use_bias() const { return options_.use_bias; }
  std::size_t filters() const { return options_.filters; }
  const std::vector<int>& kernel_size() const { return kernel_size_; }
  const std::vector<int>& dilation_rate() const { return dilation_; }
  Padding padding() const { return padding_; }
  int rank() const { return rank_; }

 protected:
  std::vector<int> strides_;

 private:
  std::size_t out_channels(std::size_t in_channels) const;
  int rank_;
  ConvKind kind_;
  ConvOptions options_;
  std::vector<int> kernel_size_, dilation_, output_padding_;
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

/// 3-d convolution over (batch, depth, height, width, channels) with a (kd, kh, kw, cin / groups,
/// filters) kernel (Keras's Conv3D, channels_last).
class Conv3D : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv3D(ConvOptions options) : Conv(3, std::move(options)) {}
  /// (stride_d, stride_h, stride_w), ready for xtape::conv3d.
  std::array<int, 3> strides() const { return {strides_[0], strides_[1], strides_[2]}; }
};

/// 1-d convolution over (batch, steps, channels) with a (k, cin, filters) kernel.
class Conv1D : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv1D(ConvOptions options) : Conv(1, std::move(options)) {}
  int strides() const { return strides_[0]; }
};

/// Transposed 2-d convolution (Keras's Conv2DTranspose): kernel (kh, kw, filters, in_channels);
/// output extents as Keras computes them (see xtape::conv2d_transpose).
class Conv2DTranspose : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv2DTranspose(ConvOptions options) : Conv(2, std::move(options), ConvKind::transpose) {}
};

/// Transposed 1-d convolution (Keras's Conv1DTranspose): kernel (k, filters, in_channels).
class Conv1DTranspose : public Conv {
 public:
  using Options = ConvOptions;
  explicit Conv1DTranspose(ConvOptions options) : Conv(1, std::move(options), ConvKind::transpose) {}
};

/// Depthwise 2-d convolution (Keras's DepthwiseConv2D): depth_multiplier filters per input
/// channel, kernel (kh, kw, in_channels, depth_multiplier); `filters` is not used.
class DepthwiseConv2D : public Conv {
 public:
  using Options = ConvOptions;
  explicit DepthwiseConv2D(ConvOptions options) : Conv(2, std::move(options), ConvKind::depthwise) {}
};

/// Depthwise 1-d convolution (Keras's DepthwiseConv1D).
class DepthwiseConv1D : public Conv {
 public:
  using Options = ConvOptions;
  explicit DepthwiseConv1D(ConvOptions options) : Conv(1, std::move(options), ConvKind::depthwise) {}
};

/// Depthwise then 1x1 convolution (Keras's SeparableConv2D): depthwise_kernel (kh, kw, in,
/// depth_multiplier) and pointwise_kernel (1, 1, in * depth_multiplier, filters).
class SeparableConv2D : public Conv {
 public:
  using Options = ConvOptions;
  explicit SeparableConv2D(ConvOptions options) : Conv(2, std::move(options), ConvKind::separable) {}
};

/// Keras's SeparableConv1D: depthwise_kernel (k, in, depth_multiplier), pointwise_kernel
/// (1, in * depth_multiplier, filters).
class SeparableConv1D : public Conv {
 public:
  using Options = ConvOptions;
  explicit SeparableConv1D(ConvOptions options) : Conv(1, std::move(options), ConvKind::separable) {}
};

}  // namespace xtape::layers
