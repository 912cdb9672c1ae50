// Tests for autodiff/ops/activations.cpp, layers/activations.cpp and
// layers/activation_layers.cpp: Keras 3's activation functions (values against closed forms
// in double, and Keras's documented examples), the names every string activation accepts,
// gradients by finite differences, NaN propagation, and the activation layers through the
// layer harness (shapes, weights, a training step, gradcheck, config round trip).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"
#include "layers/activation_layers.hpp"
#include "layers/activations.hpp"
#include "layers/core.hpp"
#include "saving/registry.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::LayerCheck;
using xtape::testing::random_away_from_zero;
using xtape::testing::random_tensor;

namespace {

const double kPi = 3.14159265358979323846;

double sigmoid_d(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double softplus_d(double v) { return std::log1p(std::exp(v)); }
double elu_d(double v, double a) { return v > 0 ? v : a * std::expm1(v); }
double hard_sigmoid_d(double v) { return std::min(1.0, std::max(0.0, v / 6 + 0.5)); }

// Keras 3's formulas (keras/src/activations/activations.py and the ops they call), in double.
const std::vector<std::pair<std::string, std::function<double(double)>>>& closed_forms() {
  static const std::vector<std::pair<std::string, std::function<double(double)>>> f = {
      {"relu", [](double v) { return std::max(v, 0.0); }},
      {"relu6", [](double v) { return std::min(std::max(v, 0.0), 6.0); }},
      {"leaky_relu", [](double v) { return v > 0 ? v : 0.2 * v; }},
      {"elu", [](double v) { return elu_d(v, 1.0); }},
      {"selu", [](double v) { return 1.0507009873554805 * elu_d(v, 1.6732632423543772); }},
      {"gelu", [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {"silu", [](double v) { return v * sigmoid_d(v); }},
      {"swish", [](double v) { return v * sigmoid_d(v); }},
      {"hard_sigmoid", hard_sigmoid_d},
      {"hard_silu", [](double v) { return v * hard_sigmoid_d(v); }},
      {"hard_swish", [](double v) { return v * hard_sigmoid_d(v); }},
      {"mish", [](double v) { return v * std::tanh(softplus_d(v)); }},
      {"softplus", softplus_d},
      {"softsign", [](double v) { return v / (std::abs(v) + 1); }},
      {"sigmoid", sigmoid_d},
      {"tanh", [](double v) { return std::tanh(v); }},
      {"exponential", [](double v) { return std::exp(v); }},
      {"exp", [](double v) { return std::exp(v); }},
      {"linear", [](double v) { return v; }},
  };
  return f;
}

std::vector<double> reference(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = f(x.data()[i]);
  return r;
}

// Inputs away from every kink of the family (0, +-3 for the hard ones, 6 for relu6) by more
// than any gradcheck step, on both sides of each.
Tensor kink_free_inputs() {
  return Tensor({2, 8}, {-4.5f, -3.4f, -2.2f, -0.7f, -0.15f, 0.2f, 0.9f, 2.6f,  //
                         3.3f, 5.1f, 6.4f, -1.3f, 1.7f, -0.4f, 0.45f, -5.8f});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(activations)

BOOST_AUTO_TEST_CASE(named_activations_against_closed_forms) {
  Rng rng(21);
  // Wide enough to reach every branch (the hard ones saturate beyond +-3, relu6 beyond 6).
  const Tensor x = random_tensor({8, 50}, rng, -8.f, 8.f);
  for (const auto& [name, f] : closed_forms())
    check_values(name, get_activation(name)(x), x.shape(), reference(x, f), 2e-6, 1e-6);
  check_values("\"\" is linear", get_activation("")(x), x.shape(),
               reference(x, [](double v) { return v; }));
  // gelu's tanh approximation, by the function.
  check_values("gelu approximate", gelu(x, true), x.shape(),
               reference(x,
                         [](double v) {
                           return 0.5 * v *
                                  (1 + std::tanh(std::sqrt(2 / kPi) * (v + 0.044715 * v * v * v)));
                         }),
               2e-6, 1e-6);
  // Softmax and log_softmax over the last axis.
  const Tensor s = get_activation("softmax")(x), ls = get_activation("log_softmax")(x);
  std::vector<double> ref_s(x.size()), ref_ls(x.size());
  for (std::size_t r = 0; r < 8; ++r) {
    double m = -1e30, z = 0;
    for (std::size_t j = 0; j < 50; ++j) m = std::max(m, double(x.data()[r * 50 + j]));
    for (std::size_t j = 0; j < 50; ++j) z += std::exp(x.data()[r * 50 + j] - m);
    for (std::size_t j = 0; j < 50; ++j) {
      ref_ls[r * 50 + j] = x.data()[r * 50 + j] - m - std::log(z);
      ref_s[r * 50 + j] = std::exp(ref_ls[r * 50 + j]);
    }
  }
  check_values("softmax", s, x.shape(), ref_s, 1e-5, 1e-7);
  check_values("log_softmax", ls, x.shape(), ref_ls, 1e-5, 1e-5);
}

BOOST_AUTO_TEST_CASE(function_options) {
  // Keras's documented examples (keras.activations.relu docstring, keras.layers.ReLU).
  const Tensor x({5}, {-10.f, -5.f, 0.f, 5.f, 10.f});
  check_values("relu", relu(x), {5}, {0, 0, 0, 5, 10}, 0, 0);
  check_values("relu negative_slope=0.5", relu(x, 0.5f), {5}, {-5, -2.5, 0, 5, 10}, 0, 0);
  check_values("relu max_value=5", relu(x, 0.f, 5.f), {5}, {0, 0, 0, 5, 5}, 0, 0);
  check_values("relu threshold=5", relu(x, 0.f, std::nullopt, 5.f), {5}, {-0., -0., 0, 0, 10}, 0,
               0);
  check_values("relu max_value=10 negative_slope=0.5", relu(x, 0.5f, 10.f), {5},
               {-5, -2.5, 0, 5, 10}, 0, 0);
  // Keras: below the threshold, negative_slope * (x - threshold); above max_value, max_value.
  check_values("relu slope 0.5, max 6, threshold 2", relu(x, 0.5f, 6.f, 2.f), {5},
               {-6, -3.5, -1, 5, 6}, 0, 0);
  check_values("leaky_relu 0.1", leaky_relu(x, 0.1f), {5}, {-1, -0.5, 0, 5, 10}, 1e-6, 0);
  check_values("elu alpha 2", elu(x, 2.f), {5},
               {2 * std::expm1(-10.0), 2 * std::expm1(-5.0), 0, 5, 10}, 1e-6, 0);
  check_throws<std::invalid_argument>("relu max_value < 0", [&] { relu(x, 0.f, -1.f); },
                                      {"relu", "max_value"});
  check_throws<std::invalid_argument>("unknown name", [] { get_activation("gelu_fast"); },
                                      {"gelu_fast", "gelu", "hard_swish", "linear"});
  // elu of a large input: the unused exp branch does not turn the gradient into NaN.
  Tensor big = Tensor({2}, {100.f, -100.f}).set_requires_grad();
  sum(elu(big) + selu(big)).backward();
  check_values(
      "elu/selu grad far out", big.grad(), {2},
      {1 + 1.0507009873554805, std::exp(-100.0) * (1 + 1.0507009873554805 * 1.6732632423543772)},
      1e-5, 1e-30);
}

BOOST_AUTO_TEST_CASE(gradients_by_finite_differences) {
  // NOTE: inputs kept away from the kinks (see kink_free_inputs).
  for (const auto& [name, f] : closed_forms()) {
    const ActivationFn fn = get_activation(name);
    gradcheck(name, [fn](const std::vector<Tensor>& in) { return fn(in[0]); },
              {kink_free_inputs()});
  }
  gradcheck("gelu approximate", [](const std::vector<Tensor>& in) { return gelu(in[0], true); },
            {kink_free_inputs()});
  gradcheck("relu options",
            [](const std::vector<Tensor>& in) { return relu(in[0], 0.3f, 4.f, 1.f); },
            {Tensor({6}, {-2.f, 0.5f, 1.5f, 3.f, 4.5f, 0.8f})});
  gradcheck("softmax",
            [](const std::vector<Tensor>& in) { return get_activation("softmax")(in[0]); },
            {kink_free_inputs()});
  gradcheck("log_softmax",
            [](const std::vector<Tensor>& in) { return get_activation("log_softmax")(in[0]); },
            {kink_free_inputs()});
  Rng rng(22);
  // A larger input, checked along random directions.
  const Tensor big = random_away_from_zero({30, 20}, rng, 0.1f, 2.5f);
  for (const char* name : {"gelu", "silu", "mish", "selu", "hard_silu"}) {
    const ActivationFn fn = get_activation(name);
    gradcheck(std::string(name) + " large",
              [fn](const std::vector<Tensor>& in) { return fn(in[0]); }, {big});
  }
}

BOOST_AUTO_TEST_CASE(nan_propagates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x({1, 3}, {nan, 1.f, -1.f});
  for (const auto& [name, f] : closed_forms()) {
    const Tensor y = get_activation(name)(x);
    BOOST_TEST(std::isnan(y.data()[0]), name << "(NaN) is " << y.data()[0]);
    BOOST_TEST(!std::isnan(y.data()[1]), name << "(1) is NaN");
  }
  BOOST_TEST(std::isnan(gelu(x, true).data()[0]));
  BOOST_TEST(std::isnan(relu(x, 0.5f, 3.f, 1.f).data()[0]));
  std::vector<std::unique_ptr<Layer>> ls;
  ls.push_back(std::make_unique<ReLU>(ReLUOptions{.max_value = 6.f}));
  ls.push_back(std::make_unique<LeakyReLU>());
  ls.push_back(std::make_unique<ELU>());
  ls.push_back(std::make_unique<PReLU>());
  for (const auto& l : ls) {
    const Tensor y = (*l)(x);
    BOOST_TEST(std::isnan(y.data()[0]), l->class_name() << " of NaN is " << y.data()[0]);
  }
}

BOOST_AUTO_TEST_CASE(activation_layers_through_the_harness) {
  ReLU plain;
  check_layer(
      "ReLU", plain,
      {.input = {3, 4}, .expected_output = {3, 4}, .round_trip = true, .away_from_zero = true});
  ReLU opts({.max_value = 0.6f, .negative_slope = 0.1f, .threshold = 0.05f});
  // NOTE: inputs are |x| in [0.1, 1): the kinks at 0.05 and 0.6 may sit within a step of an
  // input, so values are checked here and gradients on chosen inputs below.
  check_layer("ReLU options", opts,
              {.input = {6},
               .expected_output = {6},
               .gradcheck = false,
               .round_trip = true,
               .away_from_zero = true});
  {
    Tensor in = Tensor({1, 6}, {-0.5f, 0.3f, 0.9f, 0.02f, 0.7f, -0.1f}).set_requires_grad();
    xtape::testing::gradcheck_leaves("ReLU options", [&] { return opts(in); }, {in});
  }
  LeakyReLU leaky;
  check_layer("LeakyReLU", leaky,
              {.input = {5}, .expected_output = {5}, .round_trip = true, .away_from_zero = true});
  Tensor probe({1, 2}, {-1.f, 2.f});
  check_values("LeakyReLU default slope 0.3 (Keras)", LeakyReLU()(probe), {1, 2}, {-0.3, 2}, 1e-6,
               0);
  ELU e({.alpha = 0.5f});
  check_layer("ELU", e,
              {.input = {5}, .expected_output = {5}, .round_trip = true, .away_from_zero = true});
  Softmax sm({.axis = 1});
  check_layer("Softmax axis 1", sm,
              {.input = {3, 4}, .expected_output = {3, 4}, .round_trip = true});
  Tensor t({1, 2, 2}, {0.f, 1.f, 2.f, 5.f});
  // Over axis 1 (columns of each sample): softmax of (0, 2) and (1, 5).
  const double a = 1 / (1 + std::exp(2.0)), b = 1 / (1 + std::exp(4.0));
  check_values("Softmax axis 1 values", Softmax({.axis = 1})(t), {1, 2, 2}, {a, b, 1 - a, 1 - b},
               1e-6, 1e-7);
  Activation act("gelu");
  check_layer("Activation gelu", act, {.input = {4}, .expected_output = {4}, .round_trip = true});
}

BOOST_AUTO_TEST_CASE(prelu_weights_and_shared_axes) {
  PReLU full;
  check_layer("PReLU", full,
              {.input = {3, 4},
               .expected_output = {3, 4},
               .expected_params = 12,
               .round_trip = true,
               .away_from_zero = true});
  BOOST_TEST((full.alpha().shape() == Shape{3, 4}));
  PReLU shared({.alpha_initializer = "ones", .shared_axes = {1, 2}});
  check_layer("PReLU shared", shared,
              {.input = {2, 3, 4},
               .expected_output = {2, 3, 4},
               .expected_params = 4,
               .round_trip = true,
               .away_from_zero = true});
  BOOST_TEST((shared.alpha().shape() == Shape{1, 1, 4}));
  // alpha = 0.25 on every channel: x for x >= 0, 0.25 x below.
  PReLU quarter({.shared_axes = {1}});
  Tensor x({1, 2, 2}, {-4.f, 1.f, 2.f, -8.f});
  quarter(x);
  quarter.alpha().assign(Tensor({1, 2}, {0.25f, 0.5f}));
  check_values("PReLU values", quarter(x), {1, 2, 2}, {-1, 1, 2, -4}, 0, 0);
  check_throws<std::invalid_argument>("PReLU shared axis 3 of rank 2",
                                      [] {
                                        PReLU p({.shared_axes = {3}});
                                        p(Tensor({1, 2, 2}, 1.f));
                                      },
                                      {"PReLU", "shared axis 3"});
}

BOOST_AUTO_TEST_CASE(option_errors_as_keras) {
  check_throws<std::invalid_argument>(
      "ReLU max_value", [] { ReLU r({.max_value = -1.f}); },
      {"max_value of a ReLU layer cannot be a negative value", "max_value=-1"});
  check_throws<std::invalid_argument>(
      "ReLU negative_slope", [] { ReLU r({.negative_slope = -0.1f}); }, {"negative_slope", "ReLU"});
  check_throws<std::invalid_argument>("ReLU threshold", [] { ReLU r({.threshold = -2.f}); },
                                      {"threshold", "ReLU"});
  check_throws<std::invalid_argument>("LeakyReLU", [] { LeakyReLU l({.negative_slope = -1.f}); },
                                      {"Leaky ReLU", "negative_slope=-1"});
  check_throws<std::invalid_argument>("PReLU initializer",
                                      [] { PReLU p({.alpha_initializer = "nope"}); }, {"nope"});
  check_throws<std::invalid_argument>("Softmax axis",
                                      [] {
                                        Softmax s({.axis = 3});
                                        s(Tensor({2, 4}, 1.f));
                                      },
                                      {"Softmax", "axis 3"});
  check_throws<std::invalid_argument>("Dense unknown activation",
                                      [] { Dense d({.units = 2, .activation = "swishy"}); },
                                      {"swishy"});
}

BOOST_AUTO_TEST_CASE(every_string_activation_is_accepted_by_layers) {
  // Dense, Conv2D and Activation take each name, and their configs round-trip it.
  for (const auto& [name, f] : closed_forms()) {
    Dense d({.units = 2, .activation = name});
    const Tensor y = d(Tensor({1, 3}, 0.5f));
    BOOST_TEST((y.shape() == Shape{1, 2}));
    auto back = layer_from_config({{"class_name", "Dense"}, {"config", d.get_config()}});
    BOOST_TEST(back->get_config().at("activation") == d.get_config().at("activation"));
    Conv2D c({.filters = 2, .kernel_size = {1, 1}, .activation = name});
    BOOST_TEST((c(Tensor({1, 2, 2, 1}, 0.5f)).shape() == Shape{1, 2, 2, 2}));
  }
}

BOOST_AUTO_TEST_SUITE_END()
