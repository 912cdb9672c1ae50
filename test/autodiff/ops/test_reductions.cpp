// Tests for autodiff/ops/reductions.cpp: prod, min, argmax/argmin, logsumexp, cumsum, var/std,
// norm. Reference values were computed in float64 with NumPy 1.24
// (test/autodiff/ops/make_reduction_refs.py prints them) and committed as literals.
#include <omp.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_away_from_zero;
using xtape::testing::random_distinct;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;
using V = std::vector<double>;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const Tensor& x3() {
  static const Tensor x({2, 3, 4}, {0.5f,  -1.25f, 2.0f,   0.75f,  -0.5f, 1.5f,  3.0f,  -2.0f,
                                    1.0f,  0.25f,  -0.75f, 1.75f,  2.5f,  0.0f,  -1.5f, 1.25f,
                                    -3.0f, 0.5f,   2.25f,  -0.25f, 1.0f,  -1.0f, 0.75f, 2.0f});
  return x;
}

std::vector<float> grad_of(const Tensor& x, const std::function<Tensor(const Tensor&)>& f) {
  Tensor leaf = x.clone().set_requires_grad();
  sum(f(leaf)).backward();
  return leaf.grad().to_vector();
}

// Distinct absolute values (0.05 apart, from 0.1) with random signs: no ties of |x|.
Tensor distinct_magnitudes(const Shape& shape, Rng& rng) {
  const Tensor m = random_distinct(shape, rng, 0.05f, 0.1f);
  std::vector<float> v = m.to_vector();
  for (float& e : v) e = rng.uniform() < 0.5f ? -e : e;
  return Tensor(shape, v);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reductions)

BOOST_AUTO_TEST_CASE(forward_against_numpy) {
  const Tensor& x = x3();
  check_values("prod axis 2", prod(x, {2}), {2, 3},
               V{-0.9375, 4.5, -0.328125, -0.0, 0.84375, -1.5});
  check_values("prod axes (0, 2) keepdims", prod(x, {0, -1}, true), {1, 3, 1},
               V{0.0, 3.796875, 0.4921875});
  check_values("logsumexp axis 1", logsumexp(x, {1}), {2, 4},
               V{1.6041306053367281, 1.8004250285621644, 3.3303084128203317, 2.0803084128203317,
                 2.704748948461113, 1.1041306053367284, 2.4704582739855576, 2.456009781307275});
  check_values("logsumexp all", logsumexp(x), {}, V{4.482243846365096});
  check_values("cumsum axis 1", cumsum(x, 1), {2, 3, 4},
               V{0.5, -1.25, 2.0,  0.75, 0.0,  0.25, 5.0,  -1.25, 1.0, 0.5,  4.25, 0.5,
                 2.5, 0.0,   -1.5, 1.25, -0.5, 0.5,  0.75, 1.0,   0.5, -0.5, 1.5,  3.0});
  check_values("var axis 2", var(x, {2}), {2, 3},
               V{1.34375, 3.625, 0.85546875, 2.19921875, 3.578125, 1.16796875});
  check_values("var axes (0, 1) ddof 1 keepdims", var(x, {0, 1}, 1, true), {1, 1, 4},
               V{3.475, 1.025, 3.185416666666667, 2.2416666666666667});
  check_values("std all ddof 1", xtape::std(x, {}, 1), {}, V{1.514386026161059});
  check_values("norm 2 axis 2", norm(x, 2, {2}), {2, 3},
               V{2.5248762345905194, 3.9370039370059056, 2.165063509461097, 3.17214438511238,
                 3.7914377220257753, 2.5617376914898995});
  check_values("norm 1 axis 0", norm(x, 1, {0}), {3, 4},
               V{3.0, 1.25, 3.5, 2.0, 3.5, 2.0, 5.25, 2.25, 2.0, 1.25, 1.5, 3.75});
  check_values("norm inf axis 1 keepdims", norm(x, kInf, {1}, true), {2, 1, 4},
               V{1.0, 1.5, 3.0, 2.0, 3.0, 1.0, 2.25, 2.0});
  check_values("norm 2 all", norm(x), {}, V{7.586995452746759});
  check_values("min axis 2", min(x, {2}), {2, 3}, V{-1.25, -2, -0.75, -1.5, -3, -1});
  check_values("argmax axis 2", argmax(x, 2), {2, 3}, V{2, 2, 3, 0, 2, 3}, 0, 0);
  check_values("argmin axis 0 keepdims", argmin(x, 0, true), {1, 3, 4},
               V{0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0}, 0, 0);
  check_values("argmax flat", argmax(x), {}, V{6}, 0, 0);
  check_values("argmin flat keepdims", argmin(x, std::nullopt, true), {1, 1, 1}, V{16}, 0, 0);
}

