// layers/callbacks.cpp: hook order and logs, ModelCheckpoint (every epoch, best only, never over
// a good file with NaN), EarlyStopping (patience, restore_best_weights), TerminateOnNaN,
// CSVLogger and LearningRateScheduler.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "autodiff/ops.hpp"
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

using xtape::testing::blobs;

Sequential small_model(std::uint64_t seed, std::shared_ptr<optim::Optimizer> opt = nullptr) {
  clear_session();
  set_random_seed(seed);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 8, .activation = "relu"}),
                std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  if (opt)
    m.compile("categorical_crossentropy", opt, {"accuracy"});
  else
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

bool all_finite(const std::vector<Tensor>& ws) {
  for (const auto& t : ws)
    for (float v : t.to_vector())
      if (!std::isfinite(v)) return false;
  return true;
}

// Records every hook and the weights at every epoch end.
class Recorder : public Callback {
 public:
  std::vector<std::string> events;
  std::vector<Logs> epoch_logs, batch_logs;
  std::vector<std::vector<Tensor>> weights;
  void on_train_begin(const Logs&) override { events.push_back("train_begin"); }
  void on_train_end(const Logs&) override { events.push_back("train_end"); }
  void on_epoch_begin(int e, const Logs&) override {
    events.push_back("epoch_begin " + std::to_string(e));
  }
  void on_epoch_end(int e, const Logs& logs) override {
    events.push_back("epoch_end " + std::to_string(e));
    epoch_logs.push_back(logs);
    weights.push_back(model().get_weights());
  }
  void on_batch_begin(std::size_t b, const Logs&) override {
    events.push_back("batch_begin " + std::to_string(b));
  }
  void on_batch_end(std::size_t b, const Logs& logs) override {
    events.push_back("batch_end " + std::to_string(b));
    batch_logs.push_back(logs);
  }
};

// Runs a function at the beginning of a given epoch.
class AtEpochBegin : public Callback {
 public:
  AtEpochBegin(int epoch, std::function<void()> f) : epoch_(epoch), f_(std::move(f)) {}
  void on_epoch_begin(int e, const Logs&) override {
    if (e == epoch_) f_();
  }

 private:
  int epoch_;
  std::function<void()> f_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_callbacks)

BOOST_AUTO_TEST_CASE(hooks_run_in_order_with_logs) {
  auto [x, y] = blobs(40, 1);
  Sequential m = small_model(1);
  auto rec = std::make_shared<Recorder>();
  History h = m.fit(x, y,
                    {.batch_size = 16,
                     .epochs = 3,
                     .validation_split = 0.2f,
                     .verbose = 0,
                     .initial_epoch = 1,
                     .callbacks = {rec}});
  // 32 training rows: 2 batches per epoch; epochs 1 and 2.
  const std::vector<std::string> expected = {
      "train_begin",   "epoch_begin 1", "batch_begin 0", "batch_end 0",   "batch_begin 1",
      "batch_end 1",   "epoch_end 1",   "epoch_begin 2", "batch_begin 0", "batch_end 0",
      "batch_begin 1", "batch_end 1",   "epoch_end 2",   "train_end"};
  BOOST_TEST(rec->events == expected, boost::test_tools::per_element());
  BOOST_REQUIRE(rec->epoch_logs.size() == 2u);
  for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    BOOST_TEST(rec->epoch_logs[1].count(k) == 1u, k);
    BOOST_TEST(rec->epoch_logs[1].at(k) == h.history[k][1]);
  }
  BOOST_TEST(rec->batch_logs[0].count("loss") == 1u);
  BOOST_TEST(rec->batch_logs[0].count("val_loss") == 0u);
  // The last batch's running average is the epoch's loss.
  BOOST_TEST(rec->batch_logs[3].at("loss") == h.history["loss"][1]);
}

