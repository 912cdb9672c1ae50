#include "kernels/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <vector>
#include <xsimd/xsimd.hpp>

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

// dx = a[i] * g + ((x - m[i]) * bm[i] + c[i]) over n values.
void norm_dx(const float* g, const float* x, const float* m, const float* a, const float* bm,
             const float* c, std::size_t n, float* dx) {
  for (std::size_t i = 0; i < n; ++i)
    dx[i] = detail::madd(a[i], g[i], detail::madd(x[i] - m[i], bm[i], c[i]));
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

void channel_norm_dx(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                     const float* x, const float* mean, const float* a, const float* b,
                     const float* c, float* out) {
  const std::size_t rows = outer * channels;
  const long nr = static_cast<long>(inner == 1 ? outer : rows);
  const int team = detail::parallel_team(detail::byte_ns(12.0 * static_cast<double>(rows * inner)),
                                         static_cast<std::int64_t>(nr));
  if (inner == 1) {
    detail::parallel_for_static(team, nr, [&](long r) {
      const std::size_t o = static_cast<std::size_t>(r) * channels;
      norm_dx(g + o, x + o, mean, a, b, c, channels, out + o);
    });
    return;
  }
  detail::parallel_for_static(team, nr, [&](long r) {
    const std::size_t k = static_cast<std::size_t>(r) % channels,
                      o = static_cast<std::size_t>(r) * inner;
    const float mk = mean[k], ak = a[k], bk = b[k], ck = c[k];
    for (std::size_t i = 0; i < inner; ++i)
      out[o + i] = detail::madd(ak, g[o + i], detail::madd(x[o + i] - mk, bk, ck));
  });
}

}  // namespace xtape::kernels

namespace xtape::kernels {

void channel_grad_sums(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                       const float* x, float* sum_g, float* sum_gx, const float* centre) {
  const std::vector<float> no_centre(centre ? 0 : channels, 0.f);
  const float* z = centre ? centre : no_centre.data();
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
          q[c] += static_cast<double>(gr[c]) * (static_cast<double>(xr[c]) - z[c]);
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
    const double zc = z[c];
    for (std::size_t o = 0; o < outer; ++o) {
      const std::size_t off = (o * channels + c) * inner;
      for (std::size_t i = 0; i < inner; ++i) {
        s += g[off + i];
        q += static_cast<double>(g[off + i]) * (static_cast<double>(x[off + i]) - zc);
      }
    }
    sum_g[c] = static_cast<float>(s);
    sum_gx[c] = static_cast<float>(q);
  });
}

}  // namespace xtape::kernels

// ---- layer and group normalization ----

