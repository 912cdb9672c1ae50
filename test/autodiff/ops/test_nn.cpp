// Tests for autodiff/ops/nn.cpp: softmax, log_softmax, dropout and the cross-entropy losses
// (Keras semantics), forward values and gradients.
#include <omp.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;

// Reference softmax (or log-softmax) in double along `axis` of a tensor of any rank.
std::vector<double> softmax_reference(const Tensor& x, int axis, bool log_space) {
  const Shape& s = x.shape();
  const std::size_t a =
      static_cast<std::size_t>(axis < 0 ? axis + static_cast<int>(s.size()) : axis);
  std::size_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < a; ++i) outer *= s[i];
  for (std::size_t i = a + 1; i < s.size(); ++i) inner *= s[i];
  const std::size_t k = s[a];
  std::vector<double> r(x.size());
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t in = 0; in < inner; ++in) {
      auto at = [&](std::size_t j) { return (o * k + j) * inner + in; };
      double m = -INFINITY;
      for (std::size_t j = 0; j < k; ++j) m = std::max(m, static_cast<double>(x.data()[at(j)]));
      double z = 0.0;
      for (std::size_t j = 0; j < k; ++j) z += std::exp(x.data()[at(j)] - m);
      for (std::size_t j = 0; j < k; ++j) {
        const double l = x.data()[at(j)] - m - std::log(z);
        r[at(j)] = log_space ? l : std::exp(l);
      }
    }
  return r;
}

Tensor one_hot(const std::vector<std::size_t>& labels, std::size_t k) {
  Tensor t({labels.size(), k}, 0.f);
  for (std::size_t i = 0; i < labels.size(); ++i) t.at({i, labels[i]}) = 1.f;
  return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nn)

BOOST_AUTO_TEST_CASE(softmax_values) {
  check_values("softmax hand", softmax(Tensor({1, 3}, {0.f, std::log(2.f), std::log(5.f)})), {1, 3},
               {1.0 / 8, 2.0 / 8, 5.0 / 8}, 1e-6, 1e-7);
  // Stable for large logits.
  check_values("softmax large logits", softmax(Tensor({2}, {1000.f, 1000.f})), {2}, {0.5, 0.5},
               1e-6, 0);
  check_values("log_softmax large logits", log_softmax(Tensor({2}, {1000.f, 0.f})), {2}, {0, -1000},
               1e-6, 1e-6);

  Rng rng(1);
  const Tensor x2 = random_tensor({4, 6}, rng, -3.f, 3.f);
  const Tensor x3 = random_tensor({2, 5, 3}, rng, -3.f, 3.f);
  check_values("softmax last axis", softmax(x2), {4, 6}, softmax_reference(x2, -1, false), 1e-5,
               1e-7);
  check_values("softmax axis 0", softmax(x2, 0), {4, 6}, softmax_reference(x2, 0, false), 1e-5,
               1e-7);
  check_values("softmax 3-d axis 1", softmax(x3, 1), {2, 5, 3}, softmax_reference(x3, 1, false),
               1e-5, 1e-7);
  check_values("log_softmax last axis", log_softmax(x2), {4, 6}, softmax_reference(x2, -1, true),
               1e-5, 1e-6);
  check_values("log_softmax axis 0", log_softmax(x2, 0), {4, 6}, softmax_reference(x2, 0, true),
               1e-5, 1e-6);
  check_values("log_softmax 3-d axis 1", log_softmax(x3, 1), {2, 5, 3},
               softmax_reference(x3, 1, true), 1e-5, 1e-6);
  // Rows sum to 1.
  const Tensor big = random_tensor({64, 10}, rng, -5.f, 5.f);
  check_values("softmax rows sum to 1", sum(softmax(big), {-1}), {64}, std::vector<double>(64, 1.0),
               1e-6, 1e-6);

  check_throws<std::invalid_argument>("softmax bad axis", [&] { softmax(x2, 2); },
                                      {"softmax", "(4, 6)"});
  check_throws<std::invalid_argument>("log_softmax bad axis", [&] { log_softmax(x2, -3); },
                                      {"log_softmax", "(4, 6)"});
}