BOOST_AUTO_TEST_CASE(prod_gradient_with_zeros) {
  Rng rng(21);
  gradcheck("prod axis 1", [](In in) { return prod(in[0], {1}); }, {random_tensor({3, 5, 2}, rng)});
  gradcheck("prod all keepdims", [](In in) { return prod(in[0], {}, true); },
            {random_tensor({2, 3}, rng, 0.5f, 1.5f)});
  gradcheck("prod axes (0, 2)",
            [](In in) {
              return prod(in[0], {0, 2});
            },
            {random_tensor({2, 3, 2}, rng)});
  // One zero: only it receives the product of the others; two zeros: nothing anywhere.
  BOOST_TEST((grad_of(Tensor({3}, {2, 0, 3}), [](const Tensor& t) { return prod(t); }) ==
              std::vector<float>{0, 6, 0}));
  BOOST_TEST((grad_of(Tensor({2, 3}, {0, 0, 3, 1, 2, 4}), [](const Tensor& t) {
                return prod(t, {1});
              }) == std::vector<float>{0, 0, 0, 8, 4, 2}));
  // The gradient through a group holding a zero, checked by finite differences too.
  gradcheck("prod with a zero", [](In in) { return prod(in[0], {1}); },
            {Tensor({2, 3}, {0.5f, 0.f, -2.f, 1.5f, 0.75f, 0.f})});
  check_throws<std::invalid_argument>("prod axis", [] { prod(x3(), {3}); }, {"prod", "3"});
}

