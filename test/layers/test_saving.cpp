// layers/saving.cpp and Sequential's save/load: safetensors round trips and interop, every
// validation error (model left unchanged), atomic writes, bitwise resume from a checkpoint, a
// SIGKILL test of checkpointing, and determinism (same seed; 1 thread against 2).
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autodiff/ops.hpp"
#include "kernels/threads.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/pooling.hpp"
#include "layers/saving.hpp"
#include "models/sequential.hpp"
#include "support/temp_dir.hpp"
#include "training/callbacks.hpp"

using namespace xtape;
using namespace xtape::layers;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A fresh directory under the temporary directory, removed with the object.
using TempDir = xtape::testing::TempDir;

// A small conv model with every kind of state a checkpoint holds (conv and dense weights, a
// Dropout RNG, the shuffle RNG). Names are fixed by clear_session().
Sequential conv_model(std::uint64_t seed) {
  clear_session();
  set_random_seed(seed);
  return Sequential({
      Input({8, 8, 1}),
      std::make_shared<Conv2D>(
          ConvOptions{.filters = 4, .kernel_size = {3, 3}, .activation = "relu"}),
      std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
      std::make_shared<Conv2D>(
          ConvOptions{.filters = 6, .kernel_size = {2, 2}, .activation = "relu"}),
      std::make_shared<Flatten>(),
      std::make_shared<Dropout>(0.25f),
      std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"}),
  });
}

// n images 8x8 whose class is the quadrant of their brightest pixel... plus noise.
std::pair<Tensor, Tensor> images(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  Tensor x = Tensor::empty({n, 8, 8, 1}), y(Shape{n, 3}, 0.f);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng.below(3);
    for (std::size_t p = 0; p < 64; ++p) x.data()[i * 64 + p] = 0.3f * rng.uniform();
    for (std::size_t r = 0; r < 4; ++r)
      x.data()[i * 64 + (c * 2 + r / 2) * 8 + (r % 2) + 2 * c] += 1.f;
    y.at({i, c}) = 1.f;
  }
  return {x, y};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header text and a data section, as any other tool could write it.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  return out + header + data;
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string out(v.size() * 4, '\0');
  std::memcpy(out.data(), v.data(), out.size());  // the machine is little-endian (x86-64)
  return out;
}

bool bitwise_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].shape() != b[i].shape() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * 4) != 0)
      return false;
  return true;
}

// The message of the std::runtime_error `f` throws ("" when it throws nothing).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_saving)

BOOST_AUTO_TEST_CASE(save_and_load_weights_round_trip_bitwise) {
  TempDir dir;
  Sequential a = conv_model(1);
  a.save_weights(dir / "w.safetensors");
  Sequential b = conv_model(2);
  BOOST_TEST(!bitwise_equal(a.get_weights(), b.get_weights()));
  b.load_weights(dir / "w.safetensors");
  BOOST_TEST(bitwise_equal(a.get_weights(), b.get_weights()));

  // The header is plain safetensors: readable names, F32, shapes, contiguous offsets, padded
  // to 8 bytes.
  const std::string bytes = read_file(dir / "w.safetensors");
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  BOOST_TEST(n % 8 == 0u);
  const json h = json::parse(bytes.substr(8, n));
  BOOST_TEST(h["conv2d/kernel"]["dtype"] == "F32");
  BOOST_TEST((h["conv2d/kernel"]["shape"] == json::array({3, 3, 1, 4})));
  BOOST_TEST((h["dense/bias"]["shape"] == json::array({3})));
  BOOST_TEST(h["__metadata__"]["format"] == "xtape.weights");
  BOOST_TEST(h.size() == 7u);  // 6 weights + metadata
  // Tensors are stored in name order: conv2d/bias first, at offset 0.
  BOOST_TEST((h["conv2d/bias"]["data_offsets"] == json::array({0, 16})));
  const std::size_t values = a.count_params();
  BOOST_TEST(bytes.size() == 8 + n + 4 * values);
}