BOOST_AUTO_TEST_CASE(softmax_gradients) {
  Rng rng(2);
  const Tensor x2 = random_tensor({3, 5}, rng, -2.f, 2.f);
  const Tensor x3 = random_tensor({2, 4, 3}, rng, -2.f, 2.f);
  gradcheck("softmax last axis", [](In in) { return softmax(in[0]); }, {x2});
  gradcheck("softmax axis 0", [](In in) { return softmax(in[0], 0); }, {x2});
  gradcheck("softmax 3-d axis 1", [](In in) { return softmax(in[0], 1); }, {x3});
  gradcheck("log_softmax last axis", [](In in) { return log_softmax(in[0], -1); }, {x2});
  gradcheck("log_softmax axis 0", [](In in) { return log_softmax(in[0], 0); }, {x2});
  gradcheck("log_softmax 3-d axis 1", [](In in) { return log_softmax(in[0], 1); }, {x3});
  gradcheck("softmax large (directional)", [](In in) { return softmax(in[0]); },
            {random_tensor({50, 20}, rng, -3.f, 3.f)});
}

BOOST_AUTO_TEST_CASE(softmax_long_rows_against_double) {
  // The vector kernel: rows longer than its summation chunk, lengths that are not a multiple
  // of the SIMD width, and a wide range of logits (exponentials that underflow).
  Rng rng(5);
  for (const std::size_t cols : {1, 3, 7, 8, 9, 31, 129, 1000, 4099}) {
    const Tensor x = random_tensor({3, cols}, rng, -40.f, 40.f);
    check_values("softmax cols " + std::to_string(cols), softmax(x), {3, cols},
                 softmax_reference(x, -1, false), 2e-6, 1e-12);
  }
  // A row of one value, and -inf entries (probability 0).
  const float inf = std::numeric_limits<float>::infinity();
  check_values("softmax -inf entries", softmax(Tensor({1, 3}, {-inf, 0.f, 0.f})), {1, 3},
               {0.0, 0.5, 0.5}, 1e-7, 0);
}

BOOST_AUTO_TEST_CASE(softmax_nan_and_infinity_poison_their_row) {
  // As PyTorch: a NaN anywhere in a row makes the whole row NaN, wherever it sits (before the
  // vector kernel's tail, in it, first or last); other rows are untouched. +inf gives NaN too
  // (inf - inf), and so does a row of -inf.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (const std::size_t cols : {5, 8, 13}) {
    for (std::size_t at = 0; at < cols; at += 4) {
      for (const float bad : {nan, inf}) {
        std::vector<float> v(2 * cols, 0.5f);
        v[at] = bad;
        const std::vector<float> y = softmax(Tensor({2, cols}, v)).to_vector();
        for (std::size_t c = 0; c < cols; ++c) {
          BOOST_TEST(std::isnan(y[c]), "cols " << cols << " bad at " << at << " element " << c);
          BOOST_TEST(y[cols + c] == 1.f / static_cast<float>(cols), "clean row");
        }
      }
    }
  }
  const std::vector<float> all_neg = softmax(Tensor({1, 3}, {-inf, -inf, -inf})).to_vector();
  for (const float y : all_neg) BOOST_TEST(std::isnan(y));
  // The gradient carries the NaN back too.
  Tensor x = Tensor({1, 4}, {0.f, nan, 1.f, 2.f}).set_requires_grad(true);
  sum(softmax(x) * Tensor({1, 4}, {1.f, 2.f, 3.f, 4.f})).backward();
  for (const float g : x.grad().to_vector()) BOOST_TEST(std::isnan(g));
}

