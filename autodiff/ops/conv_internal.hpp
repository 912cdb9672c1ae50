#pragma once
/// @file conv_internal.hpp
/// The convolution primitives of one geometry shared by conv.cpp, conv_transpose.cpp and
/// depthwise.cpp (internal). Each records a differentiable rule written through the others.
#include <array>

#include "autodiff/ops.hpp"
#include "kernels/conv.hpp"

namespace xtape::detail {

/// Output shape (n, out_h, out_w, cout) of geometry g.
Shape conv_out_shape(const kernels::Conv2DGeometry& g);
/// y = conv(x, k) for x (n, h, w, cin), k (kh, kw, cin, cout), computed at once.
Tensor conv_eager(const Tensor& x, const Tensor& k, const kernels::Conv2DGeometry& g);
/// d conv / d x applied to gy (n, out_h, out_w, cout): shape (n, h, w, cin). The transposed
/// convolution.
Tensor conv_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g);
/// d conv / d k applied to gy: shape (kh, kw, cin, cout).
Tensor conv_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g);

/// The geometry of a (kh, kw) window with `cout` outputs over input shape `is` (rank 4),
/// TensorFlow's padding rules; throws std::invalid_argument / std::length_error naming `op`.
kernels::Conv2DGeometry conv_geometry(const char* op, const Shape& is, std::size_t kh,
                                      std::size_t kw, std::size_t cout, std::array<int, 2> strides,
                                      Padding padding, std::array<int, 2> dilation);

/// depthwise_conv2d(...) + bias as one pass when `a` is a depthwise result not read yet and
/// `bias` a channel vector of its channels (depthwise.cpp; fuse_conv_bias consults it).
/// Undefined otherwise.
Tensor fuse_depthwise_bias(const Tensor& a, const Tensor& bias);

/// Output extent and leading pad of one spatial axis (conv.cpp).
std::pair<std::size_t, std::size_t> conv_axis(std::size_t in, std::size_t window,
                                              std::size_t stride, std::size_t dilation,
                                              Padding padding, const char* op);

}  // namespace xtape::detail
