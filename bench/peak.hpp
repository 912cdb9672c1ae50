#pragma once
/// @file peak.hpp
/// The machine's measured FMA peak, shared by the kernel benchmarks (bench/ only).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>
#include <xsimd/xsimd.hpp>

namespace xtape::bench {

/// Median wall time in seconds of `reps` calls of f, after one warm-up call.
inline double median_time(const std::function<void()>& f, int reps) {
  using clock_type = std::chrono::steady_clock;
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    f();
    t.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// FMA peak in GFLOP/s with `threads` threads: 12 independent chains of xsimd batch FMAs per
/// thread (the widest batch this build compiles for). 12 chains cover the FMA latency times
/// the FMA ports of current x86 cores (4-5 cycles x 2) and, with the two operands, still fit
/// in AVX2's 16 vector registers (16 chains spill there and measure half the peak).
inline double fma_peak(int threads) {
  using batch = xsimd::batch<float>;
  constexpr int chains = 12;
  constexpr long iters = 20'000'000;
  std::vector<float> sink(static_cast<std::size_t>(threads) * batch::size, 0.f);
  auto run = [&] {
#pragma omp parallel num_threads(threads)
    {
      batch acc[chains];
      for (int i = 0; i < chains; ++i) acc[i] = batch(1.f + 1e-3f * static_cast<float>(i));
      const batch x(0.999999f), y(1e-7f);
      for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < chains; ++i) acc[i] = xsimd::fma(acc[i], x, y);
      }
      batch s(0.f);
      for (int i = 0; i < chains; ++i) s += acc[i];
      s.store_unaligned(sink.data() + omp_get_thread_num() * batch::size);
    }
  };
  const double t = median_time(run, 5);
  return 2.0 * chains * batch::size * static_cast<double>(iters) * threads / t / 1e9;
}

}  // namespace xtape::bench
