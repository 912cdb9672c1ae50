// Tests for kernels/isa.hpp: the kernels library in use is the one for the best instruction-set
// level this CPU runs. In a native build that is the build machine's; in a portable build the
// dynamic loader chooses among the x86-64-v2, -v3 and -v4 variants (glibc-hwcaps), and this
// test checks that it chose the best one.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <string>

#include "kernels/isa.hpp"

namespace {

// What xsimd names the best target of the ISA levels the portable build provides.
std::string best_level_for_this_cpu() {
  // The levels' defining features (clang 14 does not know the level names).
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  if (v4) return "avx512bw";
  if (v3) return "fma3+avx2";
  return "sse4.2";
}

// The file the kernels library was mapped from (/proc/self/maps).
std::string kernels_library_path() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto at = line.find('/');
    if (at != std::string::npos && line.find("libxtape_kernels.so") != std::string::npos)
      return line.substr(at);
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_isa)

BOOST_AUTO_TEST_CASE(the_loaded_kernels_are_the_best_this_cpu_runs) {
#if defined(__x86_64__)
  const std::string isa = xtape::kernels::isa();
  const std::string path = kernels_library_path();
  BOOST_TEST_MESSAGE("kernels: " << isa << " from " << path);
  BOOST_TEST(!path.empty());
#if defined(XTAPE_TEST_PORTABLE)
  // One portable build: the loader picked the variant of this CPU's level.
  BOOST_TEST(isa == best_level_for_this_cpu());
  if (isa == "avx512bw") BOOST_TEST(path.find("glibc-hwcaps/x86-64-v4/") != std::string::npos);
  if (isa == "fma3+avx2") BOOST_TEST(path.find("glibc-hwcaps/x86-64-v3/") != std::string::npos);
#else
  // A native build: compiled for this machine, so at least its portable level.
  const std::string best = best_level_for_this_cpu();
  if (best == "avx512bw") BOOST_TEST(isa.rfind("avx512", 0) == 0u);
  if (best == "fma3+avx2") BOOST_TEST((isa == "fma3+avx2" || isa.rfind("avx512", 0) == 0u));
#endif
  const std::size_t width = xtape::kernels::simd_floats();
  BOOST_TEST(width == (isa.rfind("avx512", 0) == 0u           ? 16u
                       : isa.find("avx") != std::string::npos ? 8u
                                                              : 4u));
#endif
}

BOOST_AUTO_TEST_SUITE_END()
