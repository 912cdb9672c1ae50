// Tests for autodiff/ops/conv.cpp: conv2d and conv1d (NHWC, TensorFlow 'valid'/'same' semantics)
// against a naive double-precision loop, their gradients, parse_padding and shape errors.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "kernels/workspace.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::GradcheckOptions;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;

// TensorFlow's output extent and leading pad of one axis, written out independently.
void tf_axis(long in, long k, long stride, long dil, bool same, long& out, long& pad_before) {
  const long eff = (k - 1) * dil + 1;
  if (same) {
    out = (in + stride - 1) / stride;
    const long total = std::max(0L, (out - 1) * stride + eff - in);
    pad_before = total / 2;  // the odd pixel goes at the bottom/right
  } else {
    out = (in - eff) / stride + 1;
    pad_before = 0;
  }
}

// Naive conv2d in double: input (n,h,w,ci), kernel (kh,kw,ci,co).
std::vector<double> conv2d_reference(const Tensor& x, const Tensor& k, long sh, long sw, bool same,
                                     long dh, long dw, Shape& out_shape) {
  const long n = static_cast<long>(x.dim(0)), h = static_cast<long>(x.dim(1)),
             w = static_cast<long>(x.dim(2)), ci = static_cast<long>(x.dim(3));
  const long kh = static_cast<long>(k.dim(0)), kw = static_cast<long>(k.dim(1)),
             co = static_cast<long>(k.dim(3));
  long oh, ow, pt, pl;
  tf_axis(h, kh, sh, dh, same, oh, pt);
  tf_axis(w, kw, sw, dw, same, ow, pl);
  out_shape = {static_cast<std::size_t>(n), static_cast<std::size_t>(oh),
               static_cast<std::size_t>(ow), static_cast<std::size_t>(co)};
  std::vector<double> out(static_cast<std::size_t>(n * oh * ow * co), 0.0);
  for (long b = 0; b < n; ++b)
    for (long oy = 0; oy < oh; ++oy)
      for (long ox = 0; ox < ow; ++ox)
        for (long f = 0; f < co; ++f) {
          double s = 0.0;
          for (long ky = 0; ky < kh; ++ky)
            for (long kx = 0; kx < kw; ++kx) {
              const long iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (long c = 0; c < ci; ++c)
                s += static_cast<double>(x.data()[((b * h + iy) * w + ix) * ci + c]) *
                     k.data()[((ky * kw + kx) * ci + c) * co + f];
            }
          out[static_cast<std::size_t>(((b * oh + oy) * ow + ox) * co + f)] = s;
        }
  return out;
}

struct ConvCase {
  Shape input, kernel;
  int sh, sw;
  bool same;
  int dh, dw;
  const char* name;
};

// Small cases, checked element by element.
const std::vector<ConvCase> kSmall = {
    {{1, 5, 5, 1}, {3, 3, 1, 1}, 1, 1, false, 1, 1, "valid 1->1"},
    {{1, 5, 5, 1}, {3, 3, 1, 1}, 1, 1, true, 1, 1, "same 1->1"},
    {{2, 6, 5, 3}, {3, 2, 3, 2}, 1, 1, false, 1, 1, "valid batch 2, 3->2, 3x2 kernel"},
    {{2, 5, 6, 2}, {3, 3, 2, 3}, 1, 1, true, 1, 1, "same batch 2, 2->3"},
    {{1, 7, 7, 2}, {3, 3, 2, 2}, 2, 2, false, 1, 1, "valid stride 2"},
    {{1, 6, 7, 2}, {3, 3, 2, 2}, 2, 2, true, 1, 1, "same stride 2 (odd pad)"},
    {{1, 5, 5, 1},
     {2, 2, 1, 3},
     2,
     2,
     true,
     1,
     1,
     "same stride 2, 2x2 kernel (pad bottom/right only)"},
    {{1, 7, 8, 2}, {3, 3, 2, 2}, 1, 1, false, 2, 2, "valid dilation 2"},
    {{1, 6, 6, 2}, {3, 3, 2, 1}, 1, 1, true, 2, 2, "same dilation 2"},
    {{2, 7, 6, 1}, {2, 3, 1, 4}, 2, 1, true, 1, 2, "same, strides (2,1), dilation (1,2)"},
    {{1, 4, 4, 5}, {1, 1, 5, 3}, 1, 1, false, 1, 1, "1x1 kernel 5->3"},
    {{3, 4, 4, 4}, {4, 4, 4, 2}, 1, 1, false, 1, 1, "kernel as large as the input"},
    {{1, 8, 8, 1}, {3, 3, 1, 2}, 3, 3, true, 1, 1, "same stride 3"},
    // Dilated windows wider than the padded image: some taps read only padding (dropped).
    {{2, 5, 6, 2},
     {4, 3, 2, 3},
     1,
     1,
     true,
     4,
     6,
     "same dilation (4, 6): outer taps read only padding"},
    {{1, 7, 7, 1},
     {3, 3, 1, 2},
     2,
     2,
     true,
     7,
     3,
     "same stride 2 dilation (7, 3): top and bottom taps dead"},
    {{1, 5, 5, 1}, {3, 3, 1, 3}, 1, 1, true, 5, 5, "same dilation 5 on 5x5: the centre tap only"},
    {{1, 1, 5, 1},
     {2, 1, 1, 2},
     1,
     1,
     true,
     3,
     1,
     "same dilation 3 on height 1: every tap dead (zeros)"},
};

