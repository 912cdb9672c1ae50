#include "kernels/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/compare.hpp"
#include "kernels/parallel.hpp"

namespace xtape::kernels {

namespace {
// Elements per block of the channels-last statistics.
constexpr std::size_t kBlock = std::size_t{1} << 14;
// Single-thread time of a double-precision reduction over n elements of `inputs` arrays.
double reduce_ns(std::size_t n, int inputs) {
  return detail::byte_ns(8.0 * inputs * static_cast<double>(n));
}
}  // namespace

void channel_moments(std::size_t outer, std::size_t channels, std::size_t inner, const float* x,
                     float* mean, float* var) {
  const double count = static_cast<double>(outer) * static_cast<double>(inner);
  auto finish = [&](std::size_t c, double s, double q) {
    const double m = s / count;
    const double v = q / count - m * m;
    mean[c] = static_cast<float>(m);
    var[c] = std::isnan(v) ? static_cast<float>(v) : static_cast<float>(std::max(v, 0.0));
  };
  if (inner == 1) {
    // Channels last: rows of `channels` values. Fixed blocks of rows, each summing every
    // channel in double, then the blocks added in block order (the same bits for any thread
    // count).
    const std::size_t rows_per =
        std::max<std::size_t>(1, kBlock / std::max<std::size_t>(1, channels));
    const std::size_t blocks = (outer + rows_per - 1) / rows_per;
    std::vector<double> partial(blocks * 2 * channels, 0.0);
    const long nb = static_cast<long>(blocks);
    const int team =
        detail::parallel_team(reduce_ns(outer * channels, 1), static_cast<std::int64_t>(nb));
    detail::parallel_for_static(team, nb, [&](long b) {
      double* s = partial.data() + static_cast<std::size_t>(b) * 2 * channels;
      double* q = s + channels;
      const std::size_t lo = static_cast<std::size_t>(b) * rows_per;
      const std::size_t hi = std::min(outer, lo + rows_per);
      for (std::size_t r = lo; r < hi; ++r) {
        const float* row = x + r * channels;
        for (std::size_t c = 0; c < channels; ++c) {
          const double v = row[c];
          s[c] += v;
          q[c] += v * v;
        }
      }
    });
    for (std::size_t c = 0; c < channels; ++c) {
      double s = 0.0, q = 0.0;
      for (std::size_t b = 0; b < blocks; ++b) {
        s += partial[b * 2 * channels + c];
        q += partial[b * 2 * channels + channels + c];
      }
      finish(c, s, q);
    }
    return;
  }
  // Channels with contiguous runs of `inner` values: one channel per iteration, summed in order.
  const long nc = static_cast<long>(channels);
  const int team =
      detail::parallel_team(reduce_ns(outer * channels * inner, 1), static_cast<std::int64_t>(nc));
  detail::parallel_for_static(team, nc, [&](long ci) {
    const std::size_t c = static_cast<std::size_t>(ci);
    double s = 0.0, q = 0.0;
    for (std::size_t o = 0; o < outer; ++o) {
      const float* run = x + (o * channels + c) * inner;
      for (std::size_t i = 0; i < inner; ++i) {
        const double v = run[i];
        s += v;
        q += v * v;
      }
    }
    finish(c, s, q);
  });
}

void channel_scale_shift(std::size_t outer, std::size_t channels, std::size_t inner, const float* x,
                         const float* scale, const float* shift, float* out) {
  const std::size_t rows = outer * channels;
  const long nr = static_cast<long>(inner == 1 ? outer : rows);
  const int team = detail::parallel_team(detail::byte_ns(8.0 * static_cast<double>(rows * inner)),
                                         static_cast<std::int64_t>(nr));
  if (inner == 1) {
    detail::parallel_for_static(team, nr, [&](long r) {
      const float* xr = x + static_cast<std::size_t>(r) * channels;
      float* orow = out + static_cast<std::size_t>(r) * channels;
      for (std::size_t c = 0; c < channels; ++c) orow[c] = detail::madd(xr[c], scale[c], shift[c]);
    });
    return;
  }
  detail::parallel_for_static(team, nr, [&](long r) {
    const std::size_t c = static_cast<std::size_t>(r) % channels;
    const float a = scale[c], b = shift[c];
    const float* xr = x + static_cast<std::size_t>(r) * inner;
    float* orow = out + static_cast<std::size_t>(r) * inner;
    for (std::size_t i = 0; i < inner; ++i) orow[i] = detail::madd(xr[i], a, b);
  });
}

}  // namespace xtape::kernels

namespace xtape::kernels {

void channel_grad_sums(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                       const float* x, float* sum_g, float* sum_gx) {
  if (inner == 1) {
    // Channels last: as channel_moments, fixed blocks of rows in double, added in block order.
    const std::size_t rows_per =
        std::max<std::size_t>(1, kBlock / std::max<std::size_t>(1, channels));
    const std::size_t blocks = (outer + rows_per - 1) / rows_per;
    std::vector<double> partial(blocks * 2 * channels, 0.0);
    const long nb = static_cast<long>(blocks);
    const int team =
        detail::parallel_team(reduce_ns(outer * channels, 2), static_cast<std::int64_t>(nb));
    detail::parallel_for_static(team, nb, [&](long b) {
      double* s = partial.data() + static_cast<std::size_t>(b) * 2 * channels;
      double* q = s + channels;
      const std::size_t lo = static_cast<std::size_t>(b) * rows_per;
      const std::size_t hi = std::min(outer, lo + rows_per);
      for (std::size_t r = lo; r < hi; ++r) {
        const float* gr = g + r * channels;
        const float* xr = x + r * channels;
        for (std::size_t c = 0; c < channels; ++c) {
          s[c] += gr[c];
          q[c] += static_cast<double>(gr[c]) * xr[c];
        }
      }
    });
    for (std::size_t c = 0; c < channels; ++c) {
      double s = 0.0, q = 0.0;
      for (std::size_t b = 0; b < blocks; ++b) {
        s += partial[b * 2 * channels + c];
        q += partial[b * 2 * channels + channels + c];
      }
      sum_g[c] = static_cast<float>(s);
      sum_gx[c] = static_cast<float>(q);
    }
    return;
  }
  const long nc = static_cast<long>(channels);
  const int team =
      detail::parallel_team(reduce_ns(outer * channels * inner, 2), static_cast<std::int64_t>(nc));
  detail::parallel_for_static(team, nc, [&](long ci) {
    const std::size_t c = static_cast<std::size_t>(ci);
    double s = 0.0, q = 0.0;
    for (std::size_t o = 0; o < outer; ++o) {
      const std::size_t off = (o * channels + c) * inner;
      for (std::size_t i = 0; i < inner; ++i) {
        s += g[off + i];
        q += static_cast<double>(g[off + i]) * x[off + i];
      }
    }
    sum_g[c] = static_cast<float>(s);
    sum_gx[c] = static_cast<float>(q);
  });
}

}  // namespace xtape::kernels
