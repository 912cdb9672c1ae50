#include "kernels/elementwise.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/column_sums.hpp"
#include "kernels/compare.hpp"
#include "kernels/parallel.hpp"
#include "kernels/row_cursors.hpp"
#include "kernels/simd_map.hpp"
#include "kernels/workspace.hpp"

// xsimd's AVX-512 exp, log and conversions call intrinsics whose unused operand is an
// _mm512_undefined_*() value, which GCC 12 reports as uninitialized (a false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace xtape::kernels {
namespace {

using batch = xsimd::batch<float>;
constexpr std::size_t W = batch::size;
// Runs run(lo, hi) over [0, n) in batch-aligned slices, for an elementwise pass over n floats
// (two read, one written).
template <class Run>
void split_range(std::size_t n, const Run& run) {
  detail::split_range(n, 12.0 / detail::bytes_per_ns, W, run);
}

// Applies f to batches of x over [0, n); the tail goes through a padded batch so one function
// serves the whole range.
template <class F>
void map1(std::size_t n, const float* x, float* out, F f) {
  auto run = [&](std::size_t lo, std::size_t hi) {
    std::size_t i = lo;
    for (; i + W <= hi; i += W) f(batch::load_unaligned(x + i)).store_unaligned(out + i);
    if (i < hi) {
      alignas(64) float buf[W] = {};
      std::copy(x + i, x + hi, buf);
      f(batch::load_aligned(buf)).store_aligned(buf);
      std::copy(buf, buf + (hi - i), out + i);
    }
  };
  split_range(n, run);
}

template <class F>
void map2(std::size_t n, const float* a, std::size_t sa, const float* b, std::size_t sb, float* out,
          F f) {
  auto load = [](const float* p, std::size_t step, std::size_t i) {
    return step ? batch::load_unaligned(p + i) : batch(p[0]);
  };
  auto run = [&](std::size_t lo, std::size_t hi) {
    std::size_t i = lo;
    for (; i + W <= hi; i += W) f(load(a, sa, i), load(b, sb, i)).store_unaligned(out + i);
    for (; i < hi; ++i) {
      alignas(64) float r[W];
      f(batch(a[i * sa]), batch(b[i * sb])).store_aligned(r);
      out[i] = r[0];
    }
  };
  split_range(n, run);
}

}  // namespace

void binary(BinaryOp op, std::size_t n, const float* a, std::size_t a_step, const float* b,
            std::size_t b_step, float* out) {
  switch (op) {
    case BinaryOp::add:
      return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x + y; });
    case BinaryOp::sub:
      return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x - y; });
    case BinaryOp::mul:
      return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x * y; });
    case BinaryOp::div:
      return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x / y; });
  }
}

void unary(UnaryOp op, std::size_t n, const float* x, float* out) {
  switch (op) {
    case UnaryOp::neg:
      return map1(n, x, out, [](batch v) { return -v; });
    case UnaryOp::sqrt:
      return map1(n, x, out, [](batch v) { return xsimd::sqrt(v); });
    case UnaryOp::exp:
      return map1(n, x, out, [](batch v) { return xsimd::exp(v); });
    case UnaryOp::log:
      return map1(n, x, out, [](batch v) { return xsimd::log(v); });
    case UnaryOp::abs:
      return map1(n, x, out, [](batch v) { return xsimd::abs(v); });
    case UnaryOp::square:
      return map1(n, x, out, [](batch v) { return v * v; });
    case UnaryOp::relu:
      return map1(n, x, out, [](batch v) { return detail::relu(v); });
    case UnaryOp::sigmoid:
      return map1(n, x, out, [](batch v) { return batch(1.f) / (batch(1.f) + xsimd::exp(-v)); });
    case UnaryOp::tanh:
      return map1(n, x, out, [](batch v) { return xsimd::tanh(v); });
  }
}

void pow_scalar(std::size_t n, const float* x, float p, float* out) {
  if (p == 2.f) return unary(UnaryOp::square, n, x, out);
  if (p == 1.f) return map1(n, x, out, [](batch v) { return v; });
  if (p == 0.5f) return unary(UnaryOp::sqrt, n, x, out);
  map1(n, x, out, [p](batch v) { return xsimd::pow(v, batch(p)); });
}

void affine(std::size_t n, const float* x, float a, float b, float* out) {
  map1(n, x, out, [a, b](batch v) { return detail::fma(v, batch(a), batch(b)); });
}

void relu_backward(std::size_t n, const float* x, const float* g, float* out) {
  map2(n, x, 1, g, 1, out,
       [](batch v, batch d) { return xsimd::select(detail::relu_passes(v), d, batch(0.f)); });
}