// Larger cases (forward only, or directional gradcheck): the kernels' fast paths.
const std::vector<ConvCase> kLarge = {
    {{2, 13, 13, 8}, {3, 3, 8, 16}, 1, 1, false, 1, 1, "(2,13,13,8) x (3,3,8,16) valid"},
    {{2, 13, 13, 8}, {3, 3, 8, 16}, 1, 1, true, 1, 1, "(2,13,13,8) x (3,3,8,16) same"},
    {{4, 28, 28, 1}, {3, 3, 1, 32}, 1, 1, false, 1, 1, "mnist conv1 (4,28,28,1) x (3,3,1,32)"},
    {{2, 26, 26, 32}, {3, 3, 32, 64}, 1, 1, false, 1, 1, "mnist conv2 (2,26,26,32) x (3,3,32,64)"},
    {{3, 28, 28, 3}, {5, 5, 3, 7}, 2, 2, true, 1, 1, "(3,28,28,3) x (5,5,3,7) same stride 2"},
    {{2, 17, 19, 5},
     {3, 3, 5, 6},
     1,
     2,
     true,
     2,
     1,
     "(2,17,19,5) x (3,3,5,6) mixed strides and dilation"},
};

Tensor run_conv(const ConvCase& c, const Tensor& x, const Tensor& k) {
  return conv2d(x, k, {c.sh, c.sw}, c.same ? Padding::same : Padding::valid, {c.dh, c.dw});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conv)

BOOST_AUTO_TEST_CASE(parse_padding_names) {
  BOOST_TEST((parse_padding("valid", "Conv2D") == Padding::valid));
  BOOST_TEST((parse_padding("same", "Conv2D") == Padding::same));
  BOOST_TEST((parse_padding("SAME", "Conv2D") == Padding::same));
  BOOST_TEST((parse_padding("Valid", "Conv2D") == Padding::valid));
  check_throws<std::invalid_argument>("unknown padding", [] { parse_padding("full", "Conv2D"); },
                                      {"Conv2D", "full", "valid", "same"});
  check_throws<std::invalid_argument>("causal padding",
                                      [] { parse_padding("causal", "MaxPooling2D"); },
                                      {"MaxPooling2D", "causal"});
}

