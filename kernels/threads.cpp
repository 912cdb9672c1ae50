// The library-wide thread count and the team size of each parallel region (threads.hpp,
// parallel.hpp).
#include "kernels/threads.hpp"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

#include "kernels/cpu_quota.hpp"
#include "kernels/parallel.hpp"

namespace xtape::kernels {

namespace {

// 0: follow OpenMP's omp_get_max_threads(); > 0: the count set (or read from the environment).
std::atomic<int> requested{0};
std::once_flag env_once;

void read_env() {
  const char* v = std::getenv("XTAPE_NUM_THREADS");
  if (v == nullptr || *v == '\0') return;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < 1 || n > std::numeric_limits<int>::max()) {
    std::fprintf(stderr, "xtape: ignoring XTAPE_NUM_THREADS='%s' (expected a positive integer)\n",
                 v);
    return;
  }
  int expected = 0;  // a set_num_threads call made meanwhile wins
  requested.compare_exchange_strong(expected, static_cast<int>(n));
}

// The load guard: the CPU time other processes take on the CPUs this process may run on,
// sampled at most every 20 ms from serial code: the busy time of those CPUs (/proc/stat's
// per-CPU lines, in clock ticks) less this process's own CPU time (its spinning OpenMP
// workers included), over the wall time between samples. Other work using a core leaves a
// second thread of ours only a share of it, and every join would wait for that thread, so the
// team shrinks to the cores left. An exponential average smooths the samples. Measuring the
// CPUs of this process's affinity mask, not the machine's run queue, keeps a container pinned
// to some CPUs of a busy host (a cpuset) from counting the host's other work, and short-lived
// kernel threads count for the little time they run.
std::atomic<int> guard_state{-1};  // -1 unread, 0 off, 1 on
std::atomic<int> machine_cap{std::numeric_limits<int>::max()};
std::atomic<std::int64_t> next_sample_ns{0};
std::atomic<int> others_x16{0};  // average CPUs other processes use, times 16

// The CPUs this process may run on; false when unknown.
bool own_cpus(cpu_set_t& set) {
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0;
}

int cpus() {
  cpu_set_t set;
  if (own_cpus(set)) return std::max(1, CPU_COUNT(&set));
  return std::max<int>(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
}

// Busy clock ticks summed over the CPUs of this process's affinity mask, or -1 when unknown.
// The per-CPU lines come first in /proc/stat; reading stops after them (the lines after can
// be long on a large machine).
long long busy_ticks_on_own_cpus() {
  cpu_set_t set;
  if (!own_cpus(set)) return -1;
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (f == nullptr) return -1;
  char line[512];
  long long total = 0;
  bool any = false, seen_cpu_lines = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    int cpu = -1;
    long long busy = 0;
    if (!detail::cpu_stat_busy(line, cpu, busy)) {
      if (seen_cpu_lines && std::strncmp(line, "cpu", 3) != 0) break;
      continue;
    }
    seen_cpu_lines = true;
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set)) total += busy, any = true;
  }
  std::fclose(f);
  return any ? total : -1;
}

