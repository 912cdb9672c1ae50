// training/trainer.cpp and training/callbacks.cpp: options fit refuses or handles (batch sizes
// near SIZE_MAX, negative epochs), fit on models that build on their first call, and
// ModelCheckpoint's filepath field.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "test/support/gradcheck.hpp"
#include "training/callbacks.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;

namespace {

Sequential small(std::uint64_t seed) {
  clear_session();
  set_random_seed(seed);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 1})});
  m.compile("mse", "sgd");
  return m;
}

std::pair<Tensor, Tensor> data(std::size_t n) {
  Tensor x(Shape{n, 2}, 0.f), y(Shape{n, 1}, 0.f);
  for (std::size_t i = 0; i < n; ++i) {
    x.data()[2 * i] = static_cast<float>(i) / static_cast<float>(n);
    x.data()[2 * i + 1] = 1.f;
    y.data()[i] = 2.f * x.data()[2 * i];
  }
  return {x, y};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training_trainer)

BOOST_AUTO_TEST_CASE(a_huge_batch_size_is_one_batch_of_everything) {
  auto xy_ = data(10);
  Tensor &x = xy_.first, &y = xy_.second;
  const std::size_t huge = std::numeric_limits<std::size_t>::max() - 3;
  Sequential a = small(1), b = small(1);
  // Before: the step count (n + batch - 1) / batch wrapped to 0 (NaN loss, nothing trained).
  const History ha = a.fit(x, y, {.batch_size = huge, .epochs = 2, .shuffle = false, .verbose = 0});
  const History hb = b.fit(x, y, {.batch_size = 10, .epochs = 2, .shuffle = false, .verbose = 0});
  BOOST_TEST(std::isfinite(ha.history.at("loss")[0]));
  BOOST_TEST(ha.history.at("loss") == hb.history.at("loss"), boost::test_tools::per_element());
  BOOST_TEST(a.get_weights()[0].to_vector() == b.get_weights()[0].to_vector(),
             boost::test_tools::per_element());
  BOOST_TEST(a.evaluate(x, y, {.batch_size = huge, .verbose = 0}).at("loss") ==
             b.evaluate(x, y, {.batch_size = 10, .verbose = 0}).at("loss"));
  BOOST_TEST(a.predict(x, {.batch_size = huge, .verbose = 0}).to_vector() ==
                 b.predict(x, {.batch_size = 3, .verbose = 0}).to_vector(),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(negative_epochs_are_refused) {
  auto xy_ = data(8);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential m = small(2);
  check_throws<std::invalid_argument>("initial_epoch",
                                      [&] { m.fit(x, y, {.verbose = 0, .initial_epoch = -3}); },
                                      {"Sequential::fit", "initial_epoch -3"});
  check_throws<std::invalid_argument>("epochs", [&] { m.fit(x, y, {.epochs = -1, .verbose = 0}); },
                                      {"Sequential::fit", "epochs -1"});
}

BOOST_AUTO_TEST_CASE(model_checkpoint_refuses_absurd_epoch_widths) {
  check_throws<std::invalid_argument>(
      "width", [] { ModelCheckpoint({.filepath = "ck-{epoch:2000000000d}.st"}); },
      {"ModelCheckpoint", "{epoch:2000000000d}", "at most 20"});
  check_throws<std::invalid_argument>(
      "spec", [] { ModelCheckpoint({.filepath = "ck-{epoch:x}.st"}); }, {"{epoch:x}"});
  check_throws<std::invalid_argument>("open", [] { ModelCheckpoint({.filepath = "ck-{epoch"}); },
                                      {"{epoch"});
  BOOST_TEST(ModelCheckpoint({.filepath = "ck-{epoch:03d}.st"}).path_for_epoch(7) == "ck-007.st");
  BOOST_TEST(ModelCheckpoint({.filepath = "ck-{epoch:20d}.st"}).path_for_epoch(7).size() == 26u);
  BOOST_TEST(ModelCheckpoint({.filepath = "ck-{epoch}.st"}).path_for_epoch(12) == "ck-12.st");
}

BOOST_AUTO_TEST_CASE(fit_builds_a_model_on_its_first_call) {
  // A Sequential with no Input and a subclassed model: fit builds them from the data.
  auto xy_ = data(64);
  Tensor &x = xy_.first, &y = xy_.second;
  clear_session();
  set_random_seed(3);
  Sequential m({std::make_shared<Dense>(DenseOptions{.units = 4, .activation = "relu"}),
                std::make_shared<Dense>(DenseOptions{.units = 1})});
  BOOST_TEST(!m.built());
  m.compile("mse", "adam");
  m.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});
  BOOST_TEST(m.built());
  BOOST_TEST(m.count_params() == 12u + 5u);
  BOOST_TEST(m.layers()[0]->own_weights()[0].value.grad().defined());
}

BOOST_AUTO_TEST_SUITE_END()
