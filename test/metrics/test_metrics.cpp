// Tests of metrics/metrics.hpp: every metric against PyTorch float64 references batch by batch
// (metric_fixtures.hpp, written by make_fixtures.py), state save/restore and reset, Keras's
// squeeze/expand, "accuracy" resolved from the loss or the shapes, custom metrics, and the
// shape errors (y_true (n,) against y_pred (n, 3) once read past the end of its buffer).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "autodiff/ops.hpp"
#include "metrics/metric_fixtures.hpp"
#include "metrics/metrics.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::metrics;
using xtape::testing::check_throws;

namespace {

using Factory = std::function<std::shared_ptr<Metric>()>;

// The metric each fixture case was computed for (see make_fixtures.py).
const std::map<std::string, Factory>& factories() {
  auto by_name = [](const char* name) { return [name] { return get(name); }; };
  static const std::map<std::string, Factory> f = {
      {"binary_accuracy", by_name("binary_accuracy")},
      {"binary_accuracy_threshold",
       [] { return std::make_shared<BinaryAccuracy>(BinaryAccuracyOptions{.threshold = 0.7f}); }},
      {"categorical_accuracy", by_name("categorical_accuracy")},
      {"sparse_categorical_accuracy", by_name("SparseCategoricalAccuracy")},
      {"top_k_categorical_accuracy",
       [] {
         return std::make_shared<TopKCategoricalAccuracy>(TopKCategoricalAccuracyOptions{.k = 2});
       }},
      {"sparse_top_k_categorical_accuracy", by_name("sparse_top_k_categorical_accuracy")},
      {"mean_squared_error", by_name("mse")},
      {"mean_squared_error_rank1", [] { return std::make_shared<MeanSquaredError>(); }},
      {"mean_absolute_error", by_name("mae")},
      {"root_mean_squared_error", by_name("root_mean_squared_error")},
      {"auc_roc", by_name("auc")},
      {"auc_pr", [] { return std::make_shared<AUC>(AUCOptions{.curve = AUCCurve::PR}); }},
      {"auc_roc_minoring",
       [] {
         return std::make_shared<AUC>(AUCOptions{.summation_method = AUCSummation::minoring});
       }},
      {"auc_pr_majoring",
       [] {
         return std::make_shared<AUC>(
             AUCOptions{.curve = AUCCurve::PR, .summation_method = AUCSummation::majoring});
       }},
      {"auc_logits", [] { return std::make_shared<AUC>(AUCOptions{.from_logits = true}); }},
      {"precision", by_name("precision")},
      {"recall", by_name("Recall")},
      {"precision_top_k",
       [] { return std::make_shared<Precision>(PrecisionRecallOptions{.top_k = 2}); }},
      {"recall_class_id",
       [] { return std::make_shared<Recall>(PrecisionRecallOptions{.class_id = 1}); }},
      {"binary_crossentropy", by_name("binary_crossentropy")},
      {"cosine_similarity", by_name("cosine_similarity")},
      {"mean", by_name("mean")},
      {"sum", [] { return std::make_shared<Sum>(); }},
  };
  return f;
}

void feed(Metric& m, const metric_fixtures::Batch& b) {
  const Tensor t = b.has_true ? Tensor(b.y_true_shape, b.y_true) : Tensor();
  const Tensor w = b.weighted ? Tensor(b.weight_shape, b.weight) : Tensor();
  m.update_state(t, Tensor(b.y_pred_shape, b.y_pred), w);
}

bool close(double got, double expected, double rtol = 2e-6) {
  return std::abs(got - expected) <= 1e-9 + rtol * std::abs(expected);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(every_metric_against_pytorch_references) {
  BOOST_TEST_REQUIRE(metric_fixtures::cases().size() == factories().size());
  for (const auto& c : metric_fixtures::cases()) {
    const auto m = factories().at(c.name)();
    for (std::size_t i = 0; i < c.batches.size(); ++i) {
      feed(*m, c.batches[i]);
      BOOST_TEST(close(m->result(), c.batches[i].result), c.name << " after batch " << i << ": "
                                                                 << m->result() << ", expected "
                                                                 << c.batches[i].result);
    }
    // The state restores into a fresh metric (a checkpoint); reset starts over.
    const auto restored = factories().at(c.name)();
    restored->set_state(m->state());
    BOOST_TEST(restored->result() == m->result(), c.name << ": restored state");
    m->reset_state();
    BOOST_TEST(m->result() == 0.0, c.name << ": after reset");
    feed(*m, c.batches[0]);
    BOOST_TEST(close(m->result(), c.batches[0].result), c.name << ": first batch after reset");
  }
}

BOOST_AUTO_TEST_CASE(mse_of_n_labels_against_n_by_3_outputs_is_a_clear_error) {
  // Today's layers::get_metric("mse") reads 3n floats from the n of y_true (ASan:
  // heap-buffer-overflow); every metric checks its shapes instead.
  const Tensor y({5}, 1.f), p({5, 3}, 0.2f);
  for (const char* name : {"mse", "mae", "root_mean_squared_error", "binary_accuracy",
                           "categorical_accuracy", "top_k_categorical_accuracy", "auc", "precision",
                           "recall", "binary_crossentropy", "cosine_similarity"})
    check_throws<std::invalid_argument>(name, [&] { get(name)->update_state(y, p); },
                                        {name, "(5,)", "(5, 3)"});
  check_throws<std::invalid_argument>(
      "sparse",
      [] {
        get("sparse_categorical_accuracy")->update_state(Tensor({3}), Tensor({4, 5}));
      },
      {"sparse_categorical_accuracy", "(3,)", "(4, 5)"});
  check_throws<std::invalid_argument>(
      "sparse top k",
      [] {
        get("sparse_top_k_categorical_accuracy")->update_state(Tensor({4, 2}), Tensor({4, 5}));
      },
      {"sparse_top_k_categorical_accuracy", "(4, 2)", "(4, 5)"});
  check_throws<std::invalid_argument>(
      "undefined", [] { get("mse")->update_state(Tensor(), Tensor({2})); }, {"mse", "defined"});
}

BOOST_AUTO_TEST_CASE(labels_n_against_outputs_n_by_1_squeeze_as_keras) {
  const Tensor y({4}, {1.f, 0.f, 1.f, 1.f}), p({4, 1}, {0.8f, 0.6f, 0.3f, 0.9f});
  for (const char* name :
       {"mse", "binary_accuracy", "auc", "precision", "recall", "accuracy", "bce"}) {
    auto a = get(name), b = get(name);
    a->update_state(y, p);
    b->update_state(reshape(y, {4, 1}), p);
    BOOST_TEST(a->result() == b->result(), name);
  }
  auto acc = get("binary_accuracy");
  acc->update_state(y, p);
  BOOST_TEST(acc->result() == 0.5);
}

BOOST_AUTO_TEST_CASE(accuracy_resolves_from_the_loss_or_the_shapes) {
  auto cat = get("accuracy", "categorical_crossentropy");
  BOOST_TEST(dynamic_cast<CategoricalAccuracy*>(cat.get()) != nullptr);
  BOOST_TEST(cat->name() == "accuracy");
  BOOST_TEST(dynamic_cast<SparseCategoricalAccuracy*>(
                 get("acc", "sparse_categorical_crossentropy").get()) != nullptr);
  BOOST_TEST(get("acc", "sparse_categorical_crossentropy")->name() == "acc");
  BOOST_TEST(dynamic_cast<BinaryAccuracy*>(get("accuracy", "BinaryCrossentropy").get()) != nullptr);

  // Without a loss: from the first batch's shapes, as today's layers::get_metric did.
  const Tensor probs({2, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f});
  auto binary = get("accuracy", "mse");
  binary->update_state(Tensor({2}, {1.f, 0.f}), Tensor({2, 1}, {0.7f, 0.6f}));
  BOOST_TEST(binary->result() == 0.5);
  auto sparse = get("accuracy");
  sparse->update_state(Tensor({2}, {1.f, 2.f}), probs);
  BOOST_TEST(sparse->result() == 0.5);
  auto categorical = get("accuracy");
  categorical->update_state(Tensor({2, 3}, {0.f, 1.f, 0.f, 0.f, 1.f, 0.f}), probs);
  BOOST_TEST(categorical->result() == 0.5);
  // The choice stays: categorical accuracy now wants one-hot targets.
  check_throws<std::invalid_argument>("resolved",
                                      [&] {
                                        categorical->update_state(Tensor({2}, {1.f, 2.f}), probs);
                                      },
                                      {"accuracy", "(2,)", "(2, 3)"});
  // State survives a save/restore before the first update of a new instance.
  auto fresh = get("accuracy");
  fresh->set_state(categorical->state());
  BOOST_TEST(fresh->result() == 0.5);
}

BOOST_AUTO_TEST_CASE(ties_and_labels) {
  // argmax ties go to the first entry; top-k counts predictions tied with the k-th in.
  const Tensor p({2, 4}, {0.4f, 0.4f, 0.1f, 0.1f, 0.3f, 0.3f, 0.3f, 0.1f});
  auto acc = get("categorical_accuracy");
  acc->update_state(Tensor({2, 4}, {1.f, 0.f, 0.f, 0.f, 0.f, 1.f, 0.f, 0.f}), p);
  BOOST_TEST(acc->result() == 0.5);
  auto top1 = SparseTopKCategoricalAccuracy({.k = 1});
  top1.update_state(Tensor({2}, {1.f, 2.f}), p);
  BOOST_TEST(top1.result() == 1.0);
  check_throws<std::invalid_argument>(
      "label",
      [&] {
        get("sparse_categorical_accuracy")->update_state(Tensor({2}, {0.f, 4.f}), p);
      },
      {"sparse_categorical_accuracy", "label 4", "position 1"});
  check_throws<std::invalid_argument>("fractional",
                                      [&] {
                                        top1.update_state(Tensor({2}, {0.5f, 1.f}), p);
                                      },
                                      {"label 0.5", "position 0"});
}

BOOST_AUTO_TEST_CASE(a_nan_prediction_is_never_scored_as_the_largest_finite_class) {
  // Row 0 holds a NaN: it ranks above every number (PyTorch's argmax and topk), so the label of
  // the largest finite value (2) is not a hit; before, argmax skipped the NaN and scored it.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor p({2, 3}, {0.1f, nan, 0.9f, 0.2f, 0.7f, 0.1f});
  auto acc = get("sparse_categorical_accuracy");
  acc->update_state(Tensor({2}, {2.f, 1.f}), p);
  BOOST_TEST(acc->result() == 0.5);
  auto cat = get("categorical_accuracy");
  cat->update_state(Tensor({2, 3}, {0.f, 0.f, 1.f, 0.f, 1.f, 0.f}), p);
  BOOST_TEST(cat->result() == 0.5);
  auto top1 = SparseTopKCategoricalAccuracy({.k = 1});
  top1.update_state(Tensor({2}, {2.f, 1.f}), p);
  BOOST_TEST(top1.result() == 0.5);
  auto top2 = SparseTopKCategoricalAccuracy({.k = 2});  // NaN and 0.9 are the top two
  top2.update_state(Tensor({2}, {0.f, 1.f}), p);
  BOOST_TEST(top2.result() == 0.5);
}

BOOST_AUTO_TEST_CASE(sample_weights) {
  auto mse = get("mse");
  const Tensor t({3, 2}, {0.f, 0.f, 1.f, 1.f, 2.f, 2.f}), p({3, 2}, 0.f);  // per sample 0, 1, 4
  mse->update_state(t, p, Tensor({3}, {1.f, 1.f, 2.f}));
  BOOST_TEST(mse->result() == 9.0 / 4);
  mse->update_state(t, p, Tensor({3}, 0.f));  // zero weights add nothing
  BOOST_TEST(mse->result() == 9.0 / 4);
  check_throws<std::invalid_argument>("weight", [&] { mse->update_state(t, p, Tensor({2}, 1.f)); },
                                      {"mse", "sample_weight", "(2,)", "(3,)"});
  check_throws<std::invalid_argument>(
      "weight rank",
      [&] {
        get("mse")->update_state(Tensor({3}), Tensor({3}), Tensor({3, 2}, 1.f));
      },
      {"mse", "sample_weight", "(3, 2)"});
  auto auc = get("auc");
  check_throws<std::invalid_argument>(
      "auc weight", [&] { auc->update_state(Tensor({4}), Tensor({4}, 0.5f), Tensor({3}, 1.f)); },
      {"auc", "sample_weight", "(3,"});
}

BOOST_AUTO_TEST_CASE(mean_and_sum_take_values) {
  Mean m;
  m.update_values(Tensor({2}, {1.f, 3.f}));
  m.update_values(Tensor::scalar(8.f), Tensor::scalar(2.f));  // 8 weighted 2
  BOOST_TEST(m.result() == 20.0 / 4);
  BOOST_TEST(m.total() == 20.0);
  BOOST_TEST(m.count() == 4.0);
  check_throws<std::invalid_argument>("targets", [&] { m.update_state(Tensor({2}), Tensor({2})); },
                                      {"mean", "values"});
  Sum s;
  s.update_values(Tensor({2, 2}, {1.f, 2.f, 3.f, 4.f}), Tensor({2}, {1.f, 10.f}));
  BOOST_TEST(s.result() == 73.0);
}

BOOST_AUTO_TEST_CASE(custom_metrics_from_functions_and_subclasses) {
  // A per-sample function, averaged with sample weights like any built-in metric.
  auto within = make_metric("within_0.5", [](const Tensor& t, const Tensor& p) {
    Tensor d = abs(t - p);
    for (std::size_t i = 0; i < d.size(); ++i) d.data()[i] = d.data()[i] <= 0.5f ? 1.f : 0.f;
    return mean(d, {-1});
  });
  within->update_state(Tensor({3}, {0.f, 1.f, 2.f}), Tensor({3, 1}, {0.2f, 2.f, 2.4f}));
  BOOST_TEST(within->name() == "within_0.5");
  BOOST_TEST(within->result() == 2.0 / 3);
  // A subclass with its own state.
  class MaxError : public Metric {
   public:
    MaxError() : Metric("max_error") {}
    void update_state(const Tensor& t, const Tensor& p, const Tensor& = Tensor()) override {
      for (std::size_t i = 0; i < p.size(); ++i)
        max_ = std::max(max_, double(std::abs(t.data()[i] - p.data()[i])));
    }
    double result() const override { return max_; }
    void reset_state() override { max_ = 0; }

   private:
    double max_ = 0;
  };
  MaxError e;
  e.update_state(Tensor({2}, {0.f, 1.f}), Tensor({2}, {0.5f, -1.f}));
  BOOST_TEST(e.result() == 2.0);
  BOOST_TEST(e.state().empty());
  check_throws<std::invalid_argument>("no state", [&] { e.set_state({1.0}); }, {"max_error"});
  check_throws<std::invalid_argument>("empty fn", [] { make_metric("nothing", nullptr); },
                                      {"nothing"});
}

BOOST_AUTO_TEST_CASE(metrics_record_nothing_on_the_tape) {
  Tensor p = Tensor({4, 3}, 0.25f).set_requires_grad();
  const Tensor q = p * 2.f, y({4, 3}, 0.f);
  const std::size_t before = tape_size();
  for (const char* name :
       {"mse", "categorical_accuracy", "auc", "binary_crossentropy", "cosine_similarity"})
    get(name)->update_state(y, q);
  BOOST_TEST(tape_size() == before);
}

BOOST_AUTO_TEST_CASE(bad_options_names_and_states_are_clear_errors) {
  check_throws<std::invalid_argument>("unknown", [] { get("acuracy"); },
                                      {"acuracy", "accuracy", "auc"});
  check_throws<std::invalid_argument>("thresholds", [] { AUC({.num_thresholds = 1}); },
                                      {"auc", "num_thresholds"});
  check_throws<std::invalid_argument>("threshold", [] { Precision({.threshold = 1.5f}); },
                                      {"precision", "threshold"});
  check_throws<std::invalid_argument>("top_k", [] { Recall({.top_k = 0}); }, {"recall", "top_k"});
  check_throws<std::invalid_argument>("k", [] { TopKCategoricalAccuracy({.k = 0}); },
                                      {"top_k_categorical_accuracy", "k must"});
  check_throws<std::invalid_argument>(
      "nan",
      [] {
        get("auc")->update_state(Tensor({2}, {1.f, 0.f}), Tensor({2}, {0.5f, NAN}));
      },
      {"auc", "position 1", "not finite"});
  check_throws<std::invalid_argument>(
      "class_id",
      [] {
        Recall({.class_id = 3}).update_state(Tensor({2, 3}), Tensor({2, 3}));
      },
      {"recall", "class_id 3"});
  check_throws<std::invalid_argument>("state size",
                                      [] {
                                        get("auc")->set_state({1.0, 2.0});
                                      },
                                      {"auc", "800"});
  BOOST_TEST(get("AUC")->name() == "auc");
  BOOST_TEST(get("mse")->name() == "mse");
  BOOST_TEST(get("RootMeanSquaredError")->name() == "root_mean_squared_error");
  BOOST_TEST(std::dynamic_pointer_cast<AUC>(get("auc"))->thresholds().size() == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