BOOST_AUTO_TEST_CASE(loads_a_file_written_by_another_tool) {
  // As safetensors' Python writer lays it out: no metadata, other key order, no padding, a
  // tensor of another dtype that we never read.
  TempDir dir;
  clear_session();
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2})});
  const std::vector<float> k = {1.f, -2.f, 3.5f, 4.f}, b = {0.25f, -0.5f};
  const std::string header =
      R"({"dense/kernel":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
      R"("dense/bias":{"shape":[2],"data_offsets":[0,8],"dtype":"F32"}})";
  write_bytes(dir / "torch.safetensors", safetensors_bytes(header, f32_bytes(b) + f32_bytes(k)));
  m.load_weights(dir / "torch.safetensors");
  BOOST_TEST(m.layers()[1]->weight("kernel").to_vector() == k, boost::test_tools::per_element());
  BOOST_TEST(m.layers()[1]->weight("bias").to_vector() == b, boost::test_tools::per_element());

  const SafetensorsFile f = read_safetensors(dir / "torch.safetensors");
  BOOST_TEST(f.tensors.size() == 2u);
  BOOST_TEST(f.metadata.empty());
  BOOST_TEST(f.tensors.at("dense/bias").begin == 0u);
}

BOOST_AUTO_TEST_CASE(every_bad_file_is_refused_and_the_model_is_unchanged) {
  TempDir dir;
  clear_session();
  set_random_seed(3);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2, .name = "d"})});
  const auto before = m.get_weights();
  const std::string kernel = f32_bytes({1, 2, 3, 4}), bias = f32_bytes({5, 6});
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets +
           "}";
  };
  const std::string good_k = entry("F32", "[2,2]", "[0,16]"),
                    good_b = entry("F32", "[2]", "[16,24]");
  auto header = [](const std::string& k, const std::string& b, const std::string& extra = "") {
    return "{\"dense/kernel\":" + k + ",\"dense/bias\":" + b + extra + "}";
  };
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::string> message_parts;  // each must appear in the error
  };
  const std::string good = safetensors_bytes(header(good_k, good_b), kernel + bias);
  std::string huge_len = good;
  huge_len[5] = 1;  // header length around 2^40
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Case> cases = {
      {"too short", "abc", {"too short"}},
      {"header larger than the file", huge_len, {"larger than the file"}},
      {"not JSON", safetensors_bytes("{\"dense/kernel\": [", kernel + bias), {"not valid JSON"}},
      {"not an object", safetensors_bytes("[1,2]   ", ""), {"must be a JSON object"}},
      {"unknown name",
       safetensors_bytes(
           header(good_k, good_b, ",\"dense/gamma\":" + entry("F32", "[0]", "[24,24]")),
           kernel + bias),
       {"unknown tensor 'dense/gamma'"}},
      {"missing name",
       safetensors_bytes("{\"dense/kernel\":" + good_k + "}", kernel),
       {"missing tensor 'dense/bias'"}},
      {"shape mismatch",
       safetensors_bytes(header(entry("F32", "[1,4]", "[0,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "expected shape (2, 2), got (1, 4)"}},
      {"dtype mismatch",
       safetensors_bytes(header(entry("I32", "[2,2]", "[0,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "expected dtype F32, got I32"}},
      {"unknown dtype",
       safetensors_bytes(header(entry("F31", "[2,2]", "[0,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "unknown dtype 'F31'"}},
      {"offsets past the data (truncated)",
       safetensors_bytes(header(good_k, good_b), kernel + bias.substr(0, 5)),
       {"tensor 'dense/bias'", "run past the data"}},
      {"overlapping offsets",
       safetensors_bytes(header(good_k, entry("F32", "[2]", "[8,16]")), kernel + bias),
       {"overlaps"}},
      {"hole in the data",
       safetensors_bytes(header(good_k, entry("F32", "[2]", "[20,28]")), kernel + "xxxx" + bias),
       {"belong to no tensor"}},
      {"trailing bytes",
       safetensors_bytes(header(good_k, good_b), kernel + bias + "zz"),
       {"trailing bytes"}},
      {"size disagrees with shape",
       safetensors_bytes(header(entry("F32", "[2,2]", "[0,12]"), entry("F32", "[2]", "[12,24]")),
                         kernel + bias),
       {"tensor 'dense/", "needs"}},
      {"negative offset",
       safetensors_bytes(header(entry("F32", "[2,2]", "[-1,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "non-negative integer"}},
      {"non-finite header number",
       safetensors_bytes(header(entry("F32", "[2,1e400]", "[0,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'"}},
      {"fractional extent",
       safetensors_bytes(header(entry("F32", "[2,2.5]", "[0,16]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "non-negative integer"}},
      {"extent beyond 64 bits",
       safetensors_bytes(header(entry("F32", "[2,99999999999999999999999]", "[0,16]"), good_b),
                         kernel + bias),
       {"tensor 'dense/kernel'"}},
      {"shape product overflows",
       safetensors_bytes(header(entry("F32", "[4294967296,4294967296]", "[0,16]"), good_b),
                         kernel + bias),
       {"tensor 'dense/kernel'", "overflows"}},
      {"begin after end",
       safetensors_bytes(header(entry("F32", "[2,2]", "[16,0]"), good_b), kernel + bias),
       {"tensor 'dense/kernel'", "end before they begin"}},
      {"repeated key",
       safetensors_bytes(header(good_k, good_b, ",\"dense/kernel\":" + good_k), kernel + bias),
       {"repeats the key 'dense/kernel'"}},
      {"extra field",
       safetensors_bytes(
           header(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,16],"x":1})", good_b),
           kernel + bias),
       {"tensor 'dense/kernel'", "unexpected field 'x'"}},
      {"metadata not strings",
       safetensors_bytes(header(good_k, good_b, R"(,"__metadata__":{"a":1})"), kernel + bias),
       {"__metadata__"}},
      {"NaN weight",
       safetensors_bytes(header(good_k, good_b), f32_bytes({1, 2, nan, 4}) + bias),
       {"tensor 'dense/kernel'", "NaN"}},
      {"deep nesting", safetensors_bytes("{\"a\":[[[[[[1]]]]]]}", ""), {"nests deeper"}},
  };
  // The good file loads (so each case fails for its own reason).
  write_bytes(dir / "good.safetensors", good);
  {
    clear_session();
    Sequential g({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2, .name = "d"})});
    g.load_weights(dir / "good.safetensors");
    BOOST_TEST(g.layers()[1]->weight("kernel").to_vector() == std::vector<float>({1, 2, 3, 4}),
               boost::test_tools::per_element());
  }
  for (const Case& c : cases) {
    const std::string path = dir / "bad.safetensors";
    write_bytes(path, c.bytes);
    const std::string msg = error_of([&] { m.load_weights(path); });
    BOOST_TEST_CONTEXT(c.what << ": " << msg) {
      BOOST_TEST(!msg.empty());
      BOOST_TEST(contains(msg, path));
      for (const auto& part : c.message_parts)
        BOOST_TEST(contains(msg, part), "expected '" << part << "'");
      BOOST_TEST(bitwise_equal(m.get_weights(), before));
    }
  }
  BOOST_TEST(contains(error_of([&] { m.load_weights(dir / "absent"); }), "no such file"));
  BOOST_TEST(contains(error_of([&] { m.load_weights(dir.path.string()); }), "is a directory"));
  Sequential unbuilt({std::make_shared<Dense>(DenseOptions{.units = 2})});
  BOOST_CHECK_THROW(unbuilt.load_weights(dir / "good.safetensors"), std::logic_error);
}

BOOST_AUTO_TEST_CASE(writes_are_atomic_and_leave_no_temporary_files) {
  TempDir dir;
  const std::string path = dir / "f.bin";
  write_file_atomic(path, "first");
  write_file_atomic(path, "second, longer");
  BOOST_TEST(read_file(path) == "second, longer");
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += (void(e), 1);
  BOOST_TEST(files == 1u);
  const auto perms = fs::status(path).permissions();
  BOOST_TEST(((perms & fs::perms::owner_read) != fs::perms::none));
  // A directory that does not exist: an error naming the file, nothing created.
  BOOST_CHECK_THROW(write_file_atomic(dir / "no/such/dir/f", "x"), std::runtime_error);
  // Weights with a NaN are never written.
  clear_session();
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2})});
  m.save_weights(dir / "w.safetensors");
  const std::string saved = read_file(dir / "w.safetensors");
  m.layers()[1]->weight("kernel").data()[0] = std::numeric_limits<float>::quiet_NaN();
  BOOST_CHECK_THROW(m.save_weights(dir / "w.safetensors"), std::runtime_error);
  BOOST_TEST(read_file(dir / "w.safetensors") == saved);
}

BOOST_AUTO_TEST_CASE(stale_temporary_files_of_dead_processes_are_removed) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  // A dead process: a child that has exited and been reaped.
  const pid_t child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  BOOST_REQUIRE(waitpid(child, nullptr, 0) == child);
  const std::string dead = std::to_string(child);
  const std::string stale = path + ".tmp" + dead + ".AbC123";
  // Kept: this process's own (a save in progress on another thread), pid 1's (alive), another
  // target's, and names that do not match the pattern exactly.
  const std::vector<std::string> kept = {
      path + ".tmp" + std::to_string(getpid()) + ".XyZ789",
      path + ".tmp1.Qq1234",
      dir / ("other.safetensors.tmp" + dead + ".AbC123"),
      path + ".tmp" + dead + ".AbC12",
      path + ".tmp" + dead + ".AbC1234",
      path + ".tmp" + dead + "x.AbC123",
      path + ".tmp.AbC123",
      path + ".tmp" + dead + ".AbC-23",
      path + ".bak" + dead + ".AbC123",
  };
  write_bytes(stale, "partial");
  for (const auto& k : kept) write_bytes(k, "partial");
  // A directory of the pattern is not a temporary file of ours.
  const std::string stale_dir = path + ".tmp" + dead + ".Dir123";
  fs::create_directory(stale_dir);
  clear_session();
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2})});
  m.save_weights(path);
  BOOST_TEST(!fs::exists(stale));
  for (const auto& k : kept) BOOST_TEST(fs::exists(k), k << " should be kept");
  BOOST_TEST(fs::is_directory(stale_dir));
  m.load_weights(path);
}

BOOST_AUTO_TEST_CASE(load_messages_quote_names_from_the_file) {
  TempDir dir;
  clear_session();
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 2, .name = "d"})});
  m.compile("mse", "sgd");
  const std::string kernel = f32_bytes({1, 2, 3, 4}), bias = f32_bytes({5, 6});
  const std::string tensors = R"("d/kernel":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                              R"("d/bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]})";
  // An unknown tensor whose name holds a terminal escape and a newline.
  write_bytes(dir / "w.safetensors",
              safetensors_bytes("{" + tensors +
                                    R"(,"\u001b[2J\nx":{"dtype":"F32","shape":[0],)"
                                    R"("data_offsets":[24,24]}})",
                                kernel + bias));
  std::string msg = error_of([&] { m.load_weights(dir / "w.safetensors"); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, "unknown tensor '\\x1b[2J\\nx'"));
  BOOST_TEST(!contains(msg, "\x1b"));
  BOOST_TEST(!contains(msg, "\n"));
  // A checkpoint format of 1 MB with an escape sequence: quoted and cut.
  const std::string format = "\\u001b]0;title\\u0007" + std::string(1 << 20, 'f');
  write_bytes(dir / "c.safetensors",
              safetensors_bytes(R"({"__metadata__":{"format":")" + format + "\"}," + tensors + "}",
                                kernel + bias));
  msg = error_of([&] { m.load_checkpoint(dir / "c.safetensors"); });
  BOOST_TEST_INFO(msg.substr(0, 300));
  BOOST_TEST(contains(msg, "format '\\x1b]0;title\\x07fff"));
  BOOST_TEST(contains(msg, "bytes)"));
  BOOST_TEST(msg.size() < 500u);
  BOOST_TEST(!contains(msg, "\x1b"));
  BOOST_TEST(!contains(msg, "\x07"));
}

BOOST_AUTO_TEST_CASE(checkpoint_resumes_bitwise) {
  TempDir dir;
  auto [x, y] = images(96, 11);
  const FitOptions base{.batch_size = 16, .epochs = 5, .validation_split = 0.25f, .verbose = 0};
  // Uninterrupted: 5 epochs.
  Sequential a = conv_model(21);
  a.compile("categorical_crossentropy", "adam", {"accuracy"});
  History ha = a.fit(x, y, base);
  const auto reference = a.get_weights();
  const auto global_after = global_rng().state();

  // Interrupted after epoch 2 (checkpointed by the callback), resumed by a model created from
  // another seed: everything that matters comes from the file.
  Sequential b = conv_model(21);
  b.compile("categorical_crossentropy", "adam", {"accuracy"});
  FitOptions first = base;
  first.epochs = 2;
  first.callbacks = {std::make_shared<ModelCheckpoint>(
      ModelCheckpointOptions{.filepath = dir / "ckpt-{epoch:02d}.safetensors"})};
  b.fit(x, y, first);
  BOOST_TEST(fs::exists(dir / "ckpt-01.safetensors"));
  BOOST_TEST(fs::exists(dir / "ckpt-02.safetensors"));

  Sequential c = conv_model(99);
  c.compile("categorical_crossentropy", "adam", {"accuracy"});
  c.build({8, 8, 1});
  const int epoch = c.load_checkpoint(dir / "ckpt-02.safetensors");
  BOOST_TEST(epoch == 2);
  BOOST_TEST(c.optimizer()->iterations() == 2 * 5);  // 72 training rows / 16 = 5 steps
  FitOptions rest = base;
  rest.initial_epoch = epoch;
  History hc = c.fit(x, y, rest);
  BOOST_TEST(bitwise_equal(c.get_weights(), reference));
  BOOST_TEST(hc.history["loss"].back() == ha.history["loss"].back());
  BOOST_TEST(hc.history["val_loss"].back() == ha.history["val_loss"].back());
  BOOST_TEST((global_rng().state() == global_after));

  // The checkpoint also loads as weights.
  Sequential w = conv_model(5);
  w.build({8, 8, 1});
  w.load_weights(dir / "ckpt-02.safetensors");
  BOOST_TEST(bitwise_equal(w.get_weights(), b.get_weights()));
}

BOOST_AUTO_TEST_CASE(checkpoint_errors_leave_model_and_optimizer_unchanged) {
  TempDir dir;
  auto [x, y] = images(32, 12);
  Sequential a = conv_model(31);
  a.compile("categorical_crossentropy", "adam");
  a.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});
  a.save_checkpoint(dir / "c.safetensors", 1);
  a.save_weights(dir / "w.safetensors");

  Sequential b = conv_model(32);
  b.compile("categorical_crossentropy",
            std::make_shared<optim::SGD>(optim::SGDOptions{.momentum = 0.9f}));
  b.build({8, 8, 1});
  const auto before = b.get_weights();
  BOOST_TEST(contains(error_of([&] { b.load_checkpoint(dir / "c.safetensors"); }),
                      "optimizer 'adam' saved"));
  BOOST_TEST(
      contains(error_of([&] { b.load_checkpoint(dir / "w.safetensors"); }), "use load_weights"));
  BOOST_TEST(bitwise_equal(b.get_weights(), before));

  // A checkpoint missing one slot, or with a damaged RNG state, is refused as a whole.
  SafetensorsFile f = read_safetensors(dir / "c.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, _] : f.tensors)
    if (name != "optimizer/dense/kernel/velocity") tensors.emplace_back(name, f.f32(name));
  write_safetensors(dir / "c2.safetensors", tensors, f.metadata);
  Sequential c = conv_model(33);
  c.compile("categorical_crossentropy", "adam");
  c.build({8, 8, 1});
  const auto c_before = c.get_weights();
  BOOST_TEST(contains(error_of([&] { c.load_checkpoint(dir / "c2.safetensors"); }),
                      "'dense/kernel' has 1 of the 2 slots"));
  auto meta = f.metadata;
  meta["rng.shuffle"] = "12";
  tensors.clear();
  for (const auto& [name, _] : f.tensors) tensors.emplace_back(name, f.f32(name));
  write_safetensors(dir / "c3.safetensors", tensors, meta);
  BOOST_TEST(contains(error_of([&] { c.load_checkpoint(dir / "c3.safetensors"); }), "rng.shuffle"));
  BOOST_TEST(bitwise_equal(c.get_weights(), c_before));
  BOOST_TEST(c.optimizer()->iterations() == 0);
  BOOST_TEST(c.optimizer()->slots().empty());
}

// A training job that checkpoints every epoch is SIGKILLed at random moments, again and again,
// each restart resuming from the surviving checkpoint. Every checkpoint found after a kill must
// load, and resuming from it must reach the uninterrupted run's weights bitwise; so must the job
// that finally runs to the end.
namespace {

// Where a checkpointing child process dies, counted in checkpoint saves (no clock is read).
enum class KillPoint {
  before_write,  // the child reports the N-th save and waits; the parent sends SIGKILL
  in_write,      // the child lowers RLIMIT_FSIZE: the N-th save's write raises SIGXFSZ midway
  after_report,  // the child reports the N-th save and goes on; the parent sends SIGKILL at once
};

// Listed before the ModelCheckpoint, so its on_epoch_end runs just before each save begins.
class SaveProgress : public Callback {
 public:
  SaveProgress(int report_fd, int hold_fd, int kill_at, KillPoint point)
      : report_fd_(report_fd), hold_fd_(hold_fd), kill_at_(kill_at), point_(point) {}
  void on_epoch_end(int, const Logs&) override {
    if (++saves_ != kill_at_) return;
    if (point_ == KillPoint::in_write) {
      const rlimit limit{4096, 4096};  // far below a checkpoint's size
      setrlimit(RLIMIT_FSIZE, &limit);
      return;
    }
    const char byte = 1;
    if (write(report_fd_, &byte, 1) != 1) _exit(4);
    if (point_ == KillPoint::before_write) {
      char none;
      (void)read(hold_fd_, &none, 1);  // nothing is ever written: blocks until the kill
      _exit(5);                        // the parent is gone
    }
  }

 private:
  int report_fd_, hold_fd_, kill_at_;
  KillPoint point_;
  int saves_ = 0;
};

}  // namespace

BOOST_AUTO_TEST_CASE(sigkill_while_checkpointing) {
  // A job checkpointing every epoch is killed, restarted from what survived, killed again, and
  // so on; every surviving checkpoint must load and resume to the bits of an uninterrupted run.
  // Driven by counts: for N = 1..5 and each kill point, the child dies at its N-th save
  // (reported through a pipe), so the rounds, the kills and the surviving epochs are the same
  // on any machine under any load.
  TempDir dir;
  const int saved_threads = xtape::kernels::num_threads();
  xtape::kernels::set_num_threads(
      1);  // the child runs with one thread (libgomp's pool does not survive fork)
  constexpr int epochs = 12, max_n = 5;
  Rng data_rng(5);
  Tensor x = Tensor::empty({96, 32}), y(Shape{96, 4}, 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = data_rng.normal();
  for (std::size_t i = 0; i < 96; ++i)
    y.at({i, static_cast<std::size_t>(x.data()[i * 32] > 0) * 2 + (x.data()[i * 32 + 1] > 0)}) =
        1.f;
  auto make = [] {
    clear_session();
    set_random_seed(77);
    Sequential m({Input({32}),
                  std::make_shared<Dense>(DenseOptions{.units = 384, .activation = "relu"}),
                  std::make_shared<Dropout>(0.3f),
                  std::make_shared<Dense>(DenseOptions{.units = 4, .activation = "softmax"})});
    m.compile("categorical_crossentropy", "adam");
    m.build({32});
    return m;
  };
  const std::string ckpt = dir / "job.safetensors", final_path = dir / "final.safetensors";
  auto job = [&](int start_epoch, Sequential& m, std::shared_ptr<Callback> progress) {
    std::vector<std::shared_ptr<Callback>> callbacks;
    if (progress) callbacks.push_back(progress);
    callbacks.push_back(
        std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.filepath = ckpt}));
    m.fit(x, y,
          {.batch_size = 16,
           .epochs = epochs,
           .verbose = 0,
           .initial_epoch = start_epoch,
           .callbacks = callbacks});
  };
  Sequential ref = make();
  job(0, ref, nullptr);
  const auto reference = ref.get_weights();
  fs::remove(ckpt);

  auto temp_files = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir.path))
      if (e.path().filename().string().find(".tmp") != std::string::npos) ++n;
    return n;
  };
  // The epoch the surviving checkpoint holds (0: none), after checking it resumes bitwise.
  auto check_survivor = [&](const std::string& label) {
    if (!fs::exists(ckpt)) return 0;
    Sequential m = make();
    int epoch = -1;
    BOOST_CHECK_NO_THROW(epoch = m.load_checkpoint(ckpt));
    BOOST_TEST((epoch >= 1 && epoch <= epochs), label);
    if (epoch >= 1 && epoch < epochs) {
      m.fit(x, y, {.batch_size = 16, .epochs = epochs, .verbose = 0, .initial_epoch = epoch});
      BOOST_TEST(bitwise_equal(m.get_weights(), reference),
                 label << ": resumed from epoch " << epoch);
    }
    return epoch;
  };

  int start = 0;  // the epoch the next child resumes from (that of the surviving checkpoint)
  int rounds = 0, kills = 0, completed = 0, interrupted_writes = 0;
  for (int n = 1; n <= max_n; ++n)
    for (KillPoint point :
         {KillPoint::before_write, KillPoint::in_write, KillPoint::after_report}) {
      if (start + n > epochs) {  // the child would finish before its n-th save: start afresh
        fs::remove(ckpt);
        start = 0;
      }
      const std::string label =
          "round " + std::to_string(++rounds) + " (save " + std::to_string(n) + ", point " +
          std::to_string(static_cast<int>(point)) + ", from epoch " + std::to_string(start) + ")";
      int report[2], hold[2];
      BOOST_REQUIRE(pipe(report) == 0 && pipe(hold) == 0);
      std::cout.flush();
      std::fflush(nullptr);
      const pid_t pid = fork();
      BOOST_REQUIRE(pid >= 0);
      if (pid == 0) {
        signal(SIGXFSZ, SIG_DFL);  // not Boost.Test's handler: the write must end the process
        close(report[0]);
        close(hold[1]);
        int code = 0;
        try {
          Sequential m = make();
          const int from = fs::exists(ckpt) ? m.load_checkpoint(ckpt) : 0;
          job(from, m, std::make_shared<SaveProgress>(report[1], hold[0], n, point));
          m.save_weights(final_path);
        } catch (...) {
          code = 3;
        }
        _exit(code);
      }
      close(report[1]);
      close(hold[0]);
      if (point != KillPoint::in_write) {
        char byte;
        ssize_t got;
        do got = read(report[0], &byte, 1);
        while (got < 0 && errno == EINTR);
        if (got == 1) kill(pid, SIGKILL);  // 0: the child ended before its n-th save
      }
      int status = 0;
      BOOST_REQUIRE(waitpid(pid, &status, 0) == pid);
      close(report[0]);
      close(hold[1]);

      if (point != KillPoint::after_report) {
        const int signal_expected = point == KillPoint::in_write ? SIGXFSZ : SIGKILL;
        BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == signal_expected), label);
      }
      if (WIFEXITED(status)) {  // possible only after the report (the kill came late)
        BOOST_TEST(WEXITSTATUS(status) == 0, label);
        BOOST_TEST((point == KillPoint::after_report), label << ": completed");
        ++completed;
        Sequential done = make();
        done.load_weights(final_path);
        BOOST_TEST(bitwise_equal(done.get_weights(), reference), label);
        fs::remove(final_path);
        fs::remove(ckpt);  // the next job starts from scratch
        start = 0;
        continue;
      }
      BOOST_TEST_REQUIRE(WIFSIGNALED(status), label);
      ++kills;
      const int temps = temp_files();
      if (point == KillPoint::in_write) {
        BOOST_TEST(temps >= 1, label << ": the interrupted write left its temporary file");
        ++interrupted_writes;
      }
      for (const auto& e : fs::directory_iterator(dir.path))
        if (e.path().filename().string().find(".tmp") != std::string::npos) fs::remove(e.path());
      const int survived = check_survivor(label);
      // Killed before or inside the n-th save: the (n-1)-th (or the checkpoint it resumed from)
      // is what survives; after the report, that one or a later one.
      if (point == KillPoint::after_report)
        BOOST_TEST(survived >= start + n - 1, label << ": survivor " << survived);
      else
        BOOST_TEST(survived == start + n - 1, label << ": survivor " << survived);
      BOOST_TEST_MESSAGE(label << ": killed by signal " << WTERMSIG(status)
                               << ", checkpoint of epoch " << survived << " survived");
      start = survived;
    }
  // The last job runs to the end from whatever survived.
  fs::remove(final_path);
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 0;
    try {
      Sequential m = make();
      const int from = fs::exists(ckpt) ? m.load_checkpoint(ckpt) : 0;
      job(from, m, nullptr);
      m.save_weights(final_path);
    } catch (...) {
      code = 3;
    }
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  Sequential done = make();
  done.load_weights(final_path);
  BOOST_TEST(bitwise_equal(done.get_weights(), reference));
  xtape::kernels::set_num_threads(saved_threads);
  BOOST_TEST_MESSAGE("kill test: " << rounds << " rounds, " << kills << " kills, "
                                   << interrupted_writes << " inside a write, " << completed
                                   << " jobs completed after a late kill");
  // Every round before or inside a write is a kill; after the report, nearly always.
  BOOST_TEST(rounds == 3 * max_n);
  BOOST_TEST(kills + completed == rounds);
  BOOST_TEST(kills >= 2 * max_n);
  BOOST_TEST(interrupted_writes == max_n);
}

