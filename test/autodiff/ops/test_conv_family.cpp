// Tests of the convolution family beyond conv2d: transposed convolutions (Keras's output
// extents, values against a naive double-precision scatter), depthwise convolutions (against a
// naive loop, depth multipliers 1 and 3), causal conv1d (a valid convolution of the input padded
// before), their gradients and second derivatives, and their errors.
#include <omp.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <vector>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;
using xtape::testing::random_tensor;

namespace {

std::size_t at4(const Shape& s, std::size_t a, std::size_t b, std::size_t c, std::size_t d) {
  return ((a * s[1] + b) * s[2] + c) * s[3] + d;
}

// TensorFlow's leading pad of a convolution from extent `big` to `small`.
long tf_pad(std::size_t big, std::size_t small, long k, long s, long d, Padding p) {
  if (p == Padding::valid) return 0;
  const long eff = (k - 1) * d + 1;
  const long total =
      std::max(0L, (static_cast<long>(small) - 1) * s + eff - static_cast<long>(big));
  return total / 2;
}

// Transposed convolution by scattering every input element through every tap, in double.
std::vector<double> naive_transpose(const Tensor& x, const Tensor& k, const Shape& out, long s,
                                    Padding p, long d) {
  const Shape &xs = x.shape(), &ks = k.shape();
  std::vector<double> y(shape_size(out), 0.0);
  const long pt = tf_pad(out[1], xs[1], static_cast<long>(ks[0]), s, d, p);
  const long pl = tf_pad(out[2], xs[2], static_cast<long>(ks[1]), s, d, p);
  for (std::size_t n = 0; n < xs[0]; ++n)
    for (std::size_t a = 0; a < xs[1]; ++a)
      for (std::size_t b = 0; b < xs[2]; ++b)
        for (std::size_t i = 0; i < ks[0]; ++i)
          for (std::size_t j = 0; j < ks[1]; ++j) {
            const long h = static_cast<long>(a) * s - pt + static_cast<long>(i) * d;
            const long w = static_cast<long>(b) * s - pl + static_cast<long>(j) * d;
            if (h < 0 || w < 0 || h >= static_cast<long>(out[1]) || w >= static_cast<long>(out[2]))
              continue;
            for (std::size_t f = 0; f < ks[2]; ++f)
              for (std::size_t c = 0; c < xs[3]; ++c)
                y[at4(out, n, static_cast<std::size_t>(h), static_cast<std::size_t>(w), f)] +=
                    double(x.data()[at4(xs, n, a, b, c)]) * k.data()[at4(ks, i, j, f, c)];
          }
  return y;
}

std::vector<double> naive_depthwise(const Tensor& x, const Tensor& k, long s, Padding p, long d,
                                    Shape& out) {
  const Shape &xs = x.shape(), &ks = k.shape();
  const long eff_h = (static_cast<long>(ks[0]) - 1) * d + 1,
             eff_w = (static_cast<long>(ks[1]) - 1) * d + 1;
  const std::size_t oh = p == Padding::same ? (xs[1] + s - 1) / s : (xs[1] - eff_h) / s + 1;
  const std::size_t ow = p == Padding::same ? (xs[2] + s - 1) / s : (xs[2] - eff_w) / s + 1;
  out = {xs[0], oh, ow, ks[2] * ks[3]};
  const long pt = tf_pad(xs[1], oh, static_cast<long>(ks[0]), s, d, p);
  const long pl = tf_pad(xs[2], ow, static_cast<long>(ks[1]), s, d, p);
  std::vector<double> y(shape_size(out), 0.0);
  for (std::size_t n = 0; n < xs[0]; ++n)
    for (std::size_t a = 0; a < oh; ++a)
      for (std::size_t b = 0; b < ow; ++b)
        for (std::size_t c = 0; c < ks[2]; ++c)
          for (std::size_t m = 0; m < ks[3]; ++m) {
            double acc = 0;
            for (std::size_t i = 0; i < ks[0]; ++i)
              for (std::size_t j = 0; j < ks[1]; ++j) {
                const long h = static_cast<long>(a) * s - pt + static_cast<long>(i) * d;
                const long w = static_cast<long>(b) * s - pl + static_cast<long>(j) * d;
                if (h < 0 || w < 0 || h >= static_cast<long>(xs[1]) ||
                    w >= static_cast<long>(xs[2]))
                  continue;
                acc += double(x.data()[at4(xs, n, static_cast<std::size_t>(h),
                                           static_cast<std::size_t>(w), c)]) *
                       k.data()[at4(ks, i, j, c, m)];
              }
            y[at4(out, n, a, b, c * ks[3] + m)] = acc;
          }
  return y;
}

// Grouped convolution y[n, a, b, q * fg + f] = sum over (i, j, c < cg) of
// x[n, a * s - pt + i * d, b * s - pl + j * d, q * cg + c] k[i, j, c, q * fg + f], in double.
std::vector<double> naive_grouped(const Tensor& x, const Tensor& k, std::array<int, 2> s, Padding p,
                                  std::array<int, 2> d, std::size_t groups, Shape& out) {
  const Shape &xs = x.shape(), &ks = k.shape();
  const std::size_t cg = ks[2], fg = ks[3] / groups;
  const long eff_h = (static_cast<long>(ks[0]) - 1) * d[0] + 1,
             eff_w = (static_cast<long>(ks[1]) - 1) * d[1] + 1;
  const std::size_t oh =
      p == Padding::same ? (xs[1] + s[0] - 1) / s[0] : (xs[1] - eff_h) / s[0] + 1;
  const std::size_t ow =
      p == Padding::same ? (xs[2] + s[1] - 1) / s[1] : (xs[2] - eff_w) / s[1] + 1;
  out = {xs[0], oh, ow, ks[3]};
  const long pt = tf_pad(xs[1], oh, static_cast<long>(ks[0]), s[0], d[0], p);
  const long pl = tf_pad(xs[2], ow, static_cast<long>(ks[1]), s[1], d[1], p);
  std::vector<double> y(shape_size(out), 0.0);
  for (std::size_t n = 0; n < xs[0]; ++n)
    for (std::size_t a = 0; a < oh; ++a)
      for (std::size_t b = 0; b < ow; ++b)
        for (std::size_t f = 0; f < ks[3]; ++f) {
          const std::size_t q = f / fg;
          double acc = 0;
          for (std::size_t i = 0; i < ks[0]; ++i)
            for (std::size_t j = 0; j < ks[1]; ++j) {
              const long h = static_cast<long>(a) * s[0] - pt + static_cast<long>(i) * d[0];
              const long w = static_cast<long>(b) * s[1] - pl + static_cast<long>(j) * d[1];
              if (h < 0 || w < 0 || h >= static_cast<long>(xs[1]) || w >= static_cast<long>(xs[2]))
                continue;
              for (std::size_t c = 0; c < cg; ++c)
                acc += double(x.data()[at4(xs, n, static_cast<std::size_t>(h),
                                           static_cast<std::size_t>(w), q * cg + c)]) *
                       k.data()[at4(ks, i, j, c, f)];
            }
          y[at4(out, n, a, b, f)] = acc;
        }
  return y;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conv_family)

BOOST_AUTO_TEST_CASE(transposed_extents_follow_keras) {
  Rng rng(1);
  const Tensor x = random_tensor({1, 5, 4, 2}, rng);
  const Tensor k = random_tensor({3, 3, 6, 2}, rng);
  struct Case {
    std::array<int, 2> s;
    Padding p;
    std::array<int, 2> op;
    std::size_t h, w;
  };
  // Keras: valid h*s + max(k - s, 0); same h*s; with output_padding (h-1)s + k - 2(k/2) + op.
  for (const Case& c :
       {Case{{2, 2}, Padding::valid, {-1, -1}, 11, 9}, Case{{2, 2}, Padding::same, {-1, -1}, 10, 8},
        Case{{1, 1}, Padding::same, {-1, -1}, 5, 4}, Case{{3, 2}, Padding::valid, {-1, -1}, 15, 9},
        Case{{2, 2}, Padding::same, {1, 0}, 10, 7}, Case{{2, 2}, Padding::valid, {1, 1}, 12, 10}})
    BOOST_TEST((conv2d_transpose(x, k, c.s, c.p, c.op).shape() == Shape{1, c.h, c.w, 6}));
}

BOOST_AUTO_TEST_CASE(conv2d_transpose_against_a_naive_scatter) {
  Rng rng(2);
  struct Case {
    Shape x, k;
    int s;
    Padding p;
    std::array<int, 2> op;
    int d;
  };
  for (const Case& c : {Case{{2, 4, 5, 3}, {3, 3, 4, 3}, 1, Padding::valid, {-1, -1}, 1},
                        Case{{2, 4, 5, 3}, {3, 2, 4, 3}, 2, Padding::valid, {-1, -1}, 1},
                        Case{{1, 5, 5, 2}, {3, 3, 3, 2}, 2, Padding::same, {-1, -1}, 1},
                        Case{{1, 3, 4, 2}, {4, 4, 2, 2}, 3, Padding::same, {2, 1}, 1},
                        Case{{1, 4, 4, 2}, {3, 3, 2, 2}, 1, Padding::same, {-1, -1}, 2}}) {
    const Tensor x = random_tensor(c.x, rng), k = random_tensor(c.k, rng);
    const Tensor y = conv2d_transpose(x, k, {c.s, c.s}, c.p, c.op, {c.d, c.d});
    check_values("conv2d_transpose " + shape_str(c.x) + " s" + std::to_string(c.s), y, y.shape(),
                 naive_transpose(x, k, y.shape(), c.s, c.p, c.d));
    gradcheck("conv2d_transpose grad",
              [&](const std::vector<Tensor>& v) {
                return conv2d_transpose(v[0], v[1], {c.s, c.s}, c.p, c.op, {c.d, c.d});
              },
              {x, k});
  }
  gradgradcheck("conv2d_transpose",
                [](const std::vector<Tensor>& v) {
                  return square(conv2d_transpose(v[0], v[1], {2, 2}, Padding::same));
                },
                {random_tensor({1, 3, 3, 2}, rng), random_tensor({3, 3, 2, 2}, rng)});
}

BOOST_AUTO_TEST_CASE(conv1d_transpose_is_the_2d_one_over_a_height_of_one) {
  Rng rng(3);
  const Tensor x = random_tensor({2, 6, 3}, rng), k = random_tensor({3, 4, 3}, rng);
  const Tensor y = conv1d_transpose(x, k, 2, Padding::valid);
  BOOST_TEST((y.shape() == Shape{2, 13, 4}));
  const Tensor y2 = conv2d_transpose(reshape(x, {2, 1, 6, 3}), reshape(k, {1, 3, 4, 3}), {1, 2});
  BOOST_TEST(y.to_vector() == y2.to_vector(), boost::test_tools::per_element());
  gradcheck("conv1d_transpose",
            [](const std::vector<Tensor>& v) {
              return conv1d_transpose(v[0], v[1], 2, Padding::same, 1);
            },
            {x, k});
}

BOOST_AUTO_TEST_CASE(depthwise_against_a_naive_loop) {
  Rng rng(4);
  struct Case {
    Shape x, k;
    int s;
    Padding p;
    int d;
  };
  for (const Case& c : {Case{{2, 6, 5, 3}, {3, 3, 3, 1}, 1, Padding::valid, 1},
                        Case{{2, 6, 5, 3}, {3, 3, 3, 3}, 2, Padding::same, 1},
                        Case{{1, 7, 7, 16}, {3, 3, 16, 1}, 1, Padding::same, 2},
                        Case{{1, 5, 6, 4}, {2, 3, 4, 2}, 2, Padding::valid, 1}}) {
    const Tensor x = random_tensor(c.x, rng), k = random_tensor(c.k, rng);
    Shape out;
    const std::vector<double> expected = naive_depthwise(x, k, c.s, c.p, c.d, out);
    const Tensor y = depthwise_conv2d(x, k, {c.s, c.s}, c.p, {c.d, c.d});
    check_values("depthwise " + shape_str(c.k), y, out, expected);
    gradcheck("depthwise grad " + shape_str(c.k),
              [&](const std::vector<Tensor>& v) {
                return depthwise_conv2d(v[0], v[1], {c.s, c.s}, c.p, {c.d, c.d});
              },
              {x, k});
  }
  gradgradcheck("depthwise_conv2d",
                [](const std::vector<Tensor>& v) {
                  return square(depthwise_conv2d(v[0], v[1], {1, 1}, Padding::same));
                },
                {random_tensor({1, 4, 4, 3}, rng), random_tensor({3, 3, 3, 2}, rng)});
  // 1-d: the 2-d one over a height of 1.
  const Tensor x1 = random_tensor({2, 9, 3}, rng), k1 = random_tensor({3, 3, 2}, rng);
  const Tensor y1 = depthwise_conv1d(x1, k1, 2, Padding::same);
  BOOST_TEST((y1.shape() == Shape{2, 5, 6}));
  const Tensor y2 =
      depthwise_conv2d(reshape(x1, {2, 1, 9, 3}), reshape(k1, {1, 3, 3, 2}), {1, 2}, Padding::same);
  BOOST_TEST(y1.to_vector() == y2.to_vector(), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(causal_conv1d_is_a_valid_convolution_of_the_input_padded_before) {
  Rng rng(5);
  const Tensor x = random_tensor({2, 7, 3}, rng), k = random_tensor({3, 3, 4}, rng);
  for (int dil : {1, 2})
    for (int stride : {1, 2}) {
      const Tensor y = conv1d(x, k, stride, Padding::causal, dil);
      const long pad = 2L * dil;
      const Tensor padded = concat({Tensor::zeros({2, static_cast<std::size_t>(pad), 3}), x}, 1);
      const Tensor ref = conv1d(padded, k, stride, Padding::valid, dil);
      BOOST_TEST((y.shape() == Shape{2, static_cast<std::size_t>((7 + stride - 1) / stride), 4}));
      BOOST_TEST(y.to_vector() == ref.to_vector(), boost::test_tools::per_element());
    }
  // Output t never sees inputs after t: changing the last step changes only the last output.
  Tensor x2 = x.clone();
  x2.data()[x2.size() - 1] += 1.f;
  const std::vector<float> a = conv1d(x, k, 1, Padding::causal).to_vector(),
                           b = conv1d(x2, k, 1, Padding::causal).to_vector();
  for (std::size_t i = 0; i < a.size(); ++i)
    if (i / 4 % 7 != 6) BOOST_TEST(a[i] == b[i]);
  gradcheck("causal conv1d",
            [](const std::vector<Tensor>& v) { return conv1d(v[0], v[1], 1, Padding::causal, 2); },
            {x, k});
}

BOOST_AUTO_TEST_CASE(errors_name_the_op_and_what_was_expected) {
  Rng rng(6);
  const Tensor x = random_tensor({1, 4, 4, 2}, rng);
  check_throws<std::invalid_argument>(
      "output_padding",
      [&] {
        conv2d_transpose(x, random_tensor({3, 3, 2, 2}, rng), {2, 2}, Padding::same, {2, 0});
      },
      {"conv2d_transpose", "output_padding 2", "stride 2"});
  check_throws<std::invalid_argument>("channels",
                                      [&] {
                                        conv2d_transpose(x, random_tensor({3, 3, 2, 5}, rng));
                                      },
                                      {"conv2d_transpose", "2 channels", "expects 5"});
  check_throws<std::invalid_argument>("depthwise channels",
                                      [&] {
                                        depthwise_conv2d(x, random_tensor({3, 3, 3, 1}, rng));
                                      },
                                      {"depthwise_conv2d", "2 channels", "expects 3"});
  check_throws<std::invalid_argument>("depthwise too small",
                                      [&] {
                                        depthwise_conv2d(x, random_tensor({5, 5, 2, 1}, rng));
                                      },
                                      {"depthwise_conv2d", "smaller than", "'valid'"});
  check_throws<std::invalid_argument>(
      "causal 2-d",
      [&] {
        conv2d(x, random_tensor({3, 3, 2, 2}, rng), {1, 1}, Padding::causal);
      },
      {"conv2d", "'causal'", "1-d"});
  check_throws<std::invalid_argument>("causal pool",
                                      [&] {
                                        max_pool2d(x, {2, 2}, {0, 0}, Padding::causal);
                                      },
                                      {"max_pool2d", "'causal'"});
}

BOOST_AUTO_TEST_CASE(grouped_conv_against_a_naive_loop_and_the_per_group_composition) {
  Rng rng(41);
  struct Case {
    Shape x, k;
    std::array<int, 2> s, d;
    Padding p;
    int groups;
  };
  for (const Case& c : {Case{{2, 7, 8, 12}, {3, 3, 3, 8}, {1, 1}, {1, 1}, Padding::same, 4},
                        Case{{1, 9, 7, 6}, {3, 2, 2, 9}, {2, 1}, {1, 2}, Padding::valid, 3},
                        Case{{2, 5, 6, 8}, {1, 1, 4, 6}, {1, 1}, {1, 1}, Padding::valid, 2},
                        Case{{1, 6, 6, 10}, {2, 2, 5, 4}, {2, 2}, {1, 1}, Padding::same, 2}}) {
    const std::string label = "grouped " + shape_str(c.k) + " groups " + std::to_string(c.groups);
    const Tensor x = random_tensor(c.x, rng), k = random_tensor(c.k, rng);
    Shape out;
    const std::vector<double> expected =
        naive_grouped(x, k, c.s, c.p, c.d, static_cast<std::size_t>(c.groups), out);
    const Tensor y = conv2d(x, k, c.s, c.p, c.d, c.groups);
    check_values(label, y, out, expected);
    // The per-group slices and concat the layer used before: the same values up to rounding.
    const long cg = static_cast<long>(c.k[2]), fg = static_cast<long>(c.k[3]) / c.groups;
    std::vector<Tensor> parts;
    for (long q = 0; q < c.groups; ++q)
      parts.push_back(conv2d(slice(x, 3, q * cg, (q + 1) * cg), slice(k, 3, q * fg, (q + 1) * fg),
                             c.s, c.p, c.d));
    const std::vector<float> composed = concat(parts, 3).to_vector();
    const std::vector<float> got = y.to_vector();
    for (std::size_t i = 0; i < got.size(); ++i)
      BOOST_TEST(std::abs(got[i] - composed[i]) <= 1e-6f * (1.f + std::abs(composed[i])), label);
    auto f = [c](const std::vector<Tensor>& v) {
      return conv2d(v[0], v[1], c.s, c.p, c.d, c.groups);
    };
    gradcheck(label, f, {x, k});
    gradgradcheck(label + " squared", [f](const std::vector<Tensor>& v) { return square(f(v)); },
                  {x, k});
  }
  // 1-d, causal included: the 2-d one over a height of 1.
  const Tensor x1 = random_tensor({2, 9, 6}, rng), k1 = random_tensor({3, 2, 9}, rng);
  for (Padding p : {Padding::same, Padding::causal}) {
    const Tensor y1 = conv1d(x1, k1, 1, p, 2, 3);
    const Tensor padded = p == Padding::causal ? concat({Tensor::zeros({2, 4, 6}), x1}, 1) : x1;
    Shape out;
    const std::vector<double> expected = naive_grouped(
        reshape(padded, {2, 1, static_cast<long>(padded.shape()[1]), 6}), reshape(k1, {1, 3, 2, 9}),
        {1, 1}, p == Padding::causal ? Padding::valid : p, {1, 2}, 3, out);
    check_values("grouped conv1d", y1, {out[0], out[2], out[3]}, expected);
  }
  gradgradcheck("grouped conv1d",
                [](const std::vector<Tensor>& v) {
                  return square(conv1d(v[0], v[1], 2, Padding::same, 1, 3));
                },
                {x1, k1});
  check_throws<std::invalid_argument>("grouped channels",
                                      [&] {
                                        conv2d(random_tensor({1, 4, 4, 6}, rng),
                                               random_tensor({3, 3, 4, 4}, rng), {1, 1},
                                               Padding::valid, {1, 1}, 2);
                                      },
                                      {"conv2d", "6 channels", "expects 4 x 2 groups"});
  check_throws<std::invalid_argument>("grouped filters",
                                      [&] {
                                        conv2d(random_tensor({1, 4, 4, 6}, rng),
                                               random_tensor({3, 3, 3, 5}, rng), {1, 1},
                                               Padding::valid, {1, 1}, 2);
                                      },
                                      {"conv2d", "5 filters", "2 groups"});
}

BOOST_AUTO_TEST_CASE(grouped_conv_is_bitwise_independent_of_the_thread_count) {
  Rng rng(42);
  const Tensor x0 = random_tensor({8, 20, 24, 24}, rng), k0 = random_tensor({3, 3, 6, 32}, rng);
  const Tensor p0 = random_tensor({1, 1, 6, 16}, rng);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor x = x0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true);
    Tensor pk = p0.clone().set_requires_grad(true);
    const Tensor y = conv2d(x, k, {1, 1}, Padding::same, {1, 1}, 4);
    const Tensor z = conv2d(x, pk, {1, 1}, Padding::valid, {1, 1}, 4);  // 1x1: no im2col
    sum(y * y).backward();
    sum(z * z).backward();
    omp_set_num_threads(before);
    return std::vector<std::vector<float>>{y.to_vector(), z.to_vector(), x.grad().to_vector(),
                                           k.grad().to_vector(), pk.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  for (std::size_t i = 0; i < one.size(); ++i)
    BOOST_TEST(one[i] == two[i], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
