// Tests for autodiff/ops/resize.cpp: upsample2d (nearest and bilinear) against double reference
// loops, gradients of first and second order by finite differences, NaN reaching only the
// outputs that read it, the same bits on 1 and 2 threads, and errors.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "autodiff/ops.hpp"
#include "kernels/threads.hpp"
#include "support/gradcheck.hpp"
#include "support/thread_bits.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;
using xtape::testing::random_tensor;

namespace {

// The half-pixel source weights of output o on an axis of extent d upsampled by s, in double:
// (index, weight) pairs, the ends clamped.
std::vector<std::pair<std::size_t, double>> taps(std::size_t o, std::size_t d, std::size_t s) {
  const double src = (o + 0.5) / static_cast<double>(s) - 0.5;
  const double lo = std::floor(src), frac = src - lo;
  auto clamp = [&](double i) {
    return static_cast<std::size_t>(std::min(std::max(i, 0.0), static_cast<double>(d - 1)));
  };
  return {{clamp(lo), 1.0 - frac}, {clamp(lo + 1), frac}};
}

std::vector<double> reference_upsample(const Tensor& x, std::size_t sh, std::size_t sw,
                                       bool bilinear) {
  const Shape& s = x.shape();
  const std::size_t n = s[0], h = s[1], w = s[2], c = s[3], oh = h * sh, ow = w * sw;
  const float* v = x.data();
  std::vector<double> y(n * oh * ow * c, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t a = 0; a < oh; ++a)
      for (std::size_t b = 0; b < ow; ++b)
        for (std::size_t k = 0; k < c; ++k) {
          double& out = y[((i * oh + a) * ow + b) * c + k];
          if (!bilinear) {
            out = v[((i * h + a / sh) * w + b / sw) * c + k];
            continue;
          }
          for (const auto& [r, wr] : taps(a, h, sh))
            for (const auto& [q, wq] : taps(b, w, sw))
              if (wr * wq != 0.0) out += wr * wq * v[((i * h + r) * w + q) * c + k];
        }
  return y;
}

using xtape::testing::check_thread_independent;

}  // namespace

BOOST_AUTO_TEST_SUITE(resize_ops)

BOOST_AUTO_TEST_CASE(upsample2d_values) {
  Rng rng(51);
  struct Case {
    Shape shape;
    std::size_t sh, sw;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 4, 5}, 2, 2},
                                         {{1, 4, 3, 1}, 3, 2},
                                         {{2, 1, 5, 3}, 1, 3},
                                         {{1, 5, 1, 2}, 4, 1},
                                         {{3, 6, 7, 32}, 2, 2},
                                         {{1, 2, 2, 4}, 1, 1}})
    for (const char* mode : {"nearest", "bilinear"}) {
      const Tensor x = random_tensor(c.shape, rng, -2.f, 2.f);
      const Shape os{c.shape[0], c.shape[1] * c.sh, c.shape[2] * c.sw, c.shape[3]};
      check_values(std::string("upsample2d ") + mode + " " + shape_str(c.shape) + " by (" +
                       std::to_string(c.sh) + ", " + std::to_string(c.sw) + ")",
                   upsample2d(x, {c.sh, c.sw}, mode), os,
                   reference_upsample(x, c.sh, c.sw, std::string(mode) == "bilinear"), 1e-6, 1e-6);
    }
  check_throws<std::invalid_argument>("upsample2d rank",
                                      [] {
                                        upsample2d(Tensor({2, 3, 4}, 1.f), {2, 2});
                                      },
                                      {"upsample2d", "rank 4", "(2, 3, 4)"});
  check_throws<std::invalid_argument>("upsample2d size",
                                      [] {
                                        upsample2d(Tensor({1, 2, 2, 1}, 1.f), {0, 2});
                                      },
                                      {"upsample2d", "(0, 2)"});
  check_throws<std::invalid_argument>("upsample2d interpolation",
                                      [] {
                                        upsample2d(Tensor({1, 2, 2, 1}, 1.f), {2, 2}, "area");
                                      },
                                      {"upsample2d", "'area'"});
}