BOOST_AUTO_TEST_CASE(softmax_backward_kernel_matches_the_composition) {
  // The fused backward (no graph) against the recorded composition y * (g - sum(g * y)) taken
  // when the backward creates a graph; and the second derivative.
  Rng rng(6);
  const Tensor x0 = random_tensor({5, 37}, rng, -4.f, 4.f), w = random_tensor({5, 37}, rng);
  Tensor a = x0.clone().set_requires_grad(true);
  sum(softmax(a) * w).backward();
  Tensor b = x0.clone().set_requires_grad(true);
  GradOptions with_graph;
  with_graph.create_graph = true;
  const Tensor gb = grad({sum(softmax(b) * w)}, {b}, with_graph)[0];
  // The same roundings, so the same bits (as every first-order gradient with create_graph).
  BOOST_TEST(a.grad().to_vector() == gb.to_vector(), boost::test_tools::per_element());
  xtape::testing::gradgradcheck("softmax", [](In in) { return softmax(in[0]); },
                                {random_tensor({3, 11}, rng, -2.f, 2.f)});
  xtape::testing::gradgradcheck("softmax axis 0", [](In in) { return softmax(in[0], 0); },
                                {random_tensor({6, 4}, rng, -2.f, 2.f)});
}

BOOST_AUTO_TEST_CASE(softmax_is_bitwise_independent_of_the_thread_count) {
  Rng rng(7);
  const Tensor x0 = random_tensor({512, 300}, rng, -6.f, 6.f), w = random_tensor({512, 300}, rng);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor x = x0.clone().set_requires_grad(true);
    const Tensor y = softmax(x);
    sum(y * w).backward();
    omp_set_num_threads(before);
    return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  BOOST_TEST(one[0] == two[0], boost::test_tools::per_element());
  BOOST_TEST(one[1] == two[1], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(dropout_behaviour) {
  Rng rng(3);
  const Tensor x = random_tensor({200, 50}, rng, 0.5f, 1.5f);
  // Identity when not training or rate == 0 (the same tensor, no copy).
  BOOST_TEST(dropout(x, 0.5f, false, rng).id() == x.id());
  BOOST_TEST(dropout(x, 0.f, true, rng).id() == x.id());

  Rng r1(42);
  const Tensor y = dropout(x, 0.3f, true, r1);
  std::size_t zeros = 0;
  bool scaled = true;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y.data()[i] == 0.f)
      ++zeros;
    else
      scaled =
          scaled && std::abs(y.data()[i] - x.data()[i] / 0.7f) <= 1e-6f * std::abs(y.data()[i]);
  }
  BOOST_TEST(scaled, "survivors are scaled by 1 / (1 - rate)");
  const double fraction = static_cast<double>(zeros) / static_cast<double>(y.size());
  BOOST_TEST(std::abs(fraction - 0.3) < 0.02, "dropped fraction " << fraction);
  // Same seed, same mask.
  Rng r2(42);
  BOOST_TEST(dropout(x, 0.3f, true, r2).to_vector() == y.to_vector(),
             boost::test_tools::per_element());

  check_throws<std::invalid_argument>("dropout rate 1", [&] { dropout(x, 1.f, true, rng); },
                                      {"dropout", "1"});
  check_throws<std::invalid_argument>("dropout rate -0.1", [&] { dropout(x, -0.1f, true, rng); },
                                      {"dropout"});
  check_throws<std::invalid_argument>("dropout rate 1.5", [&] { dropout(x, 1.5f, false, rng); },
                                      {"dropout"});
  check_throws<std::invalid_argument>("dropout rate NaN", [&] { dropout(x, NAN, true, rng); },
                                      {"dropout"});
}

