// Tests for layers/normalization.cpp: BatchNormalization, LayerNormalization,
// GroupNormalization and UnitNormalization through the layer harness (shapes, trainable and
// non-trainable weights, a training step, gradcheck, config round trip), values against hand
// computations in double, BatchNormalization's moving statistics after several steps, its
// inference mode, freezing, any axis, and a Sequential model with it that trains with fit(),
// evaluates, saves and loads.
#include <stdlib.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "autodiff/detail.hpp"
#include "layers/activation_layers.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/normalization.hpp"
#include "layers/pooling.hpp"
#include "models/sequential.hpp"
#include "optim/optimizers.hpp"
#include "saving/model_file.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck_leaves;
using xtape::testing::LayerCheck;
using xtape::testing::random_tensor;

namespace {

// Per-channel (last axis) batch mean and population variance of a (rows, c) tensor, in double.
void column_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const std::size_t c = x.shape().back(), rows = x.size() / c;
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < c; ++j) mean[j] += x.data()[r * c + j];
  for (double& m : mean) m /= static_cast<double>(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < c; ++j) {
      const double d = x.data()[r * c + j] - mean[j];
      var[j] += d * d;
    }
  for (double& v : var) v /= static_cast<double>(rows);
}

std::string temp_dir() {
  char tmpl[] = "/tmp/xtape_norm_XXXXXX";
  const char* d = mkdtemp(tmpl);
  BOOST_TEST_REQUIRE(d != nullptr);
  return d;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_normalization)

