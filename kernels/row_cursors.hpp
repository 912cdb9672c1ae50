#pragma once
/// @file row_cursors.hpp
/// Cursors over the rows of a row-major (rows x c) matrix for kernels that consume a gradient
/// row by row (a bias gradient, a thin convolution's kernel gradient), so one kernel serves
/// both kinds: seek(r), load(c0) (the vector at columns [c0, c0 + W)), at(c), advance().
///   - DenseRows: the matrix in memory.
///   - PooledGradRows: the input gradient of a 2x2 / stride-2 max pooling in pooled form. The
///     pooled gradient and argmax stand for the (four times larger) scattered gradient, whose
///     rows are produced on the fly with exactly the bits max_pool2d_backward would write.
/// Internal to kernels/ (includes xsimd).
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/pool.hpp"

namespace xtape::kernels {

class DenseRows {
 public:
  using batch = xsimd::batch<float>;
  DenseRows(const float* x, std::int64_t cols) : x_(x), cols_(cols) {}
  void seek(std::int64_t r) { p_ = x_ + r * cols_; }
  batch load(std::int64_t c0) const { return batch::load_unaligned(p_ + c0); }
  float at(std::int64_t c) const { return p_[c]; }
  void advance() { p_ += cols_; }

 private:
  const float* x_;
  std::int64_t cols_;
  const float* p_ = nullptr;
};

/// A cursor over the rows (pixels b, y, x of the pool's input, row r = (b * h + y) * w + x) of
/// the scattered gradient.
class PooledGradRows {
 public:
  using batch = xsimd::batch<float>;
  using ibatch = xsimd::batch<std::int32_t>;
  static constexpr std::int64_t W = static_cast<std::int64_t>(batch::size);

  PooledGradRows(const Pool2DGeometry& g, const float* grad_output, const std::int32_t* argmax)
      : g_(g), go_(grad_output), argmax_(argmax) {
    alignas(64) std::int32_t lane[W];
    for (std::int64_t i = 0; i < W; ++i) lane[i] = static_cast<std::int32_t>(i);
    lane_ = ibatch::load_aligned(lane);
  }

  void seek(std::int64_t r) {
    const std::int64_t pixels = g_.h * g_.w;
    b_ = r / pixels, y_ = (r % pixels) / g_.w, x_ = r % g_.w;
    flat_ = ibatch(static_cast<std::int32_t>(r * g_.c)) + lane_;
    locate();
  }

  /// Channels [c0, c0 + W) of the current row (c0 a multiple of W, c0 + W <= c).
  batch load(std::int64_t c0) const {
    if (o_ < 0) return batch(0.f);  // not in any window
    const ibatch at = ibatch::load_unaligned(argmax_ + o_ + c0);
    const ibatch want = flat_ + ibatch(static_cast<std::int32_t>(c0));
    const ibatch bits = xsimd::select(at == want, xsimd::bitwise_cast<ibatch>(batch::load_unaligned(go_ + o_ + c0)),
                                      ibatch(0));
    return xsimd::bitwise_cast<batch>(bits) + batch(0.f);  // + 0 as the scatter-add: -0 -> +0
  }

  /// Channel c of the current row.
  float at(std::int64_t c) const {
    if (o_ < 0) return 0.f;
    const std::int32_t want = static_cast<std::int32_t>((y_ * g_.w + x_ + b_ * g_.h * g_.w) * g_.c + c);
    return argmax_[o_ + c] == want ? go_[o_ + c] + 0.f : 0.f;
  }

  void advance() {
    flat_ += ibatch(static_cast<std::int32_t>(g_.c));
    if (++x_ == g_.w) {
      x_ = 0;
      if (++y_ == g_.h) y_ = 0, ++b_;
      locate();
    } else if (o_ >= 0 && x_ % 2 == 0) {
      o_ = x_ < 2 * g_.out_w ? o_ + g_.c : -1;
    }
  }

 private:
  const Pool2DGeometry& g_;
  const float* go_;
  const std::int32_t* argmax_;
  // Offset of the current row's window in the pooled arrays, or -1 outside every window.
  void locate() {
    o_ = y_ < 2 * g_.out_h && x_ < 2 * g_.out_w ? ((b_ * g_.out_h + y_ / 2) * g_.out_w + x_ / 2) * g_.c : -1;
  }

  ibatch lane_, flat_;
  std::int64_t b_ = 0, y_ = 0, x_ = 0, o_ = -1;
};

}  // namespace xtape::kernels