BOOST_AUTO_TEST_CASE(dropout_gradients_use_the_forward_mask) {
  Rng rng(4);
  // Each call builds Rng(seed): every forward pass (the taped one and the finite-difference
  // ones) draws the same mask, so a backward that used another mask would fail the check.
  gradcheck("dropout 0.4",
            [](In in) {
              Rng local(99);
              return dropout(in[0], 0.4f, true, local);
            },
            {random_tensor({6, 7}, rng)});
  gradcheck("dropout(2x) * x",
            [](In in) {
              Rng local(5);
              return dropout(in[0] * 2.f, 0.4f, true, local) * in[0];
            },
            {random_tensor({5, 5}, rng)});

  // Directly: the gradient is mask / (1 - rate), nonzero exactly where the output is.
  Tensor x = random_tensor({40, 30}, rng, 0.5f, 1.5f).set_requires_grad();
  Rng local(7);
  Tensor y = dropout(x, 0.25f, true, local);
  sum(y).backward();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float expected = y.data()[i] == 0.f ? 0.f : 1.f / 0.75f;
    if (std::abs(x.grad().data()[i] - expected) > 1e-6f) ++mismatches;
  }
  BOOST_TEST(mismatches == 0u);
}

BOOST_AUTO_TEST_CASE(categorical_crossentropy_from_probabilities) {
  const Tensor y_true({2, 3}, {0.f, 1.f, 0.f, 1.f, 0.f, 0.f});
  check_values(
      "hand",
      categorical_crossentropy(y_true, Tensor({2, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.25f, 0.25f})), {2},
      {-std::log(0.7), -std::log(0.5)}, 1e-6, 1e-6);
  // Predictions are renormalised to sum to 1 (Keras).
  check_values(
      "renormalised",
      categorical_crossentropy(y_true, Tensor({2, 3}, {0.2f, 1.4f, 0.4f, 1.f, 0.5f, 0.5f})), {2},
      {-std::log(0.7), -std::log(0.5)}, 1e-6, 1e-6);
  // A zero probability is clipped to 1e-7: -log(1e-7) = 16.118..., not infinity.
  check_values("clipped at 1e-7",
               categorical_crossentropy(y_true, Tensor({2, 3}, {0.f, 0.f, 1.f, 0.f, 1.f, 0.f})),
               {2}, {-std::log(1e-7), -std::log(1e-7)}, 1e-5, 0);
  // Soft targets.
  check_values("soft targets",
               categorical_crossentropy(Tensor({1, 3}, {0.2f, 0.3f, 0.5f}),
                                        Tensor({1, 3}, {0.5f, 0.25f, 0.25f})),
               {1}, {-(0.2 * std::log(0.5) + 0.3 * std::log(0.25) + 0.5 * std::log(0.25))}, 1e-6,
               1e-6);
  // A (batch, time, classes) prediction reduces the last axis only.
  const Tensor p3({1, 2, 2}, {0.25f, 0.75f, 0.6f, 0.4f});
  const Tensor t3({1, 2, 2}, {0.f, 1.f, 0.f, 1.f});
  check_values("3-d", categorical_crossentropy(t3, p3), {1, 2}, {-std::log(0.75), -std::log(0.4)},
               1e-6, 1e-6);

  Rng rng(5);
  const Tensor targets = one_hot({2, 0, 1, 2}, 3);
  // NOTE: probabilities in [0.2, 1) before renormalisation stay clear of the clip bounds.
  gradcheck("categorical_crossentropy from probabilities",
            [targets](In in) { return categorical_crossentropy(targets, in[0]); },
            {random_tensor({4, 3}, rng, 0.2f, 1.f)});
}

