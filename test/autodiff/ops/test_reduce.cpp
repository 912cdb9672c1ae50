// Tests for autodiff/ops/reduce.cpp: sum, mean and max over axes, with and without keepdims.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_distinct;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;

enum class Kind { sum, mean, max };

// Reference reduction in double: axes are normalised (non-negative); empty means all.
std::vector<double> reduce_reference(const Tensor& x, std::vector<int> axes, Kind kind,
                                     Shape& kept) {
  const Shape& s = x.shape();
  const std::size_t n = s.size();
  if (axes.empty())
    for (std::size_t i = 0; i < n; ++i) axes.push_back(static_cast<int>(i));
  auto reduced = [&](std::size_t a) {
    return std::find(axes.begin(), axes.end(), static_cast<int>(a)) != axes.end();
  };
  kept = s;
  for (std::size_t a = 0; a < n; ++a)
    if (reduced(a)) kept[a] = 1;
  const double init = kind == Kind::max ? -std::numeric_limits<double>::infinity() : 0.0;
  std::vector<double> r(shape_size(kept), init);
  std::vector<std::size_t> count(r.size(), 0);
  std::vector<std::size_t> idx(n, 0);
  for (std::size_t flat = 0; flat < x.size(); ++flat) {
    std::size_t off = 0;
    for (std::size_t a = 0; a < n; ++a) off = off * kept[a] + (reduced(a) ? 0 : idx[a]);
    const double v = x.data()[flat];
    if (kind == Kind::max)
      r[off] = std::max(r[off], v);
    else
      r[off] += v;
    ++count[off];
    for (std::size_t k = n; k-- > 0;) {
      if (++idx[k] < s[k]) break;
      idx[k] = 0;
    }
  }
  if (kind == Kind::mean)
    for (std::size_t i = 0; i < r.size(); ++i) r[i] /= static_cast<double>(count[i]);
  return r;
}

Shape squeeze(const Shape& kept, const Shape& full, std::vector<int> axes) {
  if (axes.empty()) return {};
  Shape out;
  for (std::size_t a = 0; a < full.size(); ++a)
    if (std::find(axes.begin(), axes.end(), static_cast<int>(a)) == axes.end())
      out.push_back(kept[a]);
  return out;
}

struct AxesCase {
  std::vector<int> axes;        // as passed to the op
  std::vector<int> normalized;  // for the reference
};

