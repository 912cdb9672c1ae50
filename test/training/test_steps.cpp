// training/steps.cpp and the data paths of training/trainer.cpp: a two-input two-output model
// with per-output losses and weights, an overridden train_step, the gradient-transform hook,
// sample and class weights, validation_data, Datasets, *_on_batch, and errors naming the row.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"
#include "layers/merging.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "test/support/gradcheck.hpp"
#include "training/callbacks.hpp"
#include "training/dataset.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;
using xtape::testing::random_tensor;

namespace {

struct TwoByTwo {
  std::shared_ptr<Model> model;
  Tensor xa, xb, ya, yb;
};

// Inputs a (4) and b (3); out_a regresses a sum, out_b classifies the sign of a difference.
TwoByTwo two_by_two(std::uint64_t seed, std::size_t n = 256) {
  clear_session();
  set_random_seed(seed);
  const SymbolicTensor a = Input({4}, "a"), b = Input({3}, "b");
  const SymbolicTensor h =
      make<Dense>({.units = 16, .activation = "relu"})(make<Concatenate>()({a, b}));
  const SymbolicTensor out_a = make<Dense>({.units = 1, .name = "out_a"})(h);
  const SymbolicTensor out_b =
      make<Dense>({.units = 2, .activation = "softmax", .name = "out_b"})(h);
  TwoByTwo t;
  t.model = std::make_shared<Model>(std::vector<SymbolicTensor>{a, b},
                                    std::vector<SymbolicTensor>{out_a, out_b});
  Rng rng(seed + 100);
  t.xa = random_tensor({n, 4}, rng);
  t.xb = random_tensor({n, 3}, rng);
  t.ya = Tensor(Shape{n, 1}, 0.f);
  t.yb = Tensor(Shape{n, 2}, 0.f);
  for (std::size_t i = 0; i < n; ++i) {
    float s = 0;
    for (int j = 0; j < 4; ++j) s += t.xa.data()[i * 4 + j];
    t.ya.data()[i] = s;
    t.yb.data()[i * 2 + (t.xb.data()[i * 3] > t.xb.data()[i * 3 + 1] ? 1 : 0)] = 1.f;
  }
  return t;
}

bool same(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].to_vector() != b[i].to_vector()) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training_steps)

BOOST_AUTO_TEST_CASE(two_inputs_two_outputs_train_with_per_output_losses_and_weights) {
  auto t = two_by_two(1);
  t.model->compile(
      {.loss = {"mse", "categorical_crossentropy"},
       .optimizer = std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f}),
       .metrics = {},
       .output_metrics = {{"out_b", {"accuracy"}}},
       .loss_weights = {0.5f, 2.f}});
  const std::vector<std::string> names = {"loss", "out_a_loss", "out_b_loss", "out_b_accuracy"};
  const History h =
      t.model->fit({t.xa, t.xb}, {t.ya, t.yb}, {.batch_size = 32, .epochs = 15, .verbose = 0});
  BOOST_TEST(t.model->metrics_names() == names, boost::test_tools::per_element());
  for (const auto& n : names) BOOST_TEST(h.history.count(n) == 1u, n);
  // The total is the weighted sum of the per-output losses (each a mean over the epoch).
  for (std::size_t e = 0; e < 15; ++e)
    BOOST_TEST(h.history.at("loss")[e] ==
                   0.5 * h.history.at("out_a_loss")[e] + 2.0 * h.history.at("out_b_loss")[e],
               boost::test_tools::tolerance(1e-4));
  BOOST_TEST(h.history.at("out_a_loss").back() < 0.2 * h.history.at("out_a_loss").front());
  BOOST_TEST(h.history.at("out_b_accuracy").back() > 0.9);
  const auto score = t.model->evaluate({t.xa, t.xb}, {t.ya, t.yb}, {.verbose = 0});
  BOOST_TEST(score.at("out_b_accuracy") > 0.9);
  const auto preds = t.model->predict_all({t.xa, t.xb});
  BOOST_TEST(preds.size() == 2u);
  BOOST_TEST(preds[1].shape() == (Shape{256, 2}));
  check_throws<std::invalid_argument>("loss count",
                                      [&] {
                                        auto u = two_by_two(2);
                                        u.model->compile({.loss = {"mse", "mse", "mse"}});
                                        u.model->fit({u.xa, u.xb}, {u.ya, u.yb}, {.verbose = 0});
                                      },
                                      {"3 losses for 2 outputs"});
}

