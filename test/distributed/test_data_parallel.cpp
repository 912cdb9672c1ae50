// Data-parallel fit (distributed/data_parallel.hpp) on the group the suite runs on: 2 ranks
// under mpirun (the CI), 1 without MPI (then every comparison is with itself, still exact).
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "distributed/data_parallel.hpp"
#include "layers/core.hpp"
#include "models/sequential.hpp"
#include "support/synthetic.hpp"
#include "training/callbacks.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::distributed::DataParallel;
using xtape::distributed::DataParallelOptions;

namespace {

std::shared_ptr<distributed::Communicator> w() { return distributed::world(); }

// Features (n, 6) and one-hot labels of 3 classes, the same on every rank.
std::pair<Tensor, Tensor> data(std::size_t n) {
  auto [x2, y] = xtape::testing::blobs(n, 7);
  Tensor x = Tensor::empty({n, 6});
  Rng rng(11);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < 6; ++j) x.at({i, j}) = j < 2 ? x2.at({i, j}) : 0.3f * rng.normal();
  return {x, y};
}

// A model without dropout; the same initial weights from the same seed.
std::unique_ptr<Sequential> make_model(std::uint64_t seed, bool dropout = false) {
  set_random_seed(seed);
  std::vector<std::shared_ptr<Layer>> ls = {
      Input({6}), std::make_shared<Dense>(DenseOptions{.units = 16, .activation = "relu"})};
  if (dropout) ls.push_back(std::make_shared<Dropout>(0.5f));
  ls.push_back(std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"}));
  auto m = std::make_unique<Sequential>(ls);
  m->compile(
      {.loss = {"categorical_crossentropy"},
       .optimizer = std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f}),
       .metrics = {"accuracy"}});
  return m;
}

std::vector<float> flat_weights(const Model& m) {
  std::vector<float> out;
  for (const auto& [_, t] : m.named_weights()) out.insert(out.end(), t.data(), t.data() + t.size());
  return out;
}