void masked_scale(std::size_t n, const float* mask, const float* g, float scale, float* out) {
  map2(n, mask, 1, g, 1, out, [scale](batch m, batch d) {
    return xsimd::select(m != batch(0.f), d * batch(scale), batch(0.f));
  });
}

void binary_2d(BinaryOp op, std::size_t rows, std::size_t cols, const float* a, std::size_t a_rs,
               std::size_t a_cs, const float* b, std::size_t b_rs, std::size_t b_cs, float* out) {
  auto rows_of = [&](auto f, std::size_t r0, std::size_t r1) {
    auto load = [](const float* p, std::size_t step, std::size_t j) {
      return step ? batch::load_unaligned(p + j) : batch(p[0]);
    };
    for (std::size_t i = r0; i < r1; ++i) {
      const float* ar = a + i * a_rs;
      const float* br = b + i * b_rs;
      float* o = out + i * cols;
      std::size_t j = 0;
      for (; j + W <= cols; j += W) f(load(ar, a_cs, j), load(br, b_cs, j)).store_unaligned(o + j);
      for (; j < cols; ++j) {
        alignas(64) float r[W];
        f(batch(ar[j * a_cs]), batch(br[j * b_cs])).store_aligned(r);
        o[j] = r[0];
      }
    }
  };
  auto run = [&](auto f) {
    const int team = detail::parallel_team(detail::byte_ns(12.0 * static_cast<double>(rows * cols)),
                                           static_cast<std::int64_t>(rows));
    if (team == 1) return rows_of(f, 0, rows);
      // Elementwise: any split gives the same bits; blocks of rows keep the calls cheap.
#pragma omp parallel num_threads(team)
    {
      const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
      const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
      const std::size_t chunk = (rows + nt - 1) / nt;
      rows_of(f, std::min(rows, t * chunk), std::min(rows, (t + 1) * chunk));
    }
  };
  switch (op) {
    case BinaryOp::add:
      return run([](batch x, batch y) { return x + y; });
    case BinaryOp::sub:
      return run([](batch x, batch y) { return x - y; });
    case BinaryOp::mul:
      return run([](batch x, batch y) { return x * y; });
    case BinaryOp::div:
      return run([](batch x, batch y) { return x / y; });
  }
}

namespace {
// murmur3's 32-bit finaliser: a bijection with full avalanche (scalar and 16-lane versions).
inline std::uint32_t fmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}
using ubatch = xsimd::batch<std::uint32_t>;
static_assert(ubatch::size == W, "float and uint32 batches must have the same width");
inline ubatch fmix32(ubatch h) {
  h ^= h >> 16;
  h *= ubatch(0x85ebca6bu);
  h ^= h >> 13;
  h *= ubatch(0xc2b2ae35u);
  h ^= h >> 16;
  return h;
}
}  // namespace

void dropout_forward(std::size_t n, std::uint64_t key, float rate, float scale, const float* x,
                     float* mask, float* out) {
  const std::uint32_t k0 = static_cast<std::uint32_t>(key),
                      k1 = static_cast<std::uint32_t>(key >> 32);
  // Kept when the top 24 bits of the hash, as a uniform in [0, 1), are >= rate: compare the
  // integers against ceil(rate * 2^24).
  const std::uint32_t threshold =
      static_cast<std::uint32_t>(std::ceil(static_cast<double>(rate) * 16777216.0));
  // Element i's hash depends only on (key, i).
  auto run = [&](std::size_t lo, std::size_t hi) {
    alignas(64) std::uint32_t lane[W];
    for (std::size_t l = 0; l < W; ++l) lane[l] = static_cast<std::uint32_t>(l);
    const ubatch iota = ubatch::load_aligned(lane), vk0(k0), vk1(k1);
    const batch vs(scale), zero(0.f), vt(static_cast<float>(threshold));
    std::size_t i = lo;
    for (; i + W <= hi; i += W) {
      const ubatch h = fmix32(fmix32(ubatch(static_cast<std::uint32_t>(i)) + iota + vk0) ^ vk1);
      // h >> 8 < 2^24 converts to float exactly.
      const auto keep =
          xsimd::to_float(xsimd::bitwise_cast<xsimd::batch<std::int32_t>>(h >> 8)) >= vt;
      xsimd::select(keep, vs, zero).store_unaligned(mask + i);
      xsimd::select(keep, batch::load_unaligned(x + i) * vs, zero).store_unaligned(out + i);
    }
    for (; i < hi; ++i) {
      const std::uint32_t h = fmix32(fmix32(static_cast<std::uint32_t>(i) + k0) ^ k1);
      const bool keep = (h >> 8) >= threshold;
      mask[i] = keep ? scale : 0.f;
      out[i] = keep ? x[i] * scale : 0.f;
    }
  };
  split_range(n, run);
}

