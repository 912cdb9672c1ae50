// Tests of losses/losses.hpp: every loss against PyTorch float64 references (loss_fixtures.hpp,
// written by make_fixtures.py) in the three reductions, with and without sample_weight; gradients
// by finite differences; the bitwise identity with the categorical cross-entropy op; names,
// custom losses, Keras's squeeze/expand and the shape errors.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "autodiff/ops.hpp"
#include "losses/loss_fixtures.hpp"
#include "losses/losses.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::losses;
using xtape::testing::check_throws;
using xtape::testing::check_values;

namespace {

using Factory = std::function<std::shared_ptr<Loss>(Reduction)>;

// The loss each fixture case was computed for (see make_fixtures.py).
const std::map<std::string, Factory>& factories() {
  auto plain = [](const char* name) { return [name](Reduction r) { return get(name, r); }; };
  static const std::map<std::string, Factory> f = {
      {"bce", plain("binary_crossentropy")},
      {"bce_rank1", plain("bce")},
      {"bce_smoothing",
       [](Reduction r) {
         return std::make_shared<BinaryCrossentropy>(
             BinaryCrossentropyOptions{.label_smoothing = 0.2f, .reduction = r});
       }},
      {"bce_logits",
       [](Reduction r) {
         return std::make_shared<BinaryCrossentropy>(
             BinaryCrossentropyOptions{.from_logits = true, .reduction = r});
       }},
      {"bce_logits_smoothing",
       [](Reduction r) {
         return std::make_shared<BinaryCrossentropy>(BinaryCrossentropyOptions{
             .from_logits = true, .label_smoothing = 0.1f, .reduction = r});
       }},
      {"cce", plain("categorical_crossentropy")},
      {"cce_unnormalized", plain("CategoricalCrossentropy")},
      {"cce_smoothing",
       [](Reduction r) {
         return std::make_shared<CategoricalCrossentropy>(
             CategoricalCrossentropyOptions{.label_smoothing = 0.1f, .reduction = r});
       }},
      {"cce_logits",
       [](Reduction r) {
         return std::make_shared<CategoricalCrossentropy>(
             CategoricalCrossentropyOptions{.from_logits = true, .reduction = r});
       }},
      {"cce_logits_smoothing",
       [](Reduction r) {
         return std::make_shared<CategoricalCrossentropy>(CategoricalCrossentropyOptions{
             .from_logits = true, .label_smoothing = 0.2f, .reduction = r});
       }},
      {"cce_axis0",
       [](Reduction r) {
         return std::make_shared<CategoricalCrossentropy>(
             CategoricalCrossentropyOptions{.axis = 0, .reduction = r});
       }},
      {"scce", plain("sparse_categorical_crossentropy")},
      {"scce_labels_n1", plain("sparse_categorical_crossentropy")},
      {"scce_logits",
       [](Reduction r) {
         return std::make_shared<SparseCategoricalCrossentropy>(
             SparseCategoricalCrossentropyOptions{.from_logits = true, .reduction = r});
       }},
      {"scce_ignore",
       [](Reduction r) {
         return std::make_shared<SparseCategoricalCrossentropy>(
             SparseCategoricalCrossentropyOptions{
                 .from_logits = true, .ignore_class = 2, .reduction = r});
       }},
      {"mse", plain("mse")},
      {"mse_rank1_vs_n1", plain("mean_squared_error")},
      {"mse_n1_vs_rank1", plain("MeanSquaredError")},
      {"mse_3d", plain("mse")},
      {"mae", plain("mae")},
      {"mape", plain("mape")},
      {"msle", plain("msle")},
      {"huber", plain("huber")},
      {"huber_delta",
       [](Reduction r) {
         return std::make_shared<Huber>(HuberOptions{.delta = 0.5f, .reduction = r});
       }},
      {"log_cosh", plain("log_cosh")},
      {"kld", plain("kld")},
      {"poisson", plain("poisson")},
      {"cosine", plain("cosine_similarity")},
      {"cosine_axis0",
       [](Reduction r) {
         return std::make_shared<CosineSimilarity>(
             CosineSimilarityOptions{.axis = 0, .reduction = r});
       }},
      {"hinge", plain("hinge")},
      {"hinge_pm1", plain("Hinge")},
      {"squared_hinge", plain("squared_hinge")},
      {"categorical_hinge", plain("categorical_hinge")},
  };
  return f;
}

const Factory& factory(const std::string& name) {
  const auto it = factories().find(name);
  if (it == factories().end()) throw std::logic_error("no factory for fixture case " + name);
  return it->second;
}

void check_reduced(const std::string& label, const loss_fixtures::Case& c,
                   const loss_fixtures::Reduced& ref, const Tensor& weight) {
  const Tensor t(c.y_true_shape, c.y_true), p(c.y_pred_shape, c.y_pred);
  const Factory& make = factory(c.name);
  // float32 forward against float64 references.
  constexpr double rtol = 2e-5, atol = 1e-6;
  check_values(label + " none", (*make(Reduction::none))(t, p, weight), ref.none_shape, ref.none,
               rtol, atol);
  check_values(label + " sum", (*make(Reduction::sum))(t, p, weight), {}, {ref.sum}, rtol, atol);
  check_values(label + " sum_over_batch_size",
               (*make(Reduction::sum_over_batch_size))(t, p, weight), {}, {ref.sum_over_batch_size},
               rtol, atol);
}

// The same bits, element by element.
bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(losses)

BOOST_AUTO_TEST_CASE(every_loss_against_pytorch_references) {
  BOOST_TEST_REQUIRE(loss_fixtures::cases().size() == factories().size());
  for (const auto& c : loss_fixtures::cases()) {
    check_reduced(std::string(c.name), c, c.unweighted, Tensor());
    check_reduced(std::string(c.name) + " weighted", c, c.weighted,
                  Tensor(c.weight_shape, c.weight));
  }
}

BOOST_AUTO_TEST_CASE(every_loss_gradient_by_finite_differences) {
  // NOTE: the fixture inputs sit away from every kink (hinge margins, Huber's delta, |e| at 0,
  // the probability clips), and the step is small against the smallest probability.
  testing::GradcheckOptions opt;
  opt.eps = 1e-3;
  opt.rtol = 2e-2;
  opt.atol = 3e-3;
  for (const auto& c : loss_fixtures::cases()) {
    const Tensor t(c.y_true_shape, c.y_true), w(c.weight_shape, c.weight);
    Tensor p = Tensor(c.y_pred_shape, c.y_pred).set_requires_grad();
    const auto none = factory(c.name)(Reduction::none);
    const auto mean = factory(c.name)(Reduction::sum_over_batch_size);
    testing::gradcheck_leaves(
        std::string(c.name) + " per-sample", [&] { return (*none)(t, p); }, {p}, opt);
    testing::gradcheck_leaves(
        std::string(c.name) + " weighted mean", [&] { return (*mean)(t, p, w); }, {p}, opt);
  }
}

BOOST_AUTO_TEST_CASE(categorical_crossentropy_keeps_the_bits_of_the_op) {
  // The founding example's loss: get("categorical_crossentropy") must give bitwise the value and
  // gradient of mean(categorical_crossentropy(y, p)), for softmax outputs (scored from their
  // logits) and for plain probabilities.
  Rng rng(3);
  const Tensor logits0 = testing::random_tensor({32, 10}, rng, -3.f, 3.f);
  Tensor y({32, 10}, 0.f);
  for (std::size_t i = 0; i < 32; ++i) y.at({i, (i * 7) % 10}) = 1.f;
  const auto loss = get("categorical_crossentropy");
  for (bool through_softmax : {true, false}) {
    Tensor a = logits0.clone().set_requires_grad(), b = logits0.clone().set_requires_grad();
    auto probs = [&](const Tensor& x) { return through_softmax ? softmax(x) : sigmoid(x); };
    Tensor mine = (*loss)(y, probs(a));
    Tensor today = mean(categorical_crossentropy(y, probs(b)));
    BOOST_TEST(same_bits(mine, today), "value, softmax " << through_softmax);
    mine.backward();
    today.backward();
    BOOST_TEST(same_bits(a.grad(), b.grad()), "gradient, softmax " << through_softmax);
  }
  // Sparse labels likewise match the sparse op.
  Tensor labels({32}, 0.f);
  for (std::size_t i = 0; i < 32; ++i) labels.data()[i] = static_cast<float>((i * 3) % 10);
  const Tensor p = softmax(logits0);
  BOOST_TEST(same_bits((*get("sparse_categorical_crossentropy"))(labels, p),
                       mean(sparse_categorical_crossentropy(labels, p))));
}

BOOST_AUTO_TEST_CASE(names_aliases_and_class_names) {
  BOOST_TEST(get("mse")->name() == "mse");
  BOOST_TEST(get("MeanSquaredError")->name() == "mean_squared_error");
  BOOST_TEST(get("Huber")->name() == "huber_loss");
  BOOST_TEST(get("logcosh")->name() == "logcosh");
  BOOST_TEST(dynamic_cast<MeanSquaredError*>(get("MSE").get()) != nullptr);
  BOOST_TEST(dynamic_cast<KLDivergence*>(get("kullback_leibler_divergence").get()) != nullptr);
  BOOST_TEST(dynamic_cast<SparseCategoricalCrossentropy*>(
                 get("SparseCategoricalCrossentropy").get()) != nullptr);
  BOOST_TEST((get("bce", Reduction::sum)->reduction() == Reduction::sum));
}

BOOST_AUTO_TEST_CASE(unknown_names_and_bad_options_are_clear_errors) {
  check_throws<std::invalid_argument>("unknown loss", [] { get("mean_sqared_error"); },
                                      {"mean_sqared_error", "mean_squared_error", "huber"});
  check_throws<std::invalid_argument>("reduction", [] { parse_reduction("avg"); },
                                      {"avg", "sum_over_batch_size"});
  BOOST_TEST((parse_reduction("mean") == Reduction::sum_over_batch_size));
  BOOST_TEST(reduction_name(Reduction::none) == "none");
  check_throws<std::invalid_argument>("smoothing",
                                      [] { BinaryCrossentropy({.label_smoothing = 1.5f}); },
                                      {"binary_crossentropy", "label_smoothing"});
  check_throws<std::invalid_argument>("delta", [] { Huber({.delta = 0.f}); },
                                      {"huber_loss", "delta"});
  check_throws<std::invalid_argument>(
      "axis",
      [] {
        CategoricalCrossentropy({.axis = 2})(Tensor({2, 3}), Tensor({2, 3}, 0.3f));
      },
      {"categorical_crossentropy", "axis 2", "(2, 3)"});
  check_throws<std::invalid_argument>("make_loss", [] { make_loss("mine", nullptr); }, {"mine"});
}

BOOST_AUTO_TEST_CASE(shape_mismatches_name_the_loss_and_both_shapes) {
  const Tensor y3({4}, 1.f), p3({4, 3}, 0.5f);
  for (const char* name : {"mse", "mae", "binary_crossentropy", "huber", "categorical_crossentropy",
                           "hinge", "kl_divergence", "cosine_similarity"})
    check_throws<std::invalid_argument>(name, [&] { (*get(name))(y3, p3); },
                                        {name, "(4,)", "(4, 3)"});
  check_throws<std::invalid_argument>(
      "sparse labels",
      [] {
        (*get("sparse_categorical_crossentropy"))(Tensor({3}), Tensor({4, 5}));
      },
      {"sparse_categorical_crossentropy", "(3,)", "(4, 5)"});
  check_throws<std::invalid_argument>(
      "bad label",
      [] {
        (*get("sparse_categorical_crossentropy"))(Tensor({2}, {1.f, 5.f}), Tensor({2, 5}, 0.2f));
      },
      {"sparse_categorical_crossentropy", "label 5", "position 1"});
  // A per-sample weight that matches neither the samples nor a scalar.
  check_throws<std::invalid_argument>(
      "weight",
      [] {
        (*get("mse"))(Tensor({4, 3}), Tensor({4, 3}), Tensor({3}, 1.f));
      },
      {"mse", "sample_weight", "(3,)", "(4,)"});
  // NumPy would broadcast (n,) across (n, n) row-wise; a per-sample weight must not.
  check_throws<std::invalid_argument>(
      "weight (n,) vs (n, n)",
      [] {
        (*get("mse", Reduction::none))(Tensor({3, 3, 2}), Tensor({3, 3, 2}), Tensor({3}, 1.f));
      },
      {"sample_weight", "(3,)", "(3, 3)"});
  check_throws<std::invalid_argument>("undefined", [] { (*get("mse"))(Tensor(), Tensor({2})); },
                                      {"mse", "defined"});
}

BOOST_AUTO_TEST_CASE(labels_n_against_outputs_n_by_1_squeeze_as_keras) {
  const Tensor y({3}, {1.f, 0.f, 1.f}), p({3, 1}, {0.9f, 0.2f, 0.4f});
  const auto bce = get("binary_crossentropy", Reduction::none);
  const Tensor a = (*bce)(y, p), b = (*bce)(reshape(y, {3, 1}), p), c = (*bce)(y, reshape(p, {3}));
  BOOST_TEST((a.shape() == Shape{3}));
  BOOST_TEST(same_bits(a, b));
  BOOST_TEST(same_bits(a, c));
  // Sparse labels (n, 1) against (n, k).
  const Tensor labels({3, 1}, {0.f, 2.f, 1.f}), probs({3, 3}, 1.f / 3);
  BOOST_TEST(same_bits((*get("sparse_categorical_crossentropy"))(labels, probs),
                       (*get("sparse_categorical_crossentropy"))(reshape(labels, {3}), probs)));
}

BOOST_AUTO_TEST_CASE(sample_weight_semantics) {
  const Tensor t({4, 2}, {0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f}), p({4, 2}, 0.f);
  // Per-sample mse: 0.5, 6.5, 20.5, 42.5.
  const auto mse = get("mse");
  check_values("no weight", (*mse)(t, p), {}, {17.5});
  check_values("scalar weight", (*mse)(t, p, Tensor::scalar(2.f)), {}, {35.0});
  // sum_over_batch_size divides by the sample count, not by the weights' sum (Keras).
  check_values("weights", (*mse)(t, p, Tensor({4}, {1.f, 0.f, 0.f, 1.f})), {}, {(0.5 + 42.5) / 4});
  check_values("weights (n, 1)", (*mse)(t, p, Tensor({4, 1}, {1.f, 0.f, 0.f, 1.f})), {},
               {(0.5 + 42.5) / 4});
  check_values("sum", (*get("mse", Reduction::sum))(t, p, Tensor({4}, {1.f, 0.f, 0.f, 1.f})), {},
               {43.0});
  check_values("none", (*get("mse", Reduction::none))(t, p, Tensor({4}, {1.f, 2.f, 0.f, 1.f})), {4},
               {0.5, 13, 0, 42.5});
}

BOOST_AUTO_TEST_CASE(ignore_class_counts_only_the_valid_labels) {
  const Tensor logits({3, 3}, {1.f, 2.f, 3.f, 0.f, 0.f, 0.f, 3.f, 1.f, 0.f});
  const SparseCategoricalCrossentropy plain({.from_logits = true, .reduction = Reduction::none});
  const Tensor all = plain(Tensor({3}, {2.f, 1.f, 0.f}), logits);
  SparseCategoricalCrossentropy ignoring({.from_logits = true, .ignore_class = 1});
  check_values("mean over valid", ignoring(Tensor({3}, {2.f, 1.f, 0.f}), logits), {},
               {(double(all.data()[0]) + all.data()[2]) / 2}, 1e-6, 1e-7);
  // Everything ignored: 0, not 0/0.
  check_values("all ignored", ignoring(Tensor({3}, 1.f), logits), {}, {0.0}, 0, 0);
}

BOOST_AUTO_TEST_CASE(custom_losses_from_callables_and_subclasses) {
  // A callable: squeeze/expand, sample weight and reductions come from Loss.
  auto cubic = make_loss(
      "cubic", [](const Tensor& t, const Tensor& p) { return mean(pow(abs(p - t), 3.f), {-1}); });
  BOOST_TEST(cubic->name() == "cubic");
  const Tensor t({2}, {0.f, 1.f}), p({2, 1}, {2.f, -1.f});
  check_values("callable", (*cubic)(t, p), {}, {8.0});
  check_values("callable weighted", (*cubic)(t, p, Tensor({2}, {0.5f, 0.f})), {}, {2.0});
  // A subclass.
  class Quartic : public Loss {
   public:
    Quartic() : Loss("quartic", Reduction::sum) {}
    Tensor call(const Tensor& t, const Tensor& p) const override {
      return mean(square(square(p - t)), {-1});
    }
  };
  check_values("subclass", Quartic()(t, p), {}, {32.0});
  testing::gradcheck("custom loss",
                     [&](const std::vector<Tensor>& in) { return (*cubic)(t, in[0]); },
                     {Tensor({2, 1}, {1.5f, -0.5f})});
}

BOOST_AUTO_TEST_CASE(crossentropy_picks_by_shapes) {
  auto ce = get("crossentropy");
  BOOST_TEST(ce->name() == "crossentropy");
  const Tensor pb({2, 1}, {0.8f, 0.3f}), yb({2}, {1.f, 0.f});
  BOOST_TEST(same_bits((*ce)(yb, pb), (*get("binary_crossentropy"))(yb, pb)));
  const Tensor pc({2, 3}, {0.2f, 0.5f, 0.3f, 0.6f, 0.3f, 0.1f}),
      yc({2, 3}, {0.f, 1.f, 0.f, 1.f, 0.f, 0.f});
  BOOST_TEST(same_bits((*ce)(yc, pc), (*get("categorical_crossentropy"))(yc, pc)));
  const Tensor ys({2}, {1.f, 0.f});
  BOOST_TEST(same_bits((*get("ce"))(ys, pc), (*get("sparse_categorical_crossentropy"))(ys, pc)));
}

BOOST_AUTO_TEST_CASE(logits_far_out_are_exact) {
  // From logits, saturated inputs give exact losses and gradients (no log(0), no overflow).
  const BinaryCrossentropy bce({.from_logits = true, .reduction = Reduction::none});
  Tensor x = Tensor({4}, {100.f, -100.f, 100.f, 0.f}).set_requires_grad();
  const Tensor l = bce(Tensor({4}, {1.f, 1.f, 0.f, 1.f}), x);
  check_values("bce logits", l, {4}, {0, 100, 100, std::log(2.0)}, 1e-6, 1e-6);
  sum(l).backward();
  check_values("bce logits gradient", x.grad(), {4}, {0, -1, 1, -0.5}, 1e-6, 1e-6);
  // log-cosh far out is |e| - log 2.
  check_values("log_cosh",
               (*get("log_cosh", Reduction::none))(Tensor({2}, 0.f), Tensor({2}, {200.f, -1e4f})),
               {2}, {200 - std::log(2.0), 1e4 - std::log(2.0)}, 1e-6, 1e-4);
}

BOOST_AUTO_TEST_SUITE_END()