BOOST_AUTO_TEST_CASE(same_seed_same_weights_and_one_thread_equals_two) {
  auto [x, y] = images(64, 13);
  auto train = [&, x = x, y = y](int threads) {
    const int saved = xtape::kernels::num_threads();
    xtape::kernels::set_num_threads(threads);
    Sequential m = conv_model(41);
    m.compile("categorical_crossentropy", "adam");
    m.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});
    xtape::kernels::set_num_threads(saved);
    return m.get_weights();
  };
  const auto one = train(1), one_again = train(1), two = train(2), two_again = train(2);
  BOOST_TEST(bitwise_equal(one, one_again));
  BOOST_TEST(bitwise_equal(two, two_again));
  BOOST_TEST(bitwise_equal(one, two));
  // And training did change the weights.
  BOOST_TEST(!bitwise_equal(one, conv_model(41).get_weights()));
}

// The fuzzers start from fuzz/corpus: its files must stay valid for the fuzz model, or the
// fuzzer would never reach the code after validation.
BOOST_AUTO_TEST_CASE(fuzz_seed_corpus_loads) {
  const char* root = std::getenv("XTAPE_SOURCE_ROOT");
  const fs::path dir = fs::path(root ? root : ".") / "fuzz" / "corpus" / "safetensors";
  BOOST_REQUIRE_MESSAGE(fs::exists(dir / "checkpoint.safetensors"), "missing " << dir);
  clear_session();
  set_random_seed(1);
  Sequential m({Input({3}), std::make_shared<Dense>(DenseOptions{.units = 4}),
                std::make_shared<Dropout>(0.5f),
                std::make_shared<Dense>(DenseOptions{.units = 2})});
  m.compile("mse", "adam");
  BOOST_TEST(m.load_checkpoint((dir / "checkpoint.safetensors").string()) == 2);
  BOOST_TEST(m.optimizer()->iterations() == 6);
  BOOST_TEST(m.optimizer()->slots().size() == 4u);
  m.load_weights((dir / "weights.safetensors").string());
  m.load_weights((dir / "other-writer.safetensors").string());
  BOOST_TEST(m.layers()[1]->weight("kernel").at({0, 0}) == -0.6f);
}

BOOST_AUTO_TEST_SUITE_END()
