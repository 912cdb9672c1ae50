// Tests for autodiff/ops/pool.cpp: max_pool2d and avg_pool2d (NHWC, TensorFlow semantics)
// against naive loops, their gradients, and errors.
#include <algorithm>
#include <array>
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

// Naive pooling in double with TensorFlow's 'same' rule (extra pad at the bottom/right; padded
// positions are never the max and never counted in the mean).
std::vector<double> pool_reference(const Tensor& x, long ph, long pw, long sh, long sw, bool same,
                                   bool is_max, Shape& out_shape) {
  const long n = static_cast<long>(x.dim(0)), h = static_cast<long>(x.dim(1)),
             w = static_cast<long>(x.dim(2)), c = static_cast<long>(x.dim(3));
  auto axis = [&](long in, long k, long s, long& out, long& pad) {
    if (same) {
      out = (in + s - 1) / s;
      pad = std::max(0L, (out - 1) * s + k - in) / 2;
    } else {
      out = (in - k) / s + 1;
      pad = 0;
    }
  };
  long oh, ow, pt, pl;
  axis(h, ph, sh, oh, pt);
  axis(w, pw, sw, ow, pl);
  out_shape = {static_cast<std::size_t>(n), static_cast<std::size_t>(oh),
               static_cast<std::size_t>(ow), static_cast<std::size_t>(c)};
  std::vector<double> out;
  for (long b = 0; b < n; ++b)
    for (long oy = 0; oy < oh; ++oy)
      for (long ox = 0; ox < ow; ++ox)
        for (long ch = 0; ch < c; ++ch) {
          double best = -std::numeric_limits<double>::infinity(), s = 0.0;
          long count = 0;
          for (long dy = 0; dy < ph; ++dy)
            for (long dx = 0; dx < pw; ++dx) {
              const long iy = oy * sh - pt + dy, ix = ox * sw - pl + dx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              const double v = x.data()[((b * h + iy) * w + ix) * c + ch];
              best = std::max(best, v);
              s += v;
              ++count;
            }
          out.push_back(is_max ? best : s / static_cast<double>(count));
        }
  return out;
}

struct PoolCase {
  Shape input;
  int ph, pw, sh, sw;
  bool same;
  const char* name;
};

const std::vector<PoolCase> kCases = {
    {{1, 4, 4, 1}, 2, 2, 2, 2, false, "2x2 valid"},
    {{2, 6, 6, 3}, 2, 2, 2, 2, false, "2x2 valid batch 2, 3 channels"},
    {{1, 5, 5, 2}, 2, 2, 2, 2, true, "2x2 same on 5x5 (pad bottom/right)"},
    {{1, 5, 5, 2}, 2, 2, 2, 2, false, "2x2 valid on 5x5 (drops the last row/column)"},
    {{2, 7, 7, 2}, 3, 3, 2, 2, false, "3x3 stride 2 valid (overlapping)"},
    {{1, 7, 6, 2}, 3, 3, 2, 2, true, "3x3 stride 2 same"},
    {{1, 5, 6, 1}, 2, 2, 1, 1, false, "2x2 stride 1 valid"},
    {{1, 5, 6, 3}, 2, 2, 1, 1, true, "2x2 stride 1 same"},
    {{2, 6, 7, 2}, 2, 3, 1, 2, true, "(2,3) stride (1,2) same"},
    {{1, 8, 5, 1}, 3, 2, 3, 1, false, "(3,2) stride (3,1) valid"},
    {{1, 4, 4, 1}, 4, 4, 4, 4, false, "global 4x4"},
    {{1, 3, 3, 2}, 5, 5, 1, 1, true, "window larger than the input, same"},
};

Tensor run_pool(const PoolCase& c, const Tensor& x, bool is_max) {
  const Padding p = c.same ? Padding::same : Padding::valid;
  return is_max ? max_pool2d(x, {c.ph, c.pw}, {c.sh, c.sw}, p)
                : avg_pool2d(x, {c.ph, c.pw}, {c.sh, c.sw}, p);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool)