void normal_fill(std::size_t n, std::uint64_t key, float mean, float stddev, float* out) {
  const std::uint32_t k0 = static_cast<std::uint32_t>(key),
                      k1 = static_cast<std::uint32_t>(key >> 32);
  using ibatch = xsimd::batch<std::int32_t>;
  // One block: W pairs (u1, u2) -> r = sqrt(-2 log u1), theta = 2 pi u2 - pi; out[b + l] =
  // r cos theta, out[b + W + l] = r sin theta. u1 in (0, 1] (log finite), u2 in [0, 1).
  auto block = [&](std::size_t b, float* dst) {
    alignas(64) std::uint32_t lane[W];
    for (std::size_t l = 0; l < W; ++l) lane[l] = static_cast<std::uint32_t>(2 * l);
    const ubatch c = ubatch(static_cast<std::uint32_t>(b)) + ubatch::load_aligned(lane);
    const ubatch vk0(k0), vk1(k1);
    const ubatch h1 = fmix32(fmix32(c + vk0) ^ vk1);
    const ubatch h2 = fmix32(fmix32(c + ubatch(1u) + vk0) ^ vk1);
    const float inv24 = 1.f / 16777216.f;
    const batch u1 =
        (xsimd::to_float(xsimd::bitwise_cast<ibatch>(h1 >> 8)) + batch(1.f)) * batch(inv24);
    const batch u2 = xsimd::to_float(xsimd::bitwise_cast<ibatch>(h2 >> 8)) * batch(inv24);
    const batch r = xsimd::sqrt(batch(-2.f) * xsimd::log(u1));
    const auto [s, co] =
        xsimd::sincos(detail::fma(u2, batch(6.28318530717958648f), batch(-3.14159265358979324f)));
    detail::fma(r * co, batch(stddev), batch(mean)).store_unaligned(dst);
    detail::fma(r * s, batch(stddev), batch(mean)).store_unaligned(dst + W);
  };
  auto run = [&](std::size_t lo, std::size_t hi) {
    std::size_t b = lo;
    for (; b + 2 * W <= hi; b += 2 * W) block(b, out + b);
    if (b < hi) {
      alignas(64) float buf[2 * W];
      block(b, buf);
      std::copy(buf, buf + (hi - b), out + b);
    }
  };
  // Slices of whole blocks: every element's value depends only on (key, its index).
  // About a nanosecond per element on one thread (a log, a sqrt and a sincos per pair).
  detail::split_range(n, 1.0, 2 * W, run);
}

float sum(std::size_t n, const float* x) {
  // Four independent accumulators, then a fixed-order horizontal sum.
  batch acc[4] = {batch(0.f), batch(0.f), batch(0.f), batch(0.f)};
  std::size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W)
    for (int k = 0; k < 4; ++k) acc[k] += batch::load_unaligned(x + i + k * W);
  for (; i + W <= n; i += W) acc[0] += batch::load_unaligned(x + i);
  batch total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  alignas(64) float lanes[W];
  total.store_aligned(lanes);
  float s = 0.f;
  for (std::size_t k = 0; k < W; ++k) s += lanes[k];
  for (; i < n; ++i) s += x[i];
  return s;
}

void add_column_sums(std::size_t rows, std::size_t cols, const float* x, float* out) {
  detail::blocked_column_sums(rows, cols, DenseRows(x, static_cast<std::int64_t>(cols)), out);
}

void batched_column_sums(std::size_t batch, std::size_t rows, std::size_t cols, const float* x,
                         float* out) {
  // Inside the region add_column_sums runs on its thread, with the blocks it uses anywhere.
  const int team = detail::parallel_team(
      detail::byte_ns(4.0 * static_cast<double>(batch) * static_cast<double>(rows * cols)),
      static_cast<std::int64_t>(batch));
  detail::parallel_for_static(team, batch, [&](std::size_t b) {
    add_column_sums(rows, cols, x + b * rows * cols, out + b * cols);
  });
}

void row_sums(std::size_t rows, std::size_t cols, const float* x, float* out) {
  const int team = detail::parallel_team(detail::byte_ns(4.0 * static_cast<double>(rows * cols)),
                                         static_cast<std::int64_t>(rows));
  detail::parallel_for_static(team, rows, [&](std::size_t i) { out[i] = sum(cols, x + i * cols); });
}

}  // namespace xtape::kernels