BOOST_AUTO_TEST_CASE(same_padding_shapes_like_keras) {
  // 28x28 stride 2 'same' -> 14x14; 'valid' 3x3 stride 2 -> 13x13.
  const Tensor x28({1, 28, 28, 1}, 1.f), k3({3, 3, 1, 4}, 1.f);
  BOOST_TEST((conv2d(x28, k3, {2, 2}, Padding::same).shape() == Shape{1, 14, 14, 4}));
  BOOST_TEST((conv2d(x28, k3, {2, 2}, Padding::valid).shape() == Shape{1, 13, 13, 4}));
  BOOST_TEST((conv2d(x28, k3, {1, 1}, Padding::same).shape() == Shape{1, 28, 28, 4}));
  BOOST_TEST((conv2d(x28, k3).shape() == Shape{1, 26, 26, 4}));
  // 5x5 stride 2 'same' -> 3x3; stride 3 -> 2x2; dilation 2 'valid' -> 1x1.
  const Tensor x5({1, 5, 5, 1}, 1.f), k31({3, 3, 1, 1}, 1.f);
  BOOST_TEST((conv2d(x5, k31, {2, 2}, Padding::same).shape() == Shape{1, 3, 3, 1}));
  BOOST_TEST((conv2d(x5, k31, {3, 3}, Padding::same).shape() == Shape{1, 2, 2, 1}));
  BOOST_TEST((conv2d(x5, k31, {1, 1}, Padding::valid, {2, 2}).shape() == Shape{1, 1, 1, 1}));
  BOOST_TEST(
      (conv2d(Tensor({2, 7, 9, 1}, 1.f), k31, {2, 3}, Padding::same).shape() == Shape{2, 4, 3, 1}));
}

BOOST_AUTO_TEST_CASE(same_padding_puts_the_extra_pixel_bottom_right) {
  // 5x5 input, 2x2 kernel of ones, stride 2, 'same': output 3x3, total pad 1 per axis, all of it
  // at the bottom/right (TensorFlow). Output (0,0) sums x[0:2, 0:2]; the last row/column sees
  // the last input row/column and a zero pad.
  Tensor x({1, 5, 5, 1}, 0.f);
  for (std::size_t i = 0; i < 25; ++i) x.data()[i] = static_cast<float>(i);
  const Tensor k({2, 2, 1, 1}, 1.f);
  check_values("5x5 * 2x2 stride 2 same", conv2d(x, k, {2, 2}, Padding::same), {1, 3, 3, 1},
               {0 + 1 + 5 + 6, 2 + 3 + 7 + 8, 4 + 9,            //
                10 + 11 + 15 + 16, 12 + 13 + 17 + 18, 14 + 19,  //
                20 + 21, 22 + 23, 24},
               0, 0);
  // 3x3 kernel, stride 2, 'same' on 5x5: pad 1 on each side.
  const Tensor k3({3, 3, 1, 1}, 1.f);
  check_values("5x5 * 3x3 stride 2 same", conv2d(x, k3, {2, 2}, Padding::same), {1, 3, 3, 1},
               {0 + 1 + 5 + 6, 1 + 2 + 3 + 6 + 7 + 8, 3 + 4 + 8 + 9,  //
                5 + 6 + 10 + 11 + 15 + 16, 6 + 7 + 8 + 11 + 12 + 13 + 16 + 17 + 18,
                8 + 9 + 13 + 14 + 18 + 19,  //
                15 + 16 + 20 + 21, 16 + 17 + 18 + 21 + 22 + 23, 18 + 19 + 23 + 24},
               0, 0);
  // Valid hand case with a non-symmetric kernel (cross-correlation, not flipped).
  const Tensor kk({2, 2, 1, 1}, {1.f, 2.f, 3.f, 4.f});
  const Tensor x3({1, 3, 3, 1}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f});
  check_values("3x3 * 2x2 valid", conv2d(x3, kk), {1, 2, 2, 1},
               {1 + 4 + 12 + 20, 2 + 6 + 15 + 24, 4 + 10 + 21 + 32, 5 + 12 + 24 + 36}, 0, 0);
}

BOOST_AUTO_TEST_CASE(forward_against_reference) {
  Rng rng(1);
  for (const auto* cases : {&kSmall, &kLarge})
    for (const ConvCase& c : *cases) {
      const Tensor x = random_tensor(c.input, rng), k = random_tensor(c.kernel, rng);
      Shape out;
      const std::vector<double> ref = conv2d_reference(x, k, c.sh, c.sw, c.same, c.dh, c.dw, out);
      check_values(std::string("conv2d ") + c.name, run_conv(c, x, k), out, ref, 1e-4, 1e-4);
    }
}

