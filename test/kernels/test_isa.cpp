// Tests for kernels/isa.hpp: the kernels library in use is the one for the best instruction-set
// level this CPU runs. In a native build that is the build machine's; in a portable build the
// dynamic loader chooses among the x86-64-v2, -v3 and -v4 variants (glibc-hwcaps), and this
// test checks that it chose the best one.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "kernels/fma.hpp"
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
  // Features masked by glibc's tunables (GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,...) are
  // not used by the loader either: with them masked, the best variant is a lower level.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const std::string masks = tunables != nullptr ? tunables : "";
  const bool hwcaps = masks.find("glibc.cpu.hwcaps=") != std::string::npos;
  const bool no_avx512 = hwcaps && masks.find("-AVX512F") != std::string::npos;
  const bool no_avx2 = hwcaps && masks.find("-AVX2") != std::string::npos;
  if (v4 && !no_avx512 && !no_avx2) return "avx512bw";
  if (v3 && !no_avx2) return "fma3+avx2";
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

// xsimd 8.1 has no AVX-512 fma / fms / fnma: they fell back to a product and a sum, and the
// compiler did not fuse a * a - h where it had computed h = a * a (so the exact square's low
// part came out 0 and gelu's tails lost their digits, on AVX-512 machines only).
BOOST_AUTO_TEST_CASE(vector_multiply_adds_round_once_as_madd_does) {
  using B = xsimd::batch<float>;
  namespace d = xtape::kernels::detail;
  float in[B::size], lo[B::size], fm[B::size], nm[B::size];
  for (std::size_t i = 0; i < B::size; ++i) in[i] = 10.395f + 0.37f * static_cast<float>(i);
  const B a = B::load_unaligned(in);
  const B h = a * a;
  d::fms(a, a, h).store_unaligned(lo);
  d::fma(a, a, -h).store_unaligned(fm);
  d::fnma(a, a, h).store_unaligned(nm);
  for (std::size_t i = 0; i < B::size; ++i) {
    const float hi = in[i] * in[i];
    BOOST_TEST(fm[i] == d::madd(in[i], in[i], -hi), "lane " << i);
    BOOST_TEST(lo[i] == fm[i], "lane " << i);
    BOOST_TEST(nm[i] == -fm[i], "lane " << i);
#if defined(__FMA__)
    // Fused: the rounding error of the square, exactly.
    const double exact = static_cast<double>(in[i]) * in[i] - hi;
    BOOST_TEST(static_cast<double>(lo[i]) == exact, "lane " << i);
#endif
  }
#if defined(__FMA__)
  BOOST_TEST(lo[0] != 0.f);  // 10.395^2 is not a float
#endif
}

BOOST_AUTO_TEST_SUITE_END()