namespace xtape::kernels {

namespace {

using fbatch = xsimd::batch<float>;
constexpr std::size_t kWidth = fbatch::size;
// Elements of a row summed in float lanes before the partial sum goes into a double.
constexpr std::size_t kChunk = 512;
// Rows whose parameter-gradient terms are summed in float before they are added in double.
constexpr std::size_t kSubRows = 8;

// The sum over i < n of term(i) (a batch of the kWidth terms from i) and term1(i) (one term):
// four float lane accumulators over chunks of kChunk elements, each chunk's total added in
// double, then the tail in double. The order depends on n alone.
template <class Term, class Term1>
double lane_sum(std::size_t n, const Term& term, const Term1& term1) {
  const std::size_t body = n - n % (4 * kWidth);
  double total = 0.0;
  for (std::size_t c0 = 0; c0 < body; c0 += kChunk) {
    const std::size_t c1 = std::min(body, c0 + kChunk);
    fbatch a0(0.f), a1(0.f), a2(0.f), a3(0.f);
    for (std::size_t i = c0; i < c1; i += 4 * kWidth) {
      a0 += term(i);
      a1 += term(i + kWidth);
      a2 += term(i + 2 * kWidth);
      a3 += term(i + 3 * kWidth);
    }
    total += static_cast<double>(xsimd::hadd((a0 + a1) + (a2 + a3)));
  }
  for (std::size_t i = body; i < n; ++i) total += static_cast<double>(term1(i));
  return total;
}

// Mean and population variance of a row of n values in two passes over it (the row is in
// cache for the second): the mean, then the mean square deviation from it, both by lane_sum.
void row_moments(const float* a, std::size_t n, float& mean, double& var) {
  const double s = lane_sum(
      n, [&](std::size_t i) { return fbatch::load_unaligned(a + i); },
      [&](std::size_t i) { return a[i]; });
  mean = static_cast<float>(s / static_cast<double>(n));
  const fbatch mb(mean);
  const float m = mean;
  const double q = lane_sum(
      n,
      [&](std::size_t i) {
        const fbatch d = fbatch::load_unaligned(a + i) - mb;
        return d * d;
      },
      [&](std::size_t i) { return (a[i] - m) * (a[i] - m); });
  var = q / static_cast<double>(n);
}

// mean and 1 / sqrt(var + epsilon) from the sums of x and x^2 over `count` values.
void finish_stats(double s, double q, double count, float epsilon, float& mean, float& rstd) {
  const double m = s / count;
  double v = q / count - m * m;
  if (!std::isnan(v)) v = std::max(v, 0.0);
  mean = static_cast<float>(m);
  rstd = static_cast<float>(1.0 / std::sqrt(v + static_cast<double>(epsilon)));
}

// 1 / sqrt(var + epsilon), var clamped at 0 (NaN kept).
float rstd_of(double var, float epsilon) {
  if (!std::isnan(var)) var = std::max(var, 0.0);
  return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(epsilon)));
}

// gamma (or ones) and beta (or zeros) as vectors of `n`.
std::vector<float> or_fill(const float* p, std::size_t n, float fill) {
  return p ? std::vector<float>(p, p + n) : std::vector<float>(n, fill);
}

// y = (x - m[i]) * a[i] + b[i] over n values.
void center_scale_shift(const float* x, const float* m, const float* a, const float* b,
                        std::size_t n, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = detail::madd(x[i] - m[i], a[i], b[i]);
}

// Rows per block of the blocked sums over rows of `width` values: about kBlock values, and at
// least 16 rows so that the blocks' double partial sums (2 * width each) stay below the input's
// size.
std::size_t rows_per_block(std::size_t width) {
  return std::max<std::size_t>(16, kBlock / std::max<std::size_t>(1, width));
}

}  // namespace

void layer_norm_forward(std::size_t rows, std::size_t features, const float* x, const float* gamma,
                        const float* beta, float epsilon, float* y, float* mean, float* rstd) {
  const std::size_t f = features;
  const std::vector<float> gm = or_fill(gamma, f, 1.f), bt = or_fill(beta, f, 0.f);
  const long nr = static_cast<long>(rows);
  const int team = detail::parallel_team(detail::byte_ns(12.0 * static_cast<double>(rows * f)),
                                         static_cast<std::int64_t>(nr));
  detail::parallel_for_static(team, nr, [&](long ri) {
    const std::size_t r = static_cast<std::size_t>(ri);
    const float* xr = x + r * f;
    float m;
    double var;
    row_moments(xr, f, m, var);
    const float rs = rstd_of(var, epsilon);
    mean[r] = m;
    rstd[r] = rs;
    float* yr = y + r * f;
    for (std::size_t i = 0; i < f; ++i) yr[i] = detail::madd(xr[i] - m, rs * gm[i], bt[i]);
  });
}

