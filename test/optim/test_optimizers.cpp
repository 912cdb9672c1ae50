// Tests of optim/optimizers.hpp: every update rule against a double-precision hand computation of
// Keras 3's formulas (and Keras's own test values for Adagrad, Adadelta, Adamax, Nadam and Lion),
// clipping, skipping, slots, the factory and option validation.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/ops.hpp"
#include "autodiff/tensor.hpp"
#include "kernels/threads.hpp"
#include "optim/optimizers.hpp"

using namespace xtape;
using namespace xtape::optim;

namespace {

using Vec = std::vector<double>;

// A trainable leaf holding `values` with `grad` as its gradient.
Tensor leaf(const std::vector<float>& values, const std::vector<float>& grad) {
  Tensor w({values.size()}, values);
  w.set_requires_grad();
  w.set_grad(Tensor({grad.size()}, grad));
  return w;
}

void check_close(const Tensor& actual, const Vec& expected, double rel = 1e-6) {
  const std::vector<float> a = actual.to_vector();
  BOOST_REQUIRE_EQUAL(a.size(), expected.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double tol = rel * std::max(std::abs(expected[i]), 1.0);
    BOOST_CHECK_MESSAGE(std::abs(a[i] - expected[i]) <= tol,
                        "element " << i << ": got " << a[i] << ", expected " << expected[i]);
  }
}

Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// Runs two apply() steps of `opt` on one variable "w" with gradients g1 then g2.
Tensor two_steps(Optimizer& opt, const std::vector<float>& w0, const std::vector<float>& g1,
                 const std::vector<float>& g2) {
  Tensor w = leaf(w0, g1);
  opt.apply({{"w", w}});
  w.set_grad(Tensor({g2.size()}, g2));
  opt.apply({{"w", w}});
  return w;
}

// Checks that `make` throws std::invalid_argument whose message contains every one of `parts`.
void check_throws(const std::function<void()>& make, const std::vector<std::string>& parts) {
  try {
    make();
    BOOST_ERROR("expected std::invalid_argument mentioning '" << parts.front() << "'");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const auto& p : parts)
      BOOST_CHECK_MESSAGE(what.find(p) != std::string::npos,
                          "'" << what << "' lacks '" << p << "'");
  }
}

const std::vector<float> kW0 = {1.0f, -2.0f, 0.5f, 3.0f};
const std::vector<float> kG1 = {0.3f, -1.2f, 2.0f, 0.05f};
const std::vector<float> kG2 = {-0.4f, 0.7f, 1.5f, -0.25f};

// Keras Adam in double; `decay` > 0 adds AdamW's decoupled decay w -= w * decay * lr first.
Vec adam_reference(double lr, double b1, double b2, double eps, bool amsgrad, double decay) {
  Vec w = to_double(kW0), m(4, 0.0), v(4, 0.0), vhat(4, 0.0);
  const std::vector<float>* grads[] = {&kG1, &kG2};
  for (int step = 0; step < 2; ++step) {
    const double t = step + 1;
    const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (std::size_t i = 0; i < 4; ++i) {
      const double g = (*grads[step])[i];
      w[i] -= w[i] * decay * lr;
      m[i] += (g - m[i]) * (1 - b1);
      v[i] += (g * g - v[i]) * (1 - b2);
      vhat[i] = std::max(vhat[i], v[i]);
      w[i] -= alpha * m[i] / (std::sqrt(amsgrad ? vhat[i] : v[i]) + eps);
    }
  }
  return w;
}

// Keras RMSprop in double.
Vec rmsprop_reference(double lr, double rho, double mu, double eps, bool centered) {
  Vec w = to_double(kW0), vel(4, 0.0), mom(4, 0.0), avg(4, 0.0);
  const std::vector<float>* grads[] = {&kG1, &kG2};
  for (const auto* gs : grads) {
    for (std::size_t i = 0; i < 4; ++i) {
      const double g = (*gs)[i];
      vel[i] = rho * vel[i] + (1 - rho) * g * g;
      double den = vel[i] + eps;
      if (centered) {
        avg[i] = rho * avg[i] + (1 - rho) * g;
        den = vel[i] - avg[i] * avg[i] + eps;
      }
      const double inc = lr * g / std::sqrt(den);
      if (mu > 0) {
        mom[i] = mu * mom[i] + inc;
        w[i] -= mom[i];
      } else {
        w[i] -= inc;
      }
    }
  }
  return w;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optimizers)

