// Tests for autodiff/ops/composite.cpp: moments (population mean and variance, as
// tf.nn.moments), and the founding example's custom convolution: a kernel standardized per
// filter, (k - mean) / sqrt(var + 1e-10), fed into conv2d — built from primitives only.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::GradcheckOptions;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;

// The founding example's custom op.
Tensor standardize_kernel(const Tensor& k) {
  auto [mean, var] = moments(k, {0, 1, 2}, true);
  return (k - mean) / sqrt(var + 1e-10f);
}

// Per-filter standardization of a (kh, kw, cin, cout) kernel in double.
std::vector<double> standardized_reference(const Tensor& k) {
  const std::size_t cout = k.shape()[3], per = k.size() / cout;
  std::vector<double> out(k.size());
  for (std::size_t f = 0; f < cout; ++f) {
    double m = 0.0, v = 0.0;
    for (std::size_t i = 0; i < per; ++i) m += k.data()[i * cout + f];
    m /= static_cast<double>(per);
    for (std::size_t i = 0; i < per; ++i) v += (k.data()[i * cout + f] - m) * (k.data()[i * cout + f] - m);
    v /= static_cast<double>(per);  // population variance
    for (std::size_t i = 0; i < per; ++i) out[i * cout + f] = (k.data()[i * cout + f] - m) / std::sqrt(v + 1e-10);
  }
  return out;
}

// 'valid', stride-1 conv2d in double with a kernel given as doubles.
std::vector<double> conv_valid_reference(const Tensor& x, const std::vector<double>& k, const Shape& ks) {
  const std::size_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2], ci = x.shape()[3];
  const std::size_t kh = ks[0], kw = ks[1], co = ks[3], oh = h - kh + 1, ow = w - kw + 1;
  std::vector<double> out(n * oh * ow * co, 0.0);
  for (std::size_t b = 0; b < n; ++b)
    for (std::size_t oy = 0; oy < oh; ++oy)
      for (std::size_t ox = 0; ox < ow; ++ox)
        for (std::size_t f = 0; f < co; ++f) {
          double s = 0.0;
          for (std::size_t ky = 0; ky < kh; ++ky)
            for (std::size_t kx = 0; kx < kw; ++kx)
              for (std::size_t c = 0; c < ci; ++c)
                s += x.data()[((b * h + oy + ky) * w + ox + kx) * ci + c] * k[((ky * kw + kx) * ci + c) * co + f];
          out[((b * oh + oy) * ow + ox) * co + f] = s;
        }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(composite)

BOOST_AUTO_TEST_CASE(moments_values) {
  // Population variance (divides by n, not n - 1).
  const Tensor x({2, 4}, {1.f, 2.f, 3.f, 4.f, 2.f, 2.f, 6.f, 6.f});
  auto [m, v] = moments(x, {1});
  check_values("moments mean", m, {2}, {2.5, 4}, 1e-6, 1e-6);
  check_values("moments population variance", v, {2}, {1.25, 4}, 1e-6, 1e-6);
  auto [m0, v0] = moments(x, {0}, true);
  check_values("moments axis 0 mean", m0, {1, 4}, {1.5, 2, 4.5, 5}, 1e-6, 1e-6);
  check_values("moments axis 0 variance", v0, {1, 4}, {0.25, 0, 2.25, 1}, 1e-6, 1e-6);
  auto [ma, va] = moments(x, {0, 1});
  check_values("moments all mean", ma, {}, {3.25}, 1e-6, 1e-6);
  // Deviations from 3.25 squared: 5.0625 1.5625 0.0625 0.5625 1.5625 1.5625 7.5625 7.5625.
  check_values("moments all variance", va, {}, {25.5 / 8}, 1e-6, 1e-6);

  // A kernel-shaped tensor over {0, 1, 2} with keepdims: one (mean, variance) per filter.
  Rng rng(1);
  const Tensor k = random_tensor({3, 3, 4, 5}, rng);
  auto [mk, vk] = moments(k, {0, 1, 2}, true);
  BOOST_TEST((mk.shape() == Shape{1, 1, 1, 5}));
  BOOST_TEST((vk.shape() == Shape{1, 1, 1, 5}));
  std::vector<double> ref_m(5, 0.0), ref_v(5, 0.0);
  for (std::size_t i = 0; i < 36; ++i)
    for (std::size_t f = 0; f < 5; ++f) ref_m[f] += k.data()[i * 5 + f] / 36.0;
  for (std::size_t i = 0; i < 36; ++i)
    for (std::size_t f = 0; f < 5; ++f) ref_v[f] += std::pow(k.data()[i * 5 + f] - ref_m[f], 2) / 36.0;
  check_values("kernel moments mean", mk, {1, 1, 1, 5}, ref_m, 1e-5, 1e-6);
  check_values("kernel moments variance", vk, {1, 1, 1, 5}, ref_v, 1e-5, 1e-6);
  auto [mk2, vk2] = moments(k, {0, 1, 2});
  BOOST_TEST((mk2.shape() == Shape{5}));
  BOOST_TEST((vk2.shape() == Shape{5}));
  check_values("kernel moments variance without keepdims", vk2, {5}, ref_v, 1e-5, 1e-6);
  auto [mn, vn] = moments(k, {-1});
  BOOST_TEST((mn.shape() == Shape{3, 3, 4}));
  BOOST_TEST((vn.shape() == Shape{3, 3, 4}));

  check_throws<std::invalid_argument>("moments bad axis", [&] { moments(k, {4}); }, {"(3, 3, 4, 5)"});
}