BOOST_AUTO_TEST_CASE(upsample2d_gradients) {
  Rng rng(52);
  for (const char* mode : {"nearest", "bilinear"}) {
    const std::string m = mode;
    gradcheck("upsample2d " + m,
              [m](const std::vector<Tensor>& in) {
                return upsample2d(in[0], {2, 3}, m);
              },
              {random_tensor({2, 3, 4, 2}, rng)});
    gradcheck("upsample2d " + m + " large",
              [m](const std::vector<Tensor>& in) {
                return upsample2d(in[0], {2, 2}, m);
              },
              {random_tensor({2, 9, 8, 6}, rng)});
    // The backward is linear: its own gradient (the upsampling again) through create_graph.
    gradgradcheck("upsample2d " + m,
                  [m](const std::vector<Tensor>& in) {
                    return square(upsample2d(in[0], {3, 2}, m));
                  },
                  {random_tensor({1, 3, 3, 2}, rng)});
  }
}

BOOST_AUTO_TEST_CASE(upsample2d_nan_and_threads) {
  // A NaN pixel reaches only the outputs that read it: its own block (nearest), the outputs
  // within one source pixel of it (bilinear); gradients likewise.
  Rng rng(53);
  std::vector<float> v = random_tensor({1, 4, 4, 1}, rng).to_vector();
  v[1 * 4 + 1] = std::numeric_limits<float>::quiet_NaN();
  for (const char* mode : {"nearest", "bilinear"}) {
    const Tensor x(Shape{1, 4, 4, 1}, v);
    const Tensor y = upsample2d(x, {2, 2}, mode);
    const std::vector<float> yv = y.to_vector();
    std::size_t nan = 0;
    for (std::size_t a = 0; a < 8; ++a)
      for (std::size_t b = 0; b < 8; ++b) {
        const bool is_nan = std::isnan(yv[a * 8 + b]);
        nan += is_nan;
        // Nearest: rows/cols 2..3; bilinear: sources within (0, 2) of pixel 1, rows/cols 1..4.
        const bool expect = std::string(mode) == "nearest" ? (a / 2 == 1 && b / 2 == 1)
                                                           : (a >= 1 && a <= 4 && b >= 1 && b <= 4);
        BOOST_TEST(is_nan == expect, mode << " output " << a << ", " << b);
      }
    BOOST_TEST(nan > 0u);
    Tensor g = Tensor(Shape{1, 4, 4, 1}, 1.f).set_requires_grad(true);
    std::vector<float> gy(64, 1.f);
    gy[5 * 8 + 5] = std::numeric_limits<float>::quiet_NaN();
    sum(upsample2d(g, {2, 2}, mode) * Tensor(Shape{1, 8, 8, 1}, gy)).backward();
    const std::vector<float> dx = g.grad().to_vector();
    for (std::size_t i = 0; i < 16; ++i) {
      const std::size_t a = i / 4, b = i % 4;
      const bool expect = std::string(mode) == "nearest" ? (a == 2 && b == 2)
                                                         : (a >= 2 && a <= 3 && b >= 2 && b <= 3);
      BOOST_TEST(std::isnan(dx[i]) == expect, mode << " gradient " << a << ", " << b);
    }
  }
  const Tensor bx = random_tensor({4, 40, 40, 32}, rng), bw = random_tensor({4, 80, 80, 32}, rng);
  for (const char* mode : {"nearest", "bilinear"})
    check_thread_independent(std::string("upsample2d ") + mode, [&] {
      Tensor x = bx.clone().set_requires_grad(true);
      const Tensor y = upsample2d(x, {2, 2}, mode);
      sum(y * bw).backward();
      return std::vector<Tensor>{y, x.grad()};
    });
}

BOOST_AUTO_TEST_CASE(upsample2d_on_empty_batches) {
  xtape::testing::check_zero_size("upsample2d batch 0",
                                  [](const std::vector<Tensor>& in) {
                                    return upsample2d(in[0], {2, 2}, "bilinear");
                                  },
                                  {Tensor(Shape{0, 3, 2, 4})}, {0, 6, 4, 4});
}

BOOST_AUTO_TEST_SUITE_END()
