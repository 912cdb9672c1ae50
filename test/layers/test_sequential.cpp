// Sequential: shape inference through the stack, the summary table of the founding model,
// compile/fit/evaluate/predict on a synthetic problem, and Keras's validation split.
#include <boost/test/unit_test.hpp>
#include <sstream>

#include "autodiff/ops.hpp"
#include "training/callbacks.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/pooling.hpp"
#include "models/sequential.hpp"
#include "test/support/synthetic.hpp"
#include "test/support/founding_model.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::founding_model;

namespace {

using xtape::testing::blobs;

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_sequential)

BOOST_AUTO_TEST_CASE(founding_model_summary_matches_keras) {
  clear_session();
  Sequential model = founding_model();
  std::ostringstream os;
  model.summary(os);
  const std::string s = os.str();
  BOOST_TEST_MESSAGE(s);
  const char* expected_lines[] = {
      "Model: \"sequential\"",
      "\u2503 Layer (type)                    \u2503 Output Shape              \u2503    Param # \u2503",
      "\u2502 standardized_conv2d_with_call   \u2502 (None, 26, 26, 32)        \u2502        320 \u2502",
      "\u2502 (StandardizedConv2DWithCall)    \u2502                           \u2502            \u2502",
      "\u2502 max_pooling2d (MaxPooling2D)    \u2502 (None, 13, 13, 32)        \u2502          0 \u2502",
      "\u2502 standardized_conv2d_with_overr\u2026 \u2502 (None, 11, 11, 64)        \u2502     18,496 \u2502",
      "\u2502 (StandardizedConv2DWithOverrid\u2026 \u2502                           \u2502            \u2502",
      "\u2502 max_pooling2d_1 (MaxPooling2D)  \u2502 (None, 5, 5, 64)          \u2502          0 \u2502",
      "\u2502 flatten (Flatten)               \u2502 (None, 1600)              \u2502          0 \u2502",
      "\u2502 dropout (Dropout)               \u2502 (None, 1600)              \u2502          0 \u2502",
      "\u2502 dense (Dense)                   \u2502 (None, 10)                \u2502     16,010 \u2502",
      " Total params: 34,826 (136.04 KB)",
      " Trainable params: 34,826 (136.04 KB)",
      " Non-trainable params: 0 (0.00 B)",
  };
  for (const char* line : expected_lines)
    BOOST_TEST(s.find(std::string(line) + "\n") != std::string::npos, "missing line: " << line);
  BOOST_TEST(model.count_params() == 34826u);
  const auto vars = model.trainable_variables();
  BOOST_TEST(vars.size() == 6u);
  BOOST_TEST(vars[0].name == "standardized_conv2d_with_call/kernel");
  BOOST_TEST(vars[5].name == "dense/bias");
}