BOOST_AUTO_TEST_CASE(min_and_arg_extrema) {
  Rng rng(22);
  // NOTE: distinct values 0.05 apart, so no finite-difference step changes the argmin.
  gradcheck("min axis 0", [](In in) { return min(in[0], {0}); }, {random_distinct({3, 4}, rng)});
  gradcheck("min all", [](In in) { return min(in[0]); }, {random_distinct({3, 4}, rng)});
  // Ties: the first minimum; NaN propagates and takes the gradient, wherever it sits.
  BOOST_TEST((grad_of(Tensor({4}, {1, -2, -2, 0}), [](const Tensor& t) { return min(t); }) ==
              std::vector<float>{0, 1, 0, 0}));
  const Tensor with_nan({2, 3}, {1, kNaN, -3, kNaN, 2, kNaN});
  const Tensor m = min(with_nan, {1});
  BOOST_TEST((std::isnan(m.data()[0]) && std::isnan(m.data()[1])));
  BOOST_TEST((grad_of(with_nan, [](const Tensor& t) { return min(t, {1}); }) ==
              std::vector<float>{0, 1, 0, 1, 0, 0}));
  const Tensor by_col = min(Tensor({2, 2}, {kNaN, 1, 3, 2}), {0});
  BOOST_TEST((std::isnan(by_col.data()[0]) && by_col.data()[1] == 1.f));
  // argmax/argmin: NaN ranks first (its first occurrence); ties give the first extremum.
  const Tensor t({3, 4}, {1, 5, 5, 2, kNaN, 7, kNaN, -1, -4, 0, -4, 3});
  check_values("argmax axis 1", argmax(t, 1), {3}, V{1, 0, 3}, 0, 0);
  check_values("argmin axis 1", argmin(t, 1), {3}, V{0, 0, 0}, 0, 0);
  check_values("argmax axis 0", argmax(t, 0), {4}, V{1, 1, 1, 2}, 0, 0);
  check_values("argmin axis -2", argmin(t, -2), {4}, V{1, 2, 1, 1}, 0, 0);
  check_values("argmax flat", argmax(t), {}, V{4}, 0, 0);
  check_values("argmax of a scalar", argmax(Tensor::scalar(3.f)), {}, V{0}, 0, 0);
  BOOST_TEST(!argmax(Tensor({2}, {1, 2}).set_requires_grad(), 0).requires_grad());
  check_throws<std::invalid_argument>("argmax axis", [&] { argmax(t, 2); },
                                      {"argmax", "axis 2", "(3, 4)"});
  check_throws<std::invalid_argument>("argmin empty",
                                      [] {
                                        argmin(Tensor(Shape{2, 0}), 1);
                                      },
                                      {"argmin", "(2, 0)", "extent 0"});
  check_throws<std::invalid_argument>("argmax empty flat", [] { argmax(Tensor(Shape{0})); },
                                      {"argmax", "extent 0"});
  check_throws<std::invalid_argument>("min empty",
                                      [] {
                                        min(Tensor(Shape{0, 3}), {0});
                                      },
                                      {"min", "(0, 3)"});
  BOOST_TEST((argmax(Tensor(Shape{0, 3}), 1).shape() == Shape{0}));
  check_zero_size("min over a non-empty axis", [](In in) { return min(in[0], {1}); },
                  {Tensor(Shape{0, 3})}, {0});
}

BOOST_AUTO_TEST_CASE(logsumexp_stable) {
  Rng rng(23);
  gradcheck("logsumexp axis 1", [](In in) { return logsumexp(in[0], {1}); },
            {random_tensor({3, 4, 2}, rng, -3.f, 3.f)});
  gradcheck("logsumexp all keepdims", [](In in) { return logsumexp(in[0], {}, true); },
            {random_tensor({2, 5}, rng, -3.f, 3.f)});
  // The gradient is softmax.
  const std::vector<float> g =
      grad_of(Tensor({2}, {0.f, std::log(3.f)}), [](const Tensor& t) { return logsumexp(t); });
  BOOST_TEST(std::abs(g[0] - 0.25f) < 1e-6f);
  BOOST_TEST(std::abs(g[1] - 0.75f) < 1e-6f);
  // Stable for large values, exact rows of -inf, +inf and empty groups.
  const Tensor big({4, 2}, {1000.f, 1000.f, -kInf, -kInf, -kInf, 2.f, kInf, 1.f});
  const Tensor r = logsumexp(big, {1});
  BOOST_TEST(std::abs(r.data()[0] - (1000.f + std::log(2.f))) < 1e-3f);
  BOOST_TEST(r.data()[1] == -kInf);
  BOOST_TEST(r.data()[2] == 2.f);
  BOOST_TEST(r.data()[3] == kInf);
  BOOST_TEST(std::isnan(logsumexp(Tensor({2}, {1.f, kNaN})).item()));
  const Tensor e =
      check_zero_size("logsumexp over an empty axis", [](In in) { return logsumexp(in[0], {0}); },
                      {Tensor(Shape{0, 3})}, {3});
  for (float v : e.to_vector()) BOOST_TEST(v == -kInf);
  check_zero_size("logsumexp of an empty tensor along a full axis",
                  [](In in) { return logsumexp(in[0], {1}, true); }, {Tensor(Shape{0, 3})}, {0, 1});
}