BOOST_AUTO_TEST_CASE(hand_cases) {
  Tensor x({1, 5, 5, 1}, 0.f);
  for (std::size_t i = 0; i < 25; ++i) x.data()[i] = static_cast<float>(i);
  // Default strides are the pool size.
  check_values("max 2x2 valid", max_pool2d(x, {2, 2}), {1, 2, 2, 1}, {6, 8, 16, 18}, 0, 0);
  check_values("avg 2x2 valid", avg_pool2d(x, {2, 2}), {1, 2, 2, 1}, {3, 5, 13, 15}, 0, 0);
  // 'same': 3x3 output, the extra pad row/column at the bottom/right; avg counts in-bounds only.
  check_values("max 2x2 same", max_pool2d(x, {2, 2}, {0, 0}, Padding::same), {1, 3, 3, 1},
               {6, 8, 9, 16, 18, 19, 21, 23, 24}, 0, 0);
  check_values("avg 2x2 same", avg_pool2d(x, {2, 2}, {0, 0}, Padding::same), {1, 3, 3, 1},
               {3, 5, 6.5, 13, 15, 16.5, 20.5, 22.5, 24}, 0, 0);
  // Negative values: padding never wins the max.
  Tensor neg({1, 3, 3, 1}, {-9.f, -8.f, -7.f, -6.f, -5.f, -4.f, -3.f, -2.f, -1.f});
  check_values("max same on negatives", max_pool2d(neg, {2, 2}, {2, 2}, Padding::same),
               {1, 2, 2, 1}, {-5, -4, -2, -1}, 0, 0);
  // Keras shapes: 28x28 pool 2 -> 14x14 both ways; 5x5 pool 2 -> 2x2 valid, 3x3 same.
  const Tensor x28({2, 28, 28, 4}, 1.f);
  BOOST_TEST((max_pool2d(x28, {2, 2}).shape() == Shape{2, 14, 14, 4}));
  BOOST_TEST((avg_pool2d(x28, {2, 2}, {2, 2}, Padding::same).shape() == Shape{2, 14, 14, 4}));
  BOOST_TEST((max_pool2d(x28, {3, 3}, {2, 2}).shape() == Shape{2, 13, 13, 4}));
  BOOST_TEST((max_pool2d(x28, {3, 3}, {2, 2}, Padding::same).shape() == Shape{2, 14, 14, 4}));
}