BOOST_AUTO_TEST_CASE(founding_model_forward_and_backward_shapes) {
  clear_session();
  set_random_seed(1);
  Sequential model = founding_model();
  Rng rng(2);
  Tensor x = Tensor::empty({3, 28, 28, 1});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
  Tensor y = model(x, true);
  BOOST_TEST((y.shape() == Shape{3, 10}));
  for (std::size_t r = 0; r < 3; ++r) {
    double s = 0;
    for (std::size_t c = 0; c < 10; ++c) s += y.at({r, c});
    BOOST_TEST(std::abs(s - 1.0) < 1e-5);
  }
  Tensor target(Shape{3, 10}, 0.f);
  for (std::size_t r = 0; r < 3; ++r) target.at({r, r}) = 1.f;
  mean(categorical_crossentropy(target, y)).backward();
  for (const auto& v : model.trainable_variables()) BOOST_TEST(v.value.grad().defined(), v.name);
  // The loss was scored from the softmax's logits (as Keras does), so the softmax record stays
  // alive while its output y does; nothing else is left on the tape.
  BOOST_TEST(tape_size() == 1u);
  y = Tensor();
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(fit_learns_a_synthetic_problem) {
  clear_session();
  set_random_seed(4);
  auto [x, y] = blobs(600, 1);
  Sequential model({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 16, .activation = "relu"}),
                    std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  const auto before = model.evaluate(x, y, {.verbose = 0});
  History h = model.fit(x, y, {.batch_size = 32, .epochs = 15, .validation_split = 0.2f, .verbose = 0});
  BOOST_TEST(h.history["loss"].size() == 15u);
  BOOST_TEST(h.history["loss"].back() < 0.5 * h.history["loss"].front());
  BOOST_TEST(h.history["accuracy"].back() > 0.9);
  BOOST_TEST(h.history["val_accuracy"].back() > 0.9);
  BOOST_TEST(h.history["accuracy"].back() > before.at("accuracy"));
  // Keras's validation split: the last 20% of the samples, before shuffling. The final
  // validation loss equals evaluate() on those rows with the final weights.
  const Tensor xv = slice_rows(x, 480, 600), yv = slice_rows(y, 480, 600);
  const auto val = model.evaluate(xv, yv, {.batch_size = 32, .verbose = 0});
  BOOST_TEST(val.at("loss") == h.history["val_loss"].back(), boost::test_tools::tolerance(1e-9));
  BOOST_TEST(val.at("accuracy") == h.history["val_accuracy"].back(), boost::test_tools::tolerance(1e-9));
  Tensor p = model.predict(xv);
  BOOST_TEST((p.shape() == Shape{120, 3}));
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(sparse_labels_and_mse) {
  clear_session();
  set_random_seed(5);
  auto [x, y] = blobs(300, 2);
  Tensor labels = Tensor::empty({300});
  for (std::size_t i = 0; i < 300; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      if (y.at({i, c}) == 1.f) labels.data()[i] = static_cast<float>(c);
  Sequential model({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  model.compile("sparse_categorical_crossentropy", std::make_shared<optim::SGD>(optim::SGDOptions{.learning_rate = 0.1f}),
                {"accuracy"});
  History h = model.fit(x, labels, {.batch_size = 16, .epochs = 10, .verbose = 0});
  BOOST_TEST(h.history["accuracy"].back() > 0.85);
  Sequential reg({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3})});
  reg.compile("mse", "adam");
  History r = reg.fit(x, y, {.batch_size = 16, .epochs = 10, .verbose = 0});
  BOOST_TEST(r.history["loss"].back() < r.history["loss"].front());
}

BOOST_AUTO_TEST_CASE(fit_flushes_denormals_and_restores_the_mode) {
  // TensorFlow's semantics: ops run with denormals flushed to zero during fit (and evaluate,
  // predict); the caller's mode is back when they return.
  struct Probe : Callback {
    int batches = 0, flushed = 0;
    void on_batch_end(std::size_t, const Logs&) override {
      ++batches;
      if (flush_denormal()) ++flushed;
    }
  };
  clear_session();
  set_random_seed(6);
  auto [x, y] = blobs(64, 3);
  Sequential model({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  const bool initial = flush_denormal();
  if (!set_flush_denormal(false)) return;  // NOTE: no such mode on this CPU
  auto probe = std::make_shared<Probe>();
  model.fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0, .callbacks = {probe}});
  BOOST_TEST(probe->batches == 8);
  BOOST_TEST(probe->flushed == probe->batches);
  BOOST_TEST(!flush_denormal());
  model.evaluate(x, y, {.verbose = 0});
  model.predict(x);
  BOOST_TEST(!flush_denormal());
  set_flush_denormal(initial);
}

BOOST_AUTO_TEST_CASE(fit_errors) {
  Sequential model({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 3})});
  Tensor x(Shape{10, 2}, 0.f), y(Shape{9, 3}, 0.f);
  BOOST_CHECK_THROW(model.fit(x, Tensor(Shape{10, 3}, 0.f)), std::invalid_argument);  // not compiled
  model.compile("mse", "sgd");
  BOOST_CHECK_THROW(model.fit(x, y), std::invalid_argument);  // lengths differ
  BOOST_CHECK_THROW(model.fit(x, Tensor(Shape{10, 3}, 0.f), {.validation_split = 1.5f}), std::invalid_argument);
  BOOST_CHECK_THROW(model.compile("no_such_loss", "sgd"), std::invalid_argument);
  BOOST_CHECK_THROW(model.compile("mse", "no_such_optimizer"), std::invalid_argument);
  BOOST_CHECK_THROW(Sequential({std::make_shared<Dense>(DenseOptions{.units = 3}), Input({2})}), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