BOOST_AUTO_TEST_CASE(categorical_crossentropy_from_softmax_and_logits) {
  Rng rng(6);
  const Tensor logits = random_tensor({5, 4}, rng, -2.f, 2.f);
  const Tensor targets = one_hot({3, 0, 1, 1, 2}, 4);
  const std::vector<double> logp = softmax_reference(logits, -1, true);
  std::vector<double> ref(5, 0.0);
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 4; ++j) ref[i] -= targets.at({i, j}) * logp[i * 4 + j];
  check_values("from logits", categorical_crossentropy(targets, logits, true), {5}, ref, 1e-5,
               1e-6);
  check_values("from softmax probabilities", categorical_crossentropy(targets, softmax(logits)),
               {5}, ref, 1e-5, 1e-6);
  // Probabilities equal to a softmax's but computed elsewhere go through the clip; same value.
  check_values("from plain probabilities",
               categorical_crossentropy(targets, softmax(logits).clone()), {5}, ref, 1e-5, 1e-6);

  gradcheck("categorical_crossentropy from logits",
            [targets](In in) { return categorical_crossentropy(targets, in[0], true); }, {logits});
  gradcheck("categorical_crossentropy of softmax outputs (w.r.t. the logits)",
            [targets](In in) { return categorical_crossentropy(targets, softmax(in[0])); },
            {logits});
  // Softmax over another axis gives plain probabilities (the clipped formula).
  const Tensor targets_t = one_hot({1, 0, 2, 2}, 3);
  gradcheck("categorical_crossentropy of softmax over axis 0 (transposed)",
            [targets_t](In in) {
              return categorical_crossentropy(targets_t, transpose(softmax(in[0], 0)));
            },
            {random_tensor({3, 4}, rng, -1.f, 1.f)});

  // Keras (TensorFlow backend): a saturated softmax is scored from its logits, exactly, and its
  // gradient does not vanish.
  Tensor sat({1, 2}, {0.f, 100.f});
  sat.set_requires_grad();
  Tensor loss = categorical_crossentropy(Tensor({1, 2}, {1.f, 0.f}), softmax(sat));
  BOOST_TEST(loss.item() == 100.f, boost::test_tools::tolerance(1e-5f));
  sum(loss).backward();
  BOOST_TEST(sat.grad().data()[0] == -1.f, boost::test_tools::tolerance(1e-5f));
  BOOST_TEST(sat.grad().data()[1] == 1.f, boost::test_tools::tolerance(1e-5f));

  check_throws<std::invalid_argument>(
      "shape mismatch",
      [] {
        categorical_crossentropy(Tensor({2, 3}, 0.f), Tensor({2, 4}, 0.25f));
      },
      {"categorical_crossentropy", "(2, 3)", "(2, 4)"});
}

