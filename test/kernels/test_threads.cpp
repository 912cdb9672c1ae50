// xtape::kernels::set_num_threads / num_threads / XTAPE_NUM_THREADS, the grain size of the
// parallel regions (kernels/parallel.hpp) and the default OpenMP wait policy of executables
// (kernels/omp_defaults.cpp). The environment is read once per process, so those cases run
// this executable again with a chosen environment (the env_probe case, which checks what the
// XTAPE_PROBE_* variables say and does nothing otherwise).
#include <omp.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "kernels/cpu_quota.hpp"
#include "kernels/parallel.hpp"
#include "kernels/threads.hpp"

using namespace xtape::kernels;

namespace {

// Runs this test executable's env_probe case with `env` prepended (inside the cgroup whose
// cgroup.procs file is `cgroup_procs`, when given); returns stdout and stderr.
std::string run_probe(const std::string& env, const std::string& cgroup_procs = "") {
  std::string cmd = "env " + env + " /proc/" + std::to_string(getpid()) +
                    "/exe --run_test=threads/env_probe --color_output=no 2>&1";
  if (!cgroup_procs.empty()) cmd = "sh -c 'echo $$ > " + cgroup_procs + " && exec " + cmd + "'";
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
  // A per-CPU line of /proc/stat: user nice system idle iowait irq softirq steal ...
  int cpu = -1;
  long long busy = -1;
  BOOST_TEST(cpu_stat_busy("cpu3 120 1 40 9000 3 5 2 7 0 0\n", cpu, busy));
  BOOST_TEST(cpu == 3);
  BOOST_TEST(busy == 120 + 1 + 40 + 5 + 2);  // idle, iowait and steal are not busy
  BOOST_TEST(cpu_stat_busy("cpu12 0 0 0 100 0 0 0", cpu, busy));
  BOOST_TEST(cpu == 12);
  BOOST_TEST(busy == 0);
  BOOST_TEST(!cpu_stat_busy("cpu  120 1 40 9000 3 5 2 7 0 0", cpu, busy));  // all CPUs
  BOOST_TEST(!cpu_stat_busy("intr 12345 0 1", cpu, busy));
  BOOST_TEST(!cpu_stat_busy("cpu1 5 6", cpu, busy));
  BOOST_TEST(!cpu_stat_busy("", cpu, busy));
  {  // This machine's file has a line per CPU this process may run on.
    std::FILE* f = std::fopen("/proc/stat", "r");
    BOOST_TEST_REQUIRE(f != nullptr);
    char line[512];
    int lines = 0;
    while (std::fgets(line, sizeof line, f) != nullptr)
      if (cpu_stat_busy(line, cpu, busy)) ++lines;
    std::fclose(f);
    BOOST_TEST(lines >= 1);
  }
  // Others' CPUs between two samples (100 ticks a second): 4 ticks of 20 ms on our CPUs, of
  // which this process ran 20 ms, leave one CPU to others; our own time alone leaves none.
  BOOST_TEST(others_x16_from(4, 100, 0.020, 0.020) == 16);
  BOOST_TEST(others_x16_from(2, 100, 0.020, 0.020) == 0);
  BOOST_TEST(others_x16_from(1, 100, 0.020, 0.020) == 0);  // clock-tick noise: not negative
  BOOST_TEST(others_x16_from(3, 100, 0.0, 0.040) == 12);
  BOOST_TEST(others_x16_from(3, 100, 0.0, 0.0) == -1);
  // The average: a quarter of each new sample (16ths), from 0.
  BOOST_TEST(smooth_others_x16(0, 32) == 8);
  BOOST_TEST(smooth_others_x16(32, 0) == 24);
  BOOST_TEST(smooth_others_x16(24, 64) == 34);
  // The cap: the cores the others leave free, at least one.
  BOOST_TEST(cap_for_load(2, 0) == 2);
  BOOST_TEST(cap_for_load(2, 7) == 2);  // 0.44 others round to 0
  BOOST_TEST(cap_for_load(2, 8) == 1);  // 0.5 rounds to 1
  BOOST_TEST(cap_for_load(2, 160) == 1);
  BOOST_TEST(cap_for_load(16, 48) == 13);
  // A machine whose second core is kept busy: after three samples a region gets one thread;
  // one noisy sample (a clock tick more than ran on each of two CPUs: one CPU over 20 ms)
  // does not shrink the team.
  int avg = 0;
  for (int i = 0; i < 2; ++i) avg = smooth_others_x16(avg, 16);
  BOOST_TEST(cap_for_load(2, avg) == 2);
  avg = smooth_others_x16(avg, 16);
  BOOST_TEST(cap_for_load(2, avg) == 1);
  BOOST_TEST(cap_for_load(2, smooth_others_x16(0, 16)) == 2);
}

BOOST_AUTO_TEST_CASE(cgroup_cpu_limit_parsing) {
  using namespace xtape::kernels::detail;
  // cgroup v2's cpu.max: "quota period" or "max period".
  BOOST_TEST(cpu_max_limit("150000 100000\n") == 1.5);
  BOOST_TEST(cpu_max_limit("max 100000\n") == 0);
  BOOST_TEST(cpu_max_limit("") == 0);
  BOOST_TEST(cpu_max_limit("garbage") == 0);
  BOOST_TEST(cpu_max_limit("0 100000") == 0);
  // v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us.
  BOOST_TEST(cfs_limit("200000\n", "100000\n") == 2.0);
  BOOST_TEST(cfs_limit("-1\n", "100000\n") == 0);
  BOOST_TEST(cfs_limit("50000", "") == 0);
  // Threads: the nearest count, at least one; no cap without a limit.
  BOOST_TEST(threads_for_cpu_limit(0) == INT_MAX);
  BOOST_TEST(threads_for_cpu_limit(0.3) == 1);
  BOOST_TEST(threads_for_cpu_limit(1.0) == 1);
  BOOST_TEST(threads_for_cpu_limit(1.4) == 1);
  BOOST_TEST(threads_for_cpu_limit(1.5) == 2);
  BOOST_TEST(threads_for_cpu_limit(6.0) == 6);
}

namespace {
void write_file(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}
}  // namespace

BOOST_AUTO_TEST_CASE(cgroup_cpu_limit_from_a_hierarchy) {
  using namespace xtape::kernels::detail;
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("xtape_cgroup_" + std::to_string(getpid()));
  fs::remove_all(root);
  // A hybrid machine: v1's cpu controller (this process in /ci/job, limited to 2.5 CPUs at
  // /ci and 1 at /ci/job) beside an empty v2 hierarchy.
  const std::string mountinfo =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
      "33 31 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
      "34 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
  const std::string v1_cgroup = "3:cpuset:/\n2:cpu,cpuacct:/ci/job\n0::/\n";
  const fs::path cpu = root / "sys/fs/cgroup/cpu,cpuacct";
  write_file(cpu / "cpu.cfs_quota_us", "-1\n");
  write_file(cpu / "cpu.cfs_period_us", "100000\n");
  write_file(cpu / "ci/cpu.cfs_quota_us", "250000\n");
  write_file(cpu / "ci/cpu.cfs_period_us", "100000\n");
  write_file(cpu / "ci/job/cpu.cfs_quota_us", "-1\n");
  write_file(cpu / "ci/job/cpu.cfs_period_us", "100000\n");
  BOOST_TEST(cgroup_cpu_limit_from(mountinfo, v1_cgroup, root.string()) == 2.5);
  write_file(cpu / "ci/job/cpu.cfs_quota_us", "100000\n");  // the smaller limit wins
  BOOST_TEST(cgroup_cpu_limit_from(mountinfo, v1_cgroup, root.string()) == 1.0);
  // No cpu controller listed for this process, or no hierarchy mounted: no limit.
  BOOST_TEST(cgroup_cpu_limit_from(mountinfo, "3:cpuset:/\n0::/\n", root.string()) == 0);
  BOOST_TEST(cgroup_cpu_limit_from("", v1_cgroup, root.string()) == 0);
  // A container (v2 only, its own cgroup mounted as the root: /proc/self/cgroup says "/"),
  // limited to 1.5 CPUs; and a v2 mount whose root is the process's parent cgroup.
  const std::string v2_mountinfo =
      "40 30 0:35 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
  write_file(root / "c/sys/fs/cgroup/cpu.max", "150000 100000\n");
  BOOST_TEST(cgroup_cpu_limit_from(v2_mountinfo, "0::/\n", (root / "c").string()) == 1.5);
  const std::string v2_sub = "40 30 0:35 /kubepods /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
  write_file(root / "k/sys/fs/cgroup/cpu.max", "max 100000\n");
  write_file(root / "k/sys/fs/cgroup/pod1/cpu.max", "300000 100000\n");
  write_file(root / "k/sys/fs/cgroup/pod1/app/cpu.max", "max 100000\n");
  BOOST_TEST(cgroup_cpu_limit_from(v2_sub, "0::/kubepods/pod1/app\n", (root / "k").string()) ==
             3.0);
  fs::remove_all(root);
  // This machine's own limit, whatever it is, gives a thread count of at least one.
  BOOST_TEST(threads_for_cpu_limit(cgroup_cpu_limit()) >= 1);
}

namespace {
bool write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  return static_cast<bool>(f);
}
std::string read_all(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s, '\0');
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(cgroup_cpu_limit_caps_the_default) {
  // End to end where the test may create a cgroup (root, with the cpu controller mounted):
  // a child process in a cgroup limited to 1 CPU gets 1 thread by default, 2 when asked.
  namespace fs = std::filesystem;
  if (num_threads() < 2 || geteuid() != 0) {
    BOOST_TEST_MESSAGE("needs root and 2 threads: not checked");
    return;
  }
  const std::string name = "xtape_test_" + std::to_string(getpid());
  std::string dir;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers") &&
      read_all("/sys/fs/cgroup/cgroup.controllers").find("cpu") != std::string::npos) {
    // Only where the controller is already enabled for the root's children (this test does
    // not change the machine's cgroup settings).
    if (read_all("/sys/fs/cgroup/cgroup.subtree_control").find("cpu") == std::string::npos) {
      BOOST_TEST_MESSAGE("the cpu controller is not enabled below the root: not checked");
      return;
    }
    dir = "/sys/fs/cgroup/" + name;
    std::error_code ec;
    if (!fs::create_directory(dir, ec) || !write_text(dir + "/cpu.max", "100000 100000")) {
      fs::remove(dir, ec);
      BOOST_TEST_MESSAGE("no cgroup with a cpu limit could be made here: not checked");
      return;
    }
  } else {
    for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"})
      if (fs::exists(std::string(mount) + "/cpu.cfs_quota_us")) {
        dir = std::string(mount) + "/" + name;
        break;
      }
    std::error_code ec;
    if (dir.empty() || !fs::create_directory(dir, ec) ||
        !write_text(dir + "/cpu.cfs_period_us", "100000") ||
        !write_text(dir + "/cpu.cfs_quota_us", "100000")) {
      if (!dir.empty()) fs::remove(dir, ec);
      BOOST_TEST_MESSAGE("no cgroup with a cpu limit could be made here: not checked");
      return;
    }
  }
  // A process may be moved there (not always so inside a container).
  const std::string move = "sh -c 'echo $$ > " + dir + "/cgroup.procs' 2>/dev/null";
  if (std::system(move.c_str()) != 0) {
    std::error_code ec;
    fs::remove(dir, ec);
    BOOST_TEST_MESSAGE("no process can join a new cgroup here: not checked");
    return;
  }
  run_probe("-u OMP_NUM_THREADS -u XTAPE_NUM_THREADS XTAPE_PROBE_THREADS=1", dir + "/cgroup.procs");
  run_probe("-u OMP_NUM_THREADS XTAPE_NUM_THREADS=2 XTAPE_PROBE_THREADS=2", dir + "/cgroup.procs");
  std::error_code ec;
  fs::remove(dir, ec);  // empty again once the probes exit
  BOOST_TEST(!ec, ec.message());
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