// A custom loop: a second optimizer for the head, as a GAN trains two networks.
class TwoOptimizers : public Model {
 public:
  TwoOptimizers()
      : head_opt_(std::make_shared<optim::SGD>(optim::SGDOptions{.learning_rate = 0.05f})) {}
  Tensor call(const Tensor& x, bool training) override {
    return head_(body_(x, training), training);
  }
  Logs train_step(const Batch& b) override {
    const std::vector<Tensor> out = call_all(b.x, true);
    Tensor loss = compute_loss(b, out);
    std::vector<optim::Variable> body_vars = body_->trainable_variables(),
                                 head_vars = head_->trainable_variables();
    for (auto& v : body_vars) v.value.zero_grad();
    for (auto& v : head_vars) v.value.zero_grad();
    loss.backward();
    optimizer()->apply(body_vars);  // the compiled optimizer trains the body
    head_opt_->apply(head_vars);    // a second one the head
    ++steps_;
    update_metrics(b, out, loss.item());
    return metrics_result();
  }
  LayerRef<Dense> body_ = track(make<Dense>({.units = 8, .activation = "tanh"}));
  LayerRef<Dense> head_ = track(make<Dense>({.units = 1}));
  std::shared_ptr<optim::Optimizer> head_opt_;
  int steps_ = 0;
};

BOOST_AUTO_TEST_CASE(an_overridden_train_step_trains) {
  clear_session();
  set_random_seed(3);
  TwoOptimizers m;
  Rng rng(4);
  Tensor x = random_tensor({128, 3}, rng), y(Shape{128, 1}, 0.f);
  for (std::size_t i = 0; i < 128; ++i) y.data()[i] = x.data()[i * 3] - 0.5f * x.data()[i * 3 + 2];
  m.compile("mse", "adam");
  const History h = m.fit(x, y, {.batch_size = 16, .epochs = 10, .verbose = 0});
  BOOST_TEST(m.steps_ == 80);
  BOOST_TEST(m.head_opt_->iterations() == 80);
  BOOST_TEST(m.optimizer()->iterations() == 80);
  BOOST_TEST(h.history.at("loss").back() < 0.2 * h.history.at("loss").front());
}

