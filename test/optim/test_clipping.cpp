// Tests of optim/clipping.hpp: the standalone gradient transforms clip as Keras does, and a
// transform followed by apply() gives the same bits as the optimizer's built-in option, for every
// optimizer (the issue: clipping through the hook gives the same bits as today's clipping).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "layers/core.hpp"
#include "models/sequential.hpp"
#include "optim/optimizers.hpp"
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

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

enum class Clip { global_norm, norm, value };

// Sets the clip option `kind` to c on any options struct.
template <class O>
O clipped(O o, Clip kind, float c) {
  if (kind == Clip::global_norm) o.global_clipnorm = c;
  if (kind == Clip::norm) o.clipnorm = c;
  if (kind == Clip::value) o.clipvalue = c;
  return o;
}

// An optimizer of each kind with (c > 0) or without (c == 0) the clip option `kind`.
using Maker = std::function<std::unique_ptr<Optimizer>(Clip kind, float c)>;

template <class Opt, class O>
Maker maker(O o) {
  return [o](Clip kind, float c) -> std::unique_ptr<Optimizer> {
    return std::make_unique<Opt>(c > 0.f ? clipped(o, kind, c) : o);
  };
}

std::vector<std::pair<std::string, Maker>> every_optimizer() {
  return {
      {"sgd", maker<SGD>(SGDOptions{.learning_rate = 0.1f})},
      {"sgd momentum", maker<SGD>(SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f})},
      {"sgd nesterov",
       maker<SGD>(SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true})},
      {"adam", maker<Adam>(AdamOptions{.learning_rate = 0.1f})},
      {"adam amsgrad", maker<Adam>(AdamOptions{.learning_rate = 0.1f, .amsgrad = true})},
      {"adamw", maker<AdamW>(AdamWOptions{.learning_rate = 0.1f, .weight_decay = 0.1f})},
      {"rmsprop", maker<RMSprop>(RMSpropOptions{.learning_rate = 0.1f})},
      {"rmsprop centered momentum",
       maker<RMSprop>(RMSpropOptions{.learning_rate = 0.1f, .momentum = 0.5f, .centered = true})},
      {"adagrad", maker<Adagrad>(AdagradOptions{.learning_rate = 0.1f})},
      {"adadelta", maker<Adadelta>(AdadeltaOptions{.learning_rate = 1.f})},
      {"adamax", maker<Adamax>(AdamaxOptions{.learning_rate = 0.1f})},
      {"nadam", maker<Nadam>(NadamOptions{.learning_rate = 0.1f})},
      {"lion", maker<Lion>(LionOptions{.learning_rate = 0.1f})},
      {"adam with ema and decay",
       maker<Adam>(AdamOptions{.learning_rate = 0.1f, .weight_decay = 0.01f, .use_ema = true})},
  };
}

// Gradients of 0.5 * sum(a (w - t)^2) for two variables, large enough to be clipped.
void set_quadratic_grads(std::vector<Variable>& vars) {
  for (std::size_t k = 0; k < vars.size(); ++k) {
    Tensor& w = vars[k].value;
    std::vector<float> g(w.size());
    for (std::size_t i = 0; i < w.size(); ++i)
      g[i] = (1.5f + float(i + k)) * (w.data()[i] - (0.3f * float(i) - 2.f));
    w.set_grad(Tensor(w.shape(), g));
  }
}

