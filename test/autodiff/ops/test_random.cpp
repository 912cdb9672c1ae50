// Tests for autodiff/ops/random.cpp and kernels::normal_fill: the moments and the histogram of a
// large draw, independence across elements (neighbours, the two halves of a Box-Muller pair),
// the mean and stddev arguments, reproducibility from the seed, one generator draw per call,
// and the same bits for any thread count and length.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <vector>

#include "autodiff/ops.hpp"
#include "kernels/threads.hpp"

using namespace xtape;

namespace {

// Sample correlation of (a[i], a[i + lag]) over i, of f(a) for a transform f.
template <class F>
double lag_correlation(const std::vector<float>& a, std::size_t lag, F f) {
  const std::size_t n = a.size() - lag;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = f(a[i]), y = f(a[i + lag]);
    sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
  }
  const double cov = sxy / n - sx / n * sy / n;
  return cov / std::sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(random_ops)

BOOST_AUTO_TEST_CASE(standard_normal_moments_histogram_and_independence) {
  const std::size_t n = (1u << 21) + 5;
  Rng rng(11);
  const std::vector<float> z = random_normal({n}, 0.f, 1.f, rng).to_vector();
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0, zmax = 0;
  for (float v : z) {
    const double d = v;
    m1 += d, m2 += d * d, m3 += d * d * d, m4 += d * d * d * d;
    zmax = std::max(zmax, std::abs(d));
  }
  m1 /= n, m2 /= n, m3 /= n, m4 /= n;
  // Five standard errors of each moment of n standard normals.
  const double se = 5 / std::sqrt(static_cast<double>(n));
  BOOST_TEST(std::abs(m1) < se);
  BOOST_TEST(std::abs(m2 - 1) < se * std::sqrt(2.0));
  BOOST_TEST(std::abs(m3) < se * std::sqrt(15.0));
  BOOST_TEST(std::abs(m4 - 3) < se * std::sqrt(96.0));
  BOOST_TEST(zmax <= std::sqrt(2 * std::log(16777216.0)) + 1e-4);  // 24-bit uniforms
  BOOST_TEST(zmax > 4.5);
  // Histogram: 48 bins of 1/6 over [-4, 4] and the two tails, against the normal cdf.
  std::vector<double> count(50, 0);
  for (float v : z) {
    const double b = std::floor((v + 4.0) * 6.0);
    count[b < 0 ? 0 : b >= 48 ? 49 : static_cast<std::size_t>(b) + 1] += 1;
  }
  auto cdf = [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); };
  double chi2 = 0;
  for (std::size_t k = 0; k < 50; ++k) {
    const double lo = k == 0 ? -1e9 : -4.0 + (k - 1) / 6.0;
    const double hi = k == 49 ? 1e9 : k == 0 ? -4.0 : -4.0 + k / 6.0;
    const double expected = n * (cdf(hi) - cdf(lo));
    chi2 += (count[k] - expected) * (count[k] - expected) / expected;
  }
  // 49 degrees of freedom: mean 49, standard deviation 9.9.
  BOOST_TEST(chi2 < 110.0);
  // Independence: neighbours, the two members of a pair (W apart for W = 4, 8 or 16 lanes) and
  // across blocks, in values and in squares (a shared radius would correlate the squares).
  for (std::size_t lag : {1u, 2u, 4u, 8u, 16u, 32u, 1000u}) {
    BOOST_TEST(std::abs(lag_correlation(z, lag, [](double v) { return v; })) < se, "lag " << lag);
    BOOST_TEST(std::abs(lag_correlation(z, lag, [](double v) { return v * v; })) < se,
               "squares, lag " << lag);
  }
}

BOOST_AUTO_TEST_CASE(mean_stddev_seed_and_one_draw_per_call) {
  Rng a(7), b(7), c(8);
  const std::vector<float> z = random_normal({1000}, 0.f, 1.f, a).to_vector();
  const std::vector<float> s = random_normal({1000}, 2.f, 0.5f, b).to_vector();
  for (std::size_t i = 0; i < z.size(); ++i)
    BOOST_TEST_REQUIRE(s[i] == 2.f + 0.5f * z[i], boost::test_tools::tolerance(1e-6f));
  // Reproducible from the seed, different for another.
  Rng a2(7);
  BOOST_TEST(random_normal({1000}, 0.f, 1.f, a2).to_vector() == z,
             boost::test_tools::per_element());
  const std::vector<float> other = random_normal({1000}, 0.f, 1.f, c).to_vector();
  std::size_t same = 0;
  for (std::size_t i = 0; i < z.size(); ++i) same += other[i] == z[i];
  BOOST_TEST(same < 5u);
  // One draw of the generator per call, whatever the size.
  Rng r(9), ref(9);
  random_normal({12345}, 0.f, 1.f, r);
  ref.next_u64();
  BOOST_TEST(r.next_u64() == ref.next_u64());
  // Two calls on one generator give different tensors.
  Rng t(10);
  const std::vector<float> first = random_normal({64}, 0.f, 1.f, t).to_vector();
  BOOST_TEST(random_normal({64}, 0.f, 1.f, t).to_vector() != first);
  BOOST_TEST(random_normal({0, 4}, 0.f, 1.f, t).size() == 0u);
}

BOOST_AUTO_TEST_CASE(same_bits_for_any_thread_count_and_length) {
  const std::size_t n = (1u << 19) + 21;
  const int saved = kernels::num_threads();
  const bool guard = kernels::load_guard();
  kernels::set_load_guard(false);
  kernels::set_num_threads(1);
  Rng r1(12);
  const Tensor one = random_normal({n}, 0.f, 1.f, r1);
  kernels::set_num_threads(2);
  Rng r2(12);
  const Tensor two = random_normal({n}, 0.f, 1.f, r2);
  kernels::set_load_guard(guard);
  kernels::set_num_threads(saved);
  BOOST_TEST(std::memcmp(one.data(), two.data(), n * sizeof(float)) == 0);
  // An element's value depends only on the key and its index: a shorter draw is a prefix.
  for (std::size_t m : {1u, 7u, 33u, 1000u}) {
    Rng r(12);
    const Tensor part = random_normal({m}, 0.f, 1.f, r);
    BOOST_TEST(std::memcmp(part.data(), one.data(), m * sizeof(float)) == 0, "length " << m);
  }
}

BOOST_AUTO_TEST_SUITE_END()