BOOST_AUTO_TEST_CASE(forward_against_reference) {
  Rng rng(1);
  std::vector<PoolCase> cases = kCases;
  cases.push_back({{8, 28, 28, 32}, 2, 2, 2, 2, false, "mnist (8,28,28,32) 2x2"});
  cases.push_back({{4, 27, 27, 17}, 3, 3, 2, 2, true, "(4,27,27,17) 3x3 stride 2 same"});
  for (const PoolCase& c : cases) {
    const Tensor x = random_tensor(c.input, rng, -2.f, 2.f);
    Shape out;
    const std::vector<double> ref_max =
        pool_reference(x, c.ph, c.pw, c.sh, c.sw, c.same, true, out);
    check_values(std::string("max_pool2d ") + c.name, run_pool(c, x, true), out, ref_max, 0, 0);
    const std::vector<double> ref_avg =
        pool_reference(x, c.ph, c.pw, c.sh, c.sw, c.same, false, out);
    check_values(std::string("avg_pool2d ") + c.name, run_pool(c, x, false), out, ref_avg, 1e-5,
                 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(gradients) {
  Rng rng(2);
  for (const PoolCase& c : kCases) {
    // NOTE: max pooling has a kink where two elements of a window tie; the inputs are distinct
    // values 0.05 apart, so a finite-difference step (1e-2) never changes a window's argmax.
    gradcheck(std::string("max_pool2d ") + c.name, [c](In in) { return run_pool(c, in[0], true); },
              {random_distinct(c.input, rng)});
    gradcheck(std::string("avg_pool2d ") + c.name, [c](In in) { return run_pool(c, in[0], false); },
              {random_tensor(c.input, rng)});
  }
  // Real size, directional.
  const PoolCase big{{4, 14, 14, 16}, 3, 3, 2, 2, true, "(4,14,14,16) 3x3 stride 2 same"};
  gradcheck("max_pool2d real size", [big](In in) { return run_pool(big, in[0], true); },
            {random_distinct(big.input, rng, 0.05f, -300.f)});
  gradcheck("avg_pool2d real size", [big](In in) { return run_pool(big, in[0], false); },
            {random_tensor(big.input, rng)});
}

BOOST_AUTO_TEST_CASE(max_pool_ties_go_to_the_first_element) {
  Tensor x({1, 2, 2, 1}, {1.f, 3.f, 3.f, 0.f});
  x.set_requires_grad();
  sum(max_pool2d(x, {2, 2})).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{0, 1, 0, 0}));
  // Overlapping windows that pick the same element accumulate.
  Tensor y({1, 3, 3, 1}, {0.f, 0.f, 0.f, 0.f, 9.f, 0.f, 0.f, 0.f, 0.f});
  y.set_requires_grad();
  sum(max_pool2d(y, {2, 2}, {1, 1})).backward();
  BOOST_TEST((y.grad().to_vector() == std::vector<float>{0, 0, 0, 0, 4, 0, 0, 0, 0}));
}

BOOST_AUTO_TEST_CASE(errors_name_op_and_shapes) {
  const Tensor x({1, 4, 4, 2}, 1.f);
  check_throws<std::invalid_argument>("max_pool2d zero stride",
                                      [&] {
                                        max_pool2d(x, {2, 2}, {0, 1});
                                      },
                                      {"max_pool2d", "stride"});
  check_throws<std::invalid_argument>("avg_pool2d negative stride",
                                      [&] {
                                        avg_pool2d(x, {2, 2}, {-1, 1});
                                      },
                                      {"avg_pool2d", "stride"});
  check_throws<std::invalid_argument>("max_pool2d zero pool size",
                                      [&] {
                                        max_pool2d(x, {0, 2});
                                      },
                                      {"max_pool2d", "pool"});
  check_throws<std::invalid_argument>("max_pool2d rank 3",
                                      [] {
                                        max_pool2d(Tensor({4, 4, 2}, 1.f), {2, 2});
                                      },
                                      {"max_pool2d", "(4, 4, 2)"});
  check_throws<std::invalid_argument>("avg_pool2d window larger than a valid input",
                                      [&] {
                                        avg_pool2d(x, {5, 5});
                                      },
                                      {"avg_pool2d", "(1, 4, 4, 2)"});
}

BOOST_AUTO_TEST_CASE(zero_size_inputs) {
  for (bool is_max : {true, false}) {
    const std::string op = is_max ? "max_pool2d" : "avg_pool2d";
    const auto valid = [is_max](In in) {
      return is_max ? max_pool2d(in[0], {2, 2}) : avg_pool2d(in[0], {2, 2});
    };
    const auto same = [is_max](In in) {
      return is_max ? max_pool2d(in[0], {2, 2}, {0, 0}, Padding::same)
                    : avg_pool2d(in[0], {2, 2}, {0, 0}, Padding::same);
    };
    check_zero_size(op + " batch 0", valid, {Tensor({0, 4, 4, 3}, 1.f)}, {0, 2, 2, 3});
    check_zero_size(op + " 0 channels", valid, {Tensor({2, 4, 4, 0}, 1.f)}, {2, 2, 2, 0});
    check_zero_size(op + " height 0, same", same, {Tensor({2, 0, 5, 3}, 1.f)}, {2, 0, 3, 3});
    check_throws<std::invalid_argument>(op + " height 0, valid",
                                        [&] {
                                          valid({Tensor({2, 0, 5, 3}, 1.f)});
                                        },
                                        {op, "(2, 0, 5, 3)"});
  }
}

BOOST_AUTO_TEST_CASE(max_pool_propagates_nan) {
  // A window holding NaN gives NaN wherever the NaN sits, and the gradient goes to it (the
  // first NaN of the window); the 2x2 fast path (channels in whole vectors), the general vector
  // path and its scalar channel tail all agree.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    Shape input;
    std::array<int, 2> size, strides;
    Padding padding;
  };
  const Case cases[] = {
      {{2, 4, 6, 16}, {2, 2}, {2, 2}, Padding::valid},  // 2x2 fast path
      {{1, 5, 5, 19}, {3, 3}, {2, 2}, Padding::same},   // vector + scalar channel tail
      {{1, 6, 5, 3}, {2, 3}, {1, 2}, Padding::valid},   // scalar channels, overlapping windows
  };
  Rng rng(9);
  for (const Case& c : cases)
    for (int trial = 0; trial < 3; ++trial) {
      Tensor x = random_distinct(c.input, rng);
      for (std::size_t i = 0; i < x.size(); ++i)
        if (rng.uniform() < 0.08f) x.data()[i] = nan;
      x.set_requires_grad();
      const Tensor y = max_pool2d(x, c.size, c.strides, c.padding);
      sum(y).backward();
      // Reference: scan each window in row-major order; NaN beats every number, the first wins.
      const long h = static_cast<long>(c.input[1]), w = static_cast<long>(c.input[2]),
                 ch = static_cast<long>(c.input[3]);
      const long oh = static_cast<long>(y.dim(1)), ow = static_cast<long>(y.dim(2));
      const long pt = c.padding == Padding::same
                          ? std::max(0L, (oh - 1) * c.strides[0] + c.size[0] - h) / 2
                          : 0;
      const long pl = c.padding == Padding::same
                          ? std::max(0L, (ow - 1) * c.strides[1] + c.size[1] - w) / 2
                          : 0;
      std::vector<float> grad(x.size(), 0.f);
      std::size_t nans = 0, mismatches = 0;
      for (long b = 0; b < static_cast<long>(c.input[0]); ++b)
        for (long oy = 0; oy < oh; ++oy)
          for (long ox = 0; ox < ow; ++ox)
            for (long k = 0; k < ch; ++k) {
              long best = -1;
              for (long dy = 0; dy < c.size[0]; ++dy)
                for (long dx = 0; dx < c.size[1]; ++dx) {
                  const long iy = oy * c.strides[0] - pt + dy, ix = ox * c.strides[1] - pl + dx;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  const long at = ((b * h + iy) * w + ix) * ch + k;
                  const float v = x.data()[at];
                  if (best < 0 ||
                      (!std::isnan(x.data()[best]) && (std::isnan(v) || v > x.data()[best])))
                    best = at;
                }
              grad[static_cast<std::size_t>(best)] += 1.f;
              const float got = y.data()[((b * oh + oy) * ow + ox) * ch + k], want = x.data()[best];
              nans += std::isnan(want);
              mismatches += std::isnan(want) ? !std::isnan(got) : got != want;
            }
      BOOST_TEST(nans > 0u);
      BOOST_TEST(mismatches == 0u,
                 mismatches << " windows differ from the reference, input " << shape_str(c.input));
      BOOST_TEST(x.grad().to_vector() == grad, boost::test_tools::per_element());
    }
}

BOOST_AUTO_TEST_SUITE_END()