const std::vector<AxesCase> kAxes3 = {
    {{}, {}},         {{0}, {0}},       {{1}, {1}},       {{2}, {2}},        {{-1}, {2}},
    {{0, 2}, {0, 2}}, {{2, 0}, {0, 2}}, {{0, 1}, {0, 1}}, {{1, -1}, {1, 2}}, {{0, 1, 2}, {0, 1, 2}},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(reduce)

BOOST_AUTO_TEST_CASE(hand_cases) {
  Tensor x({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  check_values("sum all", sum(x), {}, {21});
  check_values("sum axis 0", sum(x, {0}), {3}, {5, 7, 9});
  check_values("sum axis 1 keepdims", sum(x, {1}, true), {2, 1}, {6, 15});
  check_values("mean all keepdims", mean(x, {}, true), {1, 1}, {3.5});
  check_values("mean axis -1", mean(x, {-1}), {2}, {2, 5});
  check_values("max axis 0", max(x, {0}), {3}, {4, 5, 6});
  check_values("max axis 1 keepdims",
               max(Tensor({2, 3}, {-1.f, -5.f, -2.f, 0.f, 7.f, 3.f}), {1}, true), {2, 1}, {-1, 7});
  check_values("max all", max(Tensor({4}, {-3.f, -1.f, -2.f, -4.f})), {}, {-1});
  check_values("sum of a scalar", sum(Tensor::scalar(2.5f)), {}, {2.5});
}

BOOST_AUTO_TEST_CASE(forward_against_reference) {
  Rng rng(1);
  for (const Shape& shape : std::vector<Shape>{{2, 3, 4}, {5, 1, 7}, {33, 17, 9}}) {
    const Tensor x = random_distinct(shape, rng, 0.01f, -2.f);
    for (const AxesCase& c : kAxes3) {
      for (bool keep : {false, true}) {
        for (Kind kind : {Kind::sum, Kind::mean, Kind::max}) {
          Shape kept;
          const std::vector<double> ref = reduce_reference(x, c.normalized, kind, kept);
          const Shape out = keep ? kept : squeeze(kept, shape, c.normalized);
          const std::string label = std::string(kind == Kind::sum    ? "sum"
                                                : kind == Kind::mean ? "mean"
                                                                     : "max") +
                                    " of " + shape_str(shape) + " over " +
                                    std::to_string(c.axes.size()) + " axes (first " +
                                    (c.axes.empty() ? "-" : std::to_string(c.axes[0])) + ")" +
                                    (keep ? " keepdims" : "");
          const Tensor y = kind == Kind::sum    ? sum(x, c.axes, keep)
                           : kind == Kind::mean ? mean(x, c.axes, keep)
                                                : max(x, c.axes, keep);
          check_values(label, y, out, ref, 1e-5, 1e-4);
        }
      }
    }
  }
  // A 4-d tensor reduced over non-adjacent axes, and a large sum (multi-threaded kernels).
  const Tensor x4 = random_tensor({3, 4, 5, 6}, rng);
  Shape kept;
  check_values("sum (3,4,5,6) over {1,3}", sum(x4, {1, 3}), {3, 5},
               reduce_reference(x4, {1, 3}, Kind::sum, kept), 1e-5, 1e-5);
  const Tensor big = random_tensor({300, 200}, rng);
  check_values("sum (300,200) over 0", sum(big, {0}), {200},
               reduce_reference(big, {0}, Kind::sum, kept), 1e-4, 1e-4);
  check_values("sum (300,200) over 1", sum(big, {1}), {300},
               reduce_reference(big, {1}, Kind::sum, kept), 1e-4, 1e-4);
  check_values("sum (300,200)", sum(big), {}, reduce_reference(big, {}, Kind::sum, kept), 1e-4,
               1e-3);
}

BOOST_AUTO_TEST_CASE(sum_and_mean_gradients) {
  Rng rng(2);
  const Tensor x = random_tensor({2, 3, 4}, rng);
  for (const AxesCase& c : kAxes3)
    for (bool keep : {false, true}) {
      const std::string s = std::to_string(c.axes.size()) + " axes" + (keep ? " keepdims" : "");
      gradcheck("sum " + s, [&](const std::vector<Tensor>& in) { return sum(in[0], c.axes, keep); },
                {x});
      gradcheck("mean " + s,
                [&](const std::vector<Tensor>& in) { return mean(in[0], c.axes, keep); }, {x});
    }
  gradcheck("sum of a 4-d tensor over {1,3}",
            [](const std::vector<Tensor>& in) {
              return sum(in[0], {1, 3});
            },
            {random_tensor({3, 4, 5, 6}, rng)});
  gradcheck("mean of (40,30) over 0",
            [](const std::vector<Tensor>& in) { return mean(in[0], {0}); },
            {random_tensor({40, 30}, rng)});
}

BOOST_AUTO_TEST_CASE(max_gradients) {
  Rng rng(3);
  // NOTE: max has a kink where two elements tie; inputs are distinct values 0.05 apart, so no
  // finite-difference step (1e-2) changes which element is the maximum.
  const Tensor x = random_distinct({2, 3, 4}, rng);
  for (const AxesCase& c : kAxes3)
    for (bool keep : {false, true})
      gradcheck("max " + std::to_string(c.axes.size()) + " axes" + (keep ? " keepdims" : ""),
                [&](const std::vector<Tensor>& in) { return max(in[0], c.axes, keep); }, {x});
  // With ties the gradient goes to the first maximal element only.
  Tensor t({2, 3}, {1.f, 3.f, 3.f, 2.f, 2.f, 0.f});
  t.set_requires_grad();
  sum(max(t, {1})).backward();
  BOOST_TEST((t.grad().to_vector() == std::vector<float>{0, 1, 0, 1, 0, 0}));
}

BOOST_AUTO_TEST_CASE(bad_axes) {
  const Tensor x({2, 3}, 1.f);
  check_throws<std::invalid_argument>("sum axis 2", [&] { sum(x, {2}); }, {"sum", "2", "(2, 3)"});
  check_throws<std::invalid_argument>("mean axis -3", [&] { mean(x, {-3}); },
                                      {"mean", "-3", "(2, 3)"});
  check_throws<std::invalid_argument>("max axis 5",
                                      [&] {
                                        max(x, {0, 5});
                                      },
                                      {"max", "5", "(2, 3)"});
  check_throws<std::invalid_argument>("sum repeated axis",
                                      [&] {
                                        sum(x, {1, -1});
                                      },
                                      {"sum", "(2, 3)"});
}

BOOST_AUTO_TEST_CASE(reductions_of_zero_size_tensors) {
  const Tensor x({0, 4}, 1.f);
  // Sums of no elements are 0; groups that exist but are empty give 0 (sum) and NaN (mean,
  // as NumPy and PyTorch); reducing a non-empty axis of an empty tensor is empty.
  Tensor s0 = check_zero_size("sum axis 0", [](In in) { return sum(in[0], {0}); }, {x}, {4});
  BOOST_TEST(s0.to_vector() == std::vector<float>(4, 0.f), boost::test_tools::per_element());
  check_zero_size("sum axis 1", [](In in) { return sum(in[0], {1}); }, {x}, {0});
  check_zero_size("sum axis 1 keepdims", [](In in) { return sum(in[0], {1}, true); }, {x}, {0, 1});
  BOOST_TEST(check_zero_size("sum of all", [](In in) { return sum(in[0]); }, {x}, {}).item() ==
             0.f);
  Tensor m0 = check_zero_size("mean axis 0", [](In in) { return mean(in[0], {0}); }, {x}, {4});
  for (float v : m0.to_vector()) BOOST_TEST(std::isnan(v));
  check_zero_size("mean axis 1", [](In in) { return mean(in[0], {1}); }, {x}, {0});
  BOOST_TEST(std::isnan(
      check_zero_size("mean of all", [](In in) { return mean(in[0]); }, {x}, {}).item()));
  check_zero_size("max axis 1", [](In in) { return max(in[0], {1}); }, {x}, {0});
  check_zero_size("max axis 1 keepdims", [](In in) { return max(in[0], {1}, true); }, {x}, {0, 1});
  check_zero_size("max over (3, 0, 2) axes 0, 2",
                  [](In in) {
                    return max(in[0], {0, 2});
                  },
                  {Tensor({3, 0, 2}, 1.f)}, {0});
  auto [mean0, var0] = moments(Tensor({2, 0}, 1.f), {0});
  BOOST_TEST((mean0.shape() == Shape{0} && var0.shape() == Shape{0}));
  // A maximum of no elements has no value (NumPy and PyTorch refuse it too).
  check_throws<std::invalid_argument>("max of an empty axis", [&] { max(x, {0}); },
                                      {"max", "(0, 4)"});
  check_throws<std::invalid_argument>("max of an empty tensor", [&] { max(x); }, {"max", "(0, 4)"});
  // Empty tensors may have huge extents: reducing them is still cheap.
  const Tensor wide({std::size_t{1} << 40, 0}, 0.f);
  check_zero_size("sum of (2^40, 0) axis 0", [](In in) { return sum(in[0], {0}); }, {wide}, {0});
  check_zero_size("mean of (2^40, 0) axis 0", [](In in) { return mean(in[0], {0}); }, {wide}, {0});
  check_zero_size("max of (2^40, 0) axis 0", [](In in) { return max(in[0], {0}); }, {wide}, {0});
}

BOOST_AUTO_TEST_CASE(max_propagates_nan_wherever_it_sits) {
  // max([1, NaN, 3]) was 3 and max([NaN, 1, 3]) NaN: NaN is greater than every number (IEEE,
  // PyTorch), whatever its position, and the gradient goes to it (the first one of several).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::vector<float>> rows = {{1, nan, 3},   {nan, 1, 3},   {1, 3, nan},
                                                {nan, nan, 3}, {3, nan, nan}, {-1, -2, nan}};
  const std::vector<std::size_t> first_nan = {1, 0, 2, 0, 1, 2};
  for (std::size_t r = 0; r < rows.size(); ++r) {
    Tensor x = Tensor({3}, rows[r]).set_requires_grad();
    Tensor m = max(x);
    BOOST_TEST(std::isnan(m.item()), "row " << r);
    m.backward();
    for (std::size_t i = 0; i < 3; ++i)
      BOOST_TEST(x.grad().data()[i] == (i == first_nan[r] ? 1.f : 0.f),
                 "row " << r << " element " << i);
  }
  // Along an axis: only the groups holding NaN become NaN.
  Tensor x = Tensor({2, 4}, {5, 1, nan, 2, 0, 7, 3, -1}).set_requires_grad();
  const Tensor by_row = max(x, {1});
  BOOST_TEST(std::isnan(by_row.data()[0]));
  BOOST_TEST(by_row.data()[1] == 7.f);
  const Tensor by_col = max(x, {0});
  BOOST_TEST(by_col.data()[0] == 5.f);
  BOOST_TEST(by_col.data()[1] == 7.f);
  BOOST_TEST(std::isnan(by_col.data()[2]));
  BOOST_TEST(by_col.data()[3] == 2.f);
  sum(by_row).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{0, 0, 1, 0, 0, 1, 0, 0}));
}

BOOST_AUTO_TEST_SUITE_END()