std::vector<Variable> two_variables() {
  return {{"dense/kernel", leaf({1.f, -2.f, 0.5f, 3.f, 1.25f, -0.75f}, {0, 0, 0, 0, 0, 0})},
          {"dense/bias", leaf({0.5f, 4.f, -1.f}, {0, 0, 0})}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(clipping)

BOOST_AUTO_TEST_CASE(transform_then_apply_gives_the_bits_of_the_option) {
  const struct {
    Clip kind;
    float c;
    GradientTransform (*make)(float);
    const char* label;
  } clips[] = {{Clip::global_norm, 2.f, clip_by_global_norm, "global_clipnorm"},
               {Clip::norm, 1.5f, clip_by_norm, "clipnorm"},
               {Clip::value, 0.7f, clip_by_value, "clipvalue"}};
  for (const auto& clip : clips)
    for (const auto& [name, make] : every_optimizer()) {
      auto builtin = make(clip.kind, clip.c);
      auto plain = make(clip.kind, 0.f);
      auto transform = clip.make(clip.c);
      std::vector<Variable> a = two_variables(), b = two_variables();
      for (int step = 0; step < 4; ++step) {
        set_quadratic_grads(a);
        set_quadratic_grads(b);
        builtin->apply(a);
        transform(b);
        plain->apply(b);
      }
      for (std::size_t k = 0; k < a.size(); ++k) {
        BOOST_CHECK_MESSAGE(same_bits(a[k].value, b[k].value),
                            clip.label << ", " << name << ": " << a[k].name << " differs");
        const auto& sa = builtin->slots().at(a[k].name);
        const auto& sb = plain->slots().at(b[k].name);
        BOOST_REQUIRE_EQUAL(sa.size(), sb.size());
        for (std::size_t s = 0; s < sa.size(); ++s)
          BOOST_CHECK_MESSAGE(same_bits(sa[s], sb[s]),
                              clip.label << ", " << name << ": slot " << s << " differs");
      }
    }
}

BOOST_AUTO_TEST_CASE(clipping_through_the_training_hook_gives_the_bits_of_the_option) {
  // The requirement, through Model::fit: a transform in compile's gradient_transforms
  // against the optimizer's own option, for two optimizers and the three clips.
  const std::pair<std::string, Maker> makers[] = {
      {"sgd momentum", maker<SGD>(SGDOptions{.learning_rate = 0.05f, .momentum = 0.9f})},
      {"adam", maker<Adam>(AdamOptions{.learning_rate = 0.01f})}};
  const struct {
    Clip kind;
    float c;
    GradientTransform (*make)(float);
  } clips[] = {{Clip::global_norm, 0.1f, clip_by_global_norm},
               {Clip::norm, 0.05f, clip_by_norm},
               {Clip::value, 0.02f, clip_by_value}};
  Tensor x(Shape{64, 3}, 0.f), y(Shape{64, 1}, 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 3.f * std::sin(1.3f * float(i));
  for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = 5.f * std::cos(0.7f * float(i));
  for (const auto& entry : makers)  // no structured binding: clang 14 cannot capture one
    for (const auto& clip : clips) {
      const std::string& name = entry.first;
      const Maker& make = entry.second;
      enum Mode { hook, option, none };
      auto run = [&](Mode mode) {
        layers::clear_session();
        set_random_seed(5);
        layers::Sequential m({layers::Input({3}),
                              std::make_shared<layers::Dense>(
                                  layers::DenseOptions{.units = 4, .activation = "tanh"}),
                              std::make_shared<layers::Dense>(layers::DenseOptions{.units = 1})});
        std::shared_ptr<Optimizer> opt = make(clip.kind, mode == option ? clip.c : 0.f);
        layers::CompileOptions o{.loss = {"mse"}, .optimizer = opt};
        if (mode == hook) o.gradient_transforms = {clip.make(clip.c)};
        m.compile(std::move(o));
        m.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0});
        return m.get_weights();
      };
      const auto a = run(hook), b = run(option), c = run(none);
      BOOST_REQUIRE_EQUAL(a.size(), b.size());
      bool clipped_something = false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        BOOST_CHECK_MESSAGE(same_bits(a[i], b[i]),
                            name << ", clip " << int(clip.kind) << ": weight " << i << " differs");
        clipped_something = clipped_something || !same_bits(b[i], c[i]);
      }
      BOOST_CHECK_MESSAGE(clipped_something, name << ", clip " << int(clip.kind) << ": no effect");
    }
}

BOOST_AUTO_TEST_CASE(the_gradients_really_were_clipped) {
  // The bitwise test above means something only if clipping changed the gradients.
  std::vector<Variable> vars = two_variables();
  set_quadratic_grads(vars);
  const std::vector<float> before = vars[0].value.grad().to_vector();
  clip_by_global_norm(2.f)(vars);
  const std::vector<float> after = vars[0].value.grad().to_vector();
  BOOST_CHECK(before != after);
  double sq = 0.0;
  for (const auto& v : vars)
    for (float g : v.value.grad().to_vector()) sq += double(g) * g;
  BOOST_CHECK_CLOSE(std::sqrt(sq), 2.0, 1e-4);
}