BOOST_AUTO_TEST_CASE(model_checkpoint_every_epoch_and_best_only) {
  TempDir dir;
  auto [x, y] = blobs(80, 2);
  Sequential m = small_model(2);
  auto rec = std::make_shared<Recorder>();
  auto every = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{
      .filepath = dir / "w-{epoch:03d}.safetensors", .save_weights_only = true});
  auto best = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{
      .filepath = dir / "best.safetensors", .monitor = "val_loss", .save_best_only = true});
  // Epoch 2 is made worse on purpose (huge learning rate), so best-only skips at least once.
  auto lr =
      std::make_shared<LearningRateScheduler>([](int e, float) { return e == 2 ? 5.f : 0.05f; });
  m.fit(x, y,
        {.batch_size = 16,
         .epochs = 4,
         .validation_split = 0.25f,
         .verbose = 0,
         .callbacks = {lr, rec, every, best}});
  BOOST_TEST(every->saves() == 4);
  for (int e = 1; e <= 4; ++e) {
    char name[32];
    std::snprintf(name, sizeof name, "w-%03d.safetensors", e);
    BOOST_TEST_CONTEXT(name) {
      BOOST_REQUIRE(fs::exists(dir / name));
      Sequential r = small_model(9);
      r.load_weights(dir / name);
      BOOST_TEST(bitwise_equal(r.get_weights(), rec->weights[static_cast<std::size_t>(e - 1)]));
    }
  }
  // best.safetensors holds the epoch of the lowest val_loss.
  std::size_t arg = 0;
  for (std::size_t e = 1; e < rec->epoch_logs.size(); ++e)
    if (rec->epoch_logs[e].at("val_loss") < rec->epoch_logs[arg].at("val_loss")) arg = e;
  BOOST_TEST(best->best().value() == rec->epoch_logs[arg].at("val_loss"));
  BOOST_TEST(best->saves() < 4);
  Sequential r = small_model(10);
  const int epoch = r.load_checkpoint(dir / "best.safetensors");
  BOOST_TEST(epoch == static_cast<int>(arg) + 1);
  BOOST_TEST(bitwise_equal(r.get_weights(), rec->weights[arg]));
  BOOST_TEST(every->path_for_epoch(7) == dir / "w-007.safetensors");
}

BOOST_AUTO_TEST_CASE(nan_loss_without_terminate_on_nan_throws) {
  auto [x, y] = blobs(32, 3);
  Sequential m = small_model(3);
  y.data()[5] = std::numeric_limits<float>::quiet_NaN();
  BOOST_CHECK_THROW(m.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0}), std::runtime_error);
  BOOST_TEST(all_finite(m.get_weights()));  // the bad update was not applied
}

BOOST_AUTO_TEST_CASE(terminate_on_nan_stops_and_keeps_the_good_checkpoint) {
  TempDir dir;
  auto [x, y] = blobs(64, 4);
  Sequential m = small_model(4);
  auto rec = std::make_shared<Recorder>();
  auto nan = std::make_shared<TerminateOnNaN>();
  auto ckpt =
      std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.filepath = dir / "c.safetensors"});
  auto every = std::make_shared<ModelCheckpoint>(
      ModelCheckpointOptions{.filepath = dir / "e{epoch}.safetensors", .save_weights_only = true});
  // From epoch 2 on, one sample's label is NaN: its batch's loss is NaN.
  Tensor ys = y;
  auto poison = std::make_shared<AtEpochBegin>(
      2, [ys]() mutable { ys.data()[3 * 10] = std::numeric_limits<float>::quiet_NaN(); });
  History h = m.fit(
      x, y,
      {.batch_size = 8, .epochs = 6, .verbose = 0, .callbacks = {poison, nan, rec, ckpt, every}});
  BOOST_TEST(nan->triggered());
  BOOST_TEST(h.history["loss"].size() == 3u);  // epochs 0, 1 and the stopped epoch 2
  BOOST_TEST(!std::isfinite(h.history["loss"][2]));
  BOOST_TEST(rec->events.back() == "train_end");
  BOOST_TEST(all_finite(m.get_weights()));
  BOOST_TEST(!fs::exists(dir / "e3.safetensors"));
  // The checkpoint holds epoch 2's end (index 1) and still loads.
  Sequential r = small_model(11);
  BOOST_TEST(r.load_checkpoint(dir / "c.safetensors") == 2);
  BOOST_TEST(bitwise_equal(r.get_weights(), rec->weights[1]));
}