double process_cpu_seconds() {
  timespec t{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return -1;
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The previous sample, read and written by the one thread that takes a sample.
std::mutex sample_mutex;
long long last_busy_ticks = -1;
double last_own_s = -1, last_wall_s = -1;

// CPUs (in 16ths) other processes used on this process's CPUs since the previous sample, or
// -1 at the first sample or when unknown.
int others_since_last_sample(std::int64_t now_ns) {
  static const long ticks_per_s = sysconf(_SC_CLK_TCK);
  std::lock_guard<std::mutex> lock(sample_mutex);
  const long long busy = busy_ticks_on_own_cpus();
  const double own = process_cpu_seconds(), wall = 1e-9 * static_cast<double>(now_ns);
  int x16 = -1;
  if (busy >= 0 && own >= 0 && last_busy_ticks >= 0 && last_own_s >= 0 && ticks_per_s > 0)
    x16 = detail::others_x16_from(busy - last_busy_ticks, ticks_per_s, own - last_own_s,
                                  wall - last_wall_s);
  last_busy_ticks = busy, last_own_s = own, last_wall_s = wall;
  return x16;
}

bool guard_enabled() {
  int state = guard_state.load(std::memory_order_relaxed);
  if (state < 0) {
    const char* v = std::getenv("XTAPE_LOAD_GUARD");
    state = (v != nullptr && std::string(v) == "0") ? 0 : 1;
    guard_state.store(state);
  }
  return state == 1;
}

int load_cap() {
  if (!guard_enabled()) return std::numeric_limits<int>::max();
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t due = next_sample_ns.load(std::memory_order_relaxed);
  if (now >= due && next_sample_ns.compare_exchange_strong(due, now + 20'000'000)) {
    const int others = others_since_last_sample(now);
    if (others >= 0) {
      // Three quarters of the old average and one quarter of the sample, in 16ths, from an
      // average of 0: a sample is a few clock ticks per CPU (1 in 2 off at 100 ticks a second
      // and 20 ms), so a busy core shows after three samples and one noisy sample never does.
      const int smoothed = detail::smooth_others_x16(others_x16.load(), others);
      others_x16.store(smoothed);
      static const int n_cpus = cpus();
      machine_cap.store(detail::cap_for_load(n_cpus, smoothed));
    }
  }
  return machine_cap.load(std::memory_order_relaxed);
}

}  // namespace

void set_load_guard(bool on) { guard_state.store(on ? 1 : 0); }

bool load_guard() { return guard_enabled(); }

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: expected a thread count >= 1, got " +
                                std::to_string(n));
  std::call_once(env_once, [] {});  // the environment is not read after an explicit count
  requested.store(n);
  omp_set_num_threads(n);
}

int num_threads() {
  std::call_once(env_once, read_env);
  const int n = requested.load(std::memory_order_relaxed);
  if (n > 0) return n;
  // OpenMP's own default (OMP_NUM_THREADS unset, a count of the CPUs this process may run
  // on) is capped by the cgroup's CPU limit.
  static const bool omp_env = std::getenv("OMP_NUM_THREADS") != nullptr;
  static const int available = cpus();
  static const int quota_cap = detail::threads_for_cpu_limit(detail::cgroup_cpu_limit());
  const int omp = omp_get_max_threads();
  return omp_env || omp != available ? omp : std::min(omp, quota_cap);
}

namespace detail {

bool cpu_stat_busy(const char* line, int& cpu, long long& busy) {
  // "cpuN user nice system idle iowait irq softirq steal guest guest_nice" (guest time is also
  // in user): busy is user + nice + system + irq + softirq.
  if (std::strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9') return false;
  char* end = nullptr;
  const long n = std::strtol(line + 3, &end, 10);
  if (end == line + 3 || n < 0 || n > INT_MAX) return false;
  long long f[7];
  const char* p = end;
  for (long long& v : f) {
    errno = 0;
    v = std::strtoll(p, &end, 10);
    if (end == p || errno != 0 || v < 0) return false;
    p = end;
  }
  cpu = static_cast<int>(n);
  busy = f[0] + f[1] + f[2] + f[5] + f[6];
  return true;
}

int others_x16_from(long long busy_ticks, long ticks_per_s, double own_s, double wall_s) {
  if (!(wall_s > 0) || ticks_per_s <= 0 || busy_ticks < 0) return -1;
  const double others =
      (static_cast<double>(busy_ticks) / static_cast<double>(ticks_per_s) - own_s) / wall_s;
  return static_cast<int>(std::lround(16.0 * std::clamp(others, 0.0, 4096.0)));
}

int smooth_others_x16(int previous_x16, int sample_x16) {
  return (3 * previous_x16 + sample_x16) / 4;
}

int cap_for_load(int cpus, int others_x16) {
  return std::max(1, cpus - static_cast<int>(std::lround(others_x16 / 16.0)));
}

int parallel_team(double work_ns, std::int64_t tasks) {
  if (tasks < 2 || !(work_ns >= 2 * team_member_ns) || omp_in_parallel()) return 1;
  const int cap = std::min(num_threads(), load_cap());
  if (cap <= 1) return 1;
  const double by_work = work_ns / team_member_ns;  // >= 2 here
  double team = std::min<double>(cap, by_work);
  team = std::min<double>(team, static_cast<double>(tasks));
  return std::max(1, static_cast<int>(team));
}

}  // namespace detail

}  // namespace xtape::kernels
