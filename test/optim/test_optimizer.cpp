// Tests of optim/optimizer.hpp: the options every optimizer shares, as Keras's base optimizer —
// decoupled weight decay, the exclusive clip options, the moving average of the weights (its
// slot, overwrite frequency, finalize and swap) — and that checkpoints carry the new state (the
// "average" slots, a schedule's step, Nadam's momentum product) so a resumed run is bitwise the
// uninterrupted one.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "layers/core.hpp"
#include "models/sequential.hpp"
#include "optim/optimizers.hpp"
#include "support/temp_dir.hpp"
#include "test/support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::optim;
using xtape::testing::check_throws;

namespace {

Tensor leaf(const std::vector<float>& values, const std::vector<float>& grad) {
  Tensor w({values.size()}, values);
  w.set_requires_grad();
  w.set_grad(Tensor({grad.size()}, grad));
  return w;
}

// Every optimizer with the common options `c` set on top of its defaults.
std::vector<std::unique_ptr<Optimizer>> every_optimizer(const CommonOptions& c) {
  auto with = [&](auto o) {
    o.learning_rate = c.learning_rate;
    o.weight_decay = c.weight_decay;
    o.clipnorm = c.clipnorm;
    o.clipvalue = c.clipvalue;
    o.global_clipnorm = c.global_clipnorm;
    o.use_ema = c.use_ema;
    o.ema_momentum = c.ema_momentum;
    o.ema_overwrite_frequency = c.ema_overwrite_frequency;
    return o;
  };
  std::vector<std::unique_ptr<Optimizer>> all;
  all.push_back(std::make_unique<SGD>(with(SGDOptions{})));
  all.push_back(std::make_unique<SGD>(with(SGDOptions{.momentum = 0.9f})));
  all.push_back(std::make_unique<Adam>(with(AdamOptions{})));
  all.push_back(std::make_unique<RMSprop>(with(RMSpropOptions{})));
  all.push_back(std::make_unique<Adagrad>(with(AdagradOptions{})));
  all.push_back(std::make_unique<Adadelta>(with(AdadeltaOptions{})));
  all.push_back(std::make_unique<Adamax>(with(AdamaxOptions{})));
  all.push_back(std::make_unique<Nadam>(with(NadamOptions{})));
  all.push_back(std::make_unique<Lion>(with(LionOptions{})));
  return all;
}

bool same_bits(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

using TempDir = xtape::testing::TempDir;

}  // namespace

BOOST_AUTO_TEST_SUITE(optimizer_options)

BOOST_AUTO_TEST_CASE(weight_decay_on_every_optimizer_as_keras) {
  // Keras's test_weight_decay: a variable of 2 with a zero gradient, weight_decay 0.004 and
  // learning rate 1, decayed three times: 1.9760959 (no rule moves a zero-gradient variable).
  for (auto& opt : every_optimizer({.learning_rate = 1.f, .weight_decay = 0.004f})) {
    Tensor w = leaf({2.f}, {0.f});
    for (int i = 0; i < 3; ++i) opt->apply({{"w", w}});
    float expected = 2.f;
    for (int i = 0; i < 3; ++i) expected -= expected * 0.004f * 1.f;
    BOOST_CHECK_MESSAGE(w.item() == expected, opt->name() << ": " << w.item());
    BOOST_CHECK_MESSAGE(std::abs(w.item() - 1.9760959f) < 1e-6f, opt->name());
    BOOST_CHECK(opt->weight_decay() == 0.004f);
  }
}

BOOST_AUTO_TEST_CASE(weight_decay_comes_before_the_step_and_uses_the_scheduled_rate) {
  // SGD: w = (w - w wd lr) - lr g, with lr from the schedule at each step.
  PiecewiseConstantDecay pw({.boundaries = {0}, .values = {0.5, 0.25}});
  SGD opt({.learning_rate = pw, .weight_decay = 0.1f});
  Tensor w = leaf({3.f}, {2.f});
  float expected = 3.f;
  for (float lr : {0.5f, 0.25f, 0.25f}) {
    opt.apply({{"w", w}});
    expected -= expected * 0.1f * lr;
    expected -= 2.f * 1.f * lr;
    BOOST_CHECK_EQUAL(w.item(), expected);
  }
  // AdamW is Adam with the base optimizer's weight decay.
  AdamW adamw({.learning_rate = 0.1f, .weight_decay = 0.2f});
  BOOST_CHECK(adamw.weight_decay() == 0.2f);
  Adam adam({.learning_rate = 0.1f, .weight_decay = 0.2f});
  Tensor a = leaf({1.f, -2.f}, {0.3f, 0.4f}), b = leaf({1.f, -2.f}, {0.3f, 0.4f});
  adamw.apply({{"w", a}});
  adam.apply({{"w", b}});
  BOOST_CHECK(a.to_vector() == b.to_vector());
}

BOOST_AUTO_TEST_CASE(moving_average_follows_keras) {
  // average = m * average + (1 - m) * w after every update; m = 0 on the first step.
  SGD opt({.learning_rate = 0.1f, .use_ema = true, .ema_momentum = 0.5f});
  BOOST_CHECK(opt.slot_names() == std::vector<std::string>{"average"});
  BOOST_CHECK(!opt.slot_nonnegative(0));
  Tensor w = leaf({1.f, -1.f}, {1.f, 2.f});
  double wd[2] = {1.0, -1.0}, avg[2] = {0.0, 0.0};
  for (int step = 0; step < 4; ++step) {
    opt.apply({{"w", w}});
    const double m = step == 0 ? 0.0 : 0.5;
    for (int i = 0; i < 2; ++i) {
      wd[i] -= double(0.1f) * (i == 0 ? 1.0 : 2.0);
      avg[i] = m * avg[i] + (1 - m) * wd[i];
    }
  }
  const auto average = opt.slots().at("w").at(0).to_vector();
  for (int i = 0; i < 2; ++i) {
    BOOST_CHECK_CLOSE(w.data()[i], wd[i], 1e-4);
    BOOST_CHECK_CLOSE(average[i], avg[i], 1e-4);
  }
  // The average slot comes after the rule's slots and is not a second moment.
  Adam adam({.use_ema = true});
  BOOST_CHECK(adam.slot_names() == (std::vector<std::string>{"momentum", "velocity", "average"}));
  BOOST_CHECK(adam.slot_nonnegative(1) && !adam.slot_nonnegative(2));
  RMSprop rms({.momentum = 0.5f, .centered = true, .use_ema = true});
  BOOST_CHECK(rms.slot_names() ==
              (std::vector<std::string>{"velocity", "momentum", "average_gradient", "average"}));
}

BOOST_AUTO_TEST_CASE(rmsprop_centered_with_ema_keeps_its_average_gradient) {
  // The EMA slot comes last; RMSprop's average_gradient must still be its own slot.
  RMSprop with({.learning_rate = 0.1f, .centered = true, .use_ema = true});
  RMSprop without({.learning_rate = 0.1f, .centered = true});
  Tensor a = leaf({1.f, 2.f}, {0.5f, -0.25f}), b = leaf({1.f, 2.f}, {0.5f, -0.25f});
  for (int i = 0; i < 3; ++i) {
    with.apply({{"w", a}});
    without.apply({{"w", b}});
  }
  BOOST_CHECK(a.to_vector() == b.to_vector());
  BOOST_CHECK(with.slots().at("w")[1].to_vector() == without.slots().at("w")[1].to_vector());
}

BOOST_AUTO_TEST_CASE(ema_overwrite_frequency_finalize_and_swap) {
  SGD opt(
      {.learning_rate = 0.1f, .use_ema = true, .ema_momentum = 0.9f, .ema_overwrite_frequency = 3});
  Tensor w = leaf({1.f}, {1.f});
  std::vector<float> seen;
  for (int step = 0; step < 6; ++step) {
    opt.apply({{"w", w}});
    seen.push_back(w.item());
    const float avg = opt.slots().at("w")[0].item();
    // Keras overwrites when (iterations + 1) % frequency == 0, i.e. after steps 3 and 6.
    if (step == 2 || step == 5)
      BOOST_CHECK_EQUAL(w.item(), avg);
    else if (step > 0)  // on the first step the average starts at the weight
      BOOST_CHECK(w.item() != avg);
  }
  BOOST_CHECK(seen[2] > seen[1] - 0.1f);  // the overwrite moved w back towards its average

  SGD ema({.learning_rate = 0.5f, .use_ema = true, .ema_momentum = 0.5f});
  Tensor v = leaf({4.f, 8.f}, {1.f, 1.f});
  for (int step = 0; step < 3; ++step) ema.apply({{"v", v}});
  const auto trained = v.to_vector();
  const auto average = ema.slots().at("v")[0].to_vector();
  BOOST_CHECK(trained != average);
  ema.swap_moving_averages({{"v", v}});
  BOOST_CHECK(v.to_vector() == average);
  BOOST_CHECK(ema.slots().at("v")[0].to_vector() == trained);
  ema.swap_moving_averages({{"v", v}});
  BOOST_CHECK(v.to_vector() == trained);
  ema.finalize_variable_values({{"v", v}});
  BOOST_CHECK(v.to_vector() == average);
  // Without use_ema both do nothing; a variable never updated is left alone.
  SGD plain;
  Tensor u = leaf({1.f}, {1.f});
  plain.apply({{"u", u}});
  const float before = u.item();
  plain.finalize_variable_values({{"u", u}});
  ema.finalize_variable_values({{"never", u}});
  BOOST_CHECK_EQUAL(u.item(), before);
  check_throws<std::invalid_argument>("undefined",
                                      [&] {
                                        ema.finalize_variable_values({{"v", Tensor()}});
                                      },
                                      {"SGD", "finalize_variable_values", "undefined"});
}

BOOST_AUTO_TEST_CASE(a_variable_first_seen_later_starts_its_average_at_its_value) {
  SGD opt({.learning_rate = 0.1f, .use_ema = true});
  Tensor a = leaf({1.f}, {1.f});
  opt.apply({{"a", a}});
  Tensor b = leaf({5.f}, {1.f});
  opt.apply({{"a", a}, {"b", b}});
  BOOST_CHECK_EQUAL(opt.slots().at("b")[0].item(), b.item());
  BOOST_CHECK(opt.slots().at("a")[0].item() != a.item());
}

BOOST_AUTO_TEST_CASE(bad_common_options_throw) {
  check_throws<std::invalid_argument>("wd", [] { SGD({.weight_decay = -0.1f}); },
                                      {"SGD", "weight_decay", "-0.1"});
  check_throws<std::invalid_argument>("wd nan", [] { Lion({.weight_decay = NAN}); },
                                      {"Lion", "weight_decay", "nan"});
  check_throws<std::invalid_argument>("clipnorm", [] { Adam({.clipnorm = 0.f}); },
                                      {"Adam", "clipnorm", "> 0", "0"});
  check_throws<std::invalid_argument>("clipvalue", [] { Adagrad({.clipvalue = -1.f}); },
                                      {"Adagrad", "clipvalue", "-1"});
  check_throws<std::invalid_argument>(
      "two clips", [] { Nadam({.clipnorm = 1.f, .global_clipnorm = 2.f}); },
      {"Nadam", "only one of", "clipnorm 1", "clipvalue unset", "global_clipnorm 2"});
  check_throws<std::invalid_argument>("ema momentum",
                                      [] { Adamax({.use_ema = true, .ema_momentum = 1.5f}); },
                                      {"Adamax", "ema_momentum", "[0, 1]", "1.5"});
  check_throws<std::invalid_argument>(
      "ema frequency", [] { Adadelta({.use_ema = true, .ema_overwrite_frequency = 0}); },
      {"Adadelta", "ema_overwrite_frequency", ">= 1", "0"});
  BOOST_CHECK_NO_THROW(
      RMSprop({.use_ema = true, .ema_momentum = 1.f, .ema_overwrite_frequency = 1}));
}

BOOST_AUTO_TEST_CASE(restored_state_continues_bitwise) {
  // Any optimizer with a schedule, weight decay, clipping and EMA: its state after k steps,
  // copied into a fresh optimizer through slots() and set_iterations() (what a checkpoint
  // restores), continues exactly as the original.
  const CommonOptions c{.learning_rate = CosineDecay({.initial_learning_rate = 0.05,
                                                      .decay_steps = 10,
                                                      .warmup_target = 0.1,
                                                      .warmup_steps = 3}),
                        .weight_decay = 0.01f,
                        .clipnorm = 0.8f,
                        .use_ema = true,
                        .ema_momentum = 0.7f,
                        .ema_overwrite_frequency = 4};
  auto originals = every_optimizer(c), copies = every_optimizer(c);
  for (std::size_t k = 0; k < originals.size(); ++k) {
    Optimizer& a = *originals[k];
    Optimizer& b = *copies[k];
    auto grad = [](const Tensor& w) {
      std::vector<float> g(w.size());
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = 2.f * (w.data()[i] - float(i));
      return Tensor(w.shape(), g);
    };
    Tensor wa = leaf({1.f, -2.f, 0.5f}, {0, 0, 0});
    for (int step = 0; step < 5; ++step) {
      wa.set_grad(grad(wa));
      a.apply({{"w", wa}});
    }
    Tensor wb = wa.clone().set_requires_grad();
    for (const auto& [name, s] : a.slots()) {
      std::vector<Tensor> copy;
      for (const auto& t : s) copy.push_back(t.clone());
      b.slots()[name] = copy;
    }
    b.set_iterations(a.iterations());
    b.set_learning_rate(a.learning_rate());  // what load_checkpoint does: a no-op here
    for (int step = 0; step < 6; ++step) {
      wa.set_grad(grad(wa));
      wb.set_grad(grad(wb));
      a.apply({{"w", wa}});
      b.apply({{"w", wb}});
    }
    BOOST_CHECK_MESSAGE(same_bits({wa}, {wb}), a.name() << " diverged after the restore");
    BOOST_CHECK(same_bits(a.slots().at("w"), b.slots().at("w")));
  }
}

BOOST_AUTO_TEST_CASE(checkpoints_carry_averages_schedules_and_new_optimizers) {
  // Model::save_checkpoint / load_checkpoint with Nadam, a schedule and EMA: resuming from the
  // checkpoint gives the bits of the uninterrupted run.
  TempDir dir;
  Tensor x(Shape{12, 3}, 0.f), y(Shape{12, 2}, 0.f);
  for (std::size_t i = 0; i < 36; ++i) x.data()[i] = std::sin(0.7f * float(i));
  for (std::size_t i = 0; i < 24; ++i) y.data()[i] = std::cos(0.3f * float(i));
  auto make_model = [](std::uint64_t seed) {
    layers::clear_session();
    set_random_seed(seed);
    layers::Sequential m(
        {layers::Input({3}),
         std::make_shared<layers::Dense>(layers::DenseOptions{.units = 4, .activation = "tanh"}),
         std::make_shared<layers::Dense>(layers::DenseOptions{.units = 2})});
    m.compile("mse", std::make_shared<Nadam>(NadamOptions{
                         .learning_rate = ExponentialDecay(
                             {.initial_learning_rate = 0.05, .decay_steps = 3, .decay_rate = 0.8}),
                         .weight_decay = 0.01f,
                         .use_ema = true,
                         .ema_momentum = 0.9f}));
    return m;
  };
  const layers::FitOptions fit{.batch_size = 4, .epochs = 4, .shuffle = false, .verbose = 0};
  layers::Sequential a = make_model(3);
  a.fit(x, y, fit);
  const auto reference = a.get_weights();

  layers::Sequential b = make_model(3);
  layers::FitOptions first = fit;
  first.epochs = 2;
  b.fit(x, y, first);
  b.save_checkpoint(dir / "ck.safetensors", 2);

  layers::Sequential c = make_model(77);
  c.build({3});
  BOOST_REQUIRE_EQUAL(c.load_checkpoint(dir / "ck.safetensors"), 2);
  BOOST_CHECK_EQUAL(c.optimizer()->iterations(), 6);
  BOOST_CHECK_EQUAL(c.optimizer()->slots().begin()->second.size(), 3u);  // m, v, average
  layers::FitOptions rest = fit;
  rest.initial_epoch = 2;
  c.fit(x, y, rest);
  BOOST_CHECK(same_bits(c.get_weights(), reference));
}

BOOST_AUTO_TEST_SUITE_END()
