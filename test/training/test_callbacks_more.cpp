// training/callbacks_more.cpp and callback state in checkpoints: ReduceLROnPlateau as Keras
// runs it, LambdaCallback, BackupAndRestore resuming bitwise after a SIGKILL, and EarlyStopping's
// and ReduceLROnPlateau's counters surviving a checkpoint.
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "autodiff/ops.hpp"
#include "kernels/threads.hpp"
#include "layers/core.hpp"
#include "layers/saving.hpp"
#include "models/sequential.hpp"
#include "support/temp_dir.hpp"
#include "test/support/synthetic.hpp"
#include "training/callbacks.hpp"

using namespace xtape;
using namespace xtape::layers;
namespace fs = std::filesystem;

namespace {

using TempDir = xtape::testing::TempDir;

Sequential model(std::uint64_t seed) {
  clear_session();
  set_random_seed(seed);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 8, .activation = "relu"}),
                std::make_shared<Dropout>(0.2f),
                std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  m.compile("categorical_crossentropy", "adam", {"accuracy"});
  return m;
}

bool bitwise_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].shape() != b[i].shape() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * 4) != 0)
      return false;
  return true;
}

// Feeds a fixed sequence of values as the monitored metric.
class FakeMetric : public Callback {
 public:
  explicit FakeMetric(std::vector<double> values) : values_(std::move(values)) {}
  void on_epoch_end(int epoch, const Logs&) override {
    last_ = values_.at(static_cast<std::size_t>(epoch));
  }
  std::vector<double> values_;
  double last_ = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(training_callbacks_more)

BOOST_AUTO_TEST_CASE(reduce_lr_on_plateau_follows_keras) {
  Sequential m = model(1);
  ReduceLROnPlateau r(
      {.monitor = "val_loss", .factor = 0.5f, .patience = 2, .cooldown = 1, .min_lr = 0.0002f});
  r.set_model(&m);
  r.on_train_begin({});
  const float lr0 = m.optimizer()->learning_rate();  // 0.001
  // Improves, then a plateau of 2 (reduce), cooldown 1, plateau of 2 (reduce), then the floor.
  const std::vector<double> v = {1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9};
  std::vector<float> lrs;
  for (int e = 0; e < static_cast<int>(v.size()); ++e) {
    r.on_epoch_end(e, {{"val_loss", v[static_cast<std::size_t>(e)]}});
    lrs.push_back(m.optimizer()->learning_rate());
  }
  // Keras: epoch 3 (wait 2) halves; at epoch 4 the cooldown ends (the wait restarts at 1), so
  // epoch 5 halves again; likewise epoch 7, where the rate stops at min_lr; at epoch 9 the
  // rate is already at min_lr and stays.
  const std::vector<float> expected = {lr0,     lr0,     lr0,     lr0 / 2, lr0 / 2,
                                       lr0 / 4, lr0 / 4, 0.0002f, 0.0002f, 0.0002f};
  BOOST_TEST(lrs == expected, boost::test_tools::per_element());
  BOOST_CHECK_THROW(ReduceLROnPlateau({.factor = 1.f}), std::invalid_argument);
  // Its counters survive a checkpoint taken during fit.
  TempDir dir;
  auto xy_ = xtape::testing::blobs(60, 2);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential a = model(3);
  auto plateau = std::make_shared<ReduceLROnPlateau>(
      ReduceLROnPlateauOptions{.monitor = "loss", .patience = 100, .min_delta = 10.0});
  auto saver = std::make_shared<LambdaCallback>(
      LambdaCallbackOptions{.on_epoch_end = [&](int epoch, const Logs&) {
        a.save_checkpoint(dir / "ck.safetensors", epoch + 1);
      }});
  a.fit(x, y, {.batch_size = 20, .epochs = 3, .verbose = 0, .callbacks = {plateau, saver}});
  BOOST_TEST(plateau->wait() == 2);  // epoch 0 sets the best; 1 and 2 do not beat it by 10
  const SafetensorsFile f = read_safetensors(dir / "ck.safetensors");
  BOOST_TEST(f.metadata.at("callback/reduce_lr_on_plateau/wait") == "2");
  Sequential b = model(3);
  BOOST_TEST(b.load_checkpoint(dir / "ck.safetensors") == 3);
  auto resumed = std::make_shared<ReduceLROnPlateau>(
      ReduceLROnPlateauOptions{.monitor = "loss", .patience = 100, .min_delta = 10.0});
  b.fit(x, y,
        {.batch_size = 20, .epochs = 4, .verbose = 0, .initial_epoch = 3, .callbacks = {resumed}});
  BOOST_TEST(resumed->wait() == 3);  // continued from 2, not restarted
}

BOOST_AUTO_TEST_CASE(early_stopping_wait_survives_a_checkpoint) {
  TempDir dir;
  auto xy_ = xtape::testing::blobs(60, 4);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential a = model(5);
  auto stop = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "loss", .min_delta = 10.0, .patience = 5});
  auto saver = std::make_shared<LambdaCallback>(
      LambdaCallbackOptions{.on_epoch_end = [&](int epoch, const Logs&) {
        a.save_checkpoint(dir / "ck.safetensors", epoch + 1);
      }});
  a.fit(x, y, {.batch_size = 20, .epochs = 3, .verbose = 0, .callbacks = {stop, saver}});
  BOOST_TEST(stop->wait() == 2);
  Sequential b = model(5);
  (void)b.load_checkpoint(dir / "ck.safetensors");
  auto stop2 = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "loss", .min_delta = 10.0, .patience = 5});
  const History h = b.fit(
      x, y,
      {.batch_size = 20, .epochs = 10, .verbose = 0, .initial_epoch = 3, .callbacks = {stop2}});
  // Stops when the wait reaches 5: at epoch index 5 (3 more epochs), not 3 + 5.
  BOOST_TEST(stop2->stopped_epoch() == 5);
  BOOST_TEST(h.history.at("loss").size() == 3u);
}

