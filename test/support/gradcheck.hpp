#pragma once
/// @file gradcheck.hpp
/// The one finite-difference gradient checker every test uses. For a function f of tensors it
/// compares the tape's gradient of L = sum(f(inputs) * W) (W a fixed random projection, so every
/// output element matters) with central differences of L computed in double precision.
/// Small inputs are checked element by element; large ones along random directions
/// (<grad, d> against (L(x + h d) - L(x - h d)) / 2h), which checks the whole Jacobian cheaply.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"

namespace xtape::testing {

struct GradcheckOptions {
  double eps = 1e-2;      ///< finite-difference step (float32 forward: not too small)
  double rtol = 1e-2;     ///< relative tolerance
  double atol = 2e-3;     ///< absolute tolerance
  std::size_t max_elementwise = 400;  ///< inputs above this size are checked by directions
  int directions = 6;     ///< random directions per input in directional mode
  std::uint64_t seed = 7;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Random tensor with values uniform in [lo, hi).
inline Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t = Tensor::empty(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

namespace detail {
inline double projected(const Tensor& y, const std::vector<double>& w) {
  double s = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * w[i];
  return s;
}
}  // namespace detail

/// Checks the tape's gradients of `forward()` with respect to existing leaf tensors `leaves`
/// (for example a layer's weights and its input). Finite differences perturb the leaves' data in
/// place (restored afterwards) and re-run forward() under NoGrad. Leaves must require gradients.
inline void gradcheck_leaves(const std::string& label, const std::function<Tensor()>& forward,
                             const std::vector<Tensor>& leaves, GradcheckOptions opt = {}) {
  Rng rng(opt.seed);
  for (Tensor t : leaves) t.zero_grad();
  Tensor y = forward();
  std::vector<double> w(y.size());
  Tensor seed = Tensor::empty(y.shape());
  for (std::size_t i = 0; i < y.size(); ++i) {
    w[i] = rng.uniform(-1.f, 1.f);
    seed.data()[i] = static_cast<float>(w[i]);
  }
  y.backward(seed);

  // L(x + delta) for the leaf `which`, in double.
  auto loss_at = [&](std::size_t which, const std::vector<double>& delta) {
    NoGrad guard;
    Tensor x = leaves[which];
    const Tensor original = x.clone();
    for (std::size_t i = 0; i < x.size(); ++i)
      x.data()[i] = static_cast<float>(static_cast<double>(original.data()[i]) + delta[i]);
    const double l = detail::projected(forward(), w);
    x.assign(original);
    return l;
  };

  for (std::size_t which = 0; which < leaves.size(); ++which) {
    const Tensor& x = leaves[which];
    Tensor g = x.grad();
    BOOST_TEST_REQUIRE(g.defined(), label << ": input " << which << " received no gradient");
    BOOST_TEST_REQUIRE((g.shape() == x.shape()), label << ": gradient shape " << shape_str(g.shape())
                                                       << " for input shape " << shape_str(x.shape()));
    const std::size_t n = x.size();
    std::vector<double> delta(n, 0.0);
    if (n <= opt.max_elementwise) {
      for (std::size_t i = 0; i < n; ++i) {
        delta[i] = opt.eps;
        const double up = loss_at(which, delta);
        delta[i] = -opt.eps;
        const double down = loss_at(which, delta);
        delta[i] = 0.0;
        const double numeric = (up - down) / (2 * opt.eps);
        const double analytic = g.data()[i];
        const double tol = opt.atol + opt.rtol * std::abs(numeric);
        BOOST_TEST(std::abs(numeric - analytic) <= tol,
                   label << ": input " << which << " element " << i << ": tape " << analytic
                         << " vs finite difference " << numeric);
      }
    } else {
      for (int d = 0; d < opt.directions; ++d) {
        std::vector<double> dir(n);
        double norm = 0.0;
        for (double& v : dir) {
          v = rng.normal();
          norm += v * v;
        }
        norm = std::sqrt(norm);
        double analytic = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
          dir[i] /= norm;
          analytic += dir[i] * g.data()[i];
        }
        for (std::size_t i = 0; i < n; ++i) delta[i] = dir[i] * opt.eps;
        const double up = loss_at(which, delta);
        for (std::size_t i = 0; i < n; ++i) delta[i] = -dir[i] * opt.eps;
        const double down = loss_at(which, delta);
        const double numeric = (up - down) / (2 * opt.eps);
        const double tol = opt.atol + opt.rtol * std::abs(numeric);
        BOOST_TEST(std::abs(numeric - analytic) <= tol,
                   label << ": input " << which << " direction " << d << ": tape " << analytic
                         << " vs finite difference " << numeric);
      }
    }
  }
}

/// Checks the gradient of f with respect to every tensor in `inputs` (copied into fresh leaves
/// that require gradients). Reports mismatches with Boost.Test, naming `label`, the input and
/// the element or direction.
inline void gradcheck(const std::string& label, const TensorFn& f, std::vector<Tensor> inputs,
                      GradcheckOptions opt = {}) {
  for (Tensor& t : inputs) t = t.clone().set_requires_grad(true);
  gradcheck_leaves(label, [&] { return f(inputs); }, inputs, opt);
}

}  // namespace xtape::testing