BOOST_AUTO_TEST_CASE(batch_normalization_through_the_harness) {
  BatchNormalization bn;
  check_layer("BatchNormalization", bn,
              {.input = {3},
               .batch = 5,
               .expected_output = {3},
               .expected_params = 12,
               .expected_non_trainable = 6,
               .round_trip = true});
  std::vector<std::string> names;
  for (const auto& w : bn.weights()) names.push_back(w.name + (w.trainable ? "" : " (frozen)"));
  const std::vector<std::string> expected = {"gamma", "beta", "moving_mean (frozen)",
                                             "moving_variance (frozen)"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(bn.trainable_variables().size() == 2u);
  // Channels inside (axis 1 of (n, c, l)), without scale: beta and the moving statistics.
  BatchNormalization ch({.axis = 1, .scale = false});
  check_layer("BatchNormalization axis 1", ch,
              {.input = {4, 3},
               .batch = 3,
               .expected_output = {4, 3},
               .expected_params = 12,
               .expected_non_trainable = 8,
               .round_trip = true});
  BatchNormalization plain({.center = false, .scale = false});
  check_layer("BatchNormalization no center/scale", plain,
              {.input = {2, 2, 3},
               .expected_output = {2, 2, 3},
               .expected_params = 6,
               .expected_non_trainable = 6,
               .round_trip = true});
}

BOOST_AUTO_TEST_CASE(batch_normalization_training_gradients) {
  // The training-mode output through the batch statistics (fused_moments, scale_shift),
  // checked by finite differences in every input and in gamma and beta.
  for (int axis : {-1, 1, 2}) {
    BatchNormalization bn({.axis = axis});
    Rng rng(41);
    Tensor x = random_tensor({4, 3, 5}, rng).set_requires_grad();
    bn(x, false);
    bn.weight("gamma").assign(random_tensor(bn.weight("gamma").shape(), rng, 0.5f, 1.5f));
    bn.weight("beta").assign(random_tensor(bn.weight("beta").shape(), rng));
    gradcheck_leaves("BatchNormalization training, axis " + std::to_string(axis),
                     [&] { return bn(x, true); }, {x, bn.weight("gamma"), bn.weight("beta")});
  }
}

BOOST_AUTO_TEST_CASE(batch_normalization_values_and_moving_statistics_by_hand) {
  BatchNormalization bn({.momentum = 0.9f, .epsilon = 1e-3f});
  Rng rng(42);
  const Tensor gamma({3}, {1.5f, 0.5f, 2.f}), beta({3}, {0.1f, -0.2f, 0.3f});
  std::vector<double> mm(3, 0.0), mv(3, 1.0);  // Keras's initial moving mean and variance
  for (int step = 0; step < 4; ++step) {
    const Tensor x = random_tensor({6, 3}, rng, -2.f + step, 3.f + 2 * step);
    if (step == 0) {
      bn(x, false);
      bn.weight("gamma").assign(gamma);
      bn.weight("beta").assign(beta);
    }
    const Tensor y = bn(x, true);
    std::vector<double> m, v;
    column_stats(x, m, v);
    std::vector<double> ref(x.size());
    for (std::size_t r = 0; r < 6; ++r)
      for (std::size_t j = 0; j < 3; ++j)
        ref[r * 3 + j] = (x.data()[r * 3 + j] - m[j]) / std::sqrt(v[j] + 1e-3) * gamma.data()[j] +
                         beta.data()[j];
    check_values("training output, step " + std::to_string(step), y, {6, 3}, ref, 1e-5, 1e-5);
    for (std::size_t j = 0; j < 3; ++j) {
      mm[j] = mm[j] * 0.9 + m[j] * 0.1;
      mv[j] = mv[j] * 0.9 + v[j] * 0.1;  // Keras: population variance, no Bessel correction
    }
    check_values("moving_mean after step " + std::to_string(step), bn.moving_mean(), {3}, mm, 1e-5,
                 1e-6);
    check_values("moving_variance after step " + std::to_string(step), bn.moving_variance(), {3},
                 mv, 1e-5, 1e-6);
  }
  // Inference uses the moving statistics and leaves them alone.
  const Tensor x = random_tensor({5, 3}, rng);
  const Tensor y = bn(x, false);
  std::vector<double> ref(x.size());
  for (std::size_t r = 0; r < 5; ++r)
    for (std::size_t j = 0; j < 3; ++j)
      ref[r * 3 + j] = (x.data()[r * 3 + j] - mm[j]) / std::sqrt(mv[j] + 1e-3) * gamma.data()[j] +
                       beta.data()[j];
  check_values("inference output", y, {5, 3}, ref, 1e-5, 1e-5);
  check_values("moving_mean after inference", bn.moving_mean(), {3}, mm, 1e-5, 1e-6);
  // A frozen layer runs in inference mode even when training (Keras), and updates nothing.
  bn.set_trainable(false);
  const Tensor yf = bn(x, true);
  BOOST_TEST((yf.to_vector() == y.to_vector()));
  check_values("moving_mean while frozen", bn.moving_mean(), {3}, mm, 1e-5, 1e-6);
}

BOOST_AUTO_TEST_CASE(batch_normalization_any_axis_by_hand) {
  // axis 1 of (n, c, h, w): statistics over n, h, w.
  BatchNormalization bn({.axis = 1, .momentum = 0.5f});
  Rng rng(43);
  const Tensor x = random_tensor({3, 2, 2, 4}, rng, -1.f, 2.f);
  const Tensor y = bn(x, true);
  std::vector<double> m(2, 0.0), v(2, 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) m[(i / 8) % 2] += x.data()[i] / 24.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = x.data()[i] - m[(i / 8) % 2];
    v[(i / 8) % 2] += d * d / 24.0;
  }
  std::vector<double> ref(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t c = (i / 8) % 2;
    ref[i] = (x.data()[i] - m[c]) / std::sqrt(v[c] + 1e-3);
  }
  check_values("axis 1 output", y, x.shape(), ref, 1e-5, 1e-5);
  check_values("axis 1 moving_mean", bn.moving_mean(), {2}, {m[0] * 0.5, m[1] * 0.5}, 1e-5, 1e-6);
  check_values("axis 1 moving_variance", bn.moving_variance(), {2},
               {0.5 + v[0] * 0.5, 0.5 + v[1] * 0.5}, 1e-5, 1e-6);
}

BOOST_AUTO_TEST_CASE(batch_normalization_errors) {
  check_throws<std::invalid_argument>("axis 0",
                                      [] {
                                        BatchNormalization b({.axis = 0});
                                        b(Tensor({2, 3}, 1.f));
                                      },
                                      {"BatchNormalization", "axis 0", "(None, 3)"});
  check_throws<std::invalid_argument>("axis 3",
                                      [] {
                                        BatchNormalization b({.axis = 3});
                                        b(Tensor({2, 3}, 1.f));
                                      },
                                      {"BatchNormalization", "axis 3"});
  check_throws<std::invalid_argument>("momentum", [] { BatchNormalization b({.momentum = 1.5f}); },
                                      {"momentum", "1.5"});
  check_throws<std::invalid_argument>("epsilon", [] { BatchNormalization b({.epsilon = 0.f}); },
                                      {"epsilon"});
  check_throws<std::invalid_argument>(
      "initializer", [] { BatchNormalization b({.gamma_initializer = "twos"}); }, {"twos"});
}