void layer_norm_backward(std::size_t rows, std::size_t features, const float* g, const float* x,
                         const float* mean, const float* rstd, const float* gamma, float* dx,
                         float* dgamma, float* dbeta) {
  const std::size_t f = features;
  const std::vector<float> gm = or_fill(gamma, f, 1.f);
  const bool params = dgamma || dbeta;
  const std::size_t per = rows_per_block(f);
  const std::size_t blocks = (rows + per - 1) / per;
  std::vector<double> partial(params ? blocks * 2 * f : 0, 0.0);
  const long nb = static_cast<long>(blocks);
  const int team = detail::parallel_team(detail::byte_ns(16.0 * static_cast<double>(rows * f)),
                                         static_cast<std::int64_t>(nb));
  detail::parallel_for_static(team, nb, [&](long b) {
    double* pg = params ? partial.data() + static_cast<std::size_t>(b) * 2 * f : nullptr;
    double* pb = params ? pg + f : nullptr;
    std::vector<float> fg(params ? f : 0, 0.f), fb(params ? f : 0, 0.f);
    const std::size_t lo = static_cast<std::size_t>(b) * per, hi = std::min(rows, lo + per);
    for (std::size_t r = lo; r < hi; ++r) {
      const float* gr = g + r * f;
      const float* xr = x + r * f;
      const float m = mean[r], rs = rstd[r];
      if (params) {
        // g * xhat and g summed over kSubRows rows in float, then into the block's doubles.
        for (std::size_t i = 0; i < f; ++i) {
          fg[i] = detail::madd(gr[i], (xr[i] - m) * rs, fg[i]);
          fb[i] += gr[i];
        }
        if ((r - lo + 1) % kSubRows == 0 || r + 1 == hi)
          for (std::size_t i = 0; i < f; ++i) {
            pg[i] += fg[i];
            pb[i] += fb[i];
            fg[i] = 0.f;
            fb[i] = 0.f;
          }
      }
      if (!dx) continue;
      // d = g * gamma: mean(d) and mean(d * xhat) = rstd * sum(d (x - m)) / f.
      const float* w = gm.data();
      const fbatch mb(m);
      const double sd = lane_sum(
          f,
          [&](std::size_t i) {
            return fbatch::load_unaligned(gr + i) * fbatch::load_unaligned(w + i);
          },
          [&](std::size_t i) { return gr[i] * w[i]; });
      const double sdx = lane_sum(
          f,
          [&](std::size_t i) {
            return fbatch::load_unaligned(gr + i) * fbatch::load_unaligned(w + i) *
                   (fbatch::load_unaligned(xr + i) - mb);
          },
          [&](std::size_t i) { return gr[i] * w[i] * (xr[i] - m); });
      const double c1 = sd / static_cast<double>(f);
      const double c2 = static_cast<double>(rs) * sdx / static_cast<double>(f);
      // dx = rstd gamma g - rstd^2 c2 (x - m) - rstd c1.
      const float bm = static_cast<float>(-static_cast<double>(rs) * rs * c2);
      const float c = static_cast<float>(-static_cast<double>(rs) * c1);
      float* dr = dx + r * f;
      for (std::size_t i = 0; i < f; ++i)
        dr[i] = detail::madd(rs * gm[i], gr[i], detail::madd(xr[i] - m, bm, c));
    }
  });
  if (!params) return;
  for (std::size_t i = 0; i < f; ++i) {
    double sg = 0.0, sb = 0.0;
    for (std::size_t b = 0; b < blocks; ++b) {
      sg += partial[b * 2 * f + i];
      sb += partial[b * 2 * f + f + i];
    }
    if (dgamma) dgamma[i] = static_cast<float>(sg);
    if (dbeta) dbeta[i] = static_cast<float>(sb);
  }
}