BOOST_AUTO_TEST_CASE(gradients_small) {
  Rng rng(2);
  for (const ConvCase& c : kSmall)
    gradcheck(std::string("conv2d ") + c.name, [c](In in) { return run_conv(c, in[0], in[1]); },
              {random_tensor(c.input, rng), random_tensor(c.kernel, rng)});
  // Gradient w.r.t. one operand only (a frozen kernel, a constant input).
  const Tensor k = random_tensor({3, 3, 2, 2}, rng), x = random_tensor({1, 5, 5, 2}, rng);
  gradcheck("conv2d input only",
            [k](In in) {
              return conv2d(in[0], k, {1, 1}, Padding::same);
            },
            {random_tensor({1, 5, 5, 2}, rng)});
  gradcheck("conv2d kernel only",
            [x](In in) {
              return conv2d(x, in[0], {2, 2}, Padding::same);
            },
            {random_tensor({3, 3, 2, 2}, rng)});
}

BOOST_AUTO_TEST_CASE(huge_dilations_cost_no_more_than_the_output) {
  // A 3x3 kernel dilated by 10^7 (2^30, 2^31 - 1) over a 5x5 image, 'same' padding: each
  // output reads its centre tap, the other taps read only padding. This used to allocate
  // 1.9 GB of scratch and take seconds, and for 2^30 to abort the process (std::bad_alloc
  // thrown inside an OpenMP region).
  Rng rng(6);
  for (int d : {10'000'000, 1 << 30, 2147483647})
    for (std::size_t cin : {1, 3}) {
      const Tensor x = random_tensor({2, 5, 5, cin}, rng), k = random_tensor({3, 3, cin, 4}, rng);
      xtape::kernels::release_scratch();
      Shape out;
      const std::vector<double> ref = conv2d_reference(x, k, 1, 1, true, d, d, out);
      const std::string label =
          "dilation " + std::to_string(d) + ", " + std::to_string(cin) + " channels";
      check_values(label, conv2d(x, k, {1, 1}, Padding::same, {d, d}), out, ref, 1e-5, 1e-5);
      BOOST_TEST(xtape::kernels::scratch_bytes() < (std::size_t{1} << 20), label);
      gradcheck(label,
                [d](In in) {
                  return conv2d(in[0], in[1], {1, 1}, Padding::same, {d, d});
                },
                {x, k});
    }
}

BOOST_AUTO_TEST_CASE(gradients_real_size_directional) {
  Rng rng(3);
  GradcheckOptions opt;
  opt.directions = 8;
  for (const ConvCase& c : kLarge) {
    if (c.input[3] * c.kernel[3] > 16 * 8 * 8) continue;  // keep the suite fast
    gradcheck(
        std::string("conv2d ") + c.name, [c](In in) { return run_conv(c, in[0], in[1]); },
        {random_tensor(c.input, rng), random_tensor(c.kernel, rng)}, opt);
  }
}

BOOST_AUTO_TEST_CASE(conv1d_values_and_gradients) {
  Rng rng(4);
  struct Case1 {
    Shape input, kernel;
    int stride;
    bool same;
    int dilation;
    const char* name;
  };
  const std::vector<Case1> cases = {
      {{2, 9, 3}, {3, 3, 2}, 1, false, 1, "valid"},
      {{2, 9, 3}, {3, 3, 2}, 1, true, 1, "same"},
      {{1, 10, 2}, {4, 2, 3}, 2, true, 1, "same stride 2"},
      {{1, 11, 2}, {3, 2, 2}, 3, false, 1, "valid stride 3"},
      {{2, 10, 1}, {3, 1, 2}, 1, false, 2, "valid dilation 2"},
      {{1, 9, 2}, {2, 2, 2}, 1, true, 3, "same dilation 3"},
  };
  for (const Case1& c : cases) {
    const Tensor x = random_tensor(c.input, rng), k = random_tensor(c.kernel, rng);
    const Padding p = c.same ? Padding::same : Padding::valid;
    // Reference: a 1-d loop.
    const long n = static_cast<long>(c.input[0]), w = static_cast<long>(c.input[1]),
               ci = static_cast<long>(c.input[2]);
    const long kw = static_cast<long>(c.kernel[0]), co = static_cast<long>(c.kernel[2]);
    long ow, pl;
    tf_axis(w, kw, c.stride, c.dilation, c.same, ow, pl);
    std::vector<double> ref(static_cast<std::size_t>(n * ow * co), 0.0);
    for (long b = 0; b < n; ++b)
      for (long o = 0; o < ow; ++o)
        for (long f = 0; f < co; ++f) {
          double s = 0.0;
          for (long t = 0; t < kw; ++t) {
            const long i = o * c.stride - pl + t * c.dilation;
            if (i < 0 || i >= w) continue;
            for (long ch = 0; ch < ci; ++ch)
              s += static_cast<double>(x.data()[(b * w + i) * ci + ch]) *
                   k.data()[(t * ci + ch) * co + f];
          }
          ref[static_cast<std::size_t>((b * ow + o) * co + f)] = s;
        }
    check_values(std::string("conv1d ") + c.name, conv1d(x, k, c.stride, p, c.dilation),
                 {c.input[0], static_cast<std::size_t>(ow), c.kernel[2]}, ref, 1e-5, 1e-5);
    gradcheck(std::string("conv1d ") + c.name,
              [c, p](In in) { return conv1d(in[0], in[1], c.stride, p, c.dilation); }, {x, k});
  }
  BOOST_TEST((conv1d(Tensor({1, 28, 2}, 1.f), Tensor({3, 2, 4}, 1.f), 2, Padding::same).shape() ==
              Shape{1, 14, 4}));
}