// True when `v` holds the same bits on every rank.
bool same_on_every_rank(const std::vector<float>& v) {
  auto c = w();
  std::vector<float> all(v.size() * std::size_t(c->size()));
  c->allgather(v.data(), v.size() * sizeof(float), all.data());
  for (int k = 0; k < c->size(); ++k)
    if (std::memcmp(all.data() + k * long(v.size()), v.data(), v.size() * sizeof(float)) != 0)
      return false;
  return true;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  float d = 0.f;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// A directory every rank names alike (rank 0 makes it).
std::string shared_dir(const std::string& tag) {
  std::string dir;
  if (w()->is_chief()) {
    dir = (std::filesystem::temp_directory_path() /
           ("xtape-dp-" + tag + "-" + std::to_string(::getpid())))
              .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  w()->broadcast(dir, 0);
  return dir;
}

// Records the data-set rows of every batch this rank trains on.
class RecordingModel : public Sequential {
 public:
  using Sequential::Sequential;
  Logs train_step(const Batch& b) override {
    rows.insert(rows.end(), b.rows.begin(), b.rows.end());
    ++steps;
    return Sequential::train_step(b);
  }
  std::vector<std::size_t> rows;
  std::size_t steps = 0;
};

// A train_step of the user's (README's custom step) that knows nothing of data parallelism.
class CustomStep : public Sequential {
 public:
  using Sequential::Sequential;
  Logs train_step(const Batch& b) override {
    const auto out = call_all(b.x, true);
    Tensor loss = compute_loss(b, out);
    auto& vars = training_variables();
    for (auto& v : vars) v.value.zero_grad();
    loss.backward();
    apply_gradients(vars);
    update_metrics(b, out, loss.item());
    return metrics_result();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(data_parallel)

// Without the step agreement the shares are taken equal (1/P): with equal shards that is the
// built-in step's b_r / b exactly.
BOOST_AUTO_TEST_CASE(a_custom_train_step_is_averaged_too) {
  auto [x, y] = data(80);
  auto builtin = make_model(17);
  (void)builtin->fit(x, y,
                     {.batch_size = 16,
                      .epochs = 2,
                      .verbose = 0,
                      .distribute = std::make_shared<DataParallel>()});
  set_random_seed(17);
  CustomStep custom({Input({6}),
                     std::make_shared<Dense>(DenseOptions{.units = 16, .activation = "relu"}),
                     std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  custom.compile(
      {.loss = {"categorical_crossentropy"},
       .optimizer = std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f}),
       .metrics = {"accuracy"}});
  (void)custom.fit(x, y,
                   {.batch_size = 16,
                    .epochs = 2,
                    .verbose = 0,
                    .distribute = std::make_shared<DataParallel>()});
  const auto a = flat_weights(*builtin), b = flat_weights(custom);
  BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  BOOST_TEST(same_on_every_rank(b));
}

// NOTE: the global batch of 20 is split 10/10 (the last batch of 3 rows of the 83 training rows
// 1/2); the mean gradient is then sum_r (b_r / b) g_r instead of one mean over 20 rows, equal to
// float32 rounding. Largest differences measured with 2 ranks: printed by the test.
BOOST_AUTO_TEST_CASE(two_ranks_match_one_rank_and_stay_bitwise_equal) {
  auto [x, y] = data(104);  // 83 training rows after validation_split 0.2, 21 validation rows
  const FitOptions base{.batch_size = 20, .epochs = 4, .validation_split = 0.2f, .verbose = 0};
  auto make_cbs = [] {
    return std::vector<std::shared_ptr<Callback>>{std::make_shared<ReduceLROnPlateau>(
        ReduceLROnPlateauOptions{.monitor = "val_loss",
                                 .factor = 0.5f,
                                 .patience = 1,
                                 .min_delta = 10.0})};  // reduces after every epoch's non-gain
  };

  auto ref = make_model(5);
  FitOptions ro = base;
  ro.callbacks = make_cbs();
  const History rh = ref->fit(x, y, ro);

  auto dp_model = make_model(5);
  auto dp = std::make_shared<DataParallel>();
  std::size_t unequal_steps = 0, steps = 0;
  FitOptions o = base;
  o.distribute = dp;
  o.callbacks = make_cbs();
  o.callbacks.push_back(std::make_shared<LambdaCallback>(
      LambdaCallbackOptions{.on_batch_end = [&](std::size_t, const Logs&) {
        ++steps;
        unequal_steps += !same_on_every_rank(flat_weights(*dp_model));
      }}));
  const History h = dp_model->fit(x, y, o);

  BOOST_TEST(steps == 4u * 5u);  // ceil(83 / 20) steps in each of 4 epochs, on every rank
  BOOST_TEST(unequal_steps == 0u);
  BOOST_TEST(dp->steps() == steps);
  const float dw = max_abs_diff(flat_weights(*ref), flat_weights(*dp_model));
  double dl = 0;
  for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    BOOST_REQUIRE_EQUAL(h.history.at(k).size(), 4u);
    for (std::size_t e = 0; e < 4; ++e) {
      dl = std::max(dl, std::abs(h.history.at(k)[e] - rh.history.at(k)[e]));
      // Every rank logs the same global values.
      std::vector<float> v = {float(h.history.at(k)[e])};
      BOOST_TEST(same_on_every_rank(v), k);
    }
  }
  if (w()->is_chief())
    BOOST_TEST_MESSAGE("data-parallel on " << w()->size() << " ranks vs 1: largest weight "
                                           << "difference " << dw << ", largest log difference "
                                           << dl);
  BOOST_TEST(dw <= 2e-5f);
  BOOST_TEST(dl <= 1e-5);
  BOOST_TEST(dp_model->optimizer()->learning_rate() == ref->optimizer()->learning_rate());
  BOOST_TEST(ref->optimizer()->learning_rate() < 0.01f);  // ReduceLROnPlateau acted
  // One bucket of every gradient: (6*16 + 16 + 16*3 + 3) floats.
  BOOST_TEST(dp->bytes_per_step() == (6u * 16 + 16 + 16 * 3 + 3) * 4);
  BOOST_TEST(dp->bucket_sizes().size() == 1u);
}

// Every rank starts from other weights (seed 40 + rank), a frozen layer and another optimizer
// step count: fit starts from rank 0's, weights frozen ones included, and the optimizer's.
BOOST_AUTO_TEST_CASE(rank0_weights_frozen_weights_and_optimizer_state_win) {
  auto [x, y] = data(64);
  auto local_ref = make_model(40);
  local_ref->layers()[1]->set_trainable(false);
  local_ref->compile(
      {.loss = {"categorical_crossentropy"},
       .optimizer = std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f})});
  std::vector<std::vector<float>> frozen0;
  for (const auto& wt : local_ref->layers()[1]->weights())
    frozen0.emplace_back(wt.value.data(), wt.value.data() + wt.value.size());
  (void)local_ref->fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});

  auto m = make_model(40 + std::uint64_t(w()->rank()));
  m->layers()[1]->set_trainable(false);
  m->compile(
      {.loss = {"categorical_crossentropy"},
       .optimizer = std::make_shared<optim::Adam>(optim::AdamOptions{.learning_rate = 0.01f})});
  if (!w()->is_chief()) m->optimizer()->set_iterations(7);
  std::size_t unequal = 0;
  (void)m->fit(x, y,
               {.batch_size = 16,
                .epochs = 1,
                .verbose = 0,
                .callbacks = {std::make_shared<LambdaCallback>(
                    LambdaCallbackOptions{.on_batch_end =
                                              [&](std::size_t, const Logs&) {
                                                unequal += !same_on_every_rank(flat_weights(*m));
                                              }})},
                .distribute = std::make_shared<DataParallel>()});
  BOOST_TEST(unequal == 0u);
  const auto frozen = m->layers()[1]->weights();
  BOOST_REQUIRE_EQUAL(frozen.size(), frozen0.size());
  for (std::size_t i = 0; i < frozen.size(); ++i)
    BOOST_TEST(std::memcmp(frozen[i].value.data(), frozen0[i].data(), frozen0[i].size() * 4) == 0);
  BOOST_TEST(m->optimizer()->iterations() == 4);  // 64 rows / 16, from rank 0's 0
  const float d = max_abs_diff(flat_weights(*m), flat_weights(*local_ref));
  BOOST_TEST(d <= 2e-5f);
}