BOOST_AUTO_TEST_CASE(batch_normalization_in_a_sequential_model) {
  clear_session();
  set_random_seed(3);
  auto make_model = [] {
    return Sequential({Input({4}), make<Dense>({.units = 8}),
                       make<BatchNormalization>(BatchNormalizationOptions{.momentum = 0.9f}),
                       make<Activation>("relu"), make<Dense>({.units = 1})});
  };
  Sequential model = make_model();
  Rng rng(44);
  // y = sum of squares of inputs offset and scaled away from zero mean / unit variance, the
  // case batch normalization is for.
  Tensor x = random_tensor({256, 4}, rng, 2.f, 6.f);
  std::vector<float> yv(256, 0.f);
  for (std::size_t i = 0; i < 256; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      yv[i] += (x.data()[i * 4 + j] - 4.f) * (x.data()[i * 4 + j] - 4.f);
  const Tensor y({256, 1}, yv);
  model.compile("mse", std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f}));
  const float before = model.evaluate(x, y, {.verbose = 0}).at("loss");
  const auto stack = model.layers();  // InputLayer, dense, batch_normalization, ...
  std::size_t at = 0;
  while (at < stack.size() && !dynamic_cast<BatchNormalization*>(stack[at].get())) ++at;
  BOOST_TEST_REQUIRE(at < stack.size());
  BOOST_TEST_REQUIRE(at >= 1u);
  auto* bn = dynamic_cast<BatchNormalization*>(stack[at].get());
  const auto mm0 = bn->moving_mean().to_vector();
  const History h = model.fit(x, y, {.batch_size = 32, .epochs = 40, .verbose = 0});
  const float after = model.evaluate(x, y, {.verbose = 0}).at("loss");
  // Predicting the mean scores var(y); the trained model in inference mode does far better.
  double ym = 0, yvar = 0;
  for (float v : yv) ym += v / 256.0;
  for (float v : yv) yvar += (v - ym) * (v - ym) / 256.0;
  BOOST_TEST(after < 0.5 * yvar, "evaluate loss " << before << " -> " << after << ", var(y) "
                                                  << yvar << ", last fit loss "
                                                  << h.history.at("loss").back());
  BOOST_TEST(after < before);
  BOOST_TEST((bn->moving_mean().to_vector() != mm0), "moving_mean did not move in fit()");
  // evaluate() and predict() run in inference mode: the moving statistics do not change.
  const auto mm1 = bn->moving_mean().to_vector(), mv1 = bn->moving_variance().to_vector();
  const Tensor p1 = model.predict(x, {.verbose = 0});
  model.evaluate(x, y, {.verbose = 0});
  BOOST_TEST((bn->moving_mean().to_vector() == mm1));
  BOOST_TEST((bn->moving_variance().to_vector() == mv1));
  // Inference output uses the moving statistics: computed by hand from the layer before.
  {
    NoGrad guard;
    const Tensor h = (*stack[at - 1])(x, false);
    const Tensor n = (*bn)(h, false);
    std::vector<double> ref(n.size());
    const auto g = bn->weight("gamma").to_vector(), b = bn->weight("beta").to_vector();
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::size_t c = i % 8;
      ref[i] = (h.data()[i] - mm1[c]) / std::sqrt(double(mv1[c]) + 1e-3) * g[c] + b[c];
    }
    check_values("inference normalization in the model", n, {256, 8}, ref, 1e-4, 1e-4);
  }
  // Summary counts the moving statistics as non-trainable.
  std::ostringstream os;
  model.summary(os);
  BOOST_TEST(os.str().find("Non-trainable params: 16 ") != std::string::npos, os.str());
  BOOST_TEST(os.str().find("(BatchNormalization)") != std::string::npos, os.str());
  // save_weights / load_weights carry the moving statistics; save_model / load_model rebuild
  // the layer from its config and predict the same bits.
  const std::string dir = temp_dir();
  model.save_weights(dir + "/w.safetensors");
  Sequential other = make_model();
  other(slice_rows(x, 0, 1));
  other.load_weights(dir + "/w.safetensors");
  BOOST_TEST((other.predict(x, {.verbose = 0}).to_vector() == p1.to_vector()));
  auto* obn = dynamic_cast<BatchNormalization*>(other.layers().at(at).get());
  BOOST_TEST((obn->moving_variance().to_vector() == mv1));
  save_model(model, dir + "/m.safetensors");
  auto loaded = load_model(dir + "/m.safetensors");
  BOOST_TEST((loaded->predict(x, {.verbose = 0}).to_vector() == p1.to_vector()));
  // Checkpoints carry them too.
  model.save_checkpoint(dir + "/c.ckpt", 1);
  bn->moving_mean().assign(Tensor({8}, 0.f));
  model.load_checkpoint(dir + "/c.ckpt");
  BOOST_TEST((bn->moving_mean().to_vector() == mm1));
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(layer_normalization) {
  LayerNormalization ln;
  check_layer(
      "LayerNormalization", ln,
      {.input = {3, 4}, .expected_output = {3, 4}, .expected_params = 8, .round_trip = true});
  LayerNormalization two({.axis = {1, 2}});
  check_layer(
      "LayerNormalization axes 1, 2", two,
      {.input = {3, 4}, .expected_output = {3, 4}, .expected_params = 24, .round_trip = true});
  LayerNormalization mid({.axis = {-2}, .center = false});
  check_layer(
      "LayerNormalization axis -2, no center", mid,
      {.input = {3, 4}, .expected_output = {3, 4}, .expected_params = 3, .round_trip = true});
  // Values: per row over the last axis, then gamma and beta.
  LayerNormalization v({.epsilon = 0.01f});
  const Tensor x({2, 4}, {1.f, 2.f, 3.f, 6.f, -1.f, 0.f, 0.f, 5.f});
  v(x);
  v.weight("gamma").assign(Tensor({4}, {1.f, 2.f, 0.5f, -1.f}));
  v.weight("beta").assign(Tensor({4}, {0.f, 0.5f, 0.f, 1.f}));
  std::vector<double> ref;
  const double gm[4] = {1, 2, 0.5, -1}, bt[4] = {0, 0.5, 0, 1};
  for (int r = 0; r < 2; ++r) {
    double m = 0, var = 0;
    for (int j = 0; j < 4; ++j) m += x.data()[r * 4 + j] / 4.0;
    for (int j = 0; j < 4; ++j) var += std::pow(x.data()[r * 4 + j] - m, 2) / 4.0;
    for (int j = 0; j < 4; ++j)
      ref.push_back((x.data()[r * 4 + j] - m) / std::sqrt(var + 0.01) * gm[j] + bt[j]);
  }
  check_values("LayerNormalization values", v(x), {2, 4}, ref, 1e-5, 1e-5);
  // Training and inference agree (no moving statistics).
  BOOST_TEST((v(x, true).to_vector() == v(x, false).to_vector()));
  // rms_scaling, as Keras 3 computes it: x / sqrt(var + epsilon) * gamma, x not centred; gamma
  // only (no beta even with center), also when scale is off.
  LayerNormalization rms({.epsilon = 0.01f, .scale = false, .rms_scaling = true});
  check_layer(
      "LayerNormalization rms_scaling", rms,
      {.input = {3, 4}, .expected_output = {3, 4}, .expected_params = 4, .round_trip = true});
  LayerNormalization r2({.epsilon = 0.01f, .rms_scaling = true});
  r2(x);
  BOOST_TEST(r2.weights().size() == 1u);
  r2.weight("gamma").assign(Tensor({4}, {1.f, 2.f, 0.5f, -1.f}));
  std::vector<double> rref;
  for (int r = 0; r < 2; ++r) {
    double m = 0, var = 0;
    for (int j = 0; j < 4; ++j) m += x.data()[r * 4 + j] / 4.0;
    for (int j = 0; j < 4; ++j) var += std::pow(x.data()[r * 4 + j] - m, 2) / 4.0;
    for (int j = 0; j < 4; ++j) rref.push_back(x.data()[r * 4 + j] / std::sqrt(var + 0.01) * gm[j]);
  }
  check_values("LayerNormalization rms_scaling values", r2(x), {2, 4}, rref, 1e-5, 1e-5);
  check_throws<std::invalid_argument>("LayerNormalization axis 0",
                                      [] {
                                        LayerNormalization l({.axis = {0}});
                                        l(Tensor({2, 3}, 1.f));
                                      },
                                      {"LayerNormalization", "axis 0"});
}