BOOST_AUTO_TEST_CASE(errors_name_op_and_shapes) {
  const Tensor x({1, 28, 28, 3}, 1.f), k({3, 3, 1, 32}, 1.f);
  check_throws<std::invalid_argument>("conv2d channel mismatch", [&] { conv2d(x, k); },
                                      {"conv2d", "(1, 28, 28, 3)", "(3, 3, 1, 32)"});
  const Tensor k3({3, 3, 3, 8}, 1.f);
  check_throws<std::invalid_argument>("conv2d zero stride",
                                      [&] {
                                        conv2d(x, k3, {0, 1});
                                      },
                                      {"conv2d", "stride"});
  check_throws<std::invalid_argument>("conv2d negative stride",
                                      [&] {
                                        conv2d(x, k3, {1, -2});
                                      },
                                      {"conv2d", "stride"});
  check_throws<std::invalid_argument>("conv2d zero dilation",
                                      [&] {
                                        conv2d(x, k3, {1, 1}, Padding::valid, {0, 1});
                                      },
                                      {"conv2d", "dilation"});
  check_throws<std::invalid_argument>("conv2d input rank 3",
                                      [&] {
                                        conv2d(Tensor({28, 28, 3}, 1.f), k3);
                                      },
                                      {"conv2d", "(28, 28, 3)"});
  check_throws<std::invalid_argument>("conv2d kernel rank 3",
                                      [&] {
                                        conv2d(x, Tensor({3, 3, 3}, 1.f));
                                      },
                                      {"conv2d", "(3, 3, 3)"});
  check_throws<std::invalid_argument>("conv2d input smaller than kernel",
                                      [&] {
                                        conv2d(Tensor({1, 2, 5, 3}, 1.f), k3);
                                      },
                                      {"conv2d", "(1, 2, 5, 3)", "(3, 3, 3, 8)"});
  check_throws<std::invalid_argument>(
      "conv2d dilated kernel larger than input",
      [&] {
        conv2d(Tensor({1, 4, 4, 3}, 1.f), k3, {1, 1}, Padding::valid, {2, 2});
      },
      {"conv2d", "(1, 4, 4, 3)"});
  check_throws<std::invalid_argument>("conv1d channel mismatch",
                                      [] {
                                        conv1d(Tensor({2, 10, 3}, 1.f), Tensor({3, 2, 4}, 1.f));
                                      },
                                      {"conv1d", "(2, 10, 3)", "(3, 2, 4)"});
  check_throws<std::invalid_argument>("conv1d zero stride",
                                      [] {
                                        conv1d(Tensor({2, 10, 3}, 1.f), Tensor({3, 3, 4}, 1.f), 0);
                                      },
                                      {"conv1d", "stride"});
  check_throws<std::invalid_argument>(
      "conv1d zero dilation",
      [] {
        conv1d(Tensor({2, 10, 3}, 1.f), Tensor({3, 3, 4}, 1.f), 1, Padding::valid, 0);
      },
      {"conv1d", "dilation"});
  // Sizes: a 4 MiB input and a 16 MiB kernel whose result would be 16 PiB; windows and
  // extents of 2^62 or more (possible for empty tensors) would overflow the kernels' offsets.
  check_throws<std::length_error>(
      "conv2d result too large",
      [] {
        conv2d(Tensor({1, 1024, 1024, 1}, 1.f), Tensor({1, 1, 1, std::size_t{1} << 22}, 1.f));
      },
      {"conv2d", "(1, 1024, 1024, 4194304)", "memory"});
  check_throws<std::length_error>("conv2d dilated window of 2^70 positions",
                                  [] {
                                    conv2d(Tensor({1, 5, 5, 0}, 0.f),
                                           Tensor({std::size_t{1} << 40, 1, 0, 1}, 0.f), {1, 1},
                                           Padding::same, {1 << 30, 1});
                                  },
                                  {"conv2d", "dilation 1073741824"});
  check_throws<std::length_error>(
      "conv2d extent of 2^62",
      [] {
        conv2d(Tensor({0, std::size_t{1} << 62, 1, 1}, 0.f), Tensor({1, 1, 1, 1}, 1.f));
      },
      {"conv2d", "4611686018427387904"});
  check_throws<std::invalid_argument>("conv1d input rank 4",
                                      [] {
                                        conv1d(Tensor({2, 10, 3, 1}, 1.f), Tensor({3, 3, 4}, 1.f));
                                      },
                                      {"conv1d", "(2, 10, 3, 1)"});
}