namespace {

// Channels summed together by channel_lane_sums.
constexpr std::size_t kChannelLanes = 8;

// s[j] = sum over `rows` rows (stride `stride`) of a[r, j] and q[j] = of a[r, j] * b[r, j], for
// j < kChannelLanes, rows in order, in double accumulators that stay in registers. Not inlined:
// GCC vectorises the lane loops in a function of their own.
[[gnu::noinline]] void channel_lane_sums(std::size_t rows, std::size_t stride, const float* a,
                                         const float* b, double* s, double* q) {
  double ls[kChannelLanes] = {}, lq[kChannelLanes] = {};
  for (std::size_t r = 0; r < rows; ++r) {
    const float* ar = a + r * stride;
    const float* br = b + r * stride;
    for (std::size_t j = 0; j < kChannelLanes; ++j) {
      const double v = ar[j];
      ls[j] += v;
      lq[j] += v * br[j];
    }
  }
  for (std::size_t j = 0; j < kChannelLanes; ++j) {
    s[j] = ls[j];
    q[j] = lq[j];
  }
}

// Per (sample, channel) sums of a and a * b (b null: a * a) over the spatial rows of x viewed as
// (n, spatial, channels): fixed blocks of rows in double, added in block order. Returns
// 2 * n * channels values: the sums of sample i at [2 i c, 2 i c + c), the products after.
std::vector<double> sample_channel_sums(std::size_t n, std::size_t spatial, std::size_t channels,
                                        const float* a, const float* b) {
  const std::size_t c = channels, per = rows_per_block(c);
  const std::size_t bps = (spatial + per - 1) / per, tasks = n * bps;
  std::vector<double> partial(tasks * 2 * c, 0.0);
  const long nt = static_cast<long>(tasks);
  const int team =
      detail::parallel_team(reduce_ns(n * spatial * c, b ? 2 : 1), static_cast<std::int64_t>(nt));
  detail::parallel_for_static(team, nt, [&](long t) {
    const std::size_t i = static_cast<std::size_t>(t) / bps, k = static_cast<std::size_t>(t) % bps;
    double* s = partial.data() + static_cast<std::size_t>(t) * 2 * c;
    double* q = s + c;
    const std::size_t lo = k * per, hi = std::min(spatial, lo + per);
    const float* a0 = a + (i * spatial + lo) * c;
    const float* b0 = b ? b + (i * spatial + lo) * c : a0;
    std::size_t j = 0;
    for (; j + kChannelLanes <= c; j += kChannelLanes)
      channel_lane_sums(hi - lo, c, a0 + j, b0 + j, s + j, q + j);
    for (; j < c; ++j)
      for (std::size_t r = 0; r < hi - lo; ++r) {
        s[j] += a0[r * c + j];
        q[j] += static_cast<double>(a0[r * c + j]) * b0[r * c + j];
      }
  });
  if (bps == 1) return partial;  // one block per sample: already the per-sample sums
  std::vector<double> out(2 * n * c, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < bps; ++k) {
      const double* p = partial.data() + (i * bps + k) * 2 * c;
      double* o = out.data() + i * 2 * c;
      for (std::size_t j = 0; j < 2 * c; ++j) o[j] += p[j];
    }
  return out;
}

// Runs rows(i, lo, hi) over the spatial rows [lo, hi) of each sample i, in fixed blocks.
template <class Rows>
void for_row_blocks(std::size_t n, std::size_t spatial, std::size_t channels, double bytes_per,
                    const Rows& rows) {
  const std::size_t per = rows_per_block(channels);
  const std::size_t bps = (spatial + per - 1) / per, tasks = n * bps;
  const long nt = static_cast<long>(tasks);
  const int team = detail::parallel_team(
      detail::byte_ns(bytes_per * static_cast<double>(n * spatial * channels)),
      static_cast<std::int64_t>(nt));
  detail::parallel_for_static(team, nt, [&](long t) {
    const std::size_t i = static_cast<std::size_t>(t) / bps, k = static_cast<std::size_t>(t) % bps;
    rows(i, k * per, std::min(spatial, k * per + per));
  });
}

}  // namespace

