// depthwise_conv2d / depthwise_conv1d (autodiff/ops/depthwise.cpp, kernels/depthwise.cpp): the
// output and both gradients against naive double-precision loops over geometries that reach
// every path of the kernels (interior tiles, borders, strides, dilation, 'same' and 'valid',
// depth multipliers, channel counts that are not a multiple of the SIMD width, kernels wider
// than three taps), finite-difference gradients and second derivatives, NaN propagation, and
// bitwise equality on 1 and 2 threads.
#include <omp.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;
using xtape::testing::random_tensor;

namespace {

struct Geometry {
  Shape x, k;  // (n, h, w, c), (kh, kw, c, mult)
  std::array<int, 2> s, d;
  Padding p;
};

struct Naive {
  Shape out;
  std::vector<double> y, gx, gk;  // output, and the gradients of sum(y * w)
};

// TensorFlow's output extent and leading pad of one axis.
std::pair<long, long> axis(long in, long k, long s, long d, Padding p) {
  const long eff = (k - 1) * d + 1;
  if (p == Padding::valid) return {(in - eff) / s + 1, 0};
  const long out = (in + s - 1) / s;
  return {out, std::max(0L, (out - 1) * s + eff - in) / 2};
}

// y[n, a, b, c * mult + m] = sum_ij x[n, a * s - pt + i * d, b * s - pl + j * d, c] k[i, j, c, m]
// and its adjoints for the output gradient w, in double.
Naive naive(const Tensor& x, const Tensor& k, const Geometry& g, const std::vector<float>& w) {
  const Shape &xs = x.shape(), &ks = k.shape();
  const long H = static_cast<long>(xs[1]), Wd = static_cast<long>(xs[2]);
  const long C = static_cast<long>(xs[3]), M = static_cast<long>(ks[3]);
  const long KH = static_cast<long>(ks[0]), KW = static_cast<long>(ks[1]);
  const auto [oh, pt] = axis(H, KH, g.s[0], g.d[0], g.p);
  const auto [ow, pl] = axis(Wd, KW, g.s[1], g.d[1], g.p);
  Naive r;
  r.out = {xs[0], static_cast<std::size_t>(oh), static_cast<std::size_t>(ow),
           static_cast<std::size_t>(C * M)};
  r.y.assign(shape_size(r.out), 0.0);
  r.gx.assign(x.size(), 0.0);
  r.gk.assign(k.size(), 0.0);
  const float *xd = x.data(), *kd = k.data();
  for (long n = 0; n < static_cast<long>(xs[0]); ++n)
    for (long a = 0; a < oh; ++a)
      for (long b = 0; b < ow; ++b)
        for (long c = 0; c < C; ++c)
          for (long m = 0; m < M; ++m) {
            const long o = ((n * oh + a) * ow + b) * C * M + c * M + m;
            for (long i = 0; i < KH; ++i)
              for (long j = 0; j < KW; ++j) {
                const long h = a * g.s[0] - pt + i * g.d[0], v = b * g.s[1] - pl + j * g.d[1];
                if (h < 0 || v < 0 || h >= H || v >= Wd) continue;
                const long xi = ((n * H + h) * Wd + v) * C + c, ki = ((i * KW + j) * C + c) * M + m;
                r.y[static_cast<std::size_t>(o)] += double(xd[xi]) * kd[ki];
                r.gx[static_cast<std::size_t>(xi)] +=
                    double(w[static_cast<std::size_t>(o)]) * kd[ki];
                r.gk[static_cast<std::size_t>(ki)] +=
                    double(w[static_cast<std::size_t>(o)]) * xd[xi];
              }
          }
  return r;
}

std::vector<float> random_values(std::size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (float& e : v) e = rng.uniform(-1.f, 1.f);
  return v;
}

const std::vector<Geometry>& geometries() {
  static const std::vector<Geometry> all = {
      {{2, 7, 9, 13}, {3, 3, 13, 1}, {1, 1}, {1, 1}, Padding::same},    // odd channel count
      {{2, 12, 30, 16}, {3, 3, 16, 1}, {1, 1}, {1, 1}, Padding::same},  // tiles of 8 and 4
      {{1, 8, 11, 20}, {3, 3, 20, 1}, {2, 2}, {1, 1}, Padding::valid},  // stride 2
      {{2, 9, 10, 17}, {3, 2, 17, 2}, {1, 1}, {2, 2}, Padding::same},   // dilation, mult 2
      {{1, 12, 13, 33}, {5, 5, 33, 1}, {1, 1}, {1, 1}, Padding::same},  // 5 taps a row
      {{1, 10, 21, 16}, {5, 5, 16, 1}, {1, 1}, {1, 1}, Padding::same},  // 5 taps, whole vectors
      {{2, 5, 19, 16}, {1, 4, 16, 1}, {1, 3}, {1, 1}, Padding::same},   // 1-d like, stride 3
      {{1, 6, 7, 3}, {2, 3, 3, 3}, {2, 1}, {1, 2}, Padding::valid},     // fewer channels than W
      {{1, 9, 9, 8}, {3, 3, 8, 1}, {2, 2}, {2, 1}, Padding::same},      // stride and dilation
      {{1, 4, 4, 5}, {3, 3, 5, 1}, {1, 1}, {3, 3}, Padding::same},      // taps in the padding
  };
  return all;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(depthwise_ops)

BOOST_AUTO_TEST_CASE(depthwise_output_and_gradients_against_naive_loops) {
  Rng rng(31);
  for (const Geometry& g : geometries()) {
    const std::string label = shape_str(g.x) + " * " + shape_str(g.k);
    Tensor x = random_tensor(g.x, rng).set_requires_grad(true);
    Tensor k = random_tensor(g.k, rng).set_requires_grad(true);
    const Tensor y = depthwise_conv2d(x, k, g.s, g.p, g.d);
    const std::vector<float> w = random_values(y.size(), rng);
    const Naive ref = naive(x, k, g, w);
    check_values(label + " output", y, ref.out, ref.y);
    sum(y * Tensor(y.shape(), w)).backward();
    // Sums of up to a few hundred products of magnitude <= 1 in float.
    check_values(label + " input gradient", x.grad(), g.x, ref.gx, 1e-5, 1e-4);
    check_values(label + " kernel gradient", k.grad(), g.k, ref.gk, 1e-5, 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(depthwise_finite_differences_first_and_second_order) {
  Rng rng(32);
  for (const Geometry& g :
       {Geometry{{1, 5, 6, 3}, {3, 3, 3, 2}, {2, 1}, {1, 2}, Padding::same},
        Geometry{{2, 4, 9, 10}, {2, 3, 10, 1}, {1, 2}, {1, 1}, Padding::valid}}) {
    const Tensor x = random_tensor(g.x, rng), k = random_tensor(g.k, rng);
    auto f = [g](const std::vector<Tensor>& v) {
      return depthwise_conv2d(v[0], v[1], g.s, g.p, g.d);
    };
    gradcheck("depthwise " + shape_str(g.k), f, {x, k});
    gradgradcheck("depthwise squared " + shape_str(g.k),
                  [f](const std::vector<Tensor>& v) { return square(f(v)); }, {x, k});
  }
  const Tensor x1 = random_tensor({2, 11, 9}, rng), k1 = random_tensor({3, 9, 2}, rng);
  gradgradcheck("depthwise_conv1d",
                [](const std::vector<Tensor>& v) {
                  return square(depthwise_conv1d(v[0], v[1], 2, Padding::same, 1));
                },
                {x1, k1});
}

BOOST_AUTO_TEST_CASE(depthwise_propagates_nan) {
  Rng rng(33);
  for (const Geometry& g : {geometries()[1], geometries()[3], geometries()[6]}) {
    std::vector<float> xv = random_tensor(g.x, rng).to_vector();
    xv[xv.size() / 2 + 1] = std::numeric_limits<float>::quiet_NaN();
    Tensor x = Tensor(g.x, xv).set_requires_grad(true);
    Tensor k = random_tensor(g.k, rng).set_requires_grad(true);
    const Tensor y = depthwise_conv2d(x, k, g.s, g.p, g.d);
    const std::vector<float> w = random_values(y.size(), rng);
    const Naive ref = naive(x, k, g, w);
    sum(y * Tensor(y.shape(), w)).backward();
    auto same_nans = [](const std::string& label, const Tensor& t, const std::vector<double>& e) {
      std::size_t differ = 0, nans = 0;
      for (std::size_t i = 0; i < e.size(); ++i) {
        differ += std::isnan(t.data()[i]) != std::isnan(e[i]);
        nans += std::isnan(e[i]);
      }
      BOOST_TEST(nans > 0u, label);
      BOOST_TEST(differ == 0u, label << ": " << differ << " elements NaN in one only");
    };
    same_nans("output", y, ref.y);
    same_nans("kernel gradient", k.grad(), ref.gk);
  }
}

BOOST_AUTO_TEST_CASE(depthwise_is_bitwise_independent_of_the_thread_count) {
  Rng rng(34);
  // Large enough for every pass to open a parallel region of two threads.
  for (const Geometry& g :
       {Geometry{{8, 32, 32, 24}, {3, 3, 24, 1}, {1, 1}, {1, 1}, Padding::same},
        Geometry{{4, 30, 31, 12}, {3, 3, 12, 2}, {2, 1}, {1, 2}, Padding::same}}) {
    const Tensor x0 = random_tensor(g.x, rng), k0 = random_tensor(g.k, rng);
    auto run = [&](int threads) {
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      Tensor x = x0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true);
      const Tensor y = depthwise_conv2d(x, k, g.s, g.p, g.d);
      sum(y * y).backward();
      omp_set_num_threads(before);
      return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector(),
                                             k.grad().to_vector()};
    };
    const auto one = run(1), two = run(2);
    for (std::size_t i = 0; i < one.size(); ++i)
      BOOST_TEST(one[i] == two[i], boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(depthwise_plus_bias_fuses_with_the_bits_of_a_separate_add) {
  Rng rng(35);
  for (const Geometry& g : {geometries()[1], geometries()[3], geometries()[6]}) {
    const Tensor x = random_tensor(g.x, rng), k = random_tensor(g.k, rng);
    const Tensor b = random_tensor({g.k[2] * g.k[3]}, rng);
    auto run = [&](bool read_first) {
      Tensor xv = x.clone().set_requires_grad(true), kv = k.clone().set_requires_grad(true);
      Tensor bv = b.clone().set_requires_grad(true);
      const Tensor y = depthwise_conv2d(xv, kv, g.s, g.p, g.d);
      if (read_first) (void)y.to_vector();  // computed alone: the add is a pass of its own
      const Tensor z = y + bv;
      sum(z * z).backward();
      return std::vector<std::vector<float>>{z.to_vector(), xv.grad().to_vector(),
                                             kv.grad().to_vector(), bv.grad().to_vector()};
    };
    const auto fused = run(false), separate = run(true);
    for (std::size_t i = 0; i < fused.size(); ++i)
      BOOST_TEST(fused[i] == separate[i], boost::test_tools::per_element());
  }
  // 1-d: through the reshape.
  const Tensor x1 = random_tensor({2, 9, 8}, rng), k1 = random_tensor({3, 8, 2}, rng);
  const Tensor b1 = random_tensor({16}, rng);
  const Tensor y1 = depthwise_conv1d(x1, k1, 1, Padding::same, 1);
  const std::vector<float> alone = y1.to_vector();
  const std::vector<float> fused = (depthwise_conv1d(x1, k1, 1, Padding::same, 1) + b1).to_vector();
  for (std::size_t i = 0; i < alone.size(); ++i)
    BOOST_TEST(fused[i] == alone[i] + b1.data()[i % 16]);
}

BOOST_AUTO_TEST_SUITE_END()
