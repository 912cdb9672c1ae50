#pragma once
/// @file parallel.hpp
/// The grain size of the kernels' parallel regions (internal to kernels/). A fork and join
/// costs a few microseconds on an idle machine and up to a scheduler time slice when another
/// process holds a core, so a region is opened only for work that takes at least
/// 2 * team_member_ns on one thread, with one thread per team_member_ns of work, at most
/// num_threads(), at most the cores other processes leave free (the load guard, threads.hpp)
/// and at most one per task. Every region's split into tasks depends on the work
/// alone, so the team size never changes a result.
#include <algorithm>
#include <cstdint>

namespace xtape::kernels::detail {

/// Single-thread work per team member: 2 threads from 50 microseconds of work.
inline constexpr double team_member_ns = 25'000;
/// Conservative single-core rates (above what the kernels reach, so small work stays serial):
/// arithmetic in flops per nanosecond, streaming in bytes per nanosecond.
inline constexpr double flops_per_ns = 64, bytes_per_ns = 16;

/// Estimated single-thread nanoseconds for `flops` floating-point operations.
inline double flop_ns(double flops) { return flops / flops_per_ns; }
/// Estimated single-thread nanoseconds for streaming `bytes` through memory.
inline double byte_ns(double bytes) { return bytes / bytes_per_ns; }

/// Threads for a parallel region of `work_ns` single-thread nanoseconds split into `tasks`
/// independent tasks: 1 (no region) below 2 * team_member_ns, inside another parallel region,
/// or with one task.
int parallel_team(double work_ns, std::int64_t tasks = INT64_MAX);

/// The load guard's arithmetic (threads.hpp), exposed for its tests. A per-CPU line of
/// /proc/stat ("cpu3 120 0 40 9000 3 0 2 0 0 0"): its CPU number and busy clock ticks (user,
/// nice, system, irq and softirq; not idle, iowait or steal). False for any other line.
bool cpu_stat_busy(const char* line, int& cpu, long long& busy);
/// CPUs (in 16ths, rounded) that others used between two samples: `busy_ticks` of the CPUs
/// this process may run on, less its own `own_s` seconds of CPU time, over `wall_s` seconds;
/// at least 0, -1 when the interval is empty.
int others_x16_from(long long busy_ticks, long ticks_per_s, double own_s, double wall_s);
/// The next average of the CPUs others use, in 16ths: three quarters of the previous one (0
/// before the first sample) and a quarter of the sample.
int smooth_others_x16(int previous_x16, int sample_x16);
/// Threads a region may use on `cpus` cores while others use others_x16 / 16 of them (rounded
/// to the nearest): the cores they leave free, at least 1.
int cap_for_load(int cpus, int others_x16);

/// The team of one sgemm of m x n x k (shared by sgemm and the convolutions that choose
/// between a threaded GEMM and one on the calling thread).
inline int gemm_team(std::int64_t m, std::int64_t n, std::int64_t k) {
  return parallel_team(
      flop_ns(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k)));
}

}  // namespace xtape::kernels::detail

namespace xtape::kernels::detail {

/// Runs body(i) for i in [0, n), the iterations handed out one at a time (a thread whose core
/// is busy takes fewer). With team <= 1 the loop runs on the calling thread and no parallel
/// region opens, so the kernels that body calls may still open theirs.
template <class Index, class Body>
void parallel_for(int team, Index n, const Body& body) {
  if (team <= 1) {
    for (Index i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (Index i = 0; i < n; ++i) body(i);
}

/// As parallel_for, the iterations in one contiguous slice per thread (for many cheap ones).
template <class Index, class Body>
void parallel_for_static(int team, Index n, const Body& body) {
  if (team <= 1) {
    for (Index i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for num_threads(team) schedule(static)
  for (Index i = 0; i < n; ++i) body(i);
}

}  // namespace xtape::kernels::detail
