// The library-wide thread count and the team size of each parallel region (threads.hpp,
// parallel.hpp).
#include "kernels/threads.hpp"

#include <dirent.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

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

// The load guard: the run queue (the fourth field of /proc/loadavg counts the threads running
// or ready to run, the reader included), sampled at most every 20 ms from serial code, where
// threads of this process are not counted: xtape's own idle OpenMP threads spin for about
// 200 us after a region (omp_defaults.cpp) and would otherwise count as load. Other runnable
// threads beyond the cores free for them leave a second thread of ours only a share of a core,
// and every join would wait for it, so the team shrinks to the cores left. An exponential
// average smooths the snapshots.
std::atomic<int> guard_state{-1};  // -1 unread, 0 off, 1 on
std::atomic<int> machine_cap{std::numeric_limits<int>::max()};
std::atomic<std::int64_t> next_sample_ns{0};
std::atomic<int> others_x16{0};  // average of the other runnable threads, times 16

int cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max<int>(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
}

// Appends to `ids` the thread ids of this process in state R (running or ready to run), the
// caller included. At most the first 32 threads listed are read (a read costs a few
// microseconds; the list is in creation order, and OpenMP's workers start at the first parallel
// region, so they are among the first unless the program started dozens of threads before it).
void own_running_ids(std::vector<long>& ids) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return;
  int looked = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    if (++looked > 32) break;
    char path[300], line[512] = {};  // d_name holds up to 255 characters
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", entry->d_name);
    if (std::FILE* f = std::fopen(path, "r")) {
      if (std::fgets(line, sizeof line, f) != nullptr && detail::task_is_running(line))
        ids.push_back(std::strtol(entry->d_name, nullptr, 10));
      std::fclose(f);
    }
  }
  closedir(dir);
}

// Runnable threads of other processes, or -1 when unknown. The threads of this process are
// listed just before and just after the run queue is read, and one in state R in either list
// is ours: an idle OpenMP worker going to sleep or being woken changes state within
// microseconds, and read only after the run queue it was counted as another process's thread
// in a quarter of the samples of an idle 2-core VM (and the team shrank to one thread).
int runnable_others() {
  std::vector<long> before, after;
  own_running_ids(before);
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return -1;
  char line[256] = {};
  const bool read = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  own_running_ids(after);
  const int others = read ? detail::runnable_others_from(line) : -1;
  return others < 0 ? -1 : std::max(0, others - (detail::own_running_count(before, after) - 1));
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
    const int others = runnable_others();
    if (others >= 0) {
      // Three quarters of the old average and one quarter of the sample (the first sample
      // alone), in 16ths.
      const int smoothed = detail::smooth_others_x16(others_x16.load(), others, due == 0);
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

int runnable_others_from(const char* loadavg_line) {
  double a, b, c;
  int running = 0, total = 0;
  const int got = std::sscanf(loadavg_line, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total);
  return got == 5 && running >= 0 && total >= running ? std::max(0, running - 1) : -1;
}

int own_running_count(std::vector<long> before, const std::vector<long>& after) {
  before.insert(before.end(), after.begin(), after.end());
  std::sort(before.begin(), before.end());
  const auto distinct = std::unique(before.begin(), before.end()) - before.begin();
  return std::max(1, static_cast<int>(distinct));
}

bool task_is_running(const char* stat_line) {
  const char* close = std::strrchr(stat_line, ')');  // the name may hold spaces and parentheses
  return close != nullptr && close[1] == ' ' && close[2] == 'R';
}

int smooth_others_x16(int previous_x16, int sample, bool first) {
  // Three quarters of the old average and one quarter of the sample, in 16ths.
  return first ? 16 * sample : (3 * previous_x16 + 16 * sample) / 4;
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
