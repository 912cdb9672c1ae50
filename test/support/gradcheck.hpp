#pragma once
/// @file gradcheck.hpp
/// The one finite-difference gradient checker every test uses. For a function f of tensors it
/// compares the tape's gradient of L = sum(f(inputs) * W) (W a fixed random projection, so every
/// output element matters) with central differences of L computed in double precision.
/// Small inputs are checked element by element; large ones along random directions
/// (<grad, d> against (L(x + h d) - L(x - h d)) / 2h), which checks the whole Jacobian cheaply.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"

namespace xtape::testing {

struct GradcheckOptions {
  double eps = 1e-2;                  ///< finite-difference step (float32 forward: not too small)
  double rtol = 1e-2;                 ///< relative tolerance
  double atol = 2e-3;                 ///< absolute tolerance
  std::size_t max_elementwise = 400;  ///< inputs above this size are checked by directions
  int directions = 6;                 ///< random directions per input in directional mode
  std::uint64_t seed = 7;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// The random tensors are built from vectors, not written through data(): a buffer handed out by
// data() is "exposed" and deferred ops (conv2d's fusions) compute on it at once.

/// Random tensor with values uniform in [lo, hi).
inline Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(shape_size(shape));
  for (float& e : v) e = rng.uniform(lo, hi);
  return Tensor(shape, v);
}

/// Random tensor whose values have |x| in [min_abs, max_abs) with a random sign: inputs for ops
/// with a kink or a pole at 0 (relu, abs, division), kept further from it than any gradcheck step.
inline Tensor random_away_from_zero(const Shape& shape, Rng& rng, float min_abs = 0.1f,
                                    float max_abs = 1.f) {
  std::vector<float> v(shape_size(shape));
  for (float& e : v) {
    const float m = rng.uniform(min_abs, max_abs);
    e = rng.uniform() < 0.5f ? -m : m;
  }
  return Tensor(shape, v);
}

/// Random tensor with no ties: a random permutation of evenly spaced values
/// lo, lo + spacing, ... Any two elements differ by at least `spacing`, so a max (or max-pool)
/// keeps its argmax under every finite-difference step smaller than spacing / 2.
inline Tensor random_distinct(const Shape& shape, Rng& rng, float spacing = 0.05f, float lo = -1.f) {
  const std::size_t n = shape_size(shape);
  std::vector<std::size_t> perm(n);
  for (std::size_t i = 0; i < n; ++i) perm[i] = i;
  for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = lo + spacing * static_cast<float>(perm[i]);
  return Tensor(shape, v);
}

/// Checks t's shape and values against an independently computed reference (in double):
/// |t - expected| <= atol + rtol |expected| element by element.
inline void check_values(const std::string& label, const Tensor& t, const Shape& shape,
                         const std::vector<double>& expected, double rtol = 1e-5,
                         double atol = 1e-5) {
  BOOST_TEST_REQUIRE((t.shape() == shape), label << ": shape " << shape_str(t.shape())
                                                 << ", expected " << shape_str(shape));
  BOOST_TEST_REQUIRE(t.size() == expected.size(), label << ": reference of the wrong size");
  std::size_t failures = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double got = t.data()[i];
    const bool ok = std::abs(got - expected[i]) <= atol + rtol * std::abs(expected[i]);
    if (!ok && ++failures <= 5)  // a few messages, then just the count
      BOOST_ERROR(label << ": element " << i << " is " << got << ", expected " << expected[i]);
  }
  BOOST_TEST(failures == 0u, label << ": " << failures << " of " << expected.size()
                                   << " elements differ from the reference");
}

