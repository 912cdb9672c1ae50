// Tests of layers/regularizers.hpp and the losses layers add: weight regularizers join the
// training loss (and evaluate's), add_loss and activity regularization are collected per
// forward pass, constraints project weights after each update, configs round trip.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"
#include "layers/noise.hpp"
#include "layers/regularizers.hpp"
#include "models/sequential.hpp"
#include "saving/registry.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;
using xtape::testing::random_tensor;

namespace {
double sum_sq(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector()) s += double(v) * v;
  return s;
}
double sum_abs(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector()) s += std::abs(double(v));
  return s;
}

class AddsItsMean : public Layer {
 public:
  Tensor call(const Tensor& x, bool) override {
    add_loss(mean(x) * 10.f);
    return x;
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(layers_regularizers)

BOOST_AUTO_TEST_CASE(weight_penalties_join_the_loss_as_keras) {
  clear_session();
  set_random_seed(3);
  auto dense = std::make_shared<Dense>(DenseOptions{
      .units = 3, .kernel_regularizer = l2(0.05f), .bias_regularizer = l1(0.2f)});
  Sequential m({Input({4}), dense});
  m.compile("mse", "sgd");
  Rng rng(4);
  const Tensor x = random_tensor({8, 4}, rng), y = random_tensor({8, 3}, rng);
  {
    NoGrad off;
    dense->bias().assign(Tensor({3}, {0.5f, -0.25f, 1.f}));
  }
  const auto score = m.evaluate(x, y, {.verbose = 0});
  const Tensor pred = m.predict(x);
  double mse = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double d = double(pred.to_vector()[i]) - y.to_vector()[i];
    mse += d * d;
  }
  mse /= pred.size();
  const double expected = mse + 0.05 * sum_sq(dense->kernel()) + 0.2 * sum_abs(dense->bias());
  BOOST_TEST(score.at("loss") == expected, boost::test_tools::tolerance(1e-5));
  // The penalty's gradient trains: with a strong l2 the kernel shrinks far more.
  auto train = [&](float strength) {
    clear_session();
    set_random_seed(5);
    auto d = std::make_shared<Dense>(DenseOptions{.units = 3, .kernel_regularizer = l2(strength)});
    Sequential s({Input({4}), d});
    s.compile("mse", "sgd");
    s.fit(x, y, {.batch_size = 8, .epochs = 40, .verbose = 0});
    return sum_sq(d->kernel());
  };
  BOOST_TEST(train(1.f) < 0.5 * train(0.f));
}

BOOST_AUTO_TEST_CASE(add_loss_and_activity_losses_are_per_forward_pass) {
  AddsItsMean layer;
  const Tensor x({2, 2}, {1.f, 2.f, 3.f, 4.f});
  layer(x);
  layer(x);  // a new outermost call: the first call's loss is gone
  auto losses = layer.losses();
  BOOST_REQUIRE(losses.size() == 1u);
  BOOST_TEST(losses[0].item() == 25.f);
  ActivityRegularization act(0.5f, 0.25f);
  act(x);
  BOOST_REQUIRE(act.losses().size() == 1u);
  BOOST_TEST(act.losses()[0].item() == 0.5f * 10.f + 0.25f * 30.f);
  // In a model the layers' losses are collected, and Dense's activity_regularizer adds one.
  clear_session();
  auto d = std::make_shared<Dense>(DenseOptions{
      .units = 2, .kernel_initializer = "ones", .activity_regularizer = l1(1.f)});
  Sequential m({Input({2}), std::make_shared<AddsItsMean>(), d});
  const Tensor out = m(x);
  const auto all = m.losses();
  BOOST_REQUIRE(all.size() == 2u);
  BOOST_TEST(all[0].item() == 25.f);
  BOOST_TEST(all[1].item() == static_cast<float>(sum_abs(out)));
  check_throws<std::invalid_argument>("non-scalar", [&] { layer.add_loss(x); },
                                      {"add_loss", "one-element", "(2, 2)"});
}

BOOST_AUTO_TEST_CASE(constraints_project_the_weights_after_each_update) {
  // Keras's formulas on a hand case: column norms of [[3, 0], [4, 1]] are 5 and 1.
  const Tensor w({2, 2}, {3.f, 0.f, 4.f, 1.f});
  const std::vector<float> mx = get_constraint("max_norm")(w).to_vector();  // max 2
  BOOST_TEST(mx[0] == 3.f * 2.f / (5.f + 1e-7f), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(mx[3] == 1.f, boost::test_tools::tolerance(1e-6f));
  const std::vector<float> un = get_constraint("unit_norm")(w).to_vector();
  BOOST_TEST(un[2] == 0.8f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(get_constraint("non_neg")(Tensor({3}, {-1.f, 0.f, 2.f})).to_vector() ==
                 std::vector<float>({-0.f, 0.f, 2.f}),
             boost::test_tools::per_element());
  // Training with a big learning rate: every update ends inside the constraint.
  clear_session();
  set_random_seed(6);
  auto d = std::make_shared<Dense>(DenseOptions{
      .units = 3,
      .kernel_constraint = Constraint{.kind = "max_norm", .max_value = 0.5f},
      .bias_constraint = get_constraint("non_neg")});
  Sequential m({Input({4}), d});
  m.compile("mse", std::make_shared<optim::SGD>(optim::SGDOptions{.learning_rate = 0.5f}));
  Rng rng(7);
  const Tensor x = random_tensor({16, 4}, rng, -3.f, 3.f), y = random_tensor({16, 3}, rng, -9.f, 9.f);
  m.fit(x, y, {.batch_size = 4, .epochs = 3, .verbose = 0});
  const std::vector<float> k = d->kernel().to_vector();
  for (std::size_t c = 0; c < 3; ++c) {
    double n = 0;
    for (std::size_t r = 0; r < 4; ++r) n += double(k[r * 3 + c]) * k[r * 3 + c];
    BOOST_TEST(std::sqrt(n) <= 0.5 + 1e-5);
  }
  for (float b : d->bias().to_vector()) BOOST_TEST(b >= 0.f);
}

BOOST_AUTO_TEST_CASE(configs_round_trip_and_bad_names_are_refused) {
  Dense d({.units = 2,
           .kernel_regularizer = l1_l2(0.1f, 0.2f),
           .activity_regularizer = l2(0.3f),
           .kernel_constraint = Constraint{.kind = "min_max_norm", .max_value = 3.f, .rate = 0.5f}});
  const nlohmann::json c = d.get_config();
  BOOST_TEST(c["kernel_regularizer"]["class_name"] == "L1L2");
  BOOST_TEST(c["bias_regularizer"].is_null());
  BOOST_TEST(c["kernel_constraint"]["class_name"] == "MinMaxNorm");
  auto back = layer_from_config({{"class_name", "Dense"}, {"config", c}});
  BOOST_TEST(back->get_config() == c);
  ActivityRegularization a(0.1f, 0.f);
  auto aback = layer_from_config({{"class_name", "ActivityRegularization"}, {"config", a.get_config()}});
  BOOST_TEST(aback->get_config() == a.get_config());
  BOOST_TEST(regularizer_from_config("l2").l2 == 0.01f);
  check_throws<std::invalid_argument>("unknown", [] { get_regularizer("l3"); }, {"l3", "l1_l2"});
  check_throws<std::invalid_argument>("unknown", [] { get_constraint("radial"); }, {"radial", "max_norm"});
  check_throws<std::invalid_argument>("negative", [] { ActivityRegularization(-1.f); },
                                      {"ActivityRegularization", ">= 0"});
}

BOOST_AUTO_TEST_SUITE_END()
