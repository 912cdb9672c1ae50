// The library-wide thread count and the team size of each parallel region (threads.hpp,
// parallel.hpp).
#include "kernels/threads.hpp"

#include <omp.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

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

}  // namespace

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
  return n > 0 ? n : omp_get_max_threads();
}

namespace detail {

int parallel_team(double work_ns, std::int64_t tasks) {
  if (tasks < 2 || !(work_ns >= 2 * team_member_ns) || omp_in_parallel()) return 1;
  const int cap = num_threads();
  if (cap <= 1) return 1;
  const double by_work = work_ns / team_member_ns;  // >= 2 here
  double team = std::min<double>(cap, by_work);
  team = std::min<double>(team, static_cast<double>(tasks));
  return std::max(1, static_cast<int>(team));
}

}  // namespace detail

}  // namespace xtape::kernels