BOOST_AUTO_TEST_CASE(cumsum_variants) {
  const Tensor v({4}, {1, 2, 3, 4});
  check_values("cumsum", cumsum(v, 0), {4}, V{1, 3, 6, 10}, 0, 0);
  check_values("exclusive", cumsum(v, 0, true), {4}, V{0, 1, 3, 6}, 0, 0);
  check_values("reverse", cumsum(v, -1, false, true), {4}, V{10, 9, 7, 4}, 0, 0);
  check_values("exclusive reverse", cumsum(v, 0, true, true), {4}, V{9, 7, 4, 0}, 0, 0);
  Rng rng(24);
  const Tensor x = random_tensor({3, 4, 2}, rng);
  for (bool excl : {false, true})
    for (bool rev : {false, true})
      for (int axis : {0, 1, -1})
        gradcheck("cumsum axis " + std::to_string(axis) + (excl ? " exclusive" : "") +
                      (rev ? " reverse" : ""),
                  [=](In in) { return cumsum(in[0], axis, excl, rev); }, {x});
  check_throws<std::invalid_argument>("cumsum axis", [&] { cumsum(x, 3); },
                                      {"cumsum", "axis 3", "(3, 4, 2)"});
  check_zero_size("cumsum of an empty tensor", [](In in) { return cumsum(in[0], 1); },
                  {Tensor(Shape{2, 0})}, {2, 0});
}

BOOST_AUTO_TEST_CASE(var_and_std) {
  Rng rng(25);
  for (double ddof : {0.0, 1.0})
    for (bool keep : {false, true}) {
      const std::string s = " ddof " + std::to_string(int(ddof)) + (keep ? " keepdims" : "");
      gradcheck("var axis 1" + s, [=](In in) { return var(in[0], {1}, ddof, keep); },
                {random_tensor({3, 4, 2}, rng)});
      gradcheck("std axes (0, 2)" + s,
                [=](In in) {
                  return xtape::std(in[0], {0, -1}, ddof, keep);
                },
                {random_tensor({3, 4, 2}, rng)});
    }
  // N - ddof <= 0 divides by 0 (NumPy): NaN for a zero sum, inf otherwise.
  BOOST_TEST(std::isnan(var(Tensor({1}, {5.f}), {}, 1).item()));
  BOOST_TEST(var(Tensor({2}, {1.f, 3.f}), {}, 3).item() == kInf);
  BOOST_TEST(std::isnan(var(Tensor(Shape{0})).item()));  // no elements
  check_zero_size("var over a non-empty axis", [](In in) { return var(in[0], {1}); },
                  {Tensor(Shape{0, 3})}, {0});
  check_throws<std::invalid_argument>("var axis", [] { var(x3(), {-4}); }, {"var", "-4"});
}