BOOST_AUTO_TEST_CASE(sparse_categorical_crossentropy_values_and_gradients) {
  Rng rng(7);
  const Tensor logits = random_tensor({4, 3}, rng, -2.f, 2.f);
  const Tensor labels({4}, {2.f, 0.f, 1.f, 2.f});
  const Tensor targets = one_hot({2, 0, 1, 2}, 3);
  const Tensor probs = random_tensor({4, 3}, rng, 0.2f, 1.f);
  check_values(
      "sparse from logits", sparse_categorical_crossentropy(labels, logits, true), {4},
      [&] {
        std::vector<double> v;
        for (float f : categorical_crossentropy(targets, logits, true).to_vector()) v.push_back(f);
        return v;
      }(),
      1e-6, 1e-6);
  const std::vector<double> logp = softmax_reference(logits, -1, true);
  check_values("sparse from softmax", sparse_categorical_crossentropy(labels, softmax(logits)), {4},
               {-logp[2], -logp[3], -logp[7], -logp[11]}, 1e-5, 1e-6);
  std::vector<double> ref;
  for (std::size_t i = 0; i < 4; ++i) {
    double s = 0.0;
    for (std::size_t j = 0; j < 3; ++j) s += probs.at({i, j});
    ref.push_back(-std::log(probs.at({i, static_cast<std::size_t>(labels.data()[i])}) / s));
  }
  check_values("sparse from probabilities", sparse_categorical_crossentropy(labels, probs), {4},
               ref, 1e-5, 1e-6);
  // Labels of shape (n, 1), as Keras accepts.
  check_values("sparse labels (n, 1)",
               sparse_categorical_crossentropy(Tensor({4, 1}, labels.to_vector()), probs), {4}, ref,
               1e-5, 1e-6);

  gradcheck("sparse_categorical_crossentropy from logits",
            [labels](In in) { return sparse_categorical_crossentropy(labels, in[0], true); },
            {logits});
  gradcheck("sparse_categorical_crossentropy from softmax",
            [labels](In in) { return sparse_categorical_crossentropy(labels, softmax(in[0])); },
            {logits});
  gradcheck("sparse_categorical_crossentropy from probabilities",
            [labels](In in) { return sparse_categorical_crossentropy(labels, in[0]); }, {probs});

  check_throws<std::invalid_argument>(
      "label out of range",
      [&] {
        sparse_categorical_crossentropy(Tensor({4}, {0.f, 3.f, 1.f, 1.f}), probs);
      },
      {"sparse_categorical_crossentropy", "3"});
  check_throws<std::invalid_argument>(
      "negative label",
      [&] {
        sparse_categorical_crossentropy(Tensor({4}, {0.f, -1.f, 1.f, 1.f}), probs);
      },
      {"sparse_categorical_crossentropy"});
  check_throws<std::invalid_argument>(
      "fractional label",
      [&] {
        sparse_categorical_crossentropy(Tensor({4}, {0.f, 1.5f, 1.f, 1.f}), probs);
      },
      {"sparse_categorical_crossentropy"});
  check_throws<std::invalid_argument>(
      "label count mismatch", [&] { sparse_categorical_crossentropy(Tensor({3}, 0.f), probs); },
      {"sparse_categorical_crossentropy", "(3,)", "(4, 3)"});
}

BOOST_AUTO_TEST_CASE(zero_size_inputs) {
  check_zero_size("softmax (0, 5)", [](In in) { return softmax(in[0]); }, {Tensor({0, 5}, 1.f)},
                  {0, 5});
  check_zero_size("softmax (3, 0)", [](In in) { return softmax(in[0]); }, {Tensor({3, 0}, 1.f)},
                  {3, 0});
  check_zero_size("softmax (0, 5) axis 0", [](In in) { return softmax(in[0], 0); },
                  {Tensor({0, 5}, 1.f)}, {0, 5});
  check_zero_size("log_softmax (0, 5)", [](In in) { return log_softmax(in[0]); },
                  {Tensor({0, 5}, 1.f)}, {0, 5});
  check_zero_size("log_softmax (3, 0)", [](In in) { return log_softmax(in[0]); },
                  {Tensor({3, 0}, 1.f)}, {3, 0});
  check_zero_size("dropout",
                  [](In in) {
                    Rng rng(1);
                    return dropout(in[0], 0.5f, true, rng);
                  },
                  {Tensor({0, 5}, 1.f)}, {0, 5});
  check_zero_size("categorical_crossentropy from logits",
                  [](In in) { return categorical_crossentropy(in[0], in[1], true); },
                  {Tensor({0, 5}, 0.f), Tensor({0, 5}, 1.f)}, {0});
  check_zero_size("categorical_crossentropy from probabilities",
                  [](In in) { return categorical_crossentropy(in[0], in[1]); },
                  {Tensor({0, 5}, 0.f), Tensor({0, 5}, 1.f)}, {0});
  const Tensor no_labels({0}, 0.f);
  check_zero_size(
      "sparse_categorical_crossentropy",
      [no_labels](In in) { return sparse_categorical_crossentropy(no_labels, in[0], true); },
      {Tensor({0, 5}, 1.f)}, {0});
  check_zero_size("categorical_crossentropy of softmax",
                  [](In in) { return categorical_crossentropy(in[0], softmax(in[1])); },
                  {Tensor({0, 5}, 0.f), Tensor({0, 5}, 1.f)}, {0});
}

BOOST_AUTO_TEST_SUITE_END()