BOOST_AUTO_TEST_CASE(group_normalization) {
  GroupNormalization gn({.groups = 3});
  check_layer(
      "GroupNormalization", gn,
      {.input = {2, 6}, .expected_output = {2, 6}, .expected_params = 12, .round_trip = true});
  GroupNormalization inst({.groups = -1, .axis = 1});
  check_layer(
      "GroupNormalization instance, axis 1", inst,
      {.input = {4, 5}, .expected_output = {4, 5}, .expected_params = 8, .round_trip = true});
  // Values: (n, l, c) = (2, 2, 4), groups of 2 channels over l and the group's channels.
  GroupNormalization v({.groups = 2, .epsilon = 0.01f});
  Rng rng(45);
  const Tensor x = random_tensor({2, 2, 4}, rng, -1.f, 3.f);
  v(x);
  v.weight("gamma").assign(Tensor({4}, {1.f, 2.f, 0.5f, -1.f}));
  v.weight("beta").assign(Tensor({4}, {0.f, 0.5f, 0.f, 1.f}));
  const double gm[4] = {1, 2, 0.5, -1}, bt[4] = {0, 0.5, 0, 1};
  std::vector<double> ref(x.size());
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t g = 0; g < 2; ++g) {
      double m = 0, var = 0;
      for (std::size_t l = 0; l < 2; ++l)
        for (std::size_t c = 2 * g; c < 2 * g + 2; ++c) m += x.data()[n * 8 + l * 4 + c] / 4.0;
      for (std::size_t l = 0; l < 2; ++l)
        for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
          var += std::pow(x.data()[n * 8 + l * 4 + c] - m, 2) / 4.0;
      for (std::size_t l = 0; l < 2; ++l)
        for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
          ref[n * 8 + l * 4 + c] =
              (x.data()[n * 8 + l * 4 + c] - m) / std::sqrt(var + 0.01) * gm[c] + bt[c];
    }
  check_values("GroupNormalization values", v(x), x.shape(), ref, 1e-5, 1e-5);
  // Keras's messages.
  check_throws<std::invalid_argument>(
      "groups > channels",
      [] {
        GroupNormalization g({.groups = 8});
        g(Tensor({1, 6}, 1.f));
      },
      {"Number of groups (8) cannot be more than the number of channels (6)"});
  check_throws<std::invalid_argument>(
      "channels not a multiple",
      [] {
        GroupNormalization g({.groups = 4});
        g(Tensor({1, 6}, 1.f));
      },
      {"Number of groups (4) must be a multiple of the number of channels (6)"});
  check_throws<std::invalid_argument>("groups 0", [] { GroupNormalization g({.groups = 0}); },
                                      {"groups"});
}

