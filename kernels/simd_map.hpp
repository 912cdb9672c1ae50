#pragma once
/// @file simd_map.hpp
/// Elementwise loops over raw float buffers (internal to kernels/): a function of xsimd
/// batches applied to whole batches and, at the end, to one zero-padded batch, so that every
/// element goes through the same vector code (the bits do not depend on where a slice ends),
/// split over threads in slices aligned to the batch width.
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/parallel.hpp"

namespace xtape::kernels::detail {

using fbatch = xsimd::batch<float>;
inline constexpr std::size_t fwidth = fbatch::size;

/// Runs run(lo, hi) over [0, n): on the calling thread below the grain size (parallel.hpp)
/// for `ns_per_element` single-thread nanoseconds per element, else one slice per thread whose
/// bounds are multiples of `align` (elementwise work: any such split gives the same bits).
template <class Run>
void split_range(std::size_t n, double ns_per_element, std::size_t align, const Run& run) {
  const int team =
      parallel_team(ns_per_element * static_cast<double>(n), static_cast<std::int64_t>(n / align));
  if (team == 1) return run(std::size_t{0}, n);
#pragma omp parallel num_threads(team)
  {
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t chunk = (n / nt + align - 1) / align * align;
    run(std::min(n, t * chunk), std::min(n, (t + 1) * chunk));
  }
}

/// out[i] = f(in[i]...) for i < n, f taking and returning fbatch; out may alias an input.
template <class F, class... In>
void map_batches(std::size_t n, double ns_per_element, F f, float* out, const In*... in) {
  constexpr std::size_t W = fwidth;
  auto run = [&](std::size_t lo, std::size_t hi) {
    std::size_t i = lo;
    for (; i + W <= hi; i += W) f(fbatch::load_unaligned(in + i)...).store_unaligned(out + i);
    if (i < hi) {
      // The tail through padded copies (zeros beyond the end: every f is finite there or its
      // lanes are discarded).
      auto padded = [&](const float* p) {
        alignas(64) float buf[W] = {};
        std::copy(p + i, p + hi, buf);
        return fbatch::load_aligned(buf);
      };
      alignas(64) float r[W];
      f(padded(in)...).store_aligned(r);
      std::copy(r, r + (hi - i), out + i);
    }
  };
  split_range(n, ns_per_element, W, run);
}

}  // namespace xtape::kernels::detail