BOOST_AUTO_TEST_CASE(lambda_callback_hooks_run) {
  auto xy_ = xtape::testing::blobs(40, 6);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential m = model(7);
  int epochs = 0, batches = 0, begins = 0, ends = 0;
  auto cb = std::make_shared<LambdaCallback>(LambdaCallbackOptions{
      .on_epoch_end = [&](int, const Logs& l) { epochs += l.count("loss") ? 1 : 0; },
      .on_batch_end = [&](std::size_t, const Logs&) { ++batches; },
      .on_train_begin = [&](const Logs&) { ++begins; },
      .on_train_end = [&](const Logs&) { ++ends; }});
  m.fit(x, y, {.batch_size = 10, .epochs = 2, .verbose = 0, .callbacks = {cb}});
  BOOST_TEST(epochs == 2);
  BOOST_TEST(batches == 8);
  BOOST_TEST(begins == 1);
  BOOST_TEST(ends == 1);
}

// A fit with BackupAndRestore is SIGKILLed after its N-th epoch (for N = 1..3, driven by the
// epoch count, not by time); rerunning the same fit resumes from the backup and ends with the
// uninterrupted run's weights, bitwise.
BOOST_AUTO_TEST_CASE(backup_and_restore_resumes_bitwise_after_sigkill,
                     *boost::unit_test::timeout(300)) {
  const int saved_threads = xtape::kernels::num_threads();
  xtape::kernels::set_num_threads(
      1);  // the child runs with one thread (libgomp's pool does not survive fork)
  auto xy_ = xtape::testing::blobs(90, 8);
  Tensor &x = xy_.first, &y = xy_.second;
  constexpr int epochs = 5;
  auto run = [&](const std::string& backup, int kill_after) {
    Sequential m = model(9);
    auto backup_cb =
        std::make_shared<BackupAndRestore>(BackupAndRestoreOptions{.backup_dir = backup});
    auto killer = std::make_shared<LambdaCallback>(
        LambdaCallbackOptions{.on_epoch_end = [&](int epoch, const Logs&) {
          if (epoch + 1 == kill_after) std::raise(SIGKILL);
        }});
    m.fit(x, y,
          {.batch_size = 16, .epochs = epochs, .verbose = 0, .callbacks = {backup_cb, killer}});
    return std::make_pair(m.get_weights(), backup_cb->resumed_from());
  };
  TempDir ref_dir;
  const auto [reference, fresh] = run(ref_dir / "backup", -1);
  BOOST_TEST(fresh == -1);
  BOOST_TEST(!fs::exists(ref_dir / "backup/latest.safetensors"));  // deleted at the end
  for (int kill_after = 1; kill_after <= 3; ++kill_after) {
    TempDir dir;
    const pid_t pid = fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      run(dir / "backup", kill_after);
      _exit(0);  // not reached: killed after epoch kill_after
    }
    int status = 0;
    waitpid(pid, &status, 0);
    BOOST_TEST_REQUIRE(WIFSIGNALED(status), "kill_after " << kill_after);
    BOOST_TEST(WTERMSIG(status) == SIGKILL);
    BOOST_TEST_REQUIRE(fs::exists(dir / "backup/latest.safetensors"));
    const auto [resumed, from] = run(dir / "backup", -1);
    BOOST_TEST(from == kill_after);
    BOOST_TEST(bitwise_equal(resumed, reference), "kill_after " << kill_after);
  }
  xtape::kernels::set_num_threads(saved_threads);
}

BOOST_AUTO_TEST_SUITE_END()