BOOST_AUTO_TEST_CASE(moments_gradients) {
  Rng rng(2);
  const Tensor k = random_tensor({3, 3, 2, 4}, rng);
  gradcheck("moments mean over {0,1,2} keepdims", [](In in) { return moments(in[0], {0, 1, 2}, true).first; }, {k});
  gradcheck("moments variance over {0,1,2} keepdims", [](In in) { return moments(in[0], {0, 1, 2}, true).second; },
            {k});
  gradcheck("moments variance over {1}", [](In in) { return moments(in[0], {1}).second; }, {k});
  gradcheck("moments mean and variance together", [](In in) {
    auto [m, v] = moments(in[0], {0, 1, 2});
    return m * 3.f + v;
  }, {k});
}

BOOST_AUTO_TEST_CASE(standardized_kernel_values) {
  Rng rng(3);
  const Tensor k = random_tensor({3, 3, 2, 4}, rng);
  const Tensor s = standardize_kernel(k);
  check_values("standardized kernel", s, k.shape(), standardized_reference(k), 1e-4, 1e-5);
  // Each filter has mean 0 and population variance 1.
  auto [m, v] = moments(s, {0, 1, 2});
  check_values("standardized mean", m, {4}, std::vector<double>(4, 0.0), 0, 1e-6);
  check_values("standardized variance", v, {4}, std::vector<double>(4, 1.0), 1e-5, 1e-5);

  const Tensor x = random_tensor({2, 6, 5, 2}, rng);
  check_values("conv2d with a standardized kernel", conv2d(x, s), {2, 4, 3, 4},
               conv_valid_reference(x, standardized_reference(k), k.shape()), 1e-4, 1e-4);
}

BOOST_AUTO_TEST_CASE(standardized_kernel_conv_gradients) {
  Rng rng(4);
  // Small: element by element, w.r.t. both the input and the raw kernel.
  gradcheck("conv2d(x, standardize(k)) valid", [](In in) { return conv2d(in[0], standardize_kernel(in[1])); },
            {random_tensor({2, 6, 6, 2}, rng), random_tensor({3, 3, 2, 3}, rng)});
  gradcheck("conv2d(x, standardize(k)) same stride 2",
            [](In in) { return conv2d(in[0], standardize_kernel(in[1]), {2, 2}, Padding::same); },
            {random_tensor({1, 7, 7, 3}, rng), random_tensor({3, 3, 3, 2}, rng)});
  gradcheck("standardize(k) alone", [](In in) { return standardize_kernel(in[0]); },
            {random_tensor({3, 3, 2, 3}, rng)});
  // The founding example's layer at a real size, directional.
  GradcheckOptions opt;
  opt.directions = 8;
  gradcheck("conv2d(x, standardize(k)) (2,13,13,8) x (3,3,8,16)",
            [](In in) { return conv2d(in[0], standardize_kernel(in[1]), {1, 1}, Padding::same); },
            {random_tensor({2, 13, 13, 8}, rng), random_tensor({3, 3, 8, 16}, rng)}, opt);
}

BOOST_AUTO_TEST_SUITE_END()