BOOST_AUTO_TEST_CASE(zero_size_inputs_and_kernels) {
  const auto conv = [](In in) { return conv2d(in[0], in[1]); };
  const auto same = [](In in) { return conv2d(in[0], in[1], {1, 1}, Padding::same); };
  check_zero_size("batch 0", conv, {Tensor({0, 5, 5, 2}, 1.f), Tensor({3, 3, 2, 4}, 1.f)},
                  {0, 3, 3, 4});
  check_zero_size("0 filters", conv, {Tensor({2, 5, 5, 2}, 1.f), Tensor({3, 3, 2, 0}, 1.f)},
                  {2, 3, 3, 0});
  check_zero_size("height 0, same", same, {Tensor({2, 0, 5, 2}, 1.f), Tensor({3, 3, 2, 4}, 1.f)},
                  {2, 0, 5, 4});
  // 0 input channels: sums of no terms (it used to index the kernel out of bounds).
  for (int filters : {4, 16, 37}) {
    const std::size_t f = static_cast<std::size_t>(filters);
    Tensor y =
        check_zero_size("0 input channels", conv,
                        {Tensor({2, 5, 5, 0}, 1.f), Tensor({3, 3, 0, f}, 1.f)}, {2, 3, 3, f});
    BOOST_TEST(y.to_vector() == std::vector<float>(y.size(), 0.f),
               boost::test_tools::per_element());
    // Through bias + relu (the fused epilogue when the conv is pending): relu(0 + b).
    Tensor b = Tensor::empty({f});
    for (std::size_t i = 0; i < f; ++i) b.data()[i] = static_cast<float>(i % 3) - 1.f;
    const Tensor z = relu(
        conv2d(Tensor({1, 4, 4, 0}, 1.f), Tensor({3, 3, 0, f}, 1.f), {1, 1}, Padding::same) + b);
    BOOST_TEST_REQUIRE((z.shape() == Shape{1, 4, 4, f}));
    for (std::size_t i = 0; i < z.size(); ++i)
      BOOST_TEST(z.data()[i] == std::max(0.f, b.data()[i % f]));
  }
  const auto c1 = [](In in) { return conv1d(in[0], in[1]); };
  check_zero_size("conv1d batch 0", c1, {Tensor({0, 9, 3}, 1.f), Tensor({3, 3, 2}, 1.f)},
                  {0, 7, 2});
  check_zero_size("conv1d 0 channels", c1, {Tensor({2, 9, 0}, 1.f), Tensor({3, 0, 2}, 1.f)},
                  {2, 7, 2});
  check_zero_size("conv1d 0 filters", c1, {Tensor({2, 9, 3}, 1.f), Tensor({3, 3, 0}, 1.f)},
                  {2, 7, 0});
}

BOOST_AUTO_TEST_SUITE_END()
