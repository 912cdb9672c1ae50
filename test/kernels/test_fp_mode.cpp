// Tests for kernels/fp_mode.hpp: denormal flushing on the calling thread and the OpenMP team,
// and its effect on a GEMM (found by profiling: softmax gradients full of denormals made the
// dense layer's backward 8x slower than on normal data).
#include <omp.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/fp_mode.hpp"
#include "kernels/gemm.hpp"
#include "kernels/threads.hpp"

namespace {

using namespace xtape::kernels;

// A product of two normal floats whose exact value is denormal (about 1e-40).
float denormal_product() {
  volatile float a = 1e-20f, b = 1e-20f;
  return a * b;
}

bool is_denormal(float v) { return v != 0.f && std::abs(v) < std::numeric_limits<float>::min(); }

// Restores the mode of the calling thread and its team when a test ends.
struct RestoreMode {
  bool previous = thread_flushes_denormals();
  ~RestoreMode() { set_team_flush_denormals(previous); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_fp_mode)

BOOST_AUTO_TEST_CASE(thread_mode_flushes_results_and_inputs) {
  if (!denormal_flush_supported()) return;  // NOTE: nothing to test on CPUs without the mode
  RestoreMode restore;
  BOOST_TEST(set_thread_flush_denormals(false));
  BOOST_TEST(!thread_flushes_denormals());
  const float d = denormal_product();
  BOOST_TEST(is_denormal(d));
  BOOST_TEST(set_thread_flush_denormals(true));
  BOOST_TEST(thread_flushes_denormals());
  BOOST_TEST(denormal_product() == 0.f);  // FTZ: a denormal result becomes 0
  volatile float in = d, one = 1.f;
  BOOST_TEST(in * one == 0.f);  // DAZ: a denormal input reads as 0
  volatile float normal = 1e-30f, big = 1e8f;
  BOOST_TEST(normal * big == 1e-22f);  // normal values are untouched
  set_thread_flush_denormals(false);
  BOOST_TEST(is_denormal(denormal_product()));
}

BOOST_AUTO_TEST_CASE(team_mode_reaches_every_thread) {
  if (!denormal_flush_supported()) return;
  RestoreMode restore;
  const int saved_threads = xtape::kernels::num_threads();
  xtape::kernels::set_num_threads(2);
  for (const bool on : {true, false, true}) {
    BOOST_TEST(set_team_flush_denormals(on));
    int agree = 0, team = 0;
#pragma omp parallel num_threads(2) reduction(+ : agree, team)
    {
      ++team;
      if (thread_flushes_denormals() == on && (denormal_product() == 0.f) == on) ++agree;
    }
    BOOST_TEST(team == 2);
    BOOST_TEST(agree == team);
  }
  xtape::kernels::set_num_threads(saved_threads);
}

BOOST_AUTO_TEST_CASE(gemm_on_denormals_is_the_same_for_one_and_two_threads) {
  if (!denormal_flush_supported()) return;
  RestoreMode restore;
  const int saved_threads = xtape::kernels::num_threads();
  // A (m x k) with every other element denormal, B (k x n) normal: with flushing on, the
  // denormal entries contribute nothing, so C equals the product with them zeroed.
  const std::int64_t m = 128, n = 64, k = 80;
  std::vector<float> a(static_cast<std::size_t>(m * k)), a_zeroed(a.size()),
      b(static_cast<std::size_t>(k * n));
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = i % 2 ? 3e-39f : 0.25f + 0.001f * static_cast<float>(i % 97);
    a_zeroed[i] = i % 2 ? 0.f : a[i];
  }
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = -1.f + 0.01f * static_cast<float>(i % 173);
  std::vector<float> c1(static_cast<std::size_t>(m * n)), c2(c1.size()), ref(c1.size());
  for (const int threads : {1, 2}) {
    xtape::kernels::set_num_threads(threads);
    set_team_flush_denormals(true);
    sgemm(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f,
          (threads == 1 ? c1 : c2).data(), n);
  }
  sgemm(false, false, m, n, k, 1.f, a_zeroed.data(), k, b.data(), n, 0.f, ref.data(), n);
  BOOST_TEST(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
  BOOST_TEST(std::memcmp(c1.data(), ref.data(), c1.size() * sizeof(float)) == 0);
  xtape::kernels::set_num_threads(saved_threads);
}

BOOST_AUTO_TEST_SUITE_END()