BOOST_AUTO_TEST_CASE(sgd_plain_two_steps) {
  SGD opt({.learning_rate = 0.1f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  Vec expected = to_double(kW0);
  for (std::size_t i = 0; i < 4; ++i)
    expected[i] -= double(0.1f) * (double(kG1[i]) + double(kG2[i]));
  check_close(w, expected);
  BOOST_CHECK_EQUAL(opt.iterations(), 2);
  BOOST_CHECK(opt.slot_names().empty());
  BOOST_CHECK(opt.slots().at("w").empty());
}

BOOST_AUTO_TEST_CASE(sgd_momentum_two_steps) {
  SGD opt({.learning_rate = 0.1f, .momentum = 0.9f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  const double lr = 0.1f, mu = 0.9f;
  Vec expected = to_double(kW0), m(4, 0.0);
  for (const auto* gs : {&kG1, &kG2})
    for (std::size_t i = 0; i < 4; ++i) {
      m[i] = mu * m[i] - lr * (*gs)[i];
      expected[i] += m[i];
    }
  check_close(w, expected);
  BOOST_REQUIRE_EQUAL(opt.slots().at("w").size(), 1u);
  check_close(opt.slots().at("w")[0], m);
  BOOST_CHECK(opt.slot_names() == std::vector<std::string>{"momentum"});
}

BOOST_AUTO_TEST_CASE(sgd_nesterov_two_steps) {
  SGD opt({.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  const double lr = 0.1f, mu = 0.9f;
  Vec expected = to_double(kW0), m(4, 0.0);
  for (const auto* gs : {&kG1, &kG2})
    for (std::size_t i = 0; i < 4; ++i) {
      const double g = (*gs)[i];
      m[i] = mu * m[i] - lr * g;
      expected[i] += mu * m[i] - lr * g;
    }
  check_close(w, expected);
}

BOOST_AUTO_TEST_CASE(adam_two_steps) {
  Adam opt({.learning_rate = 0.1f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, adam_reference(0.1f, 0.9f, 0.999f, 1e-7f, false, 0.0));
  BOOST_CHECK(opt.slot_names() == (std::vector<std::string>{"momentum", "velocity"}));
  // m and v after two steps.
  Vec m(4), v(4);
  for (std::size_t i = 0; i < 4; ++i) {
    const double b1 = 0.9f, b2 = 0.999f, g1 = kG1[i], g2 = kG2[i];
    m[i] = (1 - b1) * g1 * b1 + (1 - b1) * g2;
    v[i] = (1 - b2) * g1 * g1 * b2 + (1 - b2) * g2 * g2;
  }
  const auto& s = opt.slots().at("w");
  BOOST_REQUIRE_EQUAL(s.size(), 2u);
  check_close(s[0], m, 1e-5);
  check_close(s[1], v, 1e-5);
}

BOOST_AUTO_TEST_CASE(blocked_updates_same_bits_for_any_thread_count) {
  // 300,007 elements (a dense layer's kernel, not a multiple of the 512-element blocks): every
  // optimizer whose update runs its blocks on the library's threads must give the same bits
  // after two steps with 1 and with 2 threads; Adam also the values of Keras's rule in double.
  const std::size_t n = 300007;
  std::vector<float> w0(n), g1(n), g2(n);
  for (std::size_t i = 0; i < n; ++i) {
    w0[i] = std::sin(0.001f * static_cast<float>(i));
    g1[i] = std::cos(0.003f * static_cast<float>(i));
    g2[i] = 0.5f - std::sin(0.007f * static_cast<float>(i));
  }
  const std::vector<std::pair<std::string, std::function<std::shared_ptr<Optimizer>()>>> makers = {
      {"adam", [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.01f}); }},
      {"adam amsgrad",
       [] { return std::make_shared<Adam>(AdamOptions{.learning_rate = 0.01f, .amsgrad = true}); }},
      {"nadam", [] { return std::make_shared<Nadam>(NadamOptions{}); }},
      {"rmsprop", [] { return std::make_shared<RMSprop>(RMSpropOptions{}); }},
      {"rmsprop centered momentum",
       [] {
         return std::make_shared<RMSprop>(RMSpropOptions{.momentum = 0.9f, .centered = true});
       }},
      {"adagrad", [] { return std::make_shared<Adagrad>(AdagradOptions{}); }},
      {"adadelta", [] { return std::make_shared<Adadelta>(AdadeltaOptions{}); }},
      {"sgd", [] { return std::make_shared<SGD>(SGDOptions{}); }},
      {"sgd momentum", [] { return std::make_shared<SGD>(SGDOptions{.momentum = 0.9f}); }},
      {"sgd nesterov",
       [] { return std::make_shared<SGD>(SGDOptions{.momentum = 0.9f, .nesterov = true}); }},
      {"adamax", [] { return std::make_shared<Adamax>(AdamaxOptions{}); }},
      {"lion", [] { return std::make_shared<Lion>(LionOptions{}); }},
  };
  const int saved = xtape::kernels::num_threads();
  std::vector<float> adam;
  for (const auto& [name, make] : makers) {
    std::vector<std::vector<float>> results;
    for (const int threads : {1, 2}) {
      xtape::kernels::set_num_threads(threads);
      auto opt = make();
      results.push_back(two_steps(*opt, w0, g1, g2).to_vector());
    }
    xtape::kernels::set_num_threads(saved);
    BOOST_TEST((results[0] == results[1]), name);
    BOOST_TEST((results[0] != w0), name << " did not move the weights");
    if (name == "adam") adam = results[0];
  }
  // Keras's Adam in double, two steps: w -= lr_t m / (sqrt(v) + eps).
  double max_err = 0;
  for (std::size_t i = 0; i < n; i += 997) {
    double w = w0[i], m = 0, v = 0;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
    for (int t = 1; t <= 2; ++t) {
      const double g = t == 1 ? g1[i] : g2[i];
      m += (g - m) * (1 - b1);
      v += (g * g - v) * (1 - b2);
      const double lr = 0.01 * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
      w -= lr * m / (std::sqrt(v) + eps);
    }
    max_err = std::max(max_err, std::abs(w - adam[i]));
  }
  BOOST_TEST(max_err < 1e-6);
}

BOOST_AUTO_TEST_CASE(adam_custom_betas_and_epsilon) {
  Adam opt({.learning_rate = 0.05f, .beta_1 = 0.5f, .beta_2 = 0.75f, .epsilon = 0.1f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, adam_reference(0.05f, 0.5f, 0.75f, 0.1f, false, 0.0));
}

BOOST_AUTO_TEST_CASE(adam_amsgrad_two_steps) {
  // kG2[0]^2, kG2[3]^2 < kG1^2 with beta_2 = 0.5, so v falls on step 2 and v_hat keeps the max.
  Adam opt({.learning_rate = 0.1f, .beta_2 = 0.5f, .amsgrad = true});
  Tensor w = two_steps(opt, {1.0f, -2.0f, 0.5f, 3.0f}, {2.0f, -1.2f, 2.0f, 1.0f},
                       {0.1f, 0.7f, 1.5f, -0.25f});
  // Reference with these gradients.
  const double lr = 0.1f, b1 = 0.9f, b2 = 0.5f, eps = 1e-7f;
  Vec x = to_double(kW0), m(4, 0.0), v(4, 0.0), vhat(4, 0.0);
  const std::vector<std::vector<double>> gs = {{2.0f, -1.2f, 2.0f, 1.0f},
                                               {0.1f, 0.7f, 1.5f, -0.25f}};
  for (int step = 0; step < 2; ++step) {
    const double alpha = lr * std::sqrt(1 - std::pow(b2, step + 1)) / (1 - std::pow(b1, step + 1));
    for (std::size_t i = 0; i < 4; ++i) {
      const double g = gs[step][i];
      m[i] += (g - m[i]) * (1 - b1);
      v[i] += (g * g - v[i]) * (1 - b2);
      vhat[i] = std::max(vhat[i], v[i]);
      x[i] -= alpha * m[i] / (std::sqrt(vhat[i]) + eps);
    }
  }
  BOOST_CHECK(vhat[0] > v[0]);  // the max really matters in this test
  check_close(w, x);
  BOOST_CHECK_EQUAL(opt.slots().at("w").size(), 3u);
  check_close(opt.slots().at("w")[2], vhat, 1e-5);
}

BOOST_AUTO_TEST_CASE(adam_bias_correction_uses_iterations) {
  Adam opt({.learning_rate = 0.1f});
  opt.set_iterations(9);  // next step uses t = 10
  Tensor w = leaf({1.0f}, {0.5f});
  opt.apply({{"w", w}});
  const double b1 = 0.9f, b2 = 0.999f, g = 0.5;
  const double alpha = double(0.1f) * std::sqrt(1 - std::pow(b2, 10)) / (1 - std::pow(b1, 10));
  const double m = (1 - b1) * g, v = (1 - b2) * g * g;
  check_close(w, {1.0 - alpha * m / (std::sqrt(v) + double(1e-7f))});
  BOOST_CHECK_EQUAL(opt.iterations(), 10);
}

BOOST_AUTO_TEST_CASE(adamw_two_steps) {
  AdamW opt({.learning_rate = 0.1f, .weight_decay = 0.2f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, adam_reference(0.1f, 0.9f, 0.999f, 1e-7f, false, double(0.2f)));
  BOOST_CHECK_EQUAL(opt.name(), "adamw");
  BOOST_CHECK_CLOSE(*opt.weight_decay(), 0.2f, 1e-6);
}

BOOST_AUTO_TEST_CASE(adamw_decays_with_zero_gradient) {
  AdamW opt({.learning_rate = 0.5f, .weight_decay = 0.1f});
  Tensor w = leaf({2.0f, -4.0f}, {0.f, 0.f});
  opt.apply({{"w", w}});
  // m = v = 0, so the Adam step is 0 / (0 + eps) = 0: only the decay w *= 1 - 0.1 * 0.5 remains.
  check_close(w, {2.0 * (1 - double(0.1f) * 0.5), -4.0 * (1 - double(0.1f) * 0.5)});
}

BOOST_AUTO_TEST_CASE(rmsprop_plain_two_steps) {
  RMSprop opt({.learning_rate = 0.1f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, rmsprop_reference(0.1f, 0.9f, 0.0, 1e-7f, false));
  BOOST_CHECK(opt.slot_names() == std::vector<std::string>{"velocity"});
}

BOOST_AUTO_TEST_CASE(rmsprop_centered_two_steps) {
  RMSprop opt({.learning_rate = 0.1f, .centered = true});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, rmsprop_reference(0.1f, 0.9f, 0.0, 1e-7f, true));
  BOOST_CHECK(opt.slot_names() == (std::vector<std::string>{"velocity", "average_gradient"}));
}

BOOST_AUTO_TEST_CASE(rmsprop_momentum_two_steps) {
  RMSprop opt({.learning_rate = 0.1f, .rho = 0.8f, .momentum = 0.7f});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, rmsprop_reference(0.1f, 0.8f, 0.7f, 1e-7f, false));
  BOOST_CHECK(opt.slot_names() == (std::vector<std::string>{"velocity", "momentum"}));
}

BOOST_AUTO_TEST_CASE(rmsprop_centered_momentum_two_steps) {
  RMSprop opt({.learning_rate = 0.1f, .momentum = 0.5f, .centered = true});
  Tensor w = two_steps(opt, kW0, kG1, kG2);
  check_close(w, rmsprop_reference(0.1f, 0.9f, 0.5f, 1e-7f, true));
  BOOST_CHECK_EQUAL(opt.slots().at("w").size(), 3u);
}

BOOST_AUTO_TEST_CASE(rmsprop_keras_docstring_example) {
  // Keras: var = 10, loss = var^2 / 2, RMSprop(learning_rate=0.1) one step -> 9.683772.
  RMSprop opt({.learning_rate = 0.1f});
  Tensor w = leaf({10.f}, {10.f});
  opt.apply({{"var1", w}});
  BOOST_CHECK_CLOSE(w.item(), 9.683772f, 1e-4);
}

BOOST_AUTO_TEST_CASE(long_variables_cross_blocks) {
  // Sizes around the internal block length: every element must follow the one-element rule.
  const std::vector<std::function<std::unique_ptr<Optimizer>()>> makers = {
      [] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.1f, .amsgrad = true}); },
      [] { return std::make_unique<AdamW>(AdamWOptions{.learning_rate = 0.1f}); },
      [] { return std::make_unique<RMSprop>(RMSpropOptions{.momentum = 0.3f, .centered = true}); },
      [] { return std::make_unique<RMSprop>(RMSpropOptions{}); },
      [] { return std::make_unique<SGD>(SGDOptions{.momentum = 0.5f, .nesterov = true}); },
      [] { return std::make_unique<Adagrad>(AdagradOptions{.learning_rate = 0.1f}); },
      [] { return std::make_unique<Adadelta>(AdadeltaOptions{.learning_rate = 1.f}); },
      [] { return std::make_unique<Adamax>(AdamaxOptions{.learning_rate = 0.1f}); },
      [] { return std::make_unique<Nadam>(NadamOptions{.learning_rate = 0.1f}); },
      [] { return std::make_unique<Lion>(LionOptions{.learning_rate = 0.1f}); },
  };
  for (std::size_t n : {511u, 512u, 1300u}) {
    std::vector<float> w0(n), g(n);
    for (std::size_t i = 0; i < n; ++i) {
      w0[i] = 0.5f + 0.001f * float(i);
      g[i] = 0.25f - 0.0007f * float(i % 700);
    }
    for (const auto& make : makers) {
      auto opt = make();
      Tensor big = leaf(w0, g);
      opt->apply({{"big", big}});
      opt->apply({{"big", big}});
      for (std::size_t i : {std::size_t{0}, std::size_t{300}, n / 2, n - 1}) {
        auto one = make();
        Tensor single = leaf({w0[i]}, {g[i]});
        one->apply({{"one", single}});
        one->apply({{"one", single}});
        BOOST_CHECK_CLOSE(big.data()[i], single.item(), 1e-4);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(global_clipnorm_scales_all_gradients) {
  // Gradients (3, 4) and (12): global norm 13; clip 6.5 halves them.
  SGD opt({.learning_rate = 1.0f, .global_clipnorm = 6.5f});
  Tensor a = leaf({0.f, 0.f}, {3.f, 4.f});
  Tensor b = leaf({1.f}, {12.f});
  opt.apply({{"a", a}, {"b", b}});
  check_close(a, {-1.5, -2.0});
  check_close(b, {1.0 - 6.0});
  // The stored gradients are left alone.
  check_close(a.grad(), {3.0, 4.0});
  // Below the clip norm nothing is scaled.
  SGD loose({.learning_rate = 1.0f, .global_clipnorm = 100.f});
  Tensor c = leaf({0.f, 0.f}, {3.f, 4.f});
  loose.apply({{"c", c}});
  check_close(c, {-3.0, -4.0});
}

BOOST_AUTO_TEST_CASE(global_clipnorm_with_adam) {
  // Scaling by s changes Adam's step only through epsilon, so compare against the reference
  // computed with the clipped gradient itself.
  Adam opt({.learning_rate = 0.1f, .epsilon = 0.5f, .global_clipnorm = 1.0f});
  Tensor w = leaf({1.f, 2.f}, {3.f, 4.f});
  opt.apply({{"w", w}});
  const double b1 = 0.9f, b2 = 0.999f, lr = 0.1f;
  const double alpha = lr * std::sqrt(1 - b2) / (1 - b1);
  Vec expected = {1.0, 2.0};
  const double g[] = {0.6, 0.8};
  for (std::size_t i = 0; i < 2; ++i)
    expected[i] -= alpha * (1 - b1) * g[i] / (std::sqrt((1 - b2) * g[i] * g[i]) + 0.5);
  check_close(w, expected);
}

BOOST_AUTO_TEST_CASE(non_finite_global_norm_gives_nan) {
  SGD opt({.learning_rate = 1.0f, .global_clipnorm = 1.0f});
  Tensor w = leaf({1.f, 2.f}, {INFINITY, 1.f});
  opt.apply({{"w", w}});
  BOOST_CHECK(std::isnan(w.data()[0]) && std::isnan(w.data()[1]));
}

BOOST_AUTO_TEST_CASE(variables_without_gradient_are_skipped) {
  Adam opt({.learning_rate = 0.1f, .global_clipnorm = 1.0f});
  Tensor with = leaf({1.f}, {0.5f});
  Tensor without({2}, {3.f, 4.f});
  without.set_requires_grad();
  BOOST_REQUIRE(!without.grad().defined());
  opt.apply({{"with", with}, {"without", without}});
  check_close(without, {3.0, 4.0});
  BOOST_CHECK(opt.slots().count("without") == 0);
  BOOST_CHECK(opt.slots().count("with") == 1);
  BOOST_CHECK(with.item() < 1.f);
  BOOST_CHECK_EQUAL(opt.iterations(), 1);
  // Nothing at all to update still counts as a step.
  opt.apply({{"without", without}});
  BOOST_CHECK_EQUAL(opt.iterations(), 2);
}

BOOST_AUTO_TEST_CASE(slots_are_created_once_and_reused) {
  Adam opt;
  Tensor w = leaf({1.f, 2.f}, {0.1f, 0.2f});
  opt.apply({{"dense/kernel", w}});
  const void* m_id = opt.slots().at("dense/kernel")[0].id();
  const float* m_data = opt.slots().at("dense/kernel")[0].data();
  opt.apply({{"dense/kernel", w}});
  BOOST_CHECK(opt.slots().at("dense/kernel")[0].id() == m_id);
  BOOST_CHECK(opt.slots().at("dense/kernel")[0].data() == m_data);
  BOOST_CHECK_EQUAL(opt.slots().size(), 1u);
}

BOOST_AUTO_TEST_CASE(shape_change_of_a_known_name_throws) {
  for (auto name : {"sgd", "adam"}) {  // SGD without momentum has no slots but still checks
    auto opt = make_optimizer(name);
    Tensor w = leaf({1.f, 2.f}, {0.1f, 0.2f});
    opt->apply({{"dense/bias", w}});
    Tensor w3 = leaf({1.f, 2.f, 3.f}, {0.1f, 0.2f, 0.3f});
    check_throws([&] { opt->apply({{"dense/bias", w3}}); }, {"dense/bias", "(2,)", "(3,)"});
  }
}

BOOST_AUTO_TEST_CASE(restored_slots_are_used_and_checked) {
  // A restored momentum slot continues the SGD trajectory.
  SGD opt({.learning_rate = 0.1f, .momentum = 0.9f});
  opt.slots()["w"] = {Tensor({2}, {1.f, -1.f})};
  Tensor w = leaf({0.f, 0.f}, {1.f, 1.f});
  opt.apply({{"w", w}});
  check_close(w, {0.9 * 1.0 - 0.1, -0.9 - 0.1}, 1e-6);
  // Wrong count and wrong shape are reported.
  Adam adam;
  adam.slots()["v1"] = {Tensor::zeros({2})};
  Tensor v1 = leaf({0.f, 0.f}, {1.f, 1.f});
  check_throws([&] { adam.apply({{"v1", v1}}); }, {"v1", "1 slot", "expected 2"});
  adam.slots()["v1"] = {Tensor::zeros({2}), Tensor::zeros({3})};
  check_throws([&] { adam.apply({{"v1", v1}}); }, {"v1", "velocity", "(3,)", "(2,)"});
}

BOOST_AUTO_TEST_CASE(learning_rate_and_iterations_accessors) {
  SGD opt;
  BOOST_CHECK_CLOSE(opt.learning_rate(), 0.01f, 1e-6);
  opt.set_learning_rate(0.5f);
  Tensor w = leaf({1.f}, {1.f});
  opt.apply({{"w", w}});
  check_close(w, {0.5});
  check_throws([&] { opt.set_learning_rate(-1.f); }, {"SGD", "learning_rate", "-1"});
  check_throws([&] { opt.set_iterations(-3); }, {"iterations", "-3"});
  opt.set_iterations(42);
  BOOST_CHECK_EQUAL(opt.iterations(), 42);
}

BOOST_AUTO_TEST_CASE(make_optimizer_names) {
  const std::pair<const char*, float> cases[] = {
      {"sgd", 0.01f},     {"adam", 1e-3f},    {"adamw", 1e-3f},
      {"rmsprop", 1e-3f}, {"adagrad", 1e-3f}, {"adadelta", 1e-3f},
      {"adamax", 1e-3f},  {"nadam", 1e-3f},   {"lion", 1e-3f}};
  for (const auto& [name, lr] : cases) {
    auto opt = make_optimizer(name);
    BOOST_REQUIRE(opt);
    BOOST_CHECK_EQUAL(opt->name(), name);
    BOOST_CHECK_EQUAL(opt->learning_rate(), lr);
    BOOST_CHECK(!opt->global_clipnorm());
  }
  BOOST_CHECK_EQUAL(make_optimizer("Adam")->name(), "adam");
  BOOST_CHECK_EQUAL(make_optimizer("RMSprop")->name(), "rmsprop");
  BOOST_CHECK_EQUAL(make_optimizer("Nadam")->name(), "nadam");
  check_throws([] { make_optimizer("adafactor"); },
               {"adafactor", "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
                "nadam", "lion"});
}

BOOST_AUTO_TEST_CASE(adam_minimises_a_quadratic) {
  // loss = sum((w - target)^2), built with xtape ops and differentiated by backward().
  const std::vector<float> target = {1.5f, -2.0f, 0.25f, 3.0f};
  Tensor t({4}, target);
  Tensor w = Tensor::zeros({4});
  w.set_requires_grad();
  Adam opt({.learning_rate = 0.05f});
  float loss_value = 0.f;
  for (int step = 0; step < 400; ++step) {
    w.zero_grad();
    Tensor loss = sum(square(w - t));
    loss_value = loss.item();
    loss.backward();
    opt.apply({{"w", w}});
  }
  BOOST_TEST_MESSAGE("final loss " << loss_value);
  BOOST_CHECK_LT(loss_value, 1e-3f);
  for (std::size_t i = 0; i < 4; ++i) BOOST_CHECK_SMALL(w.data()[i] - target[i], 2e-2f);
  BOOST_CHECK(!grad_enabled() || tape_size() == 0);  // apply() records nothing
}

BOOST_AUTO_TEST_CASE(every_optimizer_reduces_a_quadratic) {
  // Adadelta is left out: its default steps start near sqrt(epsilon) and grow slowly.
  for (auto name : {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "lion"}) {
    auto opt = make_optimizer(name);
    opt->set_learning_rate(0.05f);
    Tensor t({3}, {1.f, -1.f, 2.f});
    Tensor w = Tensor::zeros({3});
    w.set_requires_grad();
    float first = 0.f, last = 0.f;
    for (int step = 0; step < 100; ++step) {
      w.zero_grad();
      Tensor loss = sum(square(w - t));
      (step == 0 ? first : last) = loss.item();
      loss.backward();
      opt->apply({{"w", w}});
    }
    BOOST_CHECK_MESSAGE(last < 0.5f * first, name << ": loss " << first << " -> " << last);
  }
}

BOOST_AUTO_TEST_CASE(apply_does_not_record_on_the_tape) {
  Adam opt;
  Tensor w = leaf({1.f, 2.f}, {0.1f, 0.2f});
  const std::size_t before = tape_size();
  opt.apply({{"w", w}});
  BOOST_CHECK_EQUAL(tape_size(), before);
  BOOST_CHECK(grad_enabled());  // NoGrad restored
  BOOST_CHECK(w.is_leaf() && w.requires_grad());
}

BOOST_AUTO_TEST_CASE(invalid_options_throw) {
  check_throws([] { SGD({.learning_rate = -0.1f}); }, {"SGD", "learning_rate", "-0.1"});
  check_throws([] { SGD({.momentum = 1.5f}); }, {"SGD", "momentum", "1.5"});
  check_throws([] { SGD({.momentum = -0.5f}); }, {"SGD", "momentum", "-0.5"});
  check_throws([] { SGD({.global_clipnorm = 0.f}); }, {"SGD", "global_clipnorm", "0"});
  check_throws([] { Adam({.learning_rate = NAN}); }, {"Adam", "learning_rate", "nan"});
  check_throws([] { Adam({.beta_1 = 1.0f}); }, {"Adam", "beta_1", "1"});
  check_throws([] { Adam({.beta_2 = -0.1f}); }, {"Adam", "beta_2", "-0.1"});
  check_throws([] { Adam({.epsilon = -1e-8f}); }, {"Adam", "epsilon", "-1e-08"});
  check_throws([] { AdamW({.weight_decay = -0.01f}); }, {"AdamW", "weight_decay", "-0.01"});
  check_throws([] { AdamW({.beta_1 = 2.f}); }, {"AdamW", "beta_1", "2"});
  check_throws([] { RMSprop({.rho = 1.0f}); }, {"RMSprop", "rho", "1"});
  check_throws([] { RMSprop({.momentum = 1.5f}); }, {"RMSprop", "momentum", "1.5"});
  check_throws([] { RMSprop({.epsilon = -1.f}); }, {"RMSprop", "epsilon", "-1"});
  check_throws([] { RMSprop({.global_clipnorm = -2.f}); }, {"RMSprop", "global_clipnorm", "-2"});
  // Boundary values are accepted.
  BOOST_CHECK_NO_THROW(SGD({.momentum = 1.0f}));
  BOOST_CHECK_NO_THROW(Adam({.learning_rate = 0.f, .beta_1 = 0.f, .beta_2 = 0.f, .epsilon = 0.f}));
}

BOOST_AUTO_TEST_CASE(undefined_variable_throws) {
  SGD opt;
  check_throws([&] { opt.apply({{"ghost", Tensor()}}); }, {"ghost", "undefined"});
}

// ---- Adagrad, Adadelta, Adamax, Nadam, Lion ----

namespace {

// 0.5 * sum(a (w - t)^2): gradient a (w - t), computed in float for the optimizer and in double
// for the reference, from each one's own weights.
const Vec kA = {1.0, 2.5, 0.5, 4.0}, kT = {1.5, -2.0, 0.25, 3.0}, kStart = {0.0, 1.0, -1.0, 2.0};

// A double-precision update rule: (w, g, t) with t = 1, 2, ... the step number.
using Rule = std::function<void(Vec& w, const Vec& g, int t)>;

// Runs `opt` and `rule` side by side for `steps` steps on the quadratic and compares the weights
// after every step.
void check_trajectory(const std::string& label, Optimizer& opt, Rule rule, int steps = 6,
                      double rel = 2e-5) {
  Tensor w({4}, std::vector<float>(kStart.begin(), kStart.end()));
  w.set_requires_grad();
  Vec ref = kStart;
  for (int t = 1; t <= steps; ++t) {
    std::vector<float> gf(4);
    Vec gd(4);
    for (std::size_t i = 0; i < 4; ++i) {
      gf[i] = float(kA[i]) * (w.data()[i] - float(kT[i]));
      gd[i] = kA[i] * (ref[i] - kT[i]);
    }
    w.set_grad(Tensor({4}, gf));
    opt.apply({{"w", w}});
    rule(ref, gd, t);
    for (std::size_t i = 0; i < 4; ++i) {
      const double tol = rel * std::max(std::abs(ref[i]), 1.0);
      BOOST_CHECK_MESSAGE(std::abs(w.data()[i] - ref[i]) <= tol,
                          label << " step " << t << " element " << i << ": got " << w.data()[i]
                                << ", expected " << ref[i]);
    }
  }
}

// Keras's golden test: x = ones(10), one step with gradients 0.01, then steps with gradients
// 0.1, 0.2, ..., 1.0; `golden[i]` is x before the (i + 1)-th of those (rtol = atol = 5e-4).
void check_keras_golden(const std::string& label, Optimizer& opt,
                        const std::vector<std::vector<double>>& golden) {
  Tensor x = Tensor::ones({10});
  x.set_requires_grad();
  x.set_grad(Tensor::full({10}, 0.01f));
  opt.apply({{"x", x}});
  std::vector<float> grads(10);
  for (int i = 0; i < 10; ++i) grads[i] = 0.1f * float(i + 1);
  for (std::size_t step = 0; step < golden.size(); ++step) {
    const std::vector<double>& row = golden[step];
    for (std::size_t i = 0; i < 10; ++i) {
      const double want = row.size() == 1 ? row[0] : row[i];
      BOOST_CHECK_MESSAGE(std::abs(x.data()[i] - want) <= 5e-4 + 5e-4 * std::abs(want),
                          label << " golden row " << step << " element " << i << ": got "
                                << x.data()[i] << ", Keras " << want);
    }
    x.set_grad(Tensor({10}, grads));
    opt.apply({{"x", x}});
  }
}

// Keras's single-step test: vars [1, 2, 3, 4], gradients [1, 6, 7, 2] (rtol = atol = 1e-4).
void check_keras_single_step(const std::string& label, Optimizer& opt, const Vec& expected) {
  Tensor w = leaf({1.f, 2.f, 3.f, 4.f}, {1.f, 6.f, 7.f, 2.f});
  opt.apply({{"w", w}});
  for (std::size_t i = 0; i < 4; ++i)
    BOOST_CHECK_MESSAGE(
        std::abs(w.data()[i] - expected[i]) <= 1e-4 + 1e-4 * expected[i],
        label << " element " << i << ": got " << w.data()[i] << ", Keras " << expected[i]);
}

Rule adagrad_rule(double lr, double init, double eps) {
  auto acc = std::make_shared<Vec>(4, init);
  return [=](Vec& w, const Vec& g, int) {
    for (std::size_t i = 0; i < 4; ++i) {
      (*acc)[i] += g[i] * g[i];
      w[i] -= lr * g[i] / std::sqrt((*acc)[i] + eps);
    }
  };
}

Rule adadelta_rule(double lr, double rho, double eps) {
  auto ag = std::make_shared<Vec>(4, 0.0), ad = std::make_shared<Vec>(4, 0.0);
  return [=](Vec& w, const Vec& g, int) {
    for (std::size_t i = 0; i < 4; ++i) {
      (*ag)[i] = rho * (*ag)[i] + (1 - rho) * g[i] * g[i];
      const double delta = -std::sqrt((*ad)[i] + eps) * g[i] / std::sqrt((*ag)[i] + eps);
      (*ad)[i] = rho * (*ad)[i] + (1 - rho) * delta * delta;
      w[i] += lr * delta;
    }
  };
}

Rule adamax_rule(double lr, double b1, double b2, double eps) {
  auto m = std::make_shared<Vec>(4, 0.0), u = std::make_shared<Vec>(4, 0.0);
  return [=](Vec& w, const Vec& g, int t) {
    for (std::size_t i = 0; i < 4; ++i) {
      (*m)[i] += (g[i] - (*m)[i]) * (1 - b1);
      (*u)[i] = std::max(b2 * (*u)[i], std::abs(g[i]));
      w[i] -= lr * (*m)[i] / ((1 - std::pow(b1, t)) * ((*u)[i] + eps));
    }
  };
}

// Keras 3's Nadam, with its momentum product accumulated step by step.
Rule nadam_rule(double lr, double b1, double b2, double eps) {
  auto m = std::make_shared<Vec>(4, 0.0), v = std::make_shared<Vec>(4, 0.0);
  auto product = std::make_shared<double>(1.0);
  return [=](Vec& w, const Vec& g, int t) {
    const double u_t = b1 * (1 - 0.5 * std::pow(0.96, t));
    const double u_next = b1 * (1 - 0.5 * std::pow(0.96, t + 1));
    *product *= u_t;
    const double p_next = *product * u_next;
    for (std::size_t i = 0; i < 4; ++i) {
      (*m)[i] += (g[i] - (*m)[i]) * (1 - b1);
      (*v)[i] += (g[i] * g[i] - (*v)[i]) * (1 - b2);
      const double m_hat = u_next * (*m)[i] / (1 - p_next) + (1 - u_t) * g[i] / (1 - *product);
      const double v_hat = (*v)[i] / (1 - std::pow(b2, t));
      w[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  };
}

Rule lion_rule(double lr, double b1, double b2) {
  auto m = std::make_shared<Vec>(4, 0.0);
  return [=](Vec& w, const Vec& g, int) {
    for (std::size_t i = 0; i < 4; ++i) {
      const double c = b1 * (*m)[i] + (1 - b1) * g[i];
      w[i] -= lr * (c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0);
      (*m)[i] = b2 * (*m)[i] + (1 - b2) * g[i];
    }
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(adagrad_trajectories_and_keras_values) {
  Adagrad defaults;
  check_trajectory("adagrad defaults", defaults,
                   adagrad_rule(double(1e-3f), double(0.1f), double(1e-7f)));
  Adagrad custom({.learning_rate = 0.2f, .initial_accumulator_value = 0.3f, .epsilon = 1e-6f});
  check_trajectory("adagrad custom", custom,
                   adagrad_rule(double(0.2f), double(0.3f), double(1e-6f)));
  Adagrad zero({.learning_rate = 0.5f, .initial_accumulator_value = 0.f});
  check_trajectory("adagrad zero start", zero, adagrad_rule(double(0.5f), 0.0, double(1e-7f)));
  Adagrad single({.learning_rate = 0.5f});
  check_keras_single_step("adagrad", single, {0.5233, 1.5007, 2.5005, 3.5061});
  Adagrad golden({.learning_rate = 0.2f, .initial_accumulator_value = 0.3f, .epsilon = 1e-6f});
  check_keras_golden(
      "adagrad", golden,
      {{0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963},
       {0.9604, 0.9278, 0.9003, 0.8784, 0.8615, 0.8487, 0.8388, 0.8313, 0.8255, 0.8209},
       {0.9251, 0.8629, 0.8137, 0.7768, 0.7497, 0.7298, 0.7151, 0.704, 0.6956, 0.6891},
       {0.8903, 0.8012, 0.7342, 0.6862, 0.6521, 0.6277, 0.6099, 0.5967, 0.5867, 0.579},
       {0.856, 0.7422, 0.6604, 0.6037, 0.5644, 0.5367, 0.5168, 0.5021, 0.491, 0.4825}});
  // The accumulator starts at initial_accumulator_value; it is a second moment.
  BOOST_CHECK(defaults.slot_names() == std::vector<std::string>{"accumulator"});
  BOOST_CHECK(defaults.slot_nonnegative(0));
  Adagrad fresh({.initial_accumulator_value = 0.25f});
  Tensor w = leaf({1.f, 2.f}, {0.5f, 0.f});
  fresh.apply({{"w", w}});
  BOOST_CHECK(fresh.slots().at("w")[0].to_vector() == (std::vector<float>{0.25f + 0.25f, 0.25f}));
}

BOOST_AUTO_TEST_CASE(adadelta_trajectories_and_keras_values) {
  Adadelta defaults;
  check_trajectory("adadelta defaults", defaults,
                   adadelta_rule(double(1e-3f), double(0.95f), double(1e-7f)));
  Adadelta custom({.learning_rate = 1.f, .rho = 0.8f, .epsilon = 1e-6f});
  check_trajectory("adadelta custom", custom, adadelta_rule(1.0, double(0.8f), double(1e-6f)));
  Adadelta single({.learning_rate = 0.5f});
  check_keras_single_step("adadelta", single, {0.9993, 1.9993, 2.9993, 3.9993});
  Adadelta golden({.learning_rate = 1.f, .rho = 0.8f, .epsilon = 1e-6f});
  check_keras_golden("adadelta", golden, {{0.9978}, {0.9947}, {0.9915}, {0.9882}, {0.9849}});
  BOOST_CHECK(defaults.slot_names() ==
              (std::vector<std::string>{"accumulated_grad", "accumulated_delta_var"}));
  BOOST_CHECK(defaults.slot_nonnegative(0) && defaults.slot_nonnegative(1));
}

BOOST_AUTO_TEST_CASE(adamax_trajectories_and_keras_values) {
  Adamax defaults;
  check_trajectory("adamax defaults", defaults,
                   adamax_rule(double(1e-3f), double(0.9f), double(0.999f), double(1e-7f)));
  Adamax custom({.learning_rate = 0.2f, .beta_1 = 0.85f, .beta_2 = 0.95f, .epsilon = 1e-6f});
  check_trajectory("adamax custom", custom,
                   adamax_rule(double(0.2f), double(0.85f), double(0.95f), double(1e-6f)));
  Adamax single({.learning_rate = 0.5f});
  check_keras_single_step("adamax", single, {0.5, 1.5, 2.5, 3.5});
  Adamax golden({.learning_rate = 0.2f, .beta_1 = 0.85f, .beta_2 = 0.95f, .epsilon = 1e-6f});
  check_keras_golden(
      "adamax", golden,
      {{0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8},
       {0.6827, 0.6873, 0.6888, 0.6896, 0.6901, 0.6904, 0.6906, 0.6908, 0.6909, 0.691},
       {0.5333, 0.5407, 0.5431, 0.5444, 0.5451, 0.5456, 0.546, 0.5462, 0.5464, 0.5466},
       {0.368, 0.3773, 0.3804, 0.382, 0.3829, 0.3835, 0.384, 0.3843, 0.3846, 0.3848},
       {0.1933, 0.204, 0.2076, 0.2094, 0.2105, 0.2112, 0.2117, 0.2121, 0.2124, 0.2126}});
  BOOST_CHECK(defaults.slot_names() == (std::vector<std::string>{"momentum", "norm"}));
  BOOST_CHECK(!defaults.slot_nonnegative(0) && defaults.slot_nonnegative(1));
}

BOOST_AUTO_TEST_CASE(nadam_trajectories_and_keras_values) {
  Nadam defaults;
  check_trajectory("nadam defaults", defaults,
                   nadam_rule(double(1e-3f), double(0.9f), double(0.999f), double(1e-7f)));
  Nadam custom({.learning_rate = 0.5f, .beta_1 = 0.5f, .beta_2 = 0.67f, .epsilon = 1e-5f});
  check_trajectory("nadam custom", custom,
                   nadam_rule(double(0.5f), double(0.5f), double(0.67f), double(1e-5f)));
  Nadam single({.learning_rate = 0.5f});
  check_keras_single_step("nadam", single, {0.4686, 1.4686, 2.4686, 3.4686});
  Nadam golden({.learning_rate = 0.5f, .beta_1 = 0.5f, .beta_2 = 0.67f, .epsilon = 1e-5f});
  check_keras_golden(
      "nadam", golden,
      {{0.4281, 0.4281, 0.4281, 0.4281, 0.4281, 0.4281, 0.4281, 0.4281, 0.4281, 0.4281},
       {-0.1738, -0.1731, -0.1726, -0.1723, -0.1721, -0.172, -0.1719, -0.1718, -0.1718, -0.1717},
       {-0.7115, -0.7103, -0.7096, -0.7092, -0.709, -0.7088, -0.7086, -0.7085, -0.7085, -0.7084},
       {-1.2335, -1.2322, -1.2313, -1.2309, -1.2306, -1.2304, -1.2302, -1.2301, -1.23, -1.2299},
       {-1.7492, -1.7478, -1.7469, -1.7464, -1.7461, -1.7459, -1.7457, -1.7456, -1.7455, -1.7454}});
  BOOST_CHECK(defaults.slot_names() == (std::vector<std::string>{"momentum", "velocity"}));
  BOOST_CHECK(!defaults.slot_nonnegative(0) && defaults.slot_nonnegative(1));
}

BOOST_AUTO_TEST_CASE(nadam_momentum_product_follows_the_step_after_a_jump) {
  // The product u_1 ... u_t is a function of the step: an optimizer set to step 40 updates as
  // one that took 40 steps would (here with zero moments, so only the coefficients matter).
  const float lr = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
  Nadam opt({.learning_rate = lr});
  opt.set_iterations(40);
  Tensor w = leaf({1.f}, {0.5f});
  opt.apply({{"w", w}});
  double product = 1.0;
  for (int t = 1; t <= 41; ++t) product *= double(b1) * (1 - 0.5 * std::pow(0.96, t));
  const double t = 41, g = 0.5;
  const double u_t = double(b1) * (1 - 0.5 * std::pow(0.96, t));
  const double u_next = double(b1) * (1 - 0.5 * std::pow(0.96, t + 1));
  const double m = (1 - double(b1)) * g, v = (1 - double(b2)) * g * g;
  const double m_hat = u_next * m / (1 - product * u_next) + (1 - u_t) * g / (1 - product);
  const double v_hat = v / (1 - std::pow(double(b2), t));
  check_close(w, {1.0 - double(lr) * m_hat / (std::sqrt(v_hat) + double(eps))});
}

BOOST_AUTO_TEST_CASE(lion_trajectories_and_keras_values) {
  Lion defaults;
  check_trajectory("lion defaults", defaults,
                   lion_rule(double(1e-3f), double(0.9f), double(0.99f)));
  Lion custom({.learning_rate = 0.05f, .beta_1 = 0.5f, .beta_2 = 0.67f});
  check_trajectory("lion custom", custom, lion_rule(double(0.05f), double(0.5f), double(0.67f)));
  Lion single({.learning_rate = 0.5f});
  check_keras_single_step("lion", single, {0.5, 1.5, 2.5, 3.5});
  Lion golden;
  check_keras_golden("lion", golden, {{0.999}, {0.998}, {0.997}, {0.996}, {0.995}});
  BOOST_CHECK(defaults.slot_names() == std::vector<std::string>{"momentum"});
  BOOST_CHECK(!defaults.slot_nonnegative(0));
  // A zero gradient on a zero momentum does not move the weight (sign(0) = 0).
  Lion still;
  Tensor w = leaf({1.f}, {0.f});
  still.apply({{"w", w}});
  BOOST_CHECK_EQUAL(w.item(), 1.f);
}

BOOST_AUTO_TEST_CASE(new_optimizers_refuse_bad_options) {
  check_throws([] { Adagrad({.initial_accumulator_value = -0.1f}); },
               {"Adagrad", "initial_accumulator_value", "-0.1"});
  check_throws([] { Adagrad({.epsilon = -1.f}); }, {"Adagrad", "epsilon", "-1"});
  check_throws([] { Adadelta({.rho = 1.f}); }, {"Adadelta", "rho", "1"});
  check_throws([] { Adamax({.beta_2 = 1.f}); }, {"Adamax", "beta_2", "1"});
  check_throws([] { Nadam({.beta_1 = -0.5f}); }, {"Nadam", "beta_1", "-0.5"});
  check_throws([] { Lion({.beta_1 = 0.f}); }, {"Lion", "beta_1", "(0, 1]", "SignSGD"});
  check_throws([] { Lion({.beta_1 = 1.1f}); }, {"Lion", "beta_1", "1.1"});
  check_throws([] { Lion({.beta_2 = 1.5f}); }, {"Lion", "beta_2", "1.5"});
  check_throws([] { Nadam({.learning_rate = -1.f}); }, {"Nadam", "learning_rate", "-1"});
  BOOST_CHECK_NO_THROW(Lion({.beta_1 = 1.f, .beta_2 = 0.f}));
}

BOOST_AUTO_TEST_SUITE_END()