BOOST_AUTO_TEST_CASE(unit_normalization) {
  UnitNormalization un;
  check_layer("UnitNormalization", un, {.input = {5}, .expected_output = {5}, .round_trip = true});
  UnitNormalization two({.axis = {1, 2}});
  check_layer("UnitNormalization axes 1, 2", two,
              {.input = {2, 3}, .expected_output = {2, 3}, .round_trip = true});
  const Tensor x({2, 2}, {3.f, 4.f, 0.f, 0.f});
  // A zero row stays zero (the norm is floored at sqrt(1e-12), as Keras).
  check_values("UnitNormalization values", UnitNormalization()(x), {2, 2}, {0.6, 0.8, 0, 0}, 1e-6,
               0);
}

BOOST_AUTO_TEST_CASE(batch_normalization_after_a_conv_folds_into_it_in_inference) {
  // Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D in inference is one pass: the conv's
  // result is never written unpooled, and the values are those of the separate layers.
  set_random_seed(5);
  Conv2D conv({.filters = 16, .kernel_size = {3, 3}});
  BatchNormalization bn;
  ReLU act;
  MaxPooling2D pool({.pool_size = {2, 2}});
  Rng rng(6);
  const Tensor x = random_tensor({3, 10, 10, 4}, rng);
  (void)bn(conv(x), false);
  {
    NoGrad off;
    bn.weight("gamma").assign(random_tensor({16}, rng, 0.5f, 2.f));
    bn.weight("beta").assign(random_tensor({16}, rng));
    bn.weight("moving_mean").assign(random_tensor({16}, rng));
    bn.weight("moving_variance").assign(random_tensor({16}, rng, 0.2f, 3.f));
  }
  const Tensor folded = bn(conv(x), false);
  BOOST_TEST(xtape::detail::pending_producer(folded) != nullptr);
  Tensor c = conv(x);
  (void)std::as_const(c).data();  // computed: nothing folds into it
  const Tensor separate = bn(c, false);
  BOOST_TEST(folded.to_vector() == separate.to_vector());
  BOOST_TEST(pool(act(bn(conv(x), false))).to_vector() == pool(act(separate)).to_vector());
  // In training the batch statistics need the conv's values: nothing folds, and the moving
  // statistics still update.
  const Tensor before = bn.weight("moving_mean").clone();
  (void)bn(conv(x), true).to_vector();
  BOOST_TEST(bn.weight("moving_mean").to_vector() != before.to_vector());
}

BOOST_AUTO_TEST_SUITE_END()
