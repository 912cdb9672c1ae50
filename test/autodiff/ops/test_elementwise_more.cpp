// Tests for autodiff/ops/elementwise_more.cpp: maximum, minimum, where, the comparisons and the
// unary functions — values against closed forms in double, gradients by finite differences,
// NaN propagation, broadcasting and its errors, zero-size tensors.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_away_from_zero;
using xtape::testing::random_tensor;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<double> unary_reference(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = f(x.data()[i]);
  return r;
}

// Values of a tensor with the given per-element fractional offsets away from the integers:
// k + frac for k in [-3, 3), frac picked from `fracs` (inputs of floor/round/sign kept away
// from their jumps by more than any gradcheck step).
Tensor away_from_jumps(const Shape& shape, Rng& rng, const std::vector<float>& fracs) {
  std::vector<float> v(shape_size(shape));
  for (float& e : v)
    e = static_cast<float>(static_cast<int>(rng.below(6)) - 3) + fracs[rng.below(fracs.size())];
  return Tensor(shape, v);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

}  // namespace

BOOST_AUTO_TEST_SUITE(elementwise_more)

BOOST_AUTO_TEST_CASE(maximum_minimum_values_with_broadcasting) {
  const Tensor a({3, 1}, {0.f, 0.3f, 0.6f});
  const Tensor b({1, 4}, {0.15f, 0.45f, -0.15f, 0.75f});
  check_values("maximum (3,1) (1,4)", maximum(a, b), {3, 4},
               {0.15, 0.45, 0, 0.75, 0.3, 0.45, 0.3, 0.75, 0.6, 0.6, 0.6, 0.75});
  check_values("minimum (3,1) (1,4)", minimum(a, b), {3, 4},
               {0, 0, -0.15, 0, 0.15, 0.3, -0.15, 0.3, 0.15, 0.45, -0.15, 0.6});
  check_values("maximum(x, 0.25)", maximum(a, 0.25f), {3, 1}, {0.25, 0.3, 0.6});
  check_values("minimum(0.25, x)", minimum(0.25f, a), {3, 1}, {0, 0.25, 0.25});
  check_throws<std::invalid_argument>("maximum shapes",
                                      [] {
                                        maximum(Tensor({2, 3}, 1.f), Tensor({4}, 1.f));
                                      },
                                      {"maximum", "(2, 3)", "(4,)"});
  check_throws<std::invalid_argument>("minimum shapes",
                                      [] { minimum(Tensor({2}, 1.f), Tensor({3}, 1.f)); },
                                      {"minimum", "(2,)", "(3,)"});
}

