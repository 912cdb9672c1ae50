// Tests of the convolution family beyond conv2d: transposed convolutions (Keras's output
// extents, values against a naive double-precision scatter), depthwise convolutions (against a
// naive loop, depth multipliers 1 and 3), causal conv1d (a valid convolution of the input padded
// before), their gradients and second derivatives, and their errors.
#include <boost/test/unit_test.hpp>
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
  const long total = std::max(0L, (static_cast<long>(small) - 1) * s + eff - static_cast<long>(big));
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
  const long eff_h = (static_cast<long>(ks[0]) - 1) * d + 1, eff_w = (static_cast<long>(ks[1]) - 1) * d + 1;
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
                if (h < 0 || w < 0 || h >= static_cast<long>(xs[1]) || w >= static_cast<long>(xs[2]))
                  continue;
                acc += double(x.data()[at4(xs, n, static_cast<std::size_t>(h),
                                           static_cast<std::size_t>(w), c)]) *
                       k.data()[at4(ks, i, j, c, m)];
              }
            y[at4(out, n, a, b, c * ks[3] + m)] = acc;
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
  for (const Case& c : {Case{{2, 2}, Padding::valid, {-1, -1}, 11, 9},
                        Case{{2, 2}, Padding::same, {-1, -1}, 10, 8},
                        Case{{1, 1}, Padding::same, {-1, -1}, 5, 4},
                        Case{{3, 2}, Padding::valid, {-1, -1}, 15, 9},
                        Case{{2, 2}, Padding::same, {1, 0}, 10, 7},
                        Case{{2, 2}, Padding::valid, {1, 1}, 12, 10}})
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
            [](const std::vector<Tensor>& v) { return conv1d_transpose(v[0], v[1], 2, Padding::same, 1); },
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
  const Tensor y2 = depthwise_conv2d(reshape(x1, {2, 1, 9, 3}), reshape(k1, {1, 3, 3, 2}), {1, 2},
                                     Padding::same);
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
      "output_padding", [&] { conv2d_transpose(x, random_tensor({3, 3, 2, 2}, rng), {2, 2}, Padding::same, {2, 0}); },
      {"conv2d_transpose", "output_padding 2", "stride 2"});
  check_throws<std::invalid_argument>(
      "channels", [&] { conv2d_transpose(x, random_tensor({3, 3, 2, 5}, rng)); },
      {"conv2d_transpose", "2 channels", "expects 5"});
  check_throws<std::invalid_argument>(
      "depthwise channels", [&] { depthwise_conv2d(x, random_tensor({3, 3, 3, 1}, rng)); },
      {"depthwise_conv2d", "2 channels", "expects 3"});
  check_throws<std::invalid_argument>(
      "depthwise too small", [&] { depthwise_conv2d(x, random_tensor({5, 5, 2, 1}, rng)); },
      {"depthwise_conv2d", "smaller than", "'valid'"});
  check_throws<std::invalid_argument>(
      "causal 2-d", [&] { conv2d(x, random_tensor({3, 3, 2, 2}, rng), {1, 1}, Padding::causal); },
      {"conv2d", "'causal'", "1-d"});
  check_throws<std::invalid_argument>(
      "causal pool", [&] { max_pool2d(x, {2, 2}, {0, 0}, Padding::causal); },
      {"max_pool2d", "'causal'"});
}

BOOST_AUTO_TEST_SUITE_END()
