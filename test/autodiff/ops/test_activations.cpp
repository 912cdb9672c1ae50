// Tests for autodiff/ops/activations.cpp and kernels/activations.cpp: each activation
// primitive's values and one-pass gradient against references in double over a wide range
// (tails included, relative), first and second derivatives by finite differences, NaN and
// infinity against the compositions the primitives replaced, sigmoid and tanh's one-pass
// backward against their recorded form, and the same bits for 1 and 2 threads.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"
#include "autodiff/ops_elementwise.hpp"
#include "kernels/threads.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;

namespace {

const double kPi = 3.14159265358979323846;
const double kSeluAlpha = 1.6732632423543772, kSeluScale = 1.0507009873554805;
const float kNan = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

double sigmoid_d(double v) { return 1 / (1 + std::exp(-v)); }
double softplus_d(double v) {
  return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
}
double phi_d(double v) { return std::exp(-v * v / 2) / std::sqrt(2 * kPi); }
double cdf_d(double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); }
double hs_d(double v) { return std::min(1.0, std::max(0.0, v / 6 + 0.5)); }
double tanh_u(double v) { return std::sqrt(2 / kPi) * (v + 0.044715 * v * v * v); }

// One activation: the primitive, f and f' in double, and the composition it replaced (Keras's
// formula from primitives, as autodiff/ops/activations.cpp had it).
struct Act {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> ref, dref;
  std::function<Tensor(const Tensor&)> composed;
  double atol = 0;  // for formulas whose float evaluation cancels (x / 6 + 0.5 near -3)
};

Tensor hard_sigmoid_composed(const Tensor& x) { return clip(x / 6.f + 0.5f, 0.f, 1.f); }
Tensor elu_composed(const Tensor& x, float a) {
  return where(greater(x, 0.f), x, expm1(minimum(x, 0.f)) * a);
}

std::vector<Act> activations() {
  const float slope = 0.3f, alpha = 1.7f;
  return {
      {"gelu", [](const Tensor& x) { return gelu(x); }, [](double v) { return v * cdf_d(v); },
       [](double v) { return cdf_d(v) + v * phi_d(v); },
       [](const Tensor& x) { return x * 0.5f * (1.f + erf(x * 0.7071067811865476f)); }},
      // 0.5 (1 + tanh u) = sigmoid(2u): the tail without cancellation, also in double.
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); },
       [](double v) { return v * sigmoid_d(2 * tanh_u(v)); },
       [](double v) {
         const double s = sigmoid_d(2 * tanh_u(v));
         return s + 2 * v * s * (1 - s) * std::sqrt(2 / kPi) * (1 + 3 * 0.044715 * v * v);
       },
       [](const Tensor& x) {
         return x * 0.5f * (1.f + tanh((x + x * x * x * 0.044715f) * 0.7978845608028654f));
       }},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double v) { return v * sigmoid_d(v); },
       [](double v) {
         const double s = sigmoid_d(v);
         return s * (1 + v * (1 - s));
       },
       [](const Tensor& x) { return x * sigmoid(x); }},
      {"mish", [](const Tensor& x) { return mish(x); },
       [](double v) { return v * std::tanh(softplus_d(v)); },
       [](double v) {
         const double t = std::tanh(softplus_d(v));
         return t + v * (1 - t * t) * sigmoid_d(v);
       },
       [](const Tensor& x) { return x * tanh(softplus(x)); }},
      {"elu", [=](const Tensor& x) { return elu(x, alpha); },
       [=](double v) { return v > 0 ? v : alpha * std::expm1(v); },
       [=](double v) { return v > 0 ? 1 : alpha * std::exp(v); },
       [=](const Tensor& x) { return elu_composed(x, alpha); }},
      {"selu", [](const Tensor& x) { return selu(x); },
       [](double v) { return kSeluScale * (v > 0 ? v : kSeluAlpha * std::expm1(v)); },
       [](double v) { return kSeluScale * (v > 0 ? 1 : kSeluAlpha * std::exp(v)); },
       [](const Tensor& x) {
         return elu_composed(x, static_cast<float>(kSeluAlpha)) * static_cast<float>(kSeluScale);
       }},
      {"leaky_relu", [=](const Tensor& x) { return leaky_relu(x, slope); },
       [=](double v) { return v > 0 ? v : double(slope) * v; },
       [=](double v) { return v > 0 ? 1 : double(slope); },
       [=](const Tensor& x) { return where(greater(x, 0.f), x, x * slope); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }, softplus_d, sigmoid_d,
       // The scalar loop softplus was (max(x, 0) + log1p(exp(-|x|))), its gradient sigmoid.
       nullptr},
      {"hard_sigmoid", [](const Tensor& x) { return hard_sigmoid(x); }, hs_d,
       [](double v) { return v >= -3 && v <= 3 ? 1.0 / 6 : 0.0; }, hard_sigmoid_composed, 1e-7},
      {"hard_silu", [](const Tensor& x) { return hard_silu(x); },
       [](double v) { return v * hs_d(v); },
       [](double v) { return hs_d(v) + (v >= -3 && v <= 3 ? v / 6 : 0.0); },
       [](const Tensor& x) { return x * hard_sigmoid_composed(x); }, 1e-7},
      {"softsign", [](const Tensor& x) { return softsign(x); },
       [](double v) { return v / (1 + std::abs(v)); },
       [](double v) { return 1 / ((1 + std::abs(v)) * (1 + std::abs(v))); },
       [](const Tensor& x) { return x / (abs(x) + 1.f); }},
  };
}

