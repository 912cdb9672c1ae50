#pragma once
/// @file grouped_conv.hpp
/// Grouped 2-d convolution on NHWC buffers (Keras's Conv2D / Conv1D with groups > 1): the cin
/// input channels and cout filters split into `groups` consecutive blocks, block i of the
/// filters convolving block i of the channels only. Geometry g as Conv2DGeometry with g.cin and
/// g.cout the totals (both multiples of groups); kernel (kh, kw, cin / groups, cout). Each
/// group is a GEMM on strided views of one group-major im2col matrix (none for 1x1 unit-stride
/// kernels), so no channel block is copied out. Results do not depend on the thread count.
#include <cstdint>

#include "kernels/conv.hpp"

namespace xtape::kernels {

/// output (n, out_h, out_w, cout) = grouped conv of input (n, h, w, cin). Overwrites.
void grouped_conv2d_forward(const Conv2DGeometry& g, std::int64_t groups, const float* input,
                            const float* kernel, float* output);
/// grad_input (n, h, w, cin) from grad_output (n, out_h, out_w, cout). Overwrites.
void grouped_conv2d_backward_input(const Conv2DGeometry& g, std::int64_t groups,
                                   const float* grad_output, const float* kernel,
                                   float* grad_input);
/// grad_kernel (kh, kw, cin / groups, cout) from input and grad_output. Overwrites.
void grouped_conv2d_backward_kernel(const Conv2DGeometry& g, std::int64_t groups,
                                    const float* input, const float* grad_output,
                                    float* grad_kernel);

}  // namespace xtape::kernels
