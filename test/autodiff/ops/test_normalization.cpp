// Tests for autodiff/ops/normalization.cpp: fused_moments against moments and a double
// reference, on the one-pass paths (channels last, channels inside, trailing axes) and the
// fallback; scale_shift against x * scale + shift; gradients by finite differences.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autodiff/ops.hpp"
#include "autodiff/ops_normalization.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

namespace {

// Mean and population variance over `axes` in double, with keepdims.
std::pair<std::vector<double>, std::vector<double>> reference_moments(
    const Tensor& x, const std::vector<int>& axes) {
  const Shape& s = x.shape();
  Shape ks = s;
  for (int a : axes) ks[static_cast<std::size_t>(a)] = 1;
  std::vector<double> sum(shape_size(ks), 0.0), sq(shape_size(ks), 0.0);
  std::vector<std::size_t> idx(s.size(), 0);
  double count = 1;
  for (int a : axes) count *= static_cast<double>(s[static_cast<std::size_t>(a)]);
  for (std::size_t flat = 0; flat < x.size(); ++flat) {
    std::size_t k = 0;
    for (std::size_t d = 0; d < s.size(); ++d) k = k * ks[d] + (ks[d] == 1 ? 0 : idx[d]);
    const double v = x.data()[flat];
    sum[k] += v;
    sq[k] += v * v;
    for (std::size_t d = s.size(); d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  std::vector<double> m(sum.size()), var(sum.size());
  for (std::size_t i = 0; i < sum.size(); ++i) {
    m[i] = sum[i] / count;
    var[i] = sq[i] / count - m[i] * m[i];
  }
  return {m, var};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(normalization_ops)

BOOST_AUTO_TEST_CASE(fused_moments_values) {
  Rng rng(31);
  // Offset inputs: a mean far from 0 is where a float one-pass variance would lose digits.
  const Tensor x = random_tensor({6, 5, 4, 3}, rng, 9.f, 11.f);
  const std::vector<std::vector<int>> cases = {{0, 1, 2}, {0, 2, 3},    {1, 2, 3}, {3},
                                               {2, 3},    {0, 1, 2, 3}, {0, 2},    {1, 3}};
  for (const auto& axes : cases) {
    std::string label = "fused_moments axes";
    for (int a : axes) label += " " + std::to_string(a);
    const auto [m, v] = fused_moments(x, axes, true);
    const auto [rm, rv] = reference_moments(x, axes);
    Shape ks = x.shape();
    for (int a : axes) ks[static_cast<std::size_t>(a)] = 1;
    check_values(label + " mean", m, ks, rm, 1e-6, 1e-6);
    check_values(label + " variance", v, ks, rv, 1e-4, 1e-6);
  }
  // Without keepdims: the reduced axes drop, as moments().
  const auto [m2, v2] = fused_moments(x, {0, 1, 2});
  BOOST_TEST((m2.shape() == Shape{3}));
  BOOST_TEST((v2.shape() == Shape{3}));
  const auto [m3, v3] = fused_moments(x, {-1});
  BOOST_TEST((m3.shape() == Shape{6, 5, 4}));
  // A large channels-last input (the blocked, multi-threaded path).
  const Tensor big = random_tensor({512, 96}, rng, -2.f, 3.f);
  const auto [mb, vb] = fused_moments(big, {0}, true);
  const auto [rmb, rvb] = reference_moments(big, {0});
  check_values("fused_moments large mean", mb, {1, 96}, rmb, 1e-6, 1e-6);
  check_values("fused_moments large variance", vb, {1, 96}, rvb, 1e-5, 1e-6);
  check_throws<std::invalid_argument>("fused_moments axis", [&] { fused_moments(x, {4}); },
                                      {"fused_moments", "axis 4"});
}

BOOST_AUTO_TEST_CASE(fused_moments_gradients) {
  Rng rng(32);
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{0, 1}, {0, 2}, {2}, {1}}) {
    gradcheck("fused_moments mean+var",
              [axes](const std::vector<Tensor>& in) {
                const auto st = fused_moments(in[0], axes, true);
                return st.first * 3.f + st.second;
              },
              {random_tensor({4, 3, 5}, rng)});
  }
  gradcheck("fused_moments variance only",
            [](const std::vector<Tensor>& in) { return fused_moments(in[0], {0}).second; },
            {random_tensor({7, 4}, rng)});
  gradcheck("fused_moments large",
            [](const std::vector<Tensor>& in) {
              const auto st = fused_moments(in[0], {0, 1}, true);
              return st.first + st.second;
            },
            {random_tensor({16, 10, 8}, rng)});
}

BOOST_AUTO_TEST_CASE(scale_shift_values_and_gradients) {
  Rng rng(33);
  const Tensor x = random_tensor({4, 3, 5}, rng);
  const std::vector<Shape> shapes = {
      {5},    {1, 1, 5}, {3, 1},    {1, 3, 1}, {4, 1, 1},
      {3, 5}, {},        {4, 3, 5}, {4, 1, 5}};  // the last one takes the composition
  for (const Shape& s : shapes) {
    const Tensor a = random_tensor(s, rng), b = random_tensor(s, rng);
    const Tensor expected = x * a + b;
    std::vector<double> ref(expected.size());
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = expected.data()[i];
    check_values("scale_shift " + shape_str(s), scale_shift(x, a, b), x.shape(), ref, 1e-6, 1e-6);
    gradcheck("scale_shift " + shape_str(s),
              [](const std::vector<Tensor>& in) { return scale_shift(in[0], in[1], in[2]); },
              {x, a, b});
  }
  check_throws<std::invalid_argument>("scale_shift shapes differ",
                                      [&] {
                                        scale_shift(x, Tensor({5}, 1.f), Tensor({1, 5}, 1.f));
                                      },
                                      {"scale_shift", "(5,)", "(1, 5)"});
  check_throws<std::invalid_argument>(
      "scale_shift broadcast",
      [&] {
        scale_shift(x, Tensor({2, 4, 3, 5}, 1.f), Tensor({2, 4, 3, 5}, 1.f));
      },
      {"scale_shift"});
}

BOOST_AUTO_TEST_SUITE_END()
