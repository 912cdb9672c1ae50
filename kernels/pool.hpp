#pragma once
/// @file pool.hpp
/// 2-d max and average pooling kernels on raw NHWC buffers (OpenMP + xsimd).
#include <cstdint>

namespace xtape::kernels {

/// Geometry of a 2-d pooling: input (n, h, w, c), output (n, out_h, out_w, c).
/// Window (oy, ox) covers input rows oy*stride_h - pad_top .. + pool_h - 1 (same for columns);
/// positions outside the input are ignored (never counted, never the max).
struct Pool2DGeometry {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
  std::int64_t pool_h = 1, pool_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_top = 0, pad_left = 0;
  std::int64_t out_h = 0, out_w = 0;
};

/// output = window max. argmax (one int32 per output element, may be null) receives the flat
/// index into input of the first maximal element (in row-major window order). NaN counts as
/// greater than every number: a window holding NaN gives NaN, and its argmax is the first NaN
/// (PyTorch takes the last one of several).
void max_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output,
                        std::int32_t* argmax);

/// max_pool2d_forward for output rows [row0, row1) of the flat (n * out_h) row index, on the
/// calling thread only (for kernels that fuse pooling into their own parallel loop).
void max_pool2d_forward_rows(const Pool2DGeometry& g, const float* input, float* output,
                             std::int32_t* argmax, std::int64_t row0, std::int64_t row1);
/// grad_input = scatter-add of grad_output at argmax. Overwrites grad_input.
void max_pool2d_backward(const Pool2DGeometry& g, const float* grad_output,
                         const std::int32_t* argmax, float* grad_input);

/// True when max_pool2d_backward's result for `g` can be consumed in pooled form (by
/// add_column_sums_pooled and conv2d_backward_kernel_pooled): 2x2 windows, stride 2, no
/// padding, channels a multiple of the SIMD width.
bool pooled_grad_rows_supported(const Pool2DGeometry& g);
/// add_column_sums(n * h * w, c, G, column_sums) for G = max_pool2d_backward(g, grad_output,
/// argmax) (a bias gradient before the pooling), without writing G: the same bits. Only when
/// pooled_grad_rows_supported(g) (kernels/row_cursors.hpp): 2x2 windows, stride 2.
void add_column_sums_pooled(const Pool2DGeometry& g, const float* grad_output,
                            const std::int32_t* argmax, float* column_sums);
/// masked[i] = grad_output[i] where argmax[i] is valid and values[argmax[i]] > 0 or NaN, else 0:
/// the pooled form of relu's backward (values = relu's output, the pool's input) applied after
/// max_pool2d_backward. `count` is the pooled element count.
void max_pool2d_mask_positive(std::int64_t count, const float* grad_output,
                              const std::int32_t* argmax, const float* values, float* masked);
/// The same mask from the pooled values (max_pool2d's output, which holds values[argmax[i]],
/// or 0 for an empty window): masked[i] = pooled[i] > 0 or NaN ? grad_output[i] : 0, no gathers.
void max_pool2d_mask_positive_pooled(std::int64_t count, const float* grad_output,
                                     const float* pooled, float* masked);

/// output = mean over the valid (in-bounds) positions of each window.
void avg_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output);

/// grad_input = each grad_output spread evenly over its window's valid positions. Overwrites.
void avg_pool2d_backward(const Pool2DGeometry& g, const float* grad_output, float* grad_input);

}  // namespace xtape::kernels