// Each rank validates on its own rows; the global val_loss decides, so all stop together.
BOOST_AUTO_TEST_CASE(early_stopping_decides_on_global_values) {
  auto [x, y] = data(120);
  auto m = make_model(8);
  auto stop = std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{.monitor = "val_loss", .min_delta = 1e9, .patience = 1});
  const History h = m->fit(x, y,
                           {.batch_size = 16,
                            .epochs = 20,
                            .validation_split = 0.3f,
                            .verbose = 0,
                            .callbacks = {stop},
                            .distribute = std::make_shared<DataParallel>()});
  // min_delta 1e9: epoch 0 sets the best, epoch 1 does not improve on it, fit stops there.
  BOOST_TEST(stop->stopped_epoch() == 1);
  BOOST_TEST(h.history.at("val_loss").size() == 2u);
  std::vector<float> v(h.history.at("val_loss").begin(), h.history.at("val_loss").end());
  BOOST_TEST(same_on_every_rank(v));
}

BOOST_AUTO_TEST_CASE(one_process_data_parallel_is_bitwise_plain_fit) {
  auto [x, y] = data(90);
  auto a = make_model(9), b = make_model(9);
  (void)a->fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0});
  auto single = std::make_shared<DataParallel>(
      DataParallelOptions{.communicator = std::make_shared<distributed::SingleProcess>()});
  (void)b->fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0, .distribute = single});
  const auto wa = flat_weights(*a), wb = flat_weights(*b);
  BOOST_TEST(std::memcmp(wa.data(), wb.data(), wa.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(buckets_are_fixed_size_in_reverse_registration_order) {
  auto [x, y] = data(40);
  auto m = make_model(3);
  // 64 floats per bucket: kernel 6x16 = 96 and the rest are split by variable, last first.
  auto dp = std::make_shared<DataParallel>(DataParallelOptions{.bucket_bytes = 64 * 4});
  (void)m->fit(x, y, {.batch_size = 10, .epochs = 1, .verbose = 0, .distribute = dp});
  // Reverse order: dense_1/bias (3) + dense_1/kernel (48) = 51; dense/bias 16; dense/kernel 96.
  const std::vector<std::size_t> expect = {51, 16, 96};
  BOOST_TEST(dp->bucket_sizes() == expect, boost::test_tools::per_element());
  BOOST_TEST(dp->bytes_per_step() == (51u + 16 + 96) * 4);
  BOOST_CHECK_THROW(DataParallel(DataParallelOptions{.bucket_bytes = 0}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(shards_are_disjoint_cover_the_data_and_uneven_data_does_not_hang) {
  auto c = w();
  const std::size_t p = std::size_t(c->size());
  // 37 rows in batches of 8: the last batch of 5 is split too. 33 rows: with 2 ranks the last
  // batch of 1 row is dropped (fewer rows than ranks), so every rank runs 4 steps.
  for (std::size_t n : {std::size_t(37), std::size_t(33)}) {
    auto [x, y] = data(n);
    set_random_seed(1);
    RecordingModel m(
        {Input({6}), std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
    m.compile("categorical_crossentropy", "sgd");
    auto dp = std::make_shared<DataParallel>();
    for (int epoch = 0; epoch < 2; ++epoch) {
      m.rows.clear();
      m.steps = 0;
      (void)m.fit(x, y,
                  {.batch_size = 8,
                   .epochs = epoch + 1,
                   .verbose = 0,
                   .initial_epoch = epoch,
                   .distribute = dp});
      // Every rank's rows, padded with n to the same length.
      std::vector<std::uint64_t> mine(n, n), all(n * p);
      std::copy(m.rows.begin(), m.rows.end(), mine.begin());
      c->allgather(mine.data(), n * sizeof(std::uint64_t), all.data());
      std::vector<std::uint64_t> steps(p);
      const std::uint64_t s = m.steps;
      c->allgather(&s, sizeof s, steps.data());
      std::multiset<std::uint64_t> seen;
      for (auto v : all)
        if (v != n) seen.insert(v);
      const std::size_t dropped = p > 1 && n % 8 != 0 && n % 8 < p ? n % 8 : 0;
      BOOST_TEST(seen.size() == n - dropped, "n = " << n);
      BOOST_TEST(std::set<std::uint64_t>(seen.begin(), seen.end()).size() == seen.size());
      for (std::size_t k = 0; k < p; ++k) BOOST_TEST(steps[k] == (n - dropped + 7) / 8);
    }
  }
}

BOOST_AUTO_TEST_CASE(dropout_differs_per_rank_weights_do_not) {
  auto [x, y] = data(64);
  auto m = make_model(21, /*dropout=*/true);
  auto dp = std::make_shared<DataParallel>();
  std::size_t unequal = 0;
  (void)m->fit(x, y,
               {.batch_size = 16,
                .epochs = 1,
                .verbose = 0,
                .callbacks = {std::make_shared<LambdaCallback>(
                    LambdaCallbackOptions{.on_batch_end =
                                              [&](std::size_t, const Logs&) {
                                                unequal += !same_on_every_rank(flat_weights(*m));
                                              }})},
                .distribute = dp});
  BOOST_TEST(unequal == 0u);
  // The Dropout layer's RNG state: rank 0's continues the seeded stream, the others their own.
  const auto state = m->layers()[2]->save_own_state().at("rng");
  std::vector<float> code(4, 0.f);
  for (std::size_t i = 0; i < state.size(); ++i) code[i % 4] += float(state[i]) * float(i + 1);
  BOOST_TEST(same_on_every_rank(code) == (w()->size() == 1));
}

BOOST_AUTO_TEST_CASE(rank0_checkpoint_resumes_on_two_ranks_and_on_one) {
  auto [x, y] = data(80);
  const std::string dir = shared_dir("ckpt");
  const std::string pattern = dir + "/ckpt_{epoch}.safetensors";
  auto dp = std::make_shared<DataParallel>();
  auto orig = make_model(13);
  auto ckpt = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.filepath = pattern});
  (void)orig->fit(
      x, y, {.batch_size = 16, .epochs = 4, .verbose = 0, .callbacks = {ckpt}, .distribute = dp});
  BOOST_TEST(ckpt->saves() == (w()->is_chief() ? 4 : 0));  // only rank 0 writes
  const auto final_weights = flat_weights(*orig);
  const std::string epoch2 = ckpt->path_for_epoch(2);
  BOOST_REQUIRE(std::filesystem::exists(epoch2));

  // On every rank of the group: the same bits as the original run.
  auto again = make_model(99);  // other initial weights: the checkpoint replaces them
  again->build({6});
  BOOST_TEST(again->load_checkpoint(epoch2) == 2);
  (void)again->fit(x, y,
                   {.batch_size = 16,
                    .epochs = 4,
                    .verbose = 0,
                    .initial_epoch = 2,
                    .distribute = std::make_shared<DataParallel>()});
  const auto resumed = flat_weights(*again);
  BOOST_TEST(std::memcmp(resumed.data(), final_weights.data(), resumed.size() * 4) == 0);

  // On one rank alone (each process by itself): the original run to float32 rounding.
  auto alone = make_model(98);
  alone->build({6});
  BOOST_TEST(alone->load_checkpoint(epoch2) == 2);
  (void)alone->fit(x, y, {.batch_size = 16, .epochs = 4, .verbose = 0, .initial_epoch = 2});
  const float d = max_abs_diff(flat_weights(*alone), final_weights);
  if (w()->is_chief()) BOOST_TEST_MESSAGE("resumed on 1 rank: largest weight difference " << d);
  BOOST_TEST(d <= 2e-5f);
  w()->barrier();
  if (w()->is_chief()) std::filesystem::remove_all(dir);
}

// With Dropout every rank's masks come from streams derived from rank 0's state at each epoch's
// start, which the checkpoint holds: the resumed run draws the same masks on every rank.
BOOST_AUTO_TEST_CASE(rank0_checkpoint_with_dropout_resumes_bitwise) {
  auto [x, y] = data(80);
  const std::string dir = shared_dir("dropout");
  auto orig = make_model(23, /*dropout=*/true);
  auto ckpt = std::make_shared<ModelCheckpoint>(
      ModelCheckpointOptions{.filepath = dir + "/ckpt_{epoch}.safetensors"});
  (void)orig->fit(x, y,
                  {.batch_size = 16,
                   .epochs = 3,
                   .verbose = 0,
                   .callbacks = {ckpt},
                   .distribute = std::make_shared<DataParallel>()});
  const auto final_weights = flat_weights(*orig);
  auto again = make_model(77, /*dropout=*/true);
  again->build({6});
  BOOST_TEST(again->load_checkpoint(ckpt->path_for_epoch(1)) == 1);
  (void)again->fit(x, y,
                   {.batch_size = 16,
                    .epochs = 3,
                    .verbose = 0,
                    .initial_epoch = 1,
                    .distribute = std::make_shared<DataParallel>()});
  const auto resumed = flat_weights(*again);
  BOOST_TEST(std::memcmp(resumed.data(), final_weights.data(), resumed.size() * 4) == 0);
  w()->barrier();
  if (w()->is_chief()) std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_on_every_rank) {
  auto [x, y] = data(16);
  auto m = make_model(1);
  auto dp = std::make_shared<DataParallel>();
  if (w()->size() > 1)
    BOOST_CHECK_THROW(m->fit(x, y, {.batch_size = 1, .verbose = 0, .distribute = dp}),
                      std::invalid_argument);
  auto fresh = make_model(2);
  fresh.reset(new Sequential({std::make_shared<Dense>(DenseOptions{.units = 3})}));
  fresh->compile("mse", "sgd");
  ArrayDataset ds({x}, {y}, {.batch_size = 4});
  BOOST_CHECK_THROW(fresh->fit(ds, {.verbose = 0, .distribute = dp}), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
