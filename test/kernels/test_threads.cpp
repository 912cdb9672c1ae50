// xtape::kernels::set_num_threads / num_threads / XTAPE_NUM_THREADS, the grain size of the
// parallel regions (kernels/parallel.hpp) and the default OpenMP wait policy of executables
// (kernels/omp_defaults.cpp). The environment is read once per process, so those cases run
// this executable again with a chosen environment (the env_probe case, which checks what the
// XTAPE_PROBE_* variables say and does nothing otherwise).
#include <omp.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/parallel.hpp"
#include "kernels/threads.hpp"

using namespace xtape::kernels;

namespace {

// Runs this test executable's env_probe case with `env` prepended; returns stdout and stderr.
std::string run_probe(const std::string& env) {
  const std::string cmd = "env " + env + " /proc/" + std::to_string(getpid()) +
                          "/exe --run_test=threads/env_probe --color_output=no 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  const int rc = pclose(p);
  BOOST_TEST(rc == 0, "probe failed (" << env << "):\n" << out);
  return out;
}

struct RestoreThreads {
  int saved = num_threads();
  ~RestoreThreads() { set_num_threads(saved); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(env_probe) {
  if (const char* want = std::getenv("XTAPE_PROBE_THREADS")) {
    BOOST_TEST(num_threads() == std::atoi(want));
    if (const char* set = std::getenv("XTAPE_PROBE_SET")) {
      set_num_threads(std::atoi(set));
      BOOST_TEST(num_threads() == std::atoi(set));
    }
  }
  if (const char* underscore = std::getenv("XTAPE_PROBE_UNDERSCORE")) {
    // The slot lent to GOMP_SPINCOUNT holds "_" again once main runs.
    const char* u = std::getenv("_");
    BOOST_TEST((u != nullptr && std::string(u) == underscore));
    BOOST_TEST(std::getenv("GOMP_SPINCOUNT") == nullptr);
    BOOST_TEST(std::getenv("OMP_WAIT_POLICY") == nullptr);
  }
}

BOOST_AUTO_TEST_CASE(set_and_get) {
  RestoreThreads restore;
  set_num_threads(3);
  BOOST_TEST(num_threads() == 3);
  BOOST_TEST(omp_get_max_threads() == 3);  // the caller's own OpenMP regions follow
  set_num_threads(1);
  BOOST_TEST(num_threads() == 1);
  BOOST_TEST(detail::parallel_team(1e12) == 1);
}

BOOST_AUTO_TEST_CASE(invalid_counts_are_refused) {
  RestoreThreads restore;
  set_num_threads(2);
  for (int n : {0, -1, -100}) {
    try {
      set_num_threads(n);
      BOOST_FAIL("set_num_threads(" << n << ") did not throw");
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      BOOST_TEST(what.find("set_num_threads") != std::string::npos, what);
      BOOST_TEST(what.find(std::to_string(n)) != std::string::npos, what);
    }
  }
  BOOST_TEST(num_threads() == 2);  // unchanged
}

BOOST_AUTO_TEST_CASE(environment_variable) {
  run_probe("XTAPE_NUM_THREADS=3 OMP_NUM_THREADS=2 XTAPE_PROBE_THREADS=3");
  // An explicit call wins over the environment.
  run_probe("XTAPE_NUM_THREADS=3 XTAPE_PROBE_THREADS=3 XTAPE_PROBE_SET=1");
  // Without it, OpenMP's count.
  run_probe("-u XTAPE_NUM_THREADS OMP_NUM_THREADS=2 XTAPE_PROBE_THREADS=2");
  // Invalid values are reported and ignored.
  for (const char* bad : {"0", "-2", "two", "3x"}) {
    const std::string out = run_probe(std::string("XTAPE_NUM_THREADS=") + bad +
                                      " OMP_NUM_THREADS=2 XTAPE_PROBE_THREADS=2");
    BOOST_TEST(out.find("ignoring XTAPE_NUM_THREADS") != std::string::npos, out);
  }
}

BOOST_AUTO_TEST_CASE(load_guard_switch) {
  // Off in the test executables (test_main.cpp), so that 2-thread runs take the parallel
  // paths on a busy machine too.
  BOOST_TEST(!load_guard());
  set_load_guard(true);
  BOOST_TEST(load_guard());
  set_load_guard(false);
  BOOST_TEST(!load_guard());
}

BOOST_AUTO_TEST_CASE(load_guard_arithmetic) {
  using namespace xtape::kernels::detail;
  // The run queue field of /proc/loadavg, the reader not counted.
  BOOST_TEST(runnable_others_from("0.52 0.41 0.30 3/120 4567\n") == 2);
  BOOST_TEST(runnable_others_from("10.13 6.28 3.73 1/142 4236") == 0);
  BOOST_TEST(runnable_others_from("0.00 0.00 0.00 0/5 1") == 0);
  BOOST_TEST(runnable_others_from("") == -1);
  BOOST_TEST(runnable_others_from("garbage") == -1);
  BOOST_TEST(runnable_others_from("1.0 1.0 1.0 7/3 9") == -1);  // more running than exist
  // Threads of this process are not counted as load: a task's stat line says whether it runs
  // (the name may hold spaces and parentheses), and the calling thread, reading its own, does.
  BOOST_TEST(task_is_running("4236 (bench_models) R 4230 4236"));
  BOOST_TEST(task_is_running("77 (a) b) R 1 77"));
  BOOST_TEST(!task_is_running("77 (a) R) S 1 77"));
  BOOST_TEST(!task_is_running("4237 (bench_models) S 4230 4236"));
  BOOST_TEST(!task_is_running("garbage"));
  {
    char path[64], line[512] = {};
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/stat", static_cast<long>(gettid()));
    std::FILE* f = std::fopen(path, "r");
    BOOST_TEST_REQUIRE(f != nullptr);
    BOOST_TEST_REQUIRE(std::fgets(line, sizeof line, f) != nullptr);
    std::fclose(f);
    BOOST_TEST(task_is_running(line), line);
  }
  // This process's running threads, listed before and after the run queue is read: a worker
  // running in either listing (going to sleep or being woken in between) is ours, counted once.
  BOOST_TEST(own_running_count({4236, 4238}, {4236}) == 2);
  BOOST_TEST(own_running_count({4236}, {4238, 4236}) == 2);
  BOOST_TEST(own_running_count({4236, 4238}, {4236, 4238}) == 2);
  BOOST_TEST(own_running_count({4236, 4238}, {4236, 4239}) == 3);
  BOOST_TEST(own_running_count({}, {}) == 1);  // the reader, unlisted (no /proc), at least
  // The average: the first sample alone, then a quarter of each new one.
  BOOST_TEST(smooth_others_x16(0, 2, true) == 32);
  BOOST_TEST(smooth_others_x16(32, 0, false) == 24);
  BOOST_TEST(smooth_others_x16(24, 4, false) == 34);
  // The cap: the cores the others leave free, at least one.
  BOOST_TEST(cap_for_load(2, 0) == 2);
  BOOST_TEST(cap_for_load(2, 7) == 2);  // 0.44 others round to 0
  BOOST_TEST(cap_for_load(2, 8) == 1);  // 0.5 rounds to 1
  BOOST_TEST(cap_for_load(2, 160) == 1);
  BOOST_TEST(cap_for_load(16, 48) == 13);
  // A machine whose second core is kept busy: after a few samples a region gets one thread.
  int avg = smooth_others_x16(0, 0, true);
  for (int i = 0; i < 4; ++i) avg = smooth_others_x16(avg, 1, false);
  BOOST_TEST(cap_for_load(2, avg) == 1);
}

// The default is set for libgomp (GCC's OpenMP runtime, which reads its environment in its own
// constructor: kernels/omp_defaults.cpp). The sanitizer build links clang's libomp, whose
// settings and their display differ; there the case is skipped.
boost::test_tools::assertion_result built_with_libgomp(boost::unit_test::test_unit_id) {
#if defined(__clang__)
  boost::test_tools::assertion_result r(false);
  r.message() << "built with clang: the OpenMP runtime is libomp, not libgomp";
  return r;
#else
  return true;
#endif
}

BOOST_AUTO_TEST_CASE(default_wait_policy_spins_briefly,
                     *boost::unit_test::precondition(built_with_libgomp)) {
  // libgomp prints its settings at start-up with OMP_DISPLAY_ENV=verbose. xtape's default is a
  // spin count worth about 200 us, within [1000, 100000] iterations (libgomp's own default is
  // 300000, milliseconds, and passive waiting is 0); the wait policy itself stays unset.
  const std::string clean = "-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u KMP_BLOCKTIME";
  std::string out = run_probe(clean +
                              " _=/bin/marker XTAPE_PROBE_UNDERSCORE=/bin/marker "
                              "OMP_DISPLAY_ENV=verbose");
  const std::string key = "GOMP_SPINCOUNT = '";
  const std::size_t at = out.find(key);
  BOOST_TEST_REQUIRE(at != std::string::npos, out);
  const long count = std::strtol(out.c_str() + at + key.size(), nullptr, 10);
  BOOST_TEST(count >= 1000);
  BOOST_TEST(count <= 100000);
  // A policy the user chose is kept.
  out = run_probe(clean + " _=/bin/marker GOMP_SPINCOUNT=12345 OMP_DISPLAY_ENV=verbose");
  BOOST_TEST(out.find("GOMP_SPINCOUNT = '12345'") != std::string::npos, out);
  out = run_probe("-u GOMP_SPINCOUNT _=/bin/marker OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose");
  BOOST_TEST(out.find("OMP_WAIT_POLICY = 'ACTIVE'") != std::string::npos, out);
  out =
      run_probe("-u GOMP_SPINCOUNT _=/bin/marker OMP_WAIT_POLICY=passive OMP_DISPLAY_ENV=verbose");
  BOOST_TEST(out.find("GOMP_SPINCOUNT = '0'") != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(grain_size) {
  RestoreThreads restore;
  set_num_threads(2);
  BOOST_TEST(detail::parallel_team(0) == 1);
  BOOST_TEST(detail::parallel_team(2 * detail::team_member_ns * 0.99) == 1);  // under 50 us
  BOOST_TEST(detail::parallel_team(2 * detail::team_member_ns) == 2);
  BOOST_TEST(detail::parallel_team(1e9, 1) == 1);  // one task
  BOOST_TEST(detail::parallel_team(1e9) == 2);     // at most num_threads()
  set_num_threads(4);
  BOOST_TEST(detail::parallel_team(3 * detail::team_member_ns) == 3);  // one per 25 us
  BOOST_TEST(detail::parallel_team(1e9, 3) == 3);                      // one per task
  // Small GEMMs stay on the calling thread: 64 x 64 x 64 is 0.5 MFLOP.
  BOOST_TEST(detail::gemm_team(64, 64, 64) == 1);
  BOOST_TEST(detail::gemm_team(512, 512, 512) == 4);
  int inner = -1;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    inner = detail::parallel_team(1e9);
  }
  BOOST_TEST(inner == 1);  // never nested inside a parallel region
}

BOOST_AUTO_TEST_CASE(serial_loops_open_no_region) {
  RestoreThreads restore;
  set_num_threads(2);
  int levels[2] = {-1, -1};
  detail::parallel_for(1, 2, [&](int i) { levels[i] = omp_get_level(); });
  BOOST_TEST(levels[0] == 0);  // so a GEMM called from the body may still open its own team
  BOOST_TEST(levels[1] == 0);
  detail::parallel_for_static(1, 2, [&](int i) { levels[i] = omp_get_level(); });
  BOOST_TEST(levels[0] == 0);
  int sum = 0, outside = 0;
  detail::parallel_for(2, 100, [&](int i) {
    if (omp_get_level() != 1) {
#pragma omp atomic
      ++outside;
    }
#pragma omp atomic
    sum += i;
  });
  BOOST_TEST(sum == 4950);
  BOOST_TEST(outside == 0);
}

BOOST_AUTO_TEST_SUITE_END()