/// Checks that fn() throws E and that what() contains every string of `parts` (the op's name,
/// the shapes involved).
template <class E, class F>
void check_throws(const std::string& label, F&& fn, const std::vector<std::string>& parts = {}) {
  try {
    fn();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& p : parts)
      BOOST_TEST(what.find(p) != std::string::npos,
                 label << ": message \"" << what << "\" does not mention \"" << p << "\"");
    return;
  } catch (const std::exception& e) {
    BOOST_ERROR(label << ": threw the wrong exception type: " << e.what());
    return;
  }
  BOOST_ERROR(label << ": did not throw");
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

  // L(x + delta) for the leaf `which`, in double. The leaf holds floats, so the step actually
  // taken is float(x + delta) - x, not delta; it is stored in `applied` and the comparisons use
  // it (this matters for large inputs, where float spacing is not small against the step).
  auto loss_at = [&](std::size_t which, const std::vector<double>& delta,
                     std::vector<double>& applied) {
    NoGrad guard;
    Tensor x = leaves[which];
    const Tensor original = x.clone();
    applied.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      x.data()[i] = static_cast<float>(static_cast<double>(original.data()[i]) + delta[i]);
      applied[i] = static_cast<double>(x.data()[i]) - static_cast<double>(original.data()[i]);
    }
    const double l = detail::projected(forward(), w);
    x.assign(original);
    return l;
  };

  for (std::size_t which = 0; which < leaves.size(); ++which) {
    const Tensor& x = leaves[which];
    Tensor g = x.grad();
    BOOST_TEST_REQUIRE(g.defined(), label << ": input " << which << " received no gradient");
    BOOST_TEST_REQUIRE((g.shape() == x.shape()),
                       label << ": gradient shape " << shape_str(g.shape()) << " for input shape "
                             << shape_str(x.shape()));
    const std::size_t n = x.size();
    std::vector<double> delta(n, 0.0), applied_up, applied_down;
    if (n <= opt.max_elementwise) {
      for (std::size_t i = 0; i < n; ++i) {
        delta[i] = opt.eps;
        const double up = loss_at(which, delta, applied_up);
        delta[i] = -opt.eps;
        const double down = loss_at(which, delta, applied_down);
        delta[i] = 0.0;
        const double numeric = (up - down) / (applied_up[i] - applied_down[i]);
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
        for (std::size_t i = 0; i < n; ++i) delta[i] = dir[i] / norm * opt.eps;
        const double up = loss_at(which, delta, applied_up);
        for (std::size_t i = 0; i < n; ++i) delta[i] = -dir[i] / norm * opt.eps;
        const double down = loss_at(which, delta, applied_down);
        // <grad, d> along the step actually taken.
        double analytic = 0.0;
        for (std::size_t i = 0; i < n; ++i)
          analytic += (applied_up[i] - applied_down[i]) * g.data()[i];
        analytic /= 2 * opt.eps;
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
  gradcheck_leaves(
      label, [&] { return f(inputs); }, inputs, opt);
}

/// For ops on zero-size tensors: runs f on copies of `inputs` (fresh leaves that require
/// gradients), checks that the result has shape `expected`, back-propagates sum(result) and
/// checks that every input received a gradient of its own shape; when the result is empty,
/// every element of those gradients must be 0 (nothing flows through an empty tensor).
/// Returns the result.
inline Tensor check_zero_size(const std::string& label, const TensorFn& f,
                              std::vector<Tensor> inputs, const Shape& expected) {
  for (Tensor& t : inputs) t = t.clone().set_requires_grad(true);
  Tensor y;
  try {
    y = f(inputs);
  } catch (const std::exception& e) {
    BOOST_ERROR(label << ": threw " << e.what());
    return Tensor();
  }
  BOOST_TEST_REQUIRE((y.shape() == expected), label << ": shape " << shape_str(y.shape())
                                                    << ", expected " << shape_str(expected));
  BOOST_TEST_REQUIRE(y.requires_grad(), label << ": the result has no gradient record");
  sum(y).backward();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor g = inputs[i].grad();
    BOOST_TEST_REQUIRE(g.defined(), label << ": input " << i << " received no gradient");
    BOOST_TEST_REQUIRE((g.shape() == inputs[i].shape()),
                       label << ": gradient of input " << i << " has shape " << shape_str(g.shape())
                             << ", expected " << shape_str(inputs[i].shape()));
    if (y.size() != 0) continue;
    std::size_t nonzero = 0;
    for (std::size_t k = 0; k < g.size(); ++k) nonzero += g.data()[k] != 0.f;
    BOOST_TEST(nonzero == 0u,
               label << ": " << nonzero << " nonzero elements in the gradient of input " << i);
  }
  return y;
}

/// Second-order check: the gradient G(x) = d sum(f(x) * W) / dx, computed by grad() with
/// create_graph, is itself checked with gradcheck_leaves — the tape's derivative of G (a pass
/// through the graph the first backward recorded) against central differences of G in double.
/// Linear parts of G (a constant gradient) are checked too: their derivative must be 0.
inline void gradgradcheck(const std::string& label, const TensorFn& f, std::vector<Tensor> inputs,
                          GradcheckOptions opt = {}) {
  for (Tensor& t : inputs) t = t.clone().set_requires_grad(true);
  Rng rng(opt.seed + 1);
  Tensor w;
  {
    const Tensor y = f(inputs);
    std::vector<float> v(y.size());
    for (float& e : v) e = rng.uniform(-1.f, 1.f);
    w = Tensor(y.shape(), v);
  }
  auto first_order = [&] {
    EnableGrad on;  // the finite differences call this under NoGrad
    GradOptions go;
    go.create_graph = true;
    go.allow_unused = true;
    const std::vector<Tensor> gs = grad({sum(f(inputs) * w)}, inputs, go);
    std::vector<Tensor> flat;
    for (std::size_t i = 0; i < gs.size(); ++i)
      flat.push_back(reshape(gs[i].defined() ? gs[i] : Tensor::zeros(inputs[i].shape()), {-1}));
    // + 0 * sum(x): the result has history even where G is constant.
    Tensor anchor = Tensor::scalar(0.f);
    for (const Tensor& x : inputs) anchor = anchor + sum(x) * 0.f;
    return concat(flat, 0) + anchor;
  };
  gradcheck_leaves(label + " (second order)", first_order, inputs, opt);
}

}  // namespace xtape::testing
