// Tests for autodiff/ops/volume.cpp: conv3d, max_pool3d and avg_pool3d (NDHWC, TensorFlow
// semantics) against naive loops in double, their gradients (and gradients of gradients), and
// errors.
#include <omp.h>

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
using xtape::testing::gradgradcheck;
using xtape::testing::random_distinct;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;
using A3 = std::array<long, 3>;

// TensorFlow's rule for one axis: output extent and leading pad.
std::pair<long, long> axis(long in, long k, long s, long dil, bool same) {
  const long eff = dil * (k - 1) + 1;
  if (!same) return {in >= eff ? (in - eff) / s + 1 : 0, 0};
  const long out = (in + s - 1) / s;
  const long total = std::max(0L, (out - 1) * s + eff - in);
  return {out, total / 2};
}

// Naive 3-d cross-correlation in double.
std::vector<double> conv3d_reference(const Tensor& x, const Tensor& k, A3 st, A3 dil, bool same,
                                     Shape& out_shape) {
  const long n = static_cast<long>(x.dim(0)), c = static_cast<long>(x.dim(4));
  const long f = static_cast<long>(k.dim(4));
  long in[3], kk[3], out[3], pad[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = static_cast<long>(x.dim(static_cast<std::size_t>(i) + 1));
    kk[i] = static_cast<long>(k.dim(static_cast<std::size_t>(i)));
    std::tie(out[i], pad[i]) = axis(in[i], kk[i], st[i], dil[i], same);
  }
  out_shape = {static_cast<std::size_t>(n), static_cast<std::size_t>(out[0]),
               static_cast<std::size_t>(out[1]), static_cast<std::size_t>(out[2]),
               static_cast<std::size_t>(f)};
  std::vector<double> y;
  const float *xv = x.data(), *kv = k.data();
  for (long b = 0; b < n; ++b)
    for (long od = 0; od < out[0]; ++od)
      for (long oh = 0; oh < out[1]; ++oh)
        for (long ow = 0; ow < out[2]; ++ow)
          for (long o = 0; o < f; ++o) {
            double s = 0;
            for (long a = 0; a < kk[0]; ++a)
              for (long p = 0; p < kk[1]; ++p)
                for (long q = 0; q < kk[2]; ++q) {
                  const long zd = od * st[0] - pad[0] + a * dil[0];
                  const long zh = oh * st[1] - pad[1] + p * dil[1];
                  const long zw = ow * st[2] - pad[2] + q * dil[2];
                  if (zd < 0 || zd >= in[0] || zh < 0 || zh >= in[1] || zw < 0 || zw >= in[2])
                    continue;
                  for (long ch = 0; ch < c; ++ch)
                    s += static_cast<double>(
                             xv[(((b * in[0] + zd) * in[1] + zh) * in[2] + zw) * c + ch]) *
                         kv[(((a * kk[1] + p) * kk[2] + q) * c + ch) * f + o];
                }
            y.push_back(s);
          }
  return y;
}

// Naive 3-d pooling in double; padded positions are never the max and never counted.
std::vector<double> pool3d_reference(const Tensor& x, A3 pool, A3 st, bool same, bool is_max,
                                     Shape& out_shape) {
  const long n = static_cast<long>(x.dim(0)), c = static_cast<long>(x.dim(4));
  long in[3], out[3], pad[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = static_cast<long>(x.dim(static_cast<std::size_t>(i) + 1));
    std::tie(out[i], pad[i]) = axis(in[i], pool[i], st[i], 1, same);
  }
  out_shape = {static_cast<std::size_t>(n), static_cast<std::size_t>(out[0]),
               static_cast<std::size_t>(out[1]), static_cast<std::size_t>(out[2]),
               static_cast<std::size_t>(c)};
  std::vector<double> y;
  const float* xv = x.data();
  for (long b = 0; b < n; ++b)
    for (long od = 0; od < out[0]; ++od)
      for (long oh = 0; oh < out[1]; ++oh)
        for (long ow = 0; ow < out[2]; ++ow)
          for (long ch = 0; ch < c; ++ch) {
            double m = -std::numeric_limits<double>::infinity(), s = 0;
            long count = 0;
            for (long a = 0; a < pool[0]; ++a)
              for (long p = 0; p < pool[1]; ++p)
                for (long q = 0; q < pool[2]; ++q) {
                  const long zd = od * st[0] - pad[0] + a, zh = oh * st[1] - pad[1] + p,
                             zw = ow * st[2] - pad[2] + q;
                  if (zd < 0 || zd >= in[0] || zh < 0 || zh >= in[1] || zw < 0 || zw >= in[2])
                    continue;
                  const double v = xv[(((b * in[0] + zd) * in[1] + zh) * in[2] + zw) * c + ch];
                  m = std::max(m, v);
                  s += v;
                  ++count;
                }
            y.push_back(is_max ? m : s / static_cast<double>(count));
          }
  return y;
}