BOOST_AUTO_TEST_CASE(maximum_minimum_gradients) {
  // NOTE: every pair differs by at least 0.15, far beyond the finite-difference step, so the
  // selected input never changes under a step (no tie).
  const Tensor a({3, 1}, {0.f, 0.3f, 0.6f});
  const Tensor b({1, 4}, {0.15f, 0.45f, -0.15f, 0.75f});
  gradcheck("maximum (3,1) (1,4)",
            [](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
  gradcheck("minimum (3,1) (1,4)",
            [](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }, {a, b});
  Rng rng(3);
  const Tensor x = random_away_from_zero({2, 5}, rng, 0.1f, 1.f);
  gradcheck("maximum(x, 0)", [](const std::vector<Tensor>& in) { return maximum(in[0], 0.f); },
            {x});
  gradcheck("minimum(0, x)", [](const std::vector<Tensor>& in) { return minimum(0.f, in[0]); },
            {x});
}

BOOST_AUTO_TEST_CASE(maximum_minimum_ties_split_the_gradient) {
  // As PyTorch's torch.maximum/minimum: on a tie each input gets half the gradient.
  for (int which = 0; which < 2; ++which) {
    Tensor a = Tensor({3}, {1.f, 2.f, 3.f}).set_requires_grad();
    Tensor b = Tensor({3}, {1.f, 5.f, -1.f}).set_requires_grad();
    Tensor y = which == 0 ? maximum(a, b) : minimum(a, b);
    y.backward(Tensor({3}, {2.f, 2.f, 2.f}));
    if (which == 0) {
      check_values("maximum tie grad a", a.grad(), {3}, {1, 0, 2});
      check_values("maximum tie grad b", b.grad(), {3}, {1, 2, 0});
    } else {
      check_values("minimum tie grad a", a.grad(), {3}, {1, 2, 0});
      check_values("minimum tie grad b", b.grad(), {3}, {1, 0, 2});
    }
  }
}

BOOST_AUTO_TEST_CASE(maximum_minimum_propagate_nan) {
  for (int which = 0; which < 2; ++which) {
    Tensor a = Tensor({4}, {kNaN, 1.f, kNaN, 2.f}).set_requires_grad();
    Tensor b = Tensor({4}, {5.f, kNaN, kNaN, 1.f}).set_requires_grad();
    Tensor y = which == 0 ? maximum(a, b) : minimum(a, b);
    const std::string op = which == 0 ? "maximum" : "minimum";
    for (std::size_t i = 0; i < 3; ++i)
      BOOST_TEST(std::isnan(y.data()[i]), op << " element " << i << " is " << y.data()[i]);
    BOOST_TEST(y.data()[3] == (which == 0 ? 2.f : 1.f));
    y.backward(Tensor({4}, 1.f));
    // The gradient goes to the NaN input (both when both are NaN).
    check_values(op + " NaN grad a", a.grad(), {4}, {1, 0, 1, which == 0 ? 1.0 : 0.0});
    check_values(op + " NaN grad b", b.grad(), {4}, {0, 1, 1, which == 0 ? 0.0 : 1.0});
  }
}

BOOST_AUTO_TEST_CASE(where_values_gradients_and_errors) {
  const Tensor cond({2, 1}, {1.f, 0.f});
  const Tensor a({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  const Tensor b({3}, {-1.f, -2.f, -3.f});
  check_values("where (2,1) (2,3) (3)", where(cond, a, b), {2, 3}, {1, 2, 3, -1, -2, -3});
  check_values("where NaN condition is true",
               where(Tensor({2}, {kNaN, 0.f}), Tensor({2}, 7.f), Tensor({2}, 8.f)), {2}, {7, 8});
  Rng rng(4);
  const Tensor c3 = Tensor({2, 3, 1}, {1.f, 0.f, 1.f, 0.f, 0.f, 1.f});
  gradcheck("where broadcast",
            [c3](const std::vector<Tensor>& in) { return where(c3, in[0], in[1]); },
            {random_tensor({3, 4}, rng), random_tensor({2, 1, 4}, rng)});
  // Exact gradients: the mask and its complement, summed over broadcast axes.
  Tensor ga = Tensor({2, 3}, 0.f).set_requires_grad(), gb = Tensor({3}, 0.f).set_requires_grad();
  sum(where(cond, ga, gb)).backward();
  check_values("where grad a", ga.grad(), {2, 3}, {1, 1, 1, 0, 0, 0});
  check_values("where grad b", gb.grad(), {3}, {1, 1, 1});
  check_throws<std::invalid_argument>("where shapes", [&] { where(Tensor({4}, 1.f), a, b); },
                                      {"where", "(4,)", "(2, 3)"});
}

BOOST_AUTO_TEST_CASE(comparisons_are_masks_without_gradient) {
  Tensor a = Tensor({2, 3}, {1.f, 2.f, 3.f, kNaN, 5.f, 6.f}).set_requires_grad();
  const Tensor b({3}, {2.f, 2.f, 2.f});
  check_values("equal", equal(a, b), {2, 3}, {0, 1, 0, 0, 0, 0});
  check_values("not_equal", not_equal(a, b), {2, 3}, {1, 0, 1, 1, 1, 1});
  check_values("less", less(a, b), {2, 3}, {1, 0, 0, 0, 0, 0});
  check_values("less_equal", less_equal(a, b), {2, 3}, {1, 1, 0, 0, 0, 0});
  check_values("greater", greater(a, b), {2, 3}, {0, 0, 1, 0, 1, 1});
  check_values("greater_equal", greater_equal(a, b), {2, 3}, {0, 1, 1, 0, 1, 1});
  check_values("greater scalar", greater(a, 2.5f), {2, 3}, {0, 0, 1, 0, 1, 1});
  check_values("less_equal scalar", less_equal(a, 2.f), {2, 3}, {1, 1, 0, 0, 0, 0});
  check_values("equal scalar", equal(a, 3.f), {2, 3}, {0, 0, 1, 0, 0, 0});
  check_values("not_equal scalar", not_equal(a, 3.f), {2, 3}, {1, 1, 0, 1, 1, 1});
  check_values("less scalar", less(a, 3.f), {2, 3}, {1, 1, 0, 0, 0, 0});
  check_values("greater_equal scalar", greater_equal(a, 3.f), {2, 3}, {0, 0, 1, 0, 1, 1});
  BOOST_TEST(!greater(a, b).requires_grad());
  BOOST_TEST(!equal(a, 1.f).requires_grad());
  check_throws<std::invalid_argument>("less shapes", [&] { less(a, Tensor({2}, 1.f)); },
                                      {"less", "(2, 3)", "(2,)"});
}

BOOST_AUTO_TEST_CASE(unary_values_against_closed_forms) {
  Rng rng(5);
  const Tensor x = random_tensor({4, 25}, rng, -3.f, 3.f);
  check_values("sin", sin(x), x.shape(), unary_reference(x, [](double v) { return std::sin(v); }));
  check_values("cos", cos(x), x.shape(), unary_reference(x, [](double v) { return std::cos(v); }));
  check_values("erf", erf(x), x.shape(), unary_reference(x, [](double v) { return std::erf(v); }));
  check_values("expm1", expm1(x), x.shape(),
               unary_reference(x, [](double v) { return std::expm1(v); }));
  check_values("softplus", softplus(x), x.shape(),
               unary_reference(x, [](double v) { return std::log(1.0 + std::exp(v)); }));
  const Tensor p = random_tensor({4, 25}, rng, -0.9f, 3.f);
  check_values("log1p", log1p(p), p.shape(),
               unary_reference(p, [](double v) { return std::log1p(v); }));
  // Accuracy where the naive forms lose it: log1p / expm1 of tiny x, softplus far out.
  check_values("log1p tiny", log1p(Tensor({2}, {1e-10f, -3e-9f})), {2}, {1e-10, -3e-9}, 1e-6, 0);
  check_values("expm1 tiny", expm1(Tensor({2}, {1e-10f, -3e-9f})), {2}, {1e-10, -3e-9}, 1e-6, 0);
  check_values("softplus far", softplus(Tensor({3}, {100.f, -50.f, 1000.f})), {3},
               {100.0, std::exp(-50.0), 1000.0}, 1e-6, 0);
}

BOOST_AUTO_TEST_CASE(sign_floor_round) {
  const Tensor x({10}, {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 2.4f, -2.6f, 0.f, 3.7f});
  // Halves to even, as NumPy/PyTorch/TensorFlow (and -0.5 rounds to -0).
  check_values("round", round(x), {10}, {-2, -2, -0., 0, 2, 2, 2, -3, 0, 4}, 0, 0);
  check_values("floor", floor(x), {10}, {-3, -2, -1, 0, 1, 2, 2, -3, 0, 3}, 0, 0);
  check_values("sign", sign(x), {10}, {-1, -1, -1, 1, 1, 1, 1, -1, 0, 1}, 0, 0);
  BOOST_TEST(std::signbit(round(x).data()[2]));
  // Zero gradients, checked by finite differences away from the jumps.
  Rng rng(6);
  gradcheck("floor", [](const std::vector<Tensor>& in) { return floor(in[0]); },
            {away_from_jumps({3, 4}, rng, {0.2f, 0.5f, 0.8f})});
  gradcheck("round", [](const std::vector<Tensor>& in) { return round(in[0]); },
            {away_from_jumps({3, 4}, rng, {0.1f, 0.3f, 0.7f, 0.9f})});
  gradcheck("sign", [](const std::vector<Tensor>& in) { return sign(in[0]); },
            {random_away_from_zero({3, 4}, rng)});
}

BOOST_AUTO_TEST_CASE(unary_gradients) {
  Rng rng(7);
  const std::vector<std::pair<std::string, Fn>> fns = {
      {"sin", [](const std::vector<Tensor>& in) { return sin(in[0]); }},
      {"cos", [](const std::vector<Tensor>& in) { return cos(in[0]); }},
      {"erf", [](const std::vector<Tensor>& in) { return erf(in[0]); }},
      {"expm1", [](const std::vector<Tensor>& in) { return expm1(in[0]); }},
      {"softplus", [](const std::vector<Tensor>& in) { return softplus(in[0]); }},
  };
  for (const auto& [name, f] : fns) {
    gradcheck(name, f, {random_tensor({3, 5}, rng, -2.f, 2.f)});
    gradcheck(name + " large", f, {random_tensor({20, 30}, rng, -2.f, 2.f)});  // directions
  }
  // NOTE: log1p's inputs stay above -0.5, away from its pole at -1.
  gradcheck("log1p", [](const std::vector<Tensor>& in) { return log1p(in[0]); },
            {random_tensor({3, 5}, rng, -0.5f, 2.f)});
  // softplus far out: gradient 1 and exp(-50), not NaN.
  Tensor far = Tensor({2}, {200.f, -50.f}).set_requires_grad();
  softplus(far).backward(Tensor({2}, 1.f));
  check_values("softplus far grad", far.grad(), {2}, {1.0, std::exp(-50.0)}, 1e-5, 0);
}

BOOST_AUTO_TEST_CASE(unary_functions_propagate_nan) {
  const Tensor x({2}, {kNaN, 1.f});
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> fns = {
      {"sin", [](const Tensor& t) { return sin(t); }},
      {"cos", [](const Tensor& t) { return cos(t); }},
      {"log1p", [](const Tensor& t) { return log1p(t); }},
      {"expm1", [](const Tensor& t) { return expm1(t); }},
      {"erf", [](const Tensor& t) { return erf(t); }},
      {"softplus", [](const Tensor& t) { return softplus(t); }},
      {"sign", [](const Tensor& t) { return sign(t); }},
      {"floor", [](const Tensor& t) { return floor(t); }},
      {"round", [](const Tensor& t) { return round(t); }},
  };
  for (const auto& [name, f] : fns) {
    const Tensor y = f(x);
    BOOST_TEST(std::isnan(y.data()[0]), name << "(NaN) is " << y.data()[0]);
    BOOST_TEST(!std::isnan(y.data()[1]), name << "(1) is NaN");
  }
}

BOOST_AUTO_TEST_CASE(zero_size_tensors) {
  const Tensor e({0, 3}, 0.f), row({3}, 1.f);
  check_zero_size("maximum", [](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); },
                  {e, row}, {0, 3});
  check_zero_size("minimum", [](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); },
                  {row, e}, {0, 3});
  check_zero_size(
      "where", [](const std::vector<Tensor>& in) { return where(Tensor({3}, 1.f), in[0], in[1]); },
      {e, row}, {0, 3});
  for (const auto& [name, f] : std::vector<std::pair<std::string, Fn>>{
           {"sin", [](const std::vector<Tensor>& in) { return sin(in[0]); }},
           {"softplus", [](const std::vector<Tensor>& in) { return softplus(in[0]); }},
           {"round", [](const std::vector<Tensor>& in) { return round(in[0]); }}})
    check_zero_size(name, f, {e}, {0, 3});
  BOOST_TEST((greater(e, row).shape() == Shape{0, 3}));
}

BOOST_AUTO_TEST_SUITE_END()