Tensor grid(float lo, float hi, std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
  return Tensor({n}, v);
}

// y = f(x) and dx for the output gradient g (one backward through the one-pass kernel).
std::pair<Tensor, Tensor> forward_backward(const Act& a, const Tensor& x, const Tensor& g) {
  Tensor xv = x.clone().set_requires_grad();
  Tensor y = a.f(xv);
  y.backward(g);
  return {y.detach(), xv.grad()};
}

// |got - ref| <= rtol |ref| + atol element by element, reporting a few failures.
void check_close(const std::string& label, const Tensor& x, const Tensor& got,
                 const std::vector<double>& ref, double rtol, double atol) {
  std::size_t failures = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double e = std::abs(got.data()[i] - ref[i]);
    if (!(e <= rtol * std::abs(ref[i]) + atol) && ++failures <= 5)
      BOOST_ERROR(label << ": at x = " << x.data()[i] << " got " << got.data()[i] << ", expected "
                        << ref[i]);
  }
  BOOST_TEST(failures == 0u, label << ": " << failures << " of " << ref.size() << " off");
}

// Same NaN-ness, equal infinities, and numbers within rtol (or 1e-9: the compositions lost
// small values to cancellation, elu's exp(x) as expm1(x) + 1 for instance).
bool same_class(float a, float b, double rtol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= rtol * std::abs(b) + 1e-9;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(activation_ops)

BOOST_AUTO_TEST_CASE(values_and_one_pass_gradients_against_double) {
  Rng rng(3);
  const Tensor x = grid(-8.f, 8.f, 4001);
  const Tensor g = xtape::testing::random_tensor(x.shape(), rng);
  for (const Act& a : activations()) {
    const auto [y, dx] = forward_backward(a, x, g);
    std::vector<double> ry(x.size()), rd(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      ry[i] = a.ref(x.data()[i]);
      rd[i] = g.data()[i] * a.dref(x.data()[i]);
    }
    // A few float ulp; the gradient's absolute floor covers the roots of f' (gelu's at -0.75,
    // silu's at -1.28, ...), where its terms cancel.
    // NOTE: gelu_tanh's exponent 2u rounds to 6e-8 relative, which exp(2u) multiplies by |2u|
    // (up to 45 at x = -8; the float form 0.5 x (1 + tanh u) has no digits left there).
    const double rtol = a.name == "gelu_tanh" ? 6e-6 : 2e-6;
    check_close(a.name + " forward", x, y, ry, rtol, a.atol);
    check_close(a.name + " backward", x, dx, rd, rtol, 2e-7);
  }
}

BOOST_AUTO_TEST_CASE(tails_are_relatively_accurate) {
  // Far from the roots of f': relative error only (no cancellation: gelu is x Phi(x), not
  // 0.5 x (1 + erf), which loses its digits for negative x).
  for (const auto& [lo, hi] : {std::pair{-13.f, -3.f}, std::pair{3.f, 40.f}}) {
    const Tensor x = grid(lo, hi, 2001);
    const Tensor g = Tensor::ones(x.shape());
    for (const Act& a : activations()) {
      if (a.name.rfind("hard", 0) == 0) continue;  // constant or linear there
      const auto [y, dx] = forward_backward(a, x, g);
      std::vector<double> ry(x.size()), rd(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        ry[i] = a.ref(x.data()[i]);
        rd[i] = a.dref(x.data()[i]);
      }
      // NOTE: gelu_tanh as above (|2u| reaches 75 at x = -9.5); values below 1e-30 (near the
      // end of float's range) are not checked.
      const double rtol = a.name == "gelu_tanh" ? 1e-5 : 1e-6;
      check_close(a.name + " tail forward", x, y, ry, rtol, 1e-30);
      check_close(a.name + " tail backward", x, dx, rd, rtol, 1e-30);
    }
  }
}

BOOST_AUTO_TEST_CASE(nan_and_infinities_as_the_compositions_they_replaced) {
  const std::vector<float> specials = {kNan,   kInf,  -kInf,  -0.f,  1e-30f, -1e-30f, 100.f,
                                       -100.f, 1e20f, -1e20f, 3e38f, -3e38f, 25.f,    -25.f};
  const Tensor x({specials.size()}, specials);
  const Tensor g = Tensor::full(x.shape(), 0.75f);
  for (const Act& a : activations()) {
    const auto [y, dx] = forward_backward(a, x, g);
    BOOST_TEST(std::isnan(y.data()[0]), a.name << "(NaN) is " << y.data()[0]);
    if (!a.composed) continue;
    Tensor xc = x.clone().set_requires_grad();
    Tensor yc = a.composed(xc);
    yc.backward(g);
    for (std::size_t i = 0; i < x.size(); ++i) {
      // Known differences: elu and selu's derivative at 0 (kinks_take_the_documented_side);
      // gelu_tanh's composition has a NaN derivative from |x| = 1e13 on (x^3 overflows into
      // 0 * inf) where the primitive gives the limit (1 or 0) for every finite x.
      const float v = specials[i];
      if ((a.name == "elu" || a.name == "selu") && v == 0.f) continue;
      if (a.name == "gelu_tanh" && std::isfinite(v) && std::abs(v) >= 1e13f) {
        BOOST_TEST(dx.data()[i] == (v > 0 ? 0.75f : 0.f), "gelu_tanh'(" << v << ")");
        continue;
      }
      BOOST_TEST(same_class(y.data()[i], yc.data()[i], 1e-5),
                 a.name << "(" << specials[i] << ") is " << y.data()[i] << ", the composition "
                        << yc.data()[i]);
      BOOST_TEST(same_class(dx.data()[i], xc.grad().data()[i], 1e-5),
                 a.name << "'(" << specials[i] << ") is " << dx.data()[i] << ", the composition's "
                        << xc.grad().data()[i]);
    }
  }
  // softplus: the large-x behaviour of max(x, 0) + log1p(exp(-|x|)) (no threshold).
  const auto [sy, sd] = forward_backward(activations()[7], x, g);
  const std::vector<float> y = sy.to_vector(), d = sd.to_vector();
  BOOST_TEST(std::isnan(y[0]));
  BOOST_TEST(std::isnan(d[0]));
  BOOST_TEST(y[1] == kInf);
  BOOST_TEST(d[1] == 0.75f);
  BOOST_TEST(y[2] == 0.f);
  BOOST_TEST(d[2] == 0.f);
  BOOST_TEST(y[6] == 100.f);
  BOOST_TEST(y[7] == static_cast<float>(std::exp(-100.0)), boost::test_tools::tolerance(1e-5f));
  BOOST_TEST(y[10] == 3e38f);
}

BOOST_AUTO_TEST_CASE(kinks_take_the_documented_side) {
  // elu and selu at 0: the left derivative alpha (PyTorch's); leaky_relu at 0 and at NaN: the
  // slope; hard_sigmoid at +-3: the inside (1/6), and 0 for NaN.
  const Tensor x({4}, {0.f, -0.f, 3.f, -3.f});
  const Tensor g = Tensor::ones(x.shape());
  auto grad_of = [&](const std::function<Tensor(const Tensor&)>& f, const Tensor& in) {
    Tensor v = in.clone().set_requires_grad();
    f(v).backward(Tensor::ones(in.shape()));
    return v.grad().to_vector();
  };
  BOOST_TEST(grad_of([](const Tensor& t) { return elu(t, 1.7f); }, x)[0] == 1.7f);
  BOOST_TEST(grad_of([](const Tensor& t) { return selu(t); }, x)[1] ==
                 static_cast<float>(kSeluScale * kSeluAlpha),
             boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(grad_of([](const Tensor& t) { return leaky_relu(t, 0.3f); }, x)[0] == 0.3f);
  BOOST_TEST(grad_of([](const Tensor& t) { return leaky_relu(t, 0.3f); }, Tensor({1}, {kNan}))[0] ==
             0.3f);
  const std::vector<float> hs = grad_of([](const Tensor& t) { return hard_sigmoid(t); }, x);
  BOOST_TEST(hs[2] == 1.f / 6.f);
  BOOST_TEST(hs[3] == 1.f / 6.f);
  BOOST_TEST(grad_of([](const Tensor& t) { return hard_sigmoid(t); }, Tensor({1}, {kNan}))[0] ==
             0.f);
  (void)g;
}

BOOST_AUTO_TEST_CASE(first_and_second_derivatives_by_finite_differences) {
  // NOTE: inputs away from the kinks (0 for elu, selu, leaky_relu, softsign; +-3 for the hard
  // ones) by more than the finite-difference step.
  const Tensor x({2, 9}, {-4.6f, -3.5f, -2.2f, -1.3f, -0.7f, -0.15f, 0.2f, 0.45f, 0.9f,  //
                          1.6f, 2.6f, 3.4f, 5.1f, -0.4f, 1.1f, -5.8f, 0.6f, -2.7f});
  for (const Act& a : activations()) {
    auto f = [fn = a.f](const std::vector<Tensor>& in) { return fn(in[0]); };
    gradcheck(a.name, f, {x});
    gradgradcheck(a.name, f, {x});
  }
  // sigmoid and tanh, whose first-order rule is now one pass.
  for (const auto& named :
       std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>>{
           {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
           {"tanh", [](const Tensor& t) { return tanh(t); }}}) {
    auto f = [fn = named.second](const std::vector<Tensor>& in) { return fn(in[0]); };
    gradcheck(named.first, f, {x});
    gradgradcheck(named.first, f, {x});
  }
}

BOOST_AUTO_TEST_CASE(create_graph_first_order_values_agree) {
  // The recorded form of each rule (used while creating a graph) against the one-pass kernel:
  // the same derivative to float rounding; for sigmoid and tanh the same bits.
  Rng rng(4);
  const Tensor x = xtape::testing::random_tensor({300}, rng, -6.f, 6.f);
  const Tensor g = xtape::testing::random_tensor({300}, rng);
  GradOptions create;
  create.create_graph = true;
  auto both = [&](const std::function<Tensor(const Tensor&)>& f) {
    Tensor v = x.clone().set_requires_grad();
    const Tensor plain = grad({sum(f(v) * g)}, {v})[0];
    const Tensor recorded = grad({sum(f(v) * g)}, {v}, create)[0];
    return std::pair{plain.to_vector(), recorded.to_vector()};
  };
  for (const Act& a : activations()) {
    const auto [p, r] = both(a.f);
    std::size_t off = 0;
    for (std::size_t i = 0; i < p.size(); ++i)
      off += !(std::abs(p[i] - r[i]) <= 1e-5 * std::abs(r[i]) + 1e-6);
    BOOST_TEST(off == 0u, a.name << ": " << off << " elements differ");
  }
  for (const auto& f : std::vector<std::function<Tensor(const Tensor&)>>{
           [](const Tensor& t) { return sigmoid(t); }, [](const Tensor& t) { return tanh(t); }}) {
    const auto [p, r] = both(f);
    BOOST_TEST(p == r, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(same_bits_for_any_thread_count_and_position) {
  // Large enough for a team of two (and an odd length, so that one slice ends in a tail).
  Rng rng(5);
  const std::size_t n = (1u << 18) + 13;
  const Tensor x = xtape::testing::random_tensor({n}, rng, -10.f, 10.f);
  const Tensor g = xtape::testing::random_tensor({n}, rng);
  const int saved = kernels::num_threads();
  const bool guard = kernels::load_guard();
  kernels::set_load_guard(false);  // two threads even on a busy machine
  for (const Act& a : activations()) {
    kernels::set_num_threads(1);
    const auto [y1, d1] = forward_backward(a, x, g);
    kernels::set_num_threads(2);
    const auto [y2, d2] = forward_backward(a, x, g);
    BOOST_TEST(std::memcmp(y1.data(), y2.data(), n * sizeof(float)) == 0, a.name << " forward");
    BOOST_TEST(std::memcmp(d1.data(), d2.data(), n * sizeof(float)) == 0, a.name << " backward");
    // An element's bits do not depend on its neighbours or on where the tensor ends.
    const std::size_t m = 37;
    const Tensor xs({m}, std::vector<float>(x.data() + 5, x.data() + 5 + m));
    const Tensor gs({m}, std::vector<float>(g.data() + 5, g.data() + 5 + m));
    const auto [ys, ds] = forward_backward(a, xs, gs);
    BOOST_TEST(std::memcmp(ys.data(), y1.data() + 5, m * sizeof(float)) == 0, a.name);
    BOOST_TEST(std::memcmp(ds.data(), d1.data() + 5, m * sizeof(float)) == 0, a.name);
  }
  kernels::set_load_guard(guard);
  kernels::set_num_threads(saved);
}

BOOST_AUTO_TEST_CASE(empty_tensors) {
  for (const Act& a : activations()) {
    const Tensor y = xtape::testing::check_zero_size(
        a.name, [fn = a.f](const std::vector<Tensor>& in) { return fn(in[0]); },
        {Tensor::zeros({0, 3})}, {0, 3});
    (void)y;
  }
}

BOOST_AUTO_TEST_SUITE_END()
