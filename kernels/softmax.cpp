#include "kernels/softmax.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <xsimd/xsimd.hpp>

#include "kernels/elementwise.hpp"
#include "kernels/parallel.hpp"

namespace xtape::kernels {
namespace {

using batch = xsimd::batch<float>;
constexpr std::size_t W = batch::size;
// Sums are kept in float over chunks of this many elements per lane, then added in double: the
// relative error stays near one float rounding whatever the row length.
constexpr std::size_t chunk = 16 * W;

// Single-thread estimate for `rows` rows of `cols`: a few passes, an exponential per element.
double rows_ns(std::size_t rows, std::size_t cols, double per_element_ns) {
  return per_element_ns * static_cast<double>(rows) * static_cast<double>(cols);
}

// Runs row(r) for every row, in blocks of rows handed to threads (the split depends on the work
// alone; each row's arithmetic does not depend on it).
template <class Row>
void for_rows(std::size_t rows, std::size_t cols, double per_element_ns, const Row& row) {
  const std::size_t per_block = std::max<std::size_t>(1, 4096 / std::max<std::size_t>(cols, 1));
  const std::size_t blocks = (rows + per_block - 1) / per_block;
  const int team =
      detail::parallel_team(rows_ns(rows, cols, per_element_ns), static_cast<std::int64_t>(blocks));
  detail::parallel_for_static(team, static_cast<long>(blocks), [&](long b) {
    const std::size_t lo = static_cast<std::size_t>(b) * per_block;
    const std::size_t hi = std::min(rows, lo + per_block);
    for (std::size_t r = lo; r < hi; ++r) row(r);
  });
}

// A batch of the n < W values at p, the other lanes `fill`.
batch load_tail(const float* p, std::size_t n, float fill) {
  alignas(64) float buf[W];
  std::fill(buf, buf + W, fill);
  std::copy(p, p + n, buf);
  return batch::load_aligned(buf);
}

// The maximum of a row, or NaN if the row holds one.
float row_max(const float* x, std::size_t n) {
  constexpr float lowest = -std::numeric_limits<float>::infinity();
  batch m(lowest);
  xsimd::batch_bool<float> nan(false);
  std::size_t c = 0;
  for (; c + W <= n; c += W) {
    const batch v = batch::load_unaligned(x + c);
    m = xsimd::max(m, v);
    nan = nan | xsimd::isnan(v);
  }
  if (c < n) {
    const batch v = load_tail(x + c, n - c, lowest);
    m = xsimd::max(m, v);
    nan = nan | xsimd::isnan(v);
  }
  if (xsimd::any(nan)) return std::numeric_limits<float>::quiet_NaN();
  alignas(64) float lanes[W];
  m.store_aligned(lanes);
  return *std::max_element(lanes, lanes + W);
}

// Adds the lanes of a float accumulator to a double.
double lanes_sum(batch v) {
  alignas(64) float buf[W];
  v.store_aligned(buf);
  double s = 0.0;
  for (std::size_t i = 0; i < W; ++i) s += buf[i];
  return s;
}

}  // namespace

void softmax_rows(std::size_t rows, std::size_t cols, const float* x, float* y) {
  if (cols == 0) return;
  for_rows(rows, cols, 1.0, [&](std::size_t r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const batch m(row_max(xr, cols));
    double s = 0.0;
    std::size_t c = 0;
    while (c < cols) {
      const std::size_t end = std::min(cols, c + chunk);
      batch acc(0.f);
      for (; c + W <= end; c += W) {
        const batch e = xsimd::exp(batch::load_unaligned(xr + c) - m);
        e.store_unaligned(yr + c);
        acc = acc + e;
      }
      if (c < end) {  // the row's last partial batch; only its first end - c lanes count
        alignas(64) float buf[W];
        xsimd::exp(load_tail(xr + c, end - c, 0.f) - m).store_aligned(buf);
        for (std::size_t i = 0; c < end; ++i, ++c) {
          yr[c] = buf[i];
          s += buf[i];
        }
      }
      s += lanes_sum(acc);
    }
    const batch sum(static_cast<float>(s));
    for (c = 0; c + W <= cols; c += W)
      (batch::load_unaligned(yr + c) / sum).store_unaligned(yr + c);
    for (; c < cols; ++c) yr[c] /= static_cast<float>(s);
  });
}

void softmax_backward_rows(std::size_t rows, std::size_t cols, const float* y, const float* g,
                           float* dx) {
  if (cols == 0) return;
  for_rows(rows, cols, 0.5, [&](std::size_t r) {
    const float* yr = y + r * cols;
    const float* gr = g + r * cols;
    float* dr = dx + r * cols;
    // The products rounded to float and summed by kernels::sum, then (g - s) * y: the
    // roundings of the composition y * (g - sum(g * y)), so a backward that creates a graph
    // (which records that composition) gives the same bits.
    std::size_t c = 0;
    for (; c + W <= cols; c += W)
      (batch::load_unaligned(gr + c) * batch::load_unaligned(yr + c)).store_unaligned(dr + c);
    for (; c < cols; ++c) dr[c] = gr[c] * yr[c];
    const float sf = sum(cols, dr);
    const batch s(sf);
    for (c = 0; c + W <= cols; c += W)
      (batch::load_unaligned(yr + c) * (batch::load_unaligned(gr + c) - s)).store_unaligned(dr + c);
    for (; c < cols; ++c) dr[c] = yr[c] * (gr[c] - sf);
  });
}

}  // namespace xtape::kernels