BOOST_AUTO_TEST_CASE(clipping_through_the_hook_gives_the_optimizers_bits) {
  auto run = [](bool hook) {
    clear_session();
    set_random_seed(5);
    Sequential m({Input({3}),
                  std::make_shared<Dense>(DenseOptions{.units = 4, .activation = "tanh"}),
                  std::make_shared<Dense>(DenseOptions{.units = 1})});
    Rng rng(6);
    Tensor x = random_tensor({64, 3}, rng, -3.f, 3.f), y = random_tensor({64, 1}, rng, -5.f, 5.f);
    if (hook) {
      // Global-norm clipping written as a gradient transform, as an all-reduce would plug in.
      GradientTransform clip = [](std::vector<optim::Variable>& vars) {
        double sq = 0;
        for (const auto& v : vars) {
          const Tensor g = v.value.grad();
          for (std::size_t i = 0; i < g.size(); ++i) sq += double(g.data()[i]) * g.data()[i];
        }
        const float norm = static_cast<float>(std::sqrt(sq));
        if (norm <= 0.1f) return;
        for (auto& v : vars) v.value.set_grad(v.value.grad() * (0.1f / norm));
      };
      m.compile({.loss = {"mse"},
                 .optimizer = std::make_shared<optim::SGD>(),
                 .gradient_transforms = {clip}});
    } else {
      m.compile("mse", std::make_shared<optim::SGD>(optim::SGDOptions{.global_clipnorm = 0.1f}));
    }
    m.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0});
    return m.get_weights();
  };
  const auto a = run(true), b = run(false);
  // The optimizer scales by min(1, c / norm) with the norm in float; compare to float rounding.
  BOOST_REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> ref = b[i].to_vector();
    xtape::testing::check_values("weight " + std::to_string(i), a[i], b[i].shape(),
                                 std::vector<double>(ref.begin(), ref.end()), 1e-5, 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(sample_and_class_weights_weigh_the_loss_as_keras) {
  clear_session();
  set_random_seed(7);
  Sequential m(
      {Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  m.compile("categorical_crossentropy", "sgd");
  Tensor x(Shape{4, 2}, std::vector<float>{1, 0, 0, 1, 1, 1, -1, 0});
  Tensor y(Shape{4, 3}, std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0});
  const Tensor w(Shape{4}, std::vector<float>{0.5f, 2.f, 0.f, 1.f});
  double expected = 0;
  {
    NoGrad ng;
    const Tensor per = categorical_crossentropy(y, m(x));
    for (std::size_t i = 0; i < 4; ++i) expected += double(per.data()[i]) * w.data()[i];
  }
  expected /= 4;  // sum_over_batch_size
  BOOST_TEST(m.evaluate({x}, {y}, {.verbose = 0}, w).at("loss") == expected,
             boost::test_tools::tolerance(1e-6));
  BOOST_TEST(m.test_on_batch({x}, {y}, w).at("loss") == expected,
             boost::test_tools::tolerance(1e-6));
  // class_weight {0: 0.5, 1: 2, 2: 0}: the same weights through the labels; a training step on
  // them equals one on the equivalent sample weights.
  auto step = [&](bool by_class) {
    clear_session();
    set_random_seed(7);
    Sequential s(
        {Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
    s.compile("categorical_crossentropy", "sgd");
    FitOptions o{.batch_size = 4, .epochs = 1, .shuffle = false, .verbose = 0};
    if (by_class)
      o.class_weight = {{0, 0.5f}, {1, 2.f}, {2, 0.f}};
    else
      o.sample_weight = Tensor(Shape{4}, std::vector<float>{0.5f, 2.f, 0.f, 0.5f});
    const History h = s.fit(x, y, o);
    return std::make_pair(h.history.at("loss")[0], s.get_weights());
  };
  const auto [la, wa] = step(true);
  const auto [lb, wb] = step(false);
  BOOST_TEST(la == lb);
  BOOST_TEST(same(wa, wb));
}

BOOST_AUTO_TEST_CASE(validation_data_and_datasets) {
  clear_session();
  set_random_seed(8);
  auto make_model = [] {
    clear_session();
    set_random_seed(8);
    auto m = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
        Input({2}), std::make_shared<Dense>(DenseOptions{.units = 1})});
    m->compile("mse", "sgd");
    return m;
  };
  Rng rng(9);
  Tensor x = random_tensor({40, 2}, rng), y = random_tensor({40, 1}, rng);
  Tensor xv = random_tensor({10, 2}, rng), yv = random_tensor({10, 1}, rng);
  auto m = make_model();
  const History h = m->fit(
      x, y,
      {.batch_size = 8, .epochs = 2, .verbose = 0, .validation_data = ValidationData{{xv}, {yv}}});
  BOOST_TEST(h.history.at("val_loss").size() == 2u);
  BOOST_TEST(h.history.at("val_loss").back() ==
             m->evaluate(xv, yv, {.batch_size = 8, .verbose = 0}).at("loss"));
  // The same training from an unshuffled ArrayDataset and from a generator of the same batches.
  auto a = make_model();
  a->fit(x, y, {.batch_size = 8, .epochs = 2, .shuffle = false, .verbose = 0});
  auto b = make_model();
  ArrayDataset ds({x}, {y}, {.batch_size = 8, .shuffle = false});
  BOOST_TEST(ds.batches() == 5u);
  b->fit(ds, {.epochs = 2, .verbose = 0});
  BOOST_TEST(same(a->get_weights(), b->get_weights()));
  auto c = make_model();
  std::size_t pos = 0;
  GeneratorDataset gen(
      [&]() -> std::optional<Batch> {
        if (pos >= 40) return std::nullopt;
        std::vector<std::size_t> rows;
        for (std::size_t i = pos; i < pos + 8; ++i) rows.push_back(i);
        pos += 8;
        return Batch{{gather_rows(x, rows)}, {gather_rows(y, rows)}, {}, rows};
      },
      0, [&](int) { pos = 0; });
  c->fit(gen, {.epochs = 2, .verbose = 0, .steps_per_epoch = 5});
  BOOST_TEST(same(a->get_weights(), c->get_weights()));
  check_throws<std::invalid_argument>("unknown length", [&] { c->fit(gen, {.verbose = 0}); },
                                      {"steps_per_epoch"});
  check_throws<std::invalid_argument>(
      "too many steps",
      [&] { c->fit(x, y, {.batch_size = 8, .verbose = 0, .steps_per_epoch = 6}); },
      {"steps_per_epoch 6", "5 batches"});
  // train_on_batch / predict_on_batch.
  const Logs l = a->train_on_batch({x}, {y});
  BOOST_TEST(std::isfinite(l.at("loss")));
  BOOST_TEST(a->predict_on_batch({x})[0].shape() == (Shape{40, 1}));
}

BOOST_AUTO_TEST_CASE(a_bad_label_is_reported_at_its_row_of_the_data) {
  clear_session();
  set_random_seed(10);
  Sequential m(
      {Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  m.compile("sparse_categorical_crossentropy", "sgd");
  Rng rng(11);
  Tensor x = random_tensor({50, 2}, rng);
  Tensor labels(Shape{50}, 1.f);
  labels.data()[37] = 7.f;  // out of range
  // Labels of shape (n, 1) against outputs (n, 3) are accepted, as Keras squeezes them.
  Tensor good = labels.clone();
  good.data()[37] = 2.f;
  const double squeezed =
      m.evaluate(x, reshape(good, {50, 1}), {.batch_size = 10, .verbose = 0}).at("loss");
  BOOST_TEST(squeezed == m.evaluate(x, good, {.batch_size = 10, .verbose = 0}).at("loss"));
  check_throws<std::invalid_argument>(
      "row", [&] { m.fit(x, labels, {.batch_size = 16, .verbose = 0}); },
      {"Sequential::fit", "row 37 of the training data", "label 7"});
}

BOOST_AUTO_TEST_SUITE_END()
