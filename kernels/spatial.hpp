#pragma once
/// @file spatial.hpp
/// Resamplings and copies of channels-last image batches (n, h, w, c) on raw contiguous float
/// buffers: nearest and bilinear upsampling by integer factors with their adjoints, and
/// constant padding with its adjoint, the crop. Each output element is computed by one thread
/// in a fixed order: the same bits for any thread count.
#include <cstddef>
#include <vector>

namespace xtape::kernels {

/// y (n, h * sh, w * sw, c) = x (n, h, w, c) with every pixel repeated sh x sw times.
void upsample_nearest(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::size_t sh,
                      std::size_t sw, const float* x, float* y);

/// The adjoint of upsample_nearest: dx (n, h, w, c) = the sum of each sh x sw block of
/// g (n, h * sh, w * sw, c), rows then columns in order.
void upsample_nearest_adjoint(std::size_t n, std::size_t h, std::size_t w, std::size_t c,
                              std::size_t sh, std::size_t sw, const float* g, float* dx);

/// The taps of half-pixel linear interpolation of an axis of extent d by the factor s (as
/// tf.image.resize's bilinear): output o reads i0[o] with weight w0[o] and i1[o] with w1[o],
/// source (o + 0.5) / s - 0.5 clamped at the ends. A second tap of weight 0 is dropped and two
/// taps on one index merge (i1 = i0, w1 = 0, `two` false), so that a neighbour's inf or NaN
/// does not reach an output that does not read it.
struct LinearTaps {
  std::vector<std::size_t> i0, i1;
  std::vector<float> w0, w1;
  std::vector<char> two;
};
LinearTaps linear_taps(std::size_t d, std::size_t s);

/// y (n, h * sh, w * sw, c): x (n, h, w, c) interpolated linearly along h, then along w.
void upsample_bilinear(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::size_t sh,
                       std::size_t sw, const float* x, float* y);

/// The adjoint of upsample_bilinear: dx (n, h, w, c) from g (n, h * sh, w * sw, c).
void upsample_bilinear_adjoint(std::size_t n, std::size_t h, std::size_t w, std::size_t c,
                               std::size_t sh, std::size_t sw, const float* g, float* dx);

/// Constant padding of x (rows, d, inner) along its middle axis to (rows_out, d + before +
/// after, inner) where the rows are the outer axes: out_row_source[r] is the input row that
/// output row r copies, or -1 for a row of padding. Every value not copied is `fill`.
void pad_rows(std::size_t rows_out, const long* out_row_source, std::size_t d, std::size_t inner,
              std::size_t before, std::size_t after, const float* x, float fill, float* out);

/// The adjoint of pad_rows (fill 0): dx (rows_in, d, inner) copies the part of each output
/// row of g that its input row became.
void crop_rows(std::size_t rows_out, const long* out_row_source, std::size_t d, std::size_t inner,
               std::size_t before, std::size_t after, const float* g, float* dx);

}  // namespace xtape::kernels