void group_norm_forward(std::size_t n, std::size_t spatial, std::size_t channels,
                        std::size_t groups, const float* x, const float* gamma, const float* beta,
                        float epsilon, float* y, float* mean, float* rstd) {
  const std::size_t c = channels, cg = channels / groups;
  const std::vector<float> gm = or_fill(gamma, c, 1.f), bt = or_fill(beta, c, 0.f);
  const std::vector<double> sums = sample_channel_sums(n, spatial, c, x, nullptr);
  // Per (sample, channel): the group's mean and rstd * gamma.
  std::vector<float> mc(n * c), ac(n * c);
  const double count = static_cast<double>(spatial) * static_cast<double>(cg);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < groups; ++k) {
      double s = 0.0, q = 0.0;
      for (std::size_t j = k * cg; j < (k + 1) * cg; ++j) {
        s += sums[i * 2 * c + j];
        q += sums[i * 2 * c + c + j];
      }
      float m, rs;
      finish_stats(s, q, count, epsilon, m, rs);
      mean[i * groups + k] = m;
      rstd[i * groups + k] = rs;
      for (std::size_t j = k * cg; j < (k + 1) * cg; ++j) {
        mc[i * c + j] = m;
        ac[i * c + j] = rs * gm[j];
      }
    }
  for_row_blocks(n, spatial, c, 8.0, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    for (std::size_t r = lo; r < hi; ++r) {
      const std::size_t off = (i * spatial + r) * c;
      center_scale_shift(x + off, mc.data() + i * c, ac.data() + i * c, bt.data(), c, y + off);
    }
  });
}

void group_norm_backward(std::size_t n, std::size_t spatial, std::size_t channels,
                         std::size_t groups, const float* g, const float* x, const float* mean,
                         const float* rstd, const float* gamma, float* dx, float* dgamma,
                         float* dbeta) {
  const std::size_t c = channels, cg = channels / groups;
  const std::vector<float> gm = or_fill(gamma, c, 1.f);
  // Per (sample, channel): sum of g and of g * x.
  const std::vector<double> sums = sample_channel_sums(n, spatial, c, g, x);
  auto sg = [&](std::size_t i, std::size_t j) { return sums[i * 2 * c + j]; };
  auto sgx = [&](std::size_t i, std::size_t j) { return sums[i * 2 * c + c + j]; };
  // sum of g * xhat over (sample i, channel j) = rstd * (sgx - mean * sg).
  auto sgxh = [&](std::size_t i, std::size_t j) {
    const std::size_t k = i * groups + j / cg;
    return static_cast<double>(rstd[k]) * (sgx(i, j) - static_cast<double>(mean[k]) * sg(i, j));
  };
  if (dgamma || dbeta)
    for (std::size_t j = 0; j < c; ++j) {
      double a = 0.0, b = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        a += sgxh(i, j);
        b += sg(i, j);
      }
      if (dgamma) dgamma[j] = static_cast<float>(a);
      if (dbeta) dbeta[j] = static_cast<float>(b);
    }
  if (!dx) return;
  // dx = rstd gamma g - rstd^2 c2 (x - mean) - rstd c1 with c1 = mean(d), c2 = mean(d xhat) over
  // the group, d = g * gamma: per (sample, channel) coefficients.
  std::vector<float> mc(n * c), ac(n * c), bc(n * c), cc(n * c);
  const double count = static_cast<double>(spatial) * static_cast<double>(cg);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < groups; ++k) {
      double s1 = 0.0, s2 = 0.0;
      for (std::size_t j = k * cg; j < (k + 1) * cg; ++j) {
        s1 += gm[j] * sg(i, j);
        s2 += gm[j] * sgxh(i, j);
      }
      const double rs = rstd[i * groups + k];
      const float b = static_cast<float>(-rs * rs * (s2 / count));
      const float cst = static_cast<float>(-rs * (s1 / count));
      for (std::size_t j = k * cg; j < (k + 1) * cg; ++j) {
        mc[i * c + j] = mean[i * groups + k];
        ac[i * c + j] = static_cast<float>(rs) * gm[j];
        bc[i * c + j] = b;
        cc[i * c + j] = cst;
      }
    }
  for_row_blocks(n, spatial, c, 12.0, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    for (std::size_t r = lo; r < hi; ++r) {
      const std::size_t off = (i * spatial + r) * c;
      norm_dx(g + off, x + off, mc.data() + i * c, ac.data() + i * c, bc.data() + i * c,
              cc.data() + i * c, c, dx + off);
    }
  });
}

}  // namespace xtape::kernels
