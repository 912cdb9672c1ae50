// Integration: the founding model trains on 2,000 real MNIST images for one epoch. Skipped (not
// failed) when the data cache is absent; the README's set-up command fills it.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>

#include "test/support/founding_model.hpp"
#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

boost::test_tools::assertion_result mnist_available(boost::unit_test::test_unit_id) {
  const std::filesystem::path dir = datasets::mnist::default_dir();
  const bool ok = std::filesystem::exists(dir / "train-images-idx3-ubyte") &&
                  std::filesystem::exists(dir / "t10k-labels-idx1-ubyte");
  boost::test_tools::assertion_result r(ok);
  if (!ok) r.message() << "MNIST cache absent at " << dir << " (run: bash tools/xtape.sh setup)";
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_mnist_integration)

BOOST_AUTO_TEST_CASE(founding_model_learns_mnist_subset, *boost::unit_test::precondition(mnist_available)) {
  clear_session();
  set_random_seed(1337);
  auto [train, test] = datasets::mnist::load_data();
  Tensor x = slice_rows(reshape(datasets::to_float(train.first, 1.f / 255.f), {-1, 28, 28, 1}), 0, 2000);
  Tensor y = slice_rows(datasets::to_categorical(train.second, 10), 0, 2000);
  Tensor xt = slice_rows(reshape(datasets::to_float(test.first, 1.f / 255.f), {-1, 28, 28, 1}), 0, 1000);
  Tensor yt = slice_rows(datasets::to_categorical(test.second, 10), 0, 1000);
  Sequential model = xtape::testing::founding_model();
  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  const auto before = model.evaluate(xt, yt, {.batch_size = 128, .verbose = 0});
  History h = model.fit(x, y, {.batch_size = 128, .epochs = 1, .verbose = 0});
  const auto after = model.evaluate(xt, yt, {.batch_size = 128, .verbose = 0});
  BOOST_TEST_MESSAGE("2,000 images, 1 epoch (16 steps): test loss " << before.at("loss") << " -> "
                     << after.at("loss") << ", test accuracy " << before.at("accuracy") << " -> "
                     << after.at("accuracy"));
  BOOST_TEST(after.at("accuracy") > 0.5);  // chance is 0.1
  BOOST_TEST(after.at("loss") < before.at("loss"));
  BOOST_TEST(std::isfinite(h.history["loss"][0]));
}

BOOST_AUTO_TEST_SUITE_END()
