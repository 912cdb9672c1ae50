#include "kernels/elementwise.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <xsimd/xsimd.hpp>

namespace xtape::kernels {
namespace {

using batch = xsimd::batch<float>;
constexpr std::size_t W = batch::size;
// Below this many elements a parallel region costs more than it saves.
constexpr std::size_t kParallelMin = std::size_t{1} << 16;

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
  if (n < kParallelMin) return run(0, n);
#pragma omp parallel
  {
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t chunk = (n / nt + W - 1) / W * W;
    run(std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  }
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
  if (n < kParallelMin) return run(0, n);
#pragma omp parallel
  {
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t chunk = (n / nt + W - 1) / W * W;
    run(std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  }
}

}  // namespace

void binary(BinaryOp op, std::size_t n, const float* a, std::size_t a_step, const float* b,
            std::size_t b_step, float* out) {
  switch (op) {
    case BinaryOp::add: return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x + y; });
    case BinaryOp::sub: return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x - y; });
    case BinaryOp::mul: return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x * y; });
    case BinaryOp::div: return map2(n, a, a_step, b, b_step, out, [](batch x, batch y) { return x / y; });
  }
}

void unary(UnaryOp op, std::size_t n, const float* x, float* out) {
  switch (op) {
    case UnaryOp::neg: return map1(n, x, out, [](batch v) { return -v; });
    case UnaryOp::sqrt: return map1(n, x, out, [](batch v) { return xsimd::sqrt(v); });
    case UnaryOp::exp: return map1(n, x, out, [](batch v) { return xsimd::exp(v); });
    case UnaryOp::log: return map1(n, x, out, [](batch v) { return xsimd::log(v); });
    case UnaryOp::abs: return map1(n, x, out, [](batch v) { return xsimd::abs(v); });
    case UnaryOp::square: return map1(n, x, out, [](batch v) { return v * v; });
    case UnaryOp::relu: return map1(n, x, out, [](batch v) { return xsimd::max(v, batch(0.f)); });
    case UnaryOp::sigmoid:
      return map1(n, x, out, [](batch v) { return batch(1.f) / (batch(1.f) + xsimd::exp(-v)); });
    case UnaryOp::tanh: return map1(n, x, out, [](batch v) { return xsimd::tanh(v); });
  }
}

void pow_scalar(std::size_t n, const float* x, float p, float* out) {
  if (p == 2.f) return unary(UnaryOp::square, n, x, out);
  if (p == 1.f) return map1(n, x, out, [](batch v) { return v; });
  if (p == 0.5f) return unary(UnaryOp::sqrt, n, x, out);
  map1(n, x, out, [p](batch v) { return xsimd::pow(v, batch(p)); });
}

void affine(std::size_t n, const float* x, float a, float b, float* out) {
  map1(n, x, out, [a, b](batch v) { return xsimd::fma(v, batch(a), batch(b)); });
}

void relu_backward(std::size_t n, const float* x, const float* g, float* out) {
  map2(n, x, 1, g, 1, out, [](batch v, batch d) { return xsimd::select(v > batch(0.f), d, batch(0.f)); });
}

void masked_scale(std::size_t n, const float* mask, const float* g, float scale, float* out) {
  map2(n, mask, 1, g, 1, out, [scale](batch m, batch d) {
    return xsimd::select(m != batch(0.f), d * batch(scale), batch(0.f));
  });
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
  // Parallel over column blocks only, so each output sums its rows in order.
  const std::size_t block = 256;
  const std::size_t nblocks = (cols + block - 1) / block;
  auto run = [&](std::size_t jb) {
    const std::size_t j0 = jb * block, j1 = std::min(cols, j0 + block);
    for (std::size_t i = 0; i < rows; ++i) {
      const float* row = x + i * cols;
      std::size_t j = j0;
      for (; j + W <= j1; j += W)
        (batch::load_unaligned(out + j) + batch::load_unaligned(row + j)).store_unaligned(out + j);
      for (; j < j1; ++j) out[j] += row[j];
    }
  };
  if (rows * cols < kParallelMin || nblocks == 1) {
    for (std::size_t jb = 0; jb < nblocks; ++jb) run(jb);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::size_t jb = 0; jb < nblocks; ++jb) run(jb);
}

void row_sums(std::size_t rows, std::size_t cols, const float* x, float* out) {
  if (rows * cols < kParallelMin) {
    for (std::size_t i = 0; i < rows; ++i) out[i] = sum(cols, x + i * cols);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < rows; ++i) out[i] = sum(cols, x + i * cols);
}

}  // namespace xtape::kernels
