#pragma once
/// @file conv.hpp
/// 2-d convolution kernels on raw NHWC buffers (OpenMP + xsimd). conv1d is the h == 1 case.
/// 3x3 unit-stride convolutions whose channel counts fill whole registers run all three passes
/// as Winograd F(2x2, 3x3) (kernels/winograd.hpp): the results differ from a direct
/// convolution's by rounding, and every entry point computes a given convolution the same way.
#include <cstdint>

#include "kernels/pool.hpp"

namespace xtape::kernels {

/// Geometry of a 2-d convolution (cross-correlation, as in TensorFlow/Keras).
/// input (n, h, w, cin), kernel (kh, kw, cin, cout), output (n, out_h, out_w, cout), all row-major.
/// Output pixel (oy, ox) reads input rows oy*stride_h - pad_top + ky*dil_h (same for columns);
/// reads outside the input are zeros.
struct Conv2DGeometry {
  std::int64_t n = 0, h = 0, w = 0, cin = 0;
  std::int64_t kh = 0, kw = 0, cout = 0;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dil_h = 1, dil_w = 1;
  std::int64_t pad_top = 0, pad_left = 0;
  std::int64_t out_h = 0, out_w = 0;
};

/// output = conv(input, kernel). Overwrites output.
/// What conv2d_forward applies to each output value before storing it: + bias[channel], then
/// * scale[channel] + shift[channel] when `scale` (a batch normalization in inference, folded:
/// `shift` must be set with it), then relu when `relu` — the same roundings as separate add,
/// scale-shift and relu passes; relu(NaN) is NaN.
struct ConvEpilogue {
  const float* bias = nullptr;
  bool relu = false;
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool any() const { return bias || scale || relu; }
};

void conv2d_forward(const Conv2DGeometry& g, const float* input, const float* kernel, float* output,
                    const ConvEpilogue& epilogue = {});

/// grad_input = d(loss)/d(input) given grad_output. Overwrites grad_input.
/// max_pool2d_forward(pool, conv2d_forward(g, input, kernel, epilogue)) without writing the
/// convolution's output to memory: each image's output is pooled while in cache. pool.n, h, w
/// and c must match g's output. Same values and argmax as the two calls.
void conv2d_max_pool2d_forward(const Conv2DGeometry& g, const float* input, const float* kernel,
                               const ConvEpilogue& epilogue, const Pool2DGeometry& pool,
                               float* output, std::int32_t* argmax);

void conv2d_backward_input(const Conv2DGeometry& g, const float* grad_output, const float* kernel,
                           float* grad_input);

/// grad_kernel = d(loss)/d(kernel) given grad_output. Overwrites grad_kernel.
/// Deterministic: same bits for any thread count.
void conv2d_backward_kernel(const Conv2DGeometry& g, const float* input, const float* grad_output,
                            float* grad_kernel);

/// conv2d_backward_input and conv2d_backward_kernel together, with their bits: on the
/// Winograd path in one parallel region, so neither's tail nor a late thread idles the other
/// gradient's work. Overwrites grad_input and grad_kernel.
void conv2d_backward(const Conv2DGeometry& g, const float* input, const float* grad_output,
                     const float* kernel, float* grad_input, float* grad_kernel);

/// conv2d_backward_kernel with grad_output = max_pool2d_backward(pool, grad_pooled, argmax),
/// read in pooled form (never written out): the same bits. Only when
/// conv2d_backward_kernel_pooled_supported: a thin kernel (kh * kw * cin <= 14, as a first
/// layer's, whose dilated window spans at most 64K input floats) under a 2x2 / stride-2 pool.
bool conv2d_backward_kernel_pooled_supported(const Conv2DGeometry& g, const Pool2DGeometry& pool);
void conv2d_backward_kernel_pooled(const Conv2DGeometry& g, const float* input,
                                   const Pool2DGeometry& pool, const float* grad_pooled,
                                   const std::int32_t* argmax, float* grad_kernel);

}  // namespace xtape::kernels
