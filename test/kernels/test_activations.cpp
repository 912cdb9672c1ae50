// Tests for kernels/activations.hpp on raw buffers: in-place calls (y aliasing x, dx aliasing
// g) give the bits of out-of-place ones, every length (the padded tail) gives the bits of a
// long call, and n = 0 touches nothing. Values, gradients and thread counts are tested through
// the primitives (test/autodiff/ops/test_activations.cpp).
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <vector>

#include "autodiff/random.hpp"
#include "kernels/activations.hpp"

using xtape::kernels::Activation;

namespace {

const Activation kAll[] = {Activation::gelu,       Activation::gelu_tanh, Activation::silu,
                           Activation::mish,       Activation::elu,       Activation::selu,
                           Activation::leaky_relu, Activation::softplus,  Activation::hard_sigmoid,
                           Activation::hard_silu,  Activation::softsign};

std::vector<float> uniform(std::size_t n, std::uint64_t seed, float lo, float hi) {
  xtape::Rng rng(seed);
  std::vector<float> v(n);
  for (float& e : v) e = rng.uniform(lo, hi);
  return v;
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_activations)

BOOST_AUTO_TEST_CASE(in_place_every_length_and_empty) {
  const std::size_t n = 100;
  const std::vector<float> x = uniform(n, 1, -6.f, 6.f), g = uniform(n, 2, -1.f, 1.f);
  for (Activation f : kAll) {
    const int id = static_cast<int>(f);
    std::vector<float> y(n), dx(n);
    xtape::kernels::activation_forward(f, 0.3f, n, x.data(), y.data());
    xtape::kernels::activation_backward(f, 0.3f, n, x.data(), y.data(), g.data(), dx.data());
    std::vector<float> in_place = x;
    xtape::kernels::activation_forward(f, 0.3f, n, in_place.data(), in_place.data());
    BOOST_TEST(same_bits(in_place.data(), y.data(), n), "forward in place, activation " << id);
    std::vector<float> g_in_place = g;
    xtape::kernels::activation_backward(f, 0.3f, n, x.data(), y.data(), g_in_place.data(),
                                        g_in_place.data());
    BOOST_TEST(same_bits(g_in_place.data(), dx.data(), n), "backward in place, activation " << id);
    for (std::size_t m = 1; m <= 40; ++m) {
      std::vector<float> ym(m + 1, -7.f), dm(m + 1, -7.f);
      xtape::kernels::activation_forward(f, 0.3f, m, x.data(), ym.data());
      xtape::kernels::activation_backward(f, 0.3f, m, x.data(), y.data(), g.data(), dm.data());
      BOOST_TEST_REQUIRE(same_bits(ym.data(), y.data(), m),
                         "length " << m << ", activation " << id);
      BOOST_TEST_REQUIRE(same_bits(dm.data(), dx.data(), m),
                         "length " << m << ", activation " << id);
      BOOST_TEST_REQUIRE(ym[m] == -7.f);  // nothing written past the end
      BOOST_TEST_REQUIRE(dm[m] == -7.f);
    }
    float untouched = -7.f;
    xtape::kernels::activation_forward(f, 0.3f, 0, nullptr, &untouched);
    xtape::kernels::activation_backward(f, 0.3f, 0, nullptr, nullptr, nullptr, &untouched);
    BOOST_TEST(untouched == -7.f);
  }
}

BOOST_AUTO_TEST_CASE(sigmoid_and_tanh_backward_from_the_output) {
  const std::size_t n = 37;
  const std::vector<float> y = uniform(n, 3, -1.f, 1.f), g = uniform(n, 4, -1.f, 1.f);
  std::vector<float> ds(n), dt(n);
  xtape::kernels::sigmoid_backward(n, y.data(), g.data(), ds.data());
  xtape::kernels::tanh_backward(n, y.data(), g.data(), dt.data());
  for (std::size_t i = 0; i < n; ++i) {
    // The bits of the composition: one rounding per operation (volatile: no FMA contraction).
    const float s = g[i] * y[i];
    const volatile float yy = y[i] * y[i];
    BOOST_TEST_REQUIRE(ds[i] == s * (1.f - y[i]));
    BOOST_TEST_REQUIRE(dt[i] == g[i] * (1.f - yy));
  }
}

BOOST_AUTO_TEST_SUITE_END()
