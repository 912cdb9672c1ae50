#pragma once
/// @file depthwise.hpp
/// Depthwise 2-d convolution on NHWC buffers: every input channel c is convolved with its own
/// `mult` filters, output channel c * mult + m (Keras's DepthwiseConv2D order). Kernel layout
/// (kh, kw, cin, mult). The geometry is Conv2DGeometry's with cout = cin * mult. Vectorized
/// over channels. Each output and input-gradient element is summed by one thread over the taps
/// in order; the kernel gradient over fixed row ranges whose partials are added in order: no
/// result depends on the thread count.
#include "kernels/conv.hpp"

namespace xtape::kernels {

/// output (n, out_h, out_w, cin * mult) = depthwise conv of input (n, h, w, cin), plus
/// bias[channel] when `bias` (cin * mult values; the rounding of a separate add). Overwrites.
void depthwise_conv2d_forward(const Conv2DGeometry& g, std::int64_t mult, const float* input,
                              const float* kernel, float* output, const float* bias = nullptr);
/// grad_input (n, h, w, cin) from grad_output (n, out_h, out_w, cin * mult). Overwrites.
void depthwise_conv2d_backward_input(const Conv2DGeometry& g, std::int64_t mult,
                                     const float* grad_output, const float* kernel,
                                     float* grad_input);
/// grad_kernel (kh, kw, cin, mult) from input and grad_output. Overwrites.
void depthwise_conv2d_backward_kernel(const Conv2DGeometry& g, std::int64_t mult,
                                      const float* input, const float* grad_output,
                                      float* grad_kernel);

}  // namespace xtape::kernels