BOOST_AUTO_TEST_CASE(early_stopping_patience_and_restore_best_weights) {
  auto [x, y] = blobs(60, 5);
  // Learning rate 0: the loss never improves after the first epoch.
  Sequential m =
      small_model(5, std::make_shared<optim::SGD>(optim::SGDOptions{.learning_rate = 0.f}));
  auto stop =
      std::make_shared<EarlyStopping>(EarlyStoppingOptions{.monitor = "loss", .patience = 2});
  History h = m.fit(
      x, y, {.batch_size = 16, .epochs = 20, .shuffle = false, .verbose = 0, .callbacks = {stop}});
  BOOST_TEST(h.history["loss"].size() == 3u);  // best at 0, no improvement at 1 and 2
  BOOST_TEST(stop->stopped_epoch() == 2);
  BOOST_TEST(stop->best_epoch() == 0);

  // Good epochs, then a ruinous learning rate: the weights of the best epoch come back.
  Sequential g = small_model(6);
  auto rec = std::make_shared<Recorder>();
  auto lr =
      std::make_shared<LearningRateScheduler>([](int e, float) { return e < 3 ? 0.05f : 5.f; });
  auto restore = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "val_loss", .patience = 2, .restore_best_weights = true});
  History hg = g.fit(x, y,
                     {.batch_size = 16,
                      .epochs = 30,
                      .validation_split = 0.25f,
                      .verbose = 0,
                      .callbacks = {lr, std::make_shared<TerminateOnNaN>(), rec, restore}});
  BOOST_TEST(hg.history["loss"].size() < 30u);
  const int best = restore->best_epoch();
  BOOST_TEST(best >= 0);
  BOOST_TEST(bitwise_equal(g.get_weights(), rec->weights[static_cast<std::size_t>(best)]));
  BOOST_CHECK_THROW(EarlyStopping({.patience = -1}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(csv_logger_rows_and_append) {
  TempDir dir;
  auto [x, y] = blobs(40, 6);
  Sequential m = small_model(7);
  const std::string path = dir / "log.csv";
  m.fit(x, y,
        {.batch_size = 16,
         .epochs = 2,
         .validation_split = 0.2f,
         .verbose = 0,
         .callbacks = {std::make_shared<CSVLogger>(CSVLoggerOptions{.filename = path})}});
  std::string text = read_file(path);
  BOOST_TEST(text.rfind("epoch,accuracy,loss,val_accuracy,val_loss\n0,", 0) == 0u, text);
  BOOST_TEST(std::count(text.begin(), text.end(), '\n') == 3);
  m.fit(x, y,
        {.batch_size = 16,
         .epochs = 3,
         .validation_split = 0.2f,
         .verbose = 0,
         .initial_epoch = 2,
         .callbacks = {
             std::make_shared<CSVLogger>(CSVLoggerOptions{.filename = path, .append = true})}});
  text = read_file(path);
  BOOST_TEST(std::count(text.begin(), text.end(), '\n') == 4);
  BOOST_TEST(text.find("\n2,") != std::string::npos, text);
  BOOST_TEST(text.find("epoch", 1) == std::string::npos);  // one header
}

BOOST_AUTO_TEST_CASE(learning_rate_scheduler_sets_the_rate) {
  auto [x, y] = blobs(32, 8);
  Sequential m = small_model(8);
  std::vector<float> seen;
  auto sched = std::make_shared<LearningRateScheduler>([&](int e, float lr) {
    seen.push_back(lr);
    return 0.1f * std::pow(0.5f, static_cast<float>(e));
  });
  m.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0, .callbacks = {sched}});
  BOOST_TEST(m.optimizer()->learning_rate() == 0.025f);
  BOOST_TEST(seen.size() == 3u);
  BOOST_TEST(seen[1] == 0.1f);
  // A rate of 0 leaves the weights alone.
  Sequential z = small_model(9, std::make_shared<optim::SGD>());
  const auto before = z.get_weights();
  z.fit(x, y,
        {.batch_size = 16,
         .epochs = 2,
         .verbose = 0,
         .callbacks = {std::make_shared<LearningRateScheduler>([](int, float) { return 0.f; })}});
  BOOST_TEST(bitwise_equal(z.get_weights(), before));
  auto bad = std::make_shared<LearningRateScheduler>([](int, float) { return -1.f; });
  BOOST_CHECK_THROW(z.fit(x, y, {.verbose = 0, .callbacks = {bad}}), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