std::array<int, 3> i3(A3 v) {
  return {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2])};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(volume_ops)

BOOST_AUTO_TEST_CASE(conv3d_matches_a_naive_loop) {
  Rng rng(3);
  struct Case {
    const char* label;
    Shape x, k;
    A3 st, dil;
    bool same;
  };
  const Case cases[] = {
      {"valid", {2, 5, 6, 4, 3}, {3, 2, 3, 3, 4}, {1, 1, 1}, {1, 1, 1}, false},
      {"same", {1, 4, 5, 5, 2}, {3, 3, 3, 2, 3}, {1, 1, 1}, {1, 1, 1}, true},
      {"same strided", {2, 7, 5, 6, 3}, {3, 2, 3, 3, 2}, {2, 3, 2}, {1, 1, 1}, true},
      {"valid strided", {1, 8, 7, 6, 2}, {2, 3, 2, 2, 3}, {3, 2, 2}, {1, 1, 1}, false},
      {"dilated", {1, 7, 6, 6, 2}, {2, 2, 3, 2, 2}, {1, 1, 1}, {3, 2, 1}, false},
      {"same dilated", {2, 5, 4, 5, 1}, {3, 2, 2, 1, 3}, {1, 1, 1}, {2, 2, 1}, true},
      // depth taps 0 and 2 read only padding: only the middle tap is live
      {"dead depth taps", {1, 2, 4, 4, 2}, {3, 2, 2, 2, 2}, {1, 1, 1}, {4, 1, 1}, true},
      {"1x1x1", {2, 3, 3, 3, 4}, {1, 1, 1, 4, 5}, {1, 1, 1}, {1, 1, 1}, false},
  };
  for (const Case& c : cases) {
    const Tensor x = random_tensor(c.x, rng), k = random_tensor(c.k, rng);
    Shape shape;
    const auto ref = conv3d_reference(x, k, c.st, c.dil, c.same, shape);
    const Tensor y = conv3d(x, k, i3(c.st), c.same ? Padding::same : Padding::valid, i3(c.dil));
    check_values(std::string("conv3d ") + c.label, y, shape, ref, 1e-4, 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(conv3d_gradients) {
  Rng rng(5);
  const Tensor x = random_tensor({2, 4, 4, 3, 2}, rng), k = random_tensor({2, 3, 2, 2, 3}, rng);
  gradcheck("conv3d valid", [](In v) { return conv3d(v[0], v[1]); }, {x, k});
  gradcheck("conv3d same strided dilated",
            [](In v) {
              return conv3d(v[0], v[1], {2, 1, 2}, Padding::same, {1, 2, 1});
            },
            {x, k});
  const Tensor kd = random_tensor({3, 2, 2, 2, 2}, rng);
  gradcheck("conv3d dead depth taps",
            [](In v) {
              return conv3d(v[0], v[1], {1, 1, 1}, Padding::same, {3, 1, 1});
            },
            {random_tensor({1, 2, 3, 3, 2}, rng), kd});
  // Second order: the gradient of the gradient, against finite differences of the first.
  gradgradcheck("conv3d",
                [](In v) {
                  return conv3d(v[0], v[1], {1, 2, 1}, Padding::same);
                },
                {random_tensor({1, 3, 4, 3, 2}, rng), random_tensor({2, 2, 2, 2, 2}, rng)});
  gradgradcheck("conv3d dead depth taps",
                [](In v) {
                  return conv3d(v[0], v[1], {1, 1, 1}, Padding::same, {3, 1, 1});
                },
                {random_tensor({1, 2, 3, 3, 1}, rng), random_tensor({3, 2, 2, 1, 2}, rng)});
}

BOOST_AUTO_TEST_CASE(pool3d_matches_a_naive_loop) {
  Rng rng(9);
  struct Case {
    const char* label;
    Shape x;
    A3 pool, st;
    bool same;
  };
  const Case cases[] = {
      {"2x2x2", {2, 4, 6, 4, 3}, {2, 2, 2}, {2, 2, 2}, false},
      {"same odd", {1, 5, 3, 7, 2}, {2, 2, 3}, {2, 2, 3}, true},
      {"overlapping", {2, 6, 5, 5, 2}, {3, 2, 3}, {1, 2, 1}, false},
      {"same strided", {1, 7, 6, 5, 3}, {3, 3, 2}, {2, 3, 1}, true},
  };
  for (const Case& c : cases) {
    const Tensor x = random_tensor(c.x, rng);
    const Padding p = c.same ? Padding::same : Padding::valid;
    Shape shape;
    const auto mx = pool3d_reference(x, c.pool, c.st, c.same, true, shape);
    check_values(std::string("max_pool3d ") + c.label, max_pool3d(x, i3(c.pool), i3(c.st), p),
                 shape, mx, 0, 0);
    const auto av = pool3d_reference(x, c.pool, c.st, c.same, false, shape);
    check_values(std::string("avg_pool3d ") + c.label, avg_pool3d(x, i3(c.pool), i3(c.st), p),
                 shape, av, 1e-5, 1e-6);
  }
  // Strides default to the pool size.
  const Tensor x = random_tensor({1, 4, 4, 4, 1}, rng);
  Shape shape;
  const auto ref = pool3d_reference(x, {2, 2, 2}, {2, 2, 2}, false, true, shape);
  check_values("max_pool3d default strides", max_pool3d(x, {2, 2, 2}), shape, ref, 0, 0);
}

BOOST_AUTO_TEST_CASE(max_pool3d_nan_and_ties) {
  // A NaN anywhere in a window gives NaN.
  std::vector<float> v(8, 1.f);
  v[6] = std::numeric_limits<float>::quiet_NaN();
  const Tensor y = max_pool3d(Tensor({1, 2, 2, 2, 1}, v), {2, 2, 2});
  BOOST_TEST(std::isnan(y.data()[0]));
  // Ties: the gradient goes to the first maximal element in (d, h, w) order, here (0, 1, 0).
  std::vector<float> t(8, 0.f);
  t[2] = t[5] = t[7] = 3.f;  // (0, 1, 0), (1, 0, 1), (1, 1, 1)
  Tensor x = Tensor({1, 2, 2, 2, 1}, t).set_requires_grad(true);
  sum(max_pool3d(x, {2, 2, 2})).backward();
  const std::vector<double> expected{0, 0, 1, 0, 0, 0, 0, 0};
  check_values("max_pool3d tie gradient", x.grad(), {1, 2, 2, 2, 1}, expected, 0, 0);
}

BOOST_AUTO_TEST_CASE(pool3d_gradients) {
  Rng rng(13);
  // NOTE: distinct values (spacing 0.05 > 2 * eps) so the max keeps its argmax under the steps.
  const Tensor x = random_distinct({2, 4, 5, 3, 2}, rng);
  gradcheck("max_pool3d", [](In v) { return max_pool3d(v[0], {2, 2, 2}); }, {x});
  gradcheck("max_pool3d same overlapping",
            [](In v) {
              return max_pool3d(v[0], {3, 2, 2}, {2, 1, 2}, Padding::same);
            },
            {x});
  gradcheck("avg_pool3d same",
            [](In v) {
              return avg_pool3d(v[0], {2, 3, 2}, {2, 2, 1}, Padding::same);
            },
            {x});
  gradgradcheck("max_pool3d", [](In v) { return max_pool3d(v[0], {2, 2, 2}, {1, 2, 1}); }, {x});
  gradgradcheck("avg_pool3d",
                [](In v) {
                  return avg_pool3d(v[0], {3, 2, 2}, {1, 1, 2}, Padding::same);
                },
                {x});
}

BOOST_AUTO_TEST_CASE(volume_ops_are_bitwise_independent_of_the_thread_count) {
  Rng rng(23);
  const Tensor x0 = random_tensor({2, 6, 12, 12, 8}, rng),
               k0 = random_tensor({3, 3, 3, 8, 16}, rng);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor x = x0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true);
    const Tensor y = conv3d(x, k, {1, 2, 1}, Padding::same);
    const Tensor z = avg_pool3d(max_pool3d(y, {2, 2, 2}, {1, 1, 1}, Padding::same), {2, 3, 2});
    sum(z * z).backward();
    omp_set_num_threads(before);
    return std::vector<std::vector<float>>{z.to_vector(), x.grad().to_vector(),
                                           k.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  for (std::size_t i = 0; i < one.size(); ++i)
    BOOST_TEST(one[i] == two[i], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(volume_ops_on_empty_batches) {
  Rng rng(2);
  check_zero_size("conv3d batch 0",
                  [](In v) {
                    return conv3d(v[0], v[1], {1, 1, 1}, Padding::same);
                  },
                  {Tensor::zeros({0, 3, 3, 3, 2}), random_tensor({2, 2, 2, 2, 3}, rng)},
                  {0, 3, 3, 3, 3});
  check_zero_size("max_pool3d batch 0",
                  [](In v) {
                    return max_pool3d(v[0], {2, 2, 2});
                  },
                  {Tensor::zeros({0, 4, 4, 4, 2})}, {0, 2, 2, 2, 2});
  check_zero_size("avg_pool3d batch 0",
                  [](In v) {
                    return avg_pool3d(v[0], {2, 2, 2});
                  },
                  {Tensor::zeros({0, 4, 4, 4, 2})}, {0, 2, 2, 2, 2});
}

BOOST_AUTO_TEST_CASE(volume_op_errors) {
  const Tensor x = Tensor::zeros({1, 4, 4, 4, 2}), k = Tensor::zeros({2, 2, 2, 2, 3});
  using E = std::invalid_argument;
  check_throws<E>("conv3d rank 4 input",
                  [&] {
                    conv3d(Tensor::zeros({1, 4, 4, 2}), k);
                  },
                  {"conv3d", "rank 5", "(1, 4, 4, 2)"});
  check_throws<E>("conv3d rank 4 kernel",
                  [&] {
                    conv3d(x, Tensor::zeros({2, 2, 2, 3}));
                  },
                  {"conv3d", "kernel of rank 5", "(2, 2, 2, 3)"});
  check_throws<E>("conv3d channels",
                  [&] {
                    conv3d(x, Tensor::zeros({2, 2, 2, 3, 3}));
                  },
                  {"conv3d", "2 channels", "expects 3"});
  check_throws<E>("conv3d kernel larger than the input",
                  [&] {
                    conv3d(x, Tensor::zeros({5, 2, 2, 2, 3}));
                  },
                  {"conv3d", "(1, 4, 4, 4, 2)", "smaller than", "(5, 2, 2, 2, 3)", "'valid'"});
  check_throws<E>("conv3d dilated window larger than the input",
                  [&] {
                    conv3d(x, k, {1, 1, 1}, Padding::valid, {1, 4, 1});
                  },
                  {"conv3d", "smaller than"});
  check_throws<E>("conv3d zero stride",
                  [&] {
                    conv3d(x, k, {1, 0, 1});
                  },
                  {"conv3d", "strides must be positive", "(1, 0, 1)"});
  check_throws<E>("conv3d zero dilation",
                  [&] {
                    conv3d(x, k, {1, 1, 1}, Padding::valid, {0, 1, 1});
                  },
                  {"conv3d", "dilation must be positive"});
  check_throws<E>("conv3d causal",
                  [&] {
                    conv3d(x, k, {1, 1, 1}, Padding::causal);
                  },
                  {"conv3d", "causal"});
  check_throws<E>("conv3d empty window",
                  [&] {
                    conv3d(x, Tensor::zeros({0, 2, 2, 2, 3}));
                  },
                  {"conv3d", "extent 0"});
  check_throws<E>("max_pool3d rank",
                  [&] {
                    max_pool3d(Tensor::zeros({4, 4, 4, 2}), {2, 2, 2});
                  },
                  {"max_pool3d", "rank 5", "(4, 4, 4, 2)"});
  check_throws<E>("avg_pool3d window larger than the input",
                  [&] {
                    avg_pool3d(x, {2, 5, 2});
                  },
                  {"avg_pool3d", "(1, 4, 4, 4, 2)", "smaller than", "(2, 5, 2)"});
  check_throws<E>("max_pool3d zero pool",
                  [&] {
                    max_pool3d(x, {2, 0, 2});
                  },
                  {"max_pool3d", "pool size must be positive", "(2, 0, 2)"});
  check_throws<E>("max_pool3d negative stride",
                  [&] {
                    max_pool3d(x, {2, 2, 2}, {1, -1, 1});
                  },
                  {"max_pool3d", "strides must be positive", "(1, -1, 1)"});
}

BOOST_AUTO_TEST_SUITE_END()