BOOST_AUTO_TEST_CASE(norms) {
  Rng rng(26);
  const double inf = std::numeric_limits<double>::infinity();
  for (bool keep : {false, true}) {
    gradcheck("norm 2 axis 1", [=](In in) { return norm(in[0], 2, {1}, keep); },
              {random_tensor({3, 4, 2}, rng)});
    // NOTE: |x| has a kink at 0 and the inf-norm at ties: inputs away from 0 / distinct.
    gradcheck("norm 1 axes (0, 2)",
              [=](In in) {
                return norm(in[0], 1, {0, 2}, keep);
              },
              {random_away_from_zero({3, 4, 2}, rng)});
    gradcheck("norm inf axis -1", [=](In in) { return norm(in[0], inf, {-1}, keep); },
              {distinct_magnitudes({3, 4, 2}, rng)});
  }
  gradcheck("norm 2 all", [](In in) { return norm(in[0]); }, {random_tensor({5, 3}, rng)});
  // Gradients at 0 are 0 (PyTorch); the inf-norm splits the gradient between ties.
  for (double ord : {1.0, 2.0, inf}) {
    const std::vector<float> g =
        grad_of(Tensor({3}, 0.f), [=](const Tensor& t) { return norm(t, ord); });
    BOOST_TEST((g == std::vector<float>{0, 0, 0}), "ord " << ord);
  }
  BOOST_TEST((grad_of(Tensor({4}, {2, -3, 3, 1}), [=](const Tensor& t) { return norm(t, inf); }) ==
              std::vector<float>{0, -0.5f, 0.5f, 0}));
  BOOST_TEST((grad_of(Tensor({3}, {2, 0, -1}), [](const Tensor& t) { return norm(t, 1); }) ==
              std::vector<float>{1, 0, -1}));
  for (double ord : {1.0, 2.0, inf})
    BOOST_TEST(std::isnan(norm(Tensor({3}, {1.f, kNaN, 100.f}), ord).item()), "ord " << ord);
  BOOST_TEST(norm(Tensor({2}, {3e30f, 4e30f})).item() == 5e30f);  // no overflow in the squares
  check_throws<std::invalid_argument>("norm ord", [] { norm(x3(), 3); }, {"norm", "ord", "3"});
  check_throws<std::invalid_argument>("norm inf of nothing",
                                      [=] {
                                        norm(Tensor(Shape{0, 2}), inf, {0});
                                      },
                                      {"norm", "(0, 2)"});
  const Tensor z =
      check_zero_size("norm 2 over an empty axis", [](In in) { return norm(in[0], 2, {0}); },
                      {Tensor(Shape{0, 2})}, {2});
  BOOST_TEST((z.to_vector() == std::vector<float>{0, 0}));
  check_zero_size("norm inf over a non-empty axis", [=](In in) { return norm(in[0], inf, {1}); },
                  {Tensor(Shape{0, 2})}, {0});
}

BOOST_AUTO_TEST_CASE(spatial_means_as_global_pooling_takes_them) {
  // mean over the middle axes of (n, h, w, c): per-image column sums (images in parallel) and a
  // one-pass broadcast back; against double loops, bitwise on 1 and 2 threads, and the gradient
  // keeps the old broadcast's bits (g + 0: -0 reads as +0).
  Rng rng(31);
  const Tensor x0 = random_tensor({40, 9, 11, 24}, rng);
  std::vector<double> ref(40 * 24, 0.0);
  for (std::size_t b = 0; b < 40; ++b)
    for (std::size_t i = 0; i < 99; ++i)
      for (std::size_t c = 0; c < 24; ++c) ref[b * 24 + c] += x0.data()[(b * 99 + i) * 24 + c];
  for (double& r : ref) r /= 99.0;
  check_values("mean over (h, w)", mean(x0, {1, 2}), {40, 24}, ref, 1e-5, 1e-7);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor x = x0.clone().set_requires_grad(true);
    Tensor y = mean(x, {1, 2}, true);
    Tensor g(y.shape(), 0.5f);
    detail::mutable_data(g)[3] = -0.f;
    y.backward(g);
    omp_set_num_threads(before);
    return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  BOOST_TEST(one[0] == two[0], boost::test_tools::per_element());
  BOOST_TEST(one[1] == two[1], boost::test_tools::per_element());
  const std::vector<float>& gx = one[1];
  bool right = true;
  for (std::size_t b = 0; b < 40; ++b)
    for (std::size_t i = 0; i < 99; ++i)
      for (std::size_t c = 0; c < 24; ++c) {
        const float v = gx[(b * 99 + i) * 24 + c];
        const float want = b == 0 && c == 3 ? 0.f : 0.5f / 99.f;
        right = right && v == want && !(b == 0 && c == 3 && std::signbit(v));
      }
  BOOST_TEST(right, "the gradient is g / (h w) on every element, +0 where g is -0");
  gradcheck("mean over (h, w)",
            [](In in) {
              return mean(in[0], {1, 2});
            },
            {random_tensor({3, 4, 5, 6}, rng)});
}

BOOST_AUTO_TEST_SUITE_END()