BOOST_AUTO_TEST_CASE(clip_by_global_norm_scales_all_gradients) {
  // Gradients (3, 4) and (12): global norm 13; clip 6.5 halves them.
  std::vector<Variable> vars = {{"a", leaf({0.f, 0.f}, {3.f, 4.f})}, {"b", leaf({1.f}, {12.f})}};
  const Tensor original = vars[0].value.grad();
  clip_by_global_norm(6.5f)(vars);
  BOOST_CHECK(vars[0].value.grad().to_vector() == (std::vector<float>{1.5f, 2.f}));
  BOOST_CHECK(vars[1].value.grad().to_vector() == (std::vector<float>{6.f}));
  // The gradient is replaced, not modified in place.
  BOOST_CHECK(original.to_vector() == (std::vector<float>{3.f, 4.f}));
  // Below the clip norm the gradients keep their values.
  clip_by_global_norm(100.f)(vars);
  BOOST_CHECK(vars[0].value.grad().to_vector() == (std::vector<float>{1.5f, 2.f}));
  // A non-finite norm gives NaN gradients, as in Keras.
  std::vector<Variable> bad = {{"c", leaf({0.f, 0.f}, {INFINITY, 1.f})}};
  clip_by_global_norm(1.f)(bad);
  for (float g : bad[0].value.grad().to_vector()) BOOST_CHECK(std::isnan(g));
}

BOOST_AUTO_TEST_CASE(clip_by_norm_is_per_variable) {
  // Keras's test: clipnorm 1 on [100, 100] gives [sqrt(2)/2, sqrt(2)/2].
  std::vector<Variable> vars = {{"a", leaf({0.f, 0.f}, {100.f, 100.f})},
                                {"b", leaf({0.f}, {0.5f})}};
  clip_by_norm(1.f)(vars);
  for (float g : vars[0].value.grad().to_vector()) BOOST_CHECK_CLOSE(g, std::sqrt(2.f) / 2, 1e-4);
  BOOST_CHECK_EQUAL(vars[1].value.grad().item(), 0.5f);  // its own norm is below 1
}

BOOST_AUTO_TEST_CASE(clip_by_value_clamps_elements) {
  std::vector<Variable> vars = {{"a", leaf({0.f, 0.f, 0.f}, {100.f, -100.f, 0.5f})}};
  clip_by_value(1.f)(vars);
  BOOST_CHECK(vars[0].value.grad().to_vector() == (std::vector<float>{1.f, -1.f, 0.5f}));
}

BOOST_AUTO_TEST_CASE(builtin_options_clip_as_keras) {
  // SGD with learning rate 1 moves w by minus the clipped gradient.
  SGD by_norm({.learning_rate = 1.f, .clipnorm = 1.f});
  Tensor w = leaf({0.f, 0.f}, {100.f, 100.f});
  by_norm.apply({{"w", w}});
  for (float x : w.to_vector()) BOOST_CHECK_CLOSE(x, -std::sqrt(2.f) / 2, 1e-4);
  BOOST_CHECK(w.grad().to_vector() == (std::vector<float>{100.f, 100.f}));  // left alone
  SGD by_value({.learning_rate = 1.f, .clipvalue = 1.f});
  Tensor v = leaf({0.f, 0.f, 0.f}, {100.f, -100.f, 0.25f});
  by_value.apply({{"v", v}});
  BOOST_CHECK(v.to_vector() == (std::vector<float>{-1.f, 1.f, -0.25f}));
}

BOOST_AUTO_TEST_CASE(variables_without_gradients_are_skipped) {
  Tensor none({2}, {3.f, 4.f});
  none.set_requires_grad();
  std::vector<Variable> vars = {{"with", leaf({1.f}, {10.f})}, {"without", none}};
  for (auto* t : {clip_by_global_norm, clip_by_norm, clip_by_value}) t(1.f)(vars);
  BOOST_CHECK(!vars[1].value.grad().defined());
  BOOST_CHECK_EQUAL(vars[0].value.grad().item(), 1.f);
}

BOOST_AUTO_TEST_CASE(bad_arguments_throw) {
  check_throws<std::invalid_argument>("zero", [] { clip_by_global_norm(0.f); },
                                      {"clip_by_global_norm", "clip_norm", "0"});
  check_throws<std::invalid_argument>("negative", [] { clip_by_norm(-1.f); },
                                      {"clip_by_norm", "-1"});
  check_throws<std::invalid_argument>("nan", [] { clip_by_value(NAN); }, {"clip_by_value", "nan"});
  std::vector<Variable> ghost = {{"ghost", Tensor()}};
  check_throws<std::invalid_argument>("undefined", [&] { clip_by_value(1.f)(ghost); },
                                      {"ghost", "undefined"});
}

BOOST_AUTO_TEST_SUITE_END()
