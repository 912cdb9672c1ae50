// Tests of optim/schedules.hpp: every schedule's value at chosen steps against hand formulas in
// double (and Keras's own test values), Keras-shaped configs and their round trip, refused
// options; optimizers driven by a schedule (the rate at iterations(), the Keras fit figures of
// Adam with ExponentialDecay, set_learning_rate refused as in Keras).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/ops.hpp"
#include "autodiff/tensor.hpp"
#include "optim/optimizers.hpp"
#include "test/support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::optim;
using xtape::testing::check_throws;

namespace {

constexpr double kPi = std::numbers::pi;

// A schedule's float value against a double reference: within one float rounding (plus the
// reference's own rounding of its last operations).
void check_value(const LearningRateSchedule& s, std::int64_t step, double expected) {
  const double got = s(step);
  const double tol = 2e-7 * std::max(std::abs(expected), 1e-30);
  BOOST_CHECK_MESSAGE(std::abs(got - expected) <= tol, s.class_name()
                                                           << " at step " << step << ": got " << got
                                                           << ", expected " << expected);
}

// Keras's test helper: SGDR by walking the periods one by one (an algorithm independent of the
// closed form the schedule uses).
double sgdr_reference(double step, double decay_steps, double t_mul, double m_mul, double alpha) {
  double fac = 1.0;
  while (step >= decay_steps) {
    step -= decay_steps;
    decay_steps *= t_mul;
    fac *= m_mul;
  }
  const double decay = fac * 0.5 * (1.0 + std::cos(kPi * step / decay_steps));
  return (1.0 - alpha) * decay + alpha;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(schedules)

BOOST_AUTO_TEST_CASE(exponential_decay_continuous_and_staircase) {
  ExponentialDecay smooth({.initial_learning_rate = 0.05, .decay_steps = 10, .decay_rate = 0.96});
  for (std::int64_t step : {0, 1, 5, 10, 37, 1000})
    check_value(smooth, step, 0.05 * std::pow(0.96, double(step) / 10.0));
  // Keras's test values.
  check_value(smooth, 5, 0.05 * std::pow(0.96, 0.5));
  ExponentialDecay stairs(
      {.initial_learning_rate = 0.1, .decay_steps = 3, .decay_rate = 0.96, .staircase = true});
  check_value(stairs, 1, 0.1);
  check_value(stairs, 2, 0.1);
  check_value(stairs, 3, 0.1 * 0.96);
  check_value(stairs, 100, 0.1 * std::pow(0.96, 33));
}

BOOST_AUTO_TEST_CASE(piecewise_constant_decay_intervals) {
  // Keras: values[0] up to and including boundaries[0], then values[i] on (b[i-1], b[i]].
  PiecewiseConstantDecay s({.boundaries = {100, 110, 120}, .values = {1.0, 0.1, 0.01, 0.001}});
  const std::pair<std::int64_t, double> cases[] = {{0, 1.0},    {100, 1.0},   {101, 0.1},
                                                   {105, 0.1},  {110, 0.1},   {111, 0.01},
                                                   {120, 0.01}, {121, 0.001}, {999, 0.001}};
  for (const auto& [step, v] : cases) BOOST_CHECK_EQUAL(s(step), static_cast<float>(v));
  PiecewiseConstantDecay single({.boundaries = {}, .values = {0.25}});
  BOOST_CHECK_EQUAL(single(12345), 0.25f);
}

BOOST_AUTO_TEST_CASE(polynomial_decay_power_and_cycle) {
  const double lr = 0.05, end = 0.001;
  PolynomialDecay linear(
      {.initial_learning_rate = lr, .decay_steps = 10, .end_learning_rate = end});
  check_value(linear, 0, lr);
  check_value(linear, 5, (lr + end) * 0.5);
  check_value(linear, 10, end);
  check_value(linear, 15, end);  // held after decay_steps
  PolynomialDecay sqrt_decay(
      {.initial_learning_rate = lr, .decay_steps = 10, .end_learning_rate = end, .power = 0.5});
  check_value(sqrt_decay, 5, (lr - end) * std::sqrt(0.5) + end);
  check_value(sqrt_decay, 7, (lr - end) * std::pow(0.3, 0.5) + end);
  // cycle: at step 15 the decay runs over 20 steps, so (1 - 15/20)^power.
  PolynomialDecay cycle({.initial_learning_rate = lr,
                         .decay_steps = 10,
                         .end_learning_rate = end,
                         .power = 0.5,
                         .cycle = true});
  check_value(cycle, 0, lr);  // Keras: multiplier 1 at step 0
  check_value(cycle, 15, (lr - end) * std::pow(0.25, 0.5) + end);
  check_value(cycle, 20, end);
  check_value(cycle, 21, (lr - end) * std::pow(1.0 - 21.0 / 30.0, 0.5) + end);
  // Default end_learning_rate is Keras's 0.0001.
  PolynomialDecay d({.initial_learning_rate = 0.001, .decay_steps = 10});
  check_value(d, 10, 0.0001);
}

BOOST_AUTO_TEST_CASE(inverse_time_decay_continuous_and_staircase) {
  InverseTimeDecay smooth({.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.96});
  InverseTimeDecay stairs(
      {.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.96, .staircase = true});
  for (std::int64_t i = 0; i <= 25; ++i) {
    check_value(smooth, i, 0.1 / (1.0 + double(i) / 10.0 * 0.96));
    check_value(stairs, i, 0.1 / (1.0 + 0.96 * double(i / 10)));
  }
}

BOOST_AUTO_TEST_CASE(cosine_decay_alpha_and_warmup) {
  auto cosine = [](double step, double decay_steps, double alpha) {
    step = std::min(step, decay_steps);
    return (1.0 - alpha) * 0.5 * (1.0 + std::cos(kPi * step / decay_steps)) + alpha;
  };
  CosineDecay plain({.initial_learning_rate = 1.0, .decay_steps = 1000});
  CosineDecay with_alpha({.initial_learning_rate = 2.0, .decay_steps = 1000, .alpha = 0.1});
  for (std::int64_t step = 0; step < 1500; step += 250) {
    if (step != 1000) check_value(plain, step, cosine(double(step), 1000, 0.0));
    check_value(with_alpha, step, 2.0 * cosine(double(step), 1000, 0.1));
  }
  BOOST_CHECK_SMALL(plain(1000), 1e-7f);  // cos(pi) = -1: exactly 0 up to rounding of cos
  // Warmup from 0 to 10 over 2000 steps, then a cosine decay over 1000 steps from 10.
  CosineDecay warm({.initial_learning_rate = 0.0,
                    .decay_steps = 1000,
                    .warmup_target = 10.0,
                    .warmup_steps = 2000});
  for (std::int64_t step = 0; step < 2000; step += 250)
    check_value(warm, step, 10.0 * double(step) / 2000.0);
  check_value(warm, 2000, 10.0);
  check_value(warm, 2250, 10.0 * cosine(250, 1000, 0.0));
  check_value(warm, 2600, 10.0 * cosine(600, 1000, 0.0));
  BOOST_CHECK_SMALL(warm(5000), 1e-6f);  // capped at warmup + decay steps
  // A warmup that does not start from 0.
  CosineDecay warm2({.initial_learning_rate = 0.5,
                     .decay_steps = 10,
                     .alpha = 0.2,
                     .warmup_target = 1.5,
                     .warmup_steps = 4});
  check_value(warm2, 1, (1.5 - 0.5) * 0.25 + 0.5);
  check_value(warm2, 7, 1.5 * cosine(3, 10, 0.2));
}

BOOST_AUTO_TEST_CASE(cosine_decay_restarts_against_period_walk) {
  struct Case {
    double t_mul, m_mul, alpha;
  };
  for (const Case c :
       {Case{2.0, 1.0, 0.0}, Case{2.0, 1.0, 0.1}, Case{2.0, 0.9, 0.0}, Case{1.0, 1.0, 0.0},
        Case{1.0, 0.5, 0.2}, Case{3.0, 0.7, 0.05}, Case{1.5, 1.2, 0.0}}) {
    CosineDecayRestarts s({.initial_learning_rate = 0.8,
                           .first_decay_steps = 100,
                           .t_mul = c.t_mul,
                           .m_mul = c.m_mul,
                           .alpha = c.alpha});
    // Steps inside periods (restart boundaries themselves are tested below where exact).
    for (std::int64_t step : {0, 1, 37, 99, 101, 150, 260, 299, 301, 555, 1234}) {
      const double expected = 0.8 * sgdr_reference(double(step), 100, c.t_mul, c.m_mul, c.alpha);
      const double got = s(step);
      BOOST_CHECK_MESSAGE(std::abs(got - expected) <= 1e-6 * std::max(expected, 1e-3),
                          "t_mul " << c.t_mul << " m_mul " << c.m_mul << " alpha " << c.alpha
                                   << " step " << step << ": got " << got << ", expected "
                                   << expected);
    }
  }
  // With t_mul = 2 the second period starts at step 100 and the third at 300: full restarts.
  CosineDecayRestarts s({.initial_learning_rate = 1.0, .first_decay_steps = 100, .m_mul = 0.5});
  check_value(s, 100, 0.5);
  check_value(s, 300, 0.25);
  // Keras's test values: first_decay_steps 1000, steps 0..1250 by 250.
  CosineDecayRestarts k({.initial_learning_rate = 1.0, .first_decay_steps = 1000});
  for (std::int64_t step : {0, 250, 500, 750, 1250})
    check_value(k, step, sgdr_reference(double(step), 1000, 2.0, 1.0, 0.0));
}

BOOST_AUTO_TEST_CASE(configs_are_keras_shaped_and_round_trip) {
  std::vector<std::shared_ptr<LearningRateSchedule>> all = {
      std::make_shared<ExponentialDecay>(ExponentialDecayOptions{.initial_learning_rate = 0.05,
                                                                 .decay_steps = 10,
                                                                 .decay_rate = 0.96,
                                                                 .staircase = true,
                                                                 .name = "my_ed"}),
      std::make_shared<PiecewiseConstantDecay>(
          PiecewiseConstantDecayOptions{.boundaries = {10, 20}, .values = {1, 2, 3}}),
      std::make_shared<PolynomialDecay>(PolynomialDecayOptions{.initial_learning_rate = 0.1,
                                                               .decay_steps = 100,
                                                               .end_learning_rate = 0.005,
                                                               .power = 2.0,
                                                               .cycle = true}),
      std::make_shared<InverseTimeDecay>(InverseTimeDecayOptions{
          .initial_learning_rate = 0.05, .decay_steps = 10, .decay_rate = 0.96}),
      std::make_shared<CosineDecay>(CosineDecayOptions{.initial_learning_rate = 0.05,
                                                       .decay_steps = 10,
                                                       .alpha = 0.1,
                                                       .warmup_target = 0.2,
                                                       .warmup_steps = 2}),
      std::make_shared<CosineDecay>(
          CosineDecayOptions{.initial_learning_rate = 0.05, .decay_steps = 10}),
      std::make_shared<CosineDecayRestarts>(CosineDecayRestartsOptions{
          .initial_learning_rate = 0.05, .first_decay_steps = 10, .t_mul = 3.0, .m_mul = 4.0}),
  };
  for (const auto& s : all) {
    const nlohmann::json j = serialize_schedule(*s);
    BOOST_CHECK_EQUAL(j.at("class_name").get<std::string>(), s->class_name());
    BOOST_CHECK_EQUAL(j.at("module").get<std::string>(), "keras.optimizers.schedules");
    const auto back = deserialize_schedule(nlohmann::json::parse(j.dump()));
    BOOST_CHECK_EQUAL(back->class_name(), s->class_name());
    BOOST_CHECK_EQUAL(back->get_config().dump(), s->get_config().dump());
    for (std::int64_t step : {0, 3, 11, 25, 400}) BOOST_CHECK_EQUAL((*back)(step), (*s)(step));
  }
  // Keras's keys.
  const auto ed = all[0]->get_config();
  BOOST_CHECK_EQUAL(ed.at("name").get<std::string>(), "my_ed");
  BOOST_CHECK(ed.at("staircase").get<bool>());
  BOOST_CHECK(all[5]->get_config().at("warmup_target").is_null());
  BOOST_CHECK_EQUAL(all[6]->get_config().at("name").get<std::string>(), "SGDRDecay");
  BOOST_CHECK_EQUAL(all[1]->get_config().at("name").get<std::string>(), "PiecewiseConstant");
}

BOOST_AUTO_TEST_CASE(bad_options_and_configs_throw) {
  check_throws<std::invalid_argument>(
      "missing", [] { ExponentialDecay({.decay_steps = 10, .decay_rate = 0.5}); },
      {"ExponentialDecay", "initial_learning_rate", "required"});
  check_throws<std::invalid_argument>(
      "zero steps",
      [] { ExponentialDecay({.initial_learning_rate = 0.1, .decay_steps = 0, .decay_rate = 0.5}); },
      {"ExponentialDecay", "decay_steps", "> 0", "got 0"});
  check_throws<std::invalid_argument>(
      "nan",
      [] { InverseTimeDecay({.initial_learning_rate = NAN, .decay_steps = 1, .decay_rate = 1}); },
      {"InverseTimeDecay", "initial_learning_rate", "nan"});
  check_throws<std::invalid_argument>(
      "lengths",
      [] {
        PiecewiseConstantDecay({.boundaries = {1, 2}, .values = {1, 2}});
      },
      {"PiecewiseConstantDecay", "2 boundaries", "2 values"});
  check_throws<std::invalid_argument>(
      "order",
      [] {
        PiecewiseConstantDecay({.boundaries = {5, 5}, .values = {1, 2, 3}});
      },
      {"strictly increasing", "5 then 5"});
  check_throws<std::invalid_argument>(
      "negative value",
      [] {
        PiecewiseConstantDecay({.boundaries = {5}, .values = {1, -2}});
      },
      {"values", "-2", "index 1"});
  check_throws<std::invalid_argument>(
      "t_mul",
      [] {
        CosineDecayRestarts({.initial_learning_rate = 1, .first_decay_steps = 10, .t_mul = 0});
      },
      {"CosineDecayRestarts", "t_mul", "> 0"});
  check_throws<std::invalid_argument>(
      "warmup",
      [] { CosineDecay({.initial_learning_rate = 1, .decay_steps = 10, .warmup_steps = -1}); },
      {"CosineDecay", "warmup_steps", "-1"});
  CosineDecay c({.initial_learning_rate = 1, .decay_steps = 10});
  check_throws<std::invalid_argument>("step", [&] { c(-1); }, {"CosineDecay", "step", "-1"});
  check_throws<std::invalid_argument>(
      "unknown class",
      [] {
        deserialize_schedule({{"class_name", "Warp"}, {"config", nlohmann::json::object()}});
      },
      {"unknown schedule class", "Warp", "CosineDecay"});
  check_throws<std::invalid_argument>(
      "bad config",
      [] {
        deserialize_schedule(
            {{"class_name", "ExponentialDecay"}, {"config", {{"initial_learning_rate", "fast"}}}});
      },
      {"ExponentialDecay"});
  check_throws<std::invalid_argument>("not an object",
                                      [] { deserialize_schedule(nlohmann::json::array()); },
                                      {"deserialize_schedule", "class_name"});
  // A user schedule without get_config is not serializable.
  struct Half : LearningRateSchedule {
    float operator()(std::int64_t step) const override { return 1.f / float(step + 1); }
  };
  Half h;
  check_throws<std::logic_error>("user", [&] { serialize_schedule(h); },
                                 {"LearningRateSchedule", "get_config"});
}

// ---- optimizers driven by schedules ----

BOOST_AUTO_TEST_CASE(optimizer_evaluates_the_schedule_at_iterations) {
  // SGD without momentum: each step moves w by exactly lr(step) * g.
  PiecewiseConstantDecay pw({.boundaries = {1, 3}, .values = {0.5, 0.25, 0.125}});
  SGD opt({.learning_rate = pw});
  BOOST_CHECK(opt.learning_rate_schedule() != nullptr);
  Tensor w({1}, {0.f});
  w.set_requires_grad();
  const float expected_lr[] = {0.5f, 0.5f, 0.25f, 0.25f, 0.125f};
  double expected_w = 0.0;
  for (int step = 0; step < 5; ++step) {
    BOOST_CHECK_EQUAL(opt.learning_rate(), expected_lr[step]);
    w.set_grad(Tensor({1}, {1.f}));
    opt.apply({{"w", w}});
    expected_w -= expected_lr[step];
    BOOST_CHECK_EQUAL(w.item(), static_cast<float>(expected_w));
  }
  // After a restore the schedule continues from the restored step.
  opt.set_iterations(0);
  BOOST_CHECK_EQUAL(opt.learning_rate(), 0.5f);
  // Constants still convert from float, double and int literals.
  BOOST_CHECK_EQUAL(SGD({.learning_rate = 0.25}).learning_rate(), 0.25f);
  BOOST_CHECK_EQUAL(Adam({.learning_rate = 1}).learning_rate(), 1.f);
  BOOST_CHECK(SGD({.learning_rate = 0.25f}).learning_rate_schedule() == nullptr);
}

BOOST_AUTO_TEST_CASE(adam_with_exponential_decay_matches_keras_fit) {
  // keras/src/optimizers/schedules/learning_rate_schedule_test.py, test_fit_lr_correctness:
  // Dense(2) with kernel and bias of ones, x = y = arange(32).reshape(16, 2), mse, Adam with
  // ExponentialDecay(0.05, 1, 0.9), batches of 4 in order, 3 epochs; Keras's epoch losses.
  Tensor kernel = Tensor::ones({2, 2}).set_requires_grad();
  Tensor bias = Tensor::ones({2}).set_requires_grad();
  Adam opt({.learning_rate = ExponentialDecay(
                {.initial_learning_rate = 0.05, .decay_steps = 1, .decay_rate = 0.9})});
  const double keras[] = {230.79457092285156, 128.30319213867188, 79.33648681640625};
  for (int epoch = 0; epoch < 3; ++epoch) {
    double total = 0.0;
    for (int b = 0; b < 4; ++b) {
      std::vector<float> xs(8);
      for (int i = 0; i < 8; ++i) xs[i] = float(8 * b + i);
      const Tensor x({4, 2}, xs);
      kernel.zero_grad();
      bias.zero_grad();
      Tensor loss = mean(square(matmul(x, kernel) + bias - x));
      total += loss.item();
      loss.backward();
      opt.apply({{"dense/kernel", kernel}, {"dense/bias", bias}});
    }
    BOOST_CHECK_CLOSE(total / 4.0, keras[epoch], 5e-3);  // Keras's rtol 5e-5, in percent
  }
  BOOST_CHECK_EQUAL(opt.iterations(), 12);
}

BOOST_AUTO_TEST_CASE(set_learning_rate_on_a_schedule_throws_as_keras) {
  ExponentialDecay ed({.initial_learning_rate = 0.1, .decay_steps = 2, .decay_rate = 0.5});
  auto shared = std::make_shared<ExponentialDecay>(ed);
  Adam opt({.learning_rate = shared});
  BOOST_CHECK(opt.learning_rate_schedule().get() == shared.get());
  opt.set_iterations(4);
  BOOST_CHECK_CLOSE(opt.learning_rate(), 0.025f, 1e-4);
  check_throws<std::logic_error>("set", [&] { opt.set_learning_rate(0.3f); },
                                 {"Adam", "ExponentialDecay", "cannot be set", "0.3"});
  // Writing back the current value is a no-op (a checkpoint restore does this).
  BOOST_CHECK_NO_THROW(opt.set_learning_rate(opt.learning_rate()));
  BOOST_CHECK(opt.learning_rate_schedule() != nullptr);
  // A constant optimizer can be switched to a schedule, as Keras allows.
  SGD sgd({.learning_rate = 0.1f});
  sgd.set_learning_rate_schedule(shared);
  BOOST_CHECK_CLOSE(sgd.learning_rate(), 0.1f, 1e-5);
  check_throws<std::invalid_argument>("null", [&] { sgd.set_learning_rate_schedule(nullptr); },
                                      {"SGD", "null"});
  check_throws<std::invalid_argument>(
      "null option", [] { SGD({.learning_rate = std::shared_ptr<ExponentialDecay>()}); },
      {"SGD", "null schedule"});
}

BOOST_AUTO_TEST_CASE(a_schedule_giving_a_bad_rate_is_refused_before_any_change) {
  // Polynomial decay with a negative power blows up at the end of the decay.
  SGD opt({.learning_rate = PolynomialDecay({.initial_learning_rate = 0.1,
                                             .decay_steps = 2,
                                             .end_learning_rate = 0.0,
                                             .power = -1.0})});
  Tensor w({1}, {1.f});
  w.set_requires_grad();
  w.set_grad(Tensor({1}, {1.f}));
  opt.set_iterations(2);
  check_throws<std::invalid_argument>("inf",
                                      [&] {
                                        opt.apply({{"w", w}});
                                      },
                                      {"SGD", "PolynomialDecay", "inf", "step 2"});
  BOOST_CHECK_EQUAL(w.item(), 1.f);
  BOOST_CHECK_EQUAL(opt.iterations(), 2);
  // A rate beyond float's range is infinite (not an undefined cast) and refused too.
  ExponentialDecay growth({.initial_learning_rate = 0.1, .decay_steps = 1, .decay_rate = 2.0});
  BOOST_CHECK(std::isinf(growth(200)));
  SGD grows({.learning_rate = growth});
  grows.set_iterations(200);
  check_throws<std::invalid_argument>("overflow",
                                      [&] {
                                        grows.apply({{"w", w}});
                                      },
                                      {"ExponentialDecay", "inf", "step 200"});
}

BOOST_AUTO_TEST_SUITE_END()
