// training/event_file.cpp and training/tensorboard.cpp: CRC32C and its mask against published
// vectors, the protobuf bytes of known events against bytes derived by hand, histograms, and
// fits whose event files are read back by a reader written here (its own bitwise CRC32C and
// protobuf decoder): every record's two CRCs, then tags, steps and values against the History.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"
#include "models/sequential.hpp"
#include "support/temp_dir.hpp"
#include "test/support/gradcheck.hpp"
#include "test/support/synthetic.hpp"
#include "training/callbacks.hpp"
#include "training/event_file.hpp"
#include "training/tensorboard.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;
namespace fs = std::filesystem;
namespace tb = xtape::layers::tfevents;
using tb::Histogram;
using tb::make_histogram;

namespace {

using TempDir = xtape::testing::TempDir;

// ---- an independent reader: bitwise CRC32C, record framing, protobuf fields ----

std::uint32_t ref_crc32c(std::string_view s) {
  std::uint32_t c = 0xffffffffu;
  for (const char ch : s) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::uint32_t ref_mask(std::uint32_t c) {
  const std::uint64_t rotated = ((c >> 15) | (std::uint64_t{c} << 17)) & 0xffffffffu;
  return static_cast<std::uint32_t>((rotated + 0xa282ead8u) & 0xffffffffu);
}

std::uint64_t read_le(std::string_view s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= std::uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

std::string le(std::uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

std::string le_double(double d) {
  std::uint64_t v;
  std::memcpy(&v, &d, 8);
  return le(v, 8);
}

std::string le_float(float f) {
  std::uint32_t v;
  std::memcpy(&v, &f, 4);
  return le(v, 4);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every record's payload; fails the test on a bad length or CRC.
std::vector<std::string> read_records(const fs::path& p) {
  const std::string file = slurp(p);
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < file.size()) {
    BOOST_REQUIRE_MESSAGE(file.size() - at >= 12, p << ": truncated header at " << at);
    const std::uint64_t len = read_le(file, at, 8);
    BOOST_REQUIRE_MESSAGE(read_le(file, at + 8, 4) == ref_mask(ref_crc32c(file.substr(at, 8))),
                          p << ": bad length CRC at " << at);
    BOOST_REQUIRE_MESSAGE(file.size() - at - 12 >= len + 4, p << ": truncated record at " << at);
    const std::string payload = file.substr(at + 12, len);
    BOOST_REQUIRE_MESSAGE(read_le(file, at + 12 + len, 4) == ref_mask(ref_crc32c(payload)),
                          p << ": bad payload CRC at " << at);
    out.push_back(payload);
    at += 12 + len + 4;
  }
  return out;
}

struct Field {
  std::uint32_t number;
  int wire;
  std::uint64_t value;    // varint, fixed64, fixed32
  std::string_view data;  // length-delimited
};

std::uint64_t get_varint(std::string_view s, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    BOOST_REQUIRE(at < s.size() && shift < 64);
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= std::uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
}

std::vector<Field> fields(std::string_view s) {
  std::vector<Field> out;
  std::size_t at = 0;
  while (at < s.size()) {
    const std::uint64_t key = get_varint(s, at);
    Field f{static_cast<std::uint32_t>(key >> 3), static_cast<int>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.value = get_varint(s, at);
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      BOOST_REQUIRE(s.size() - at >= std::size_t(n));
      f.value = read_le(s, at, n);
      at += n;
    } else {
      BOOST_REQUIRE_MESSAGE(f.wire == 2, "unexpected wire type " << f.wire);
      const std::uint64_t n = get_varint(s, at);
      BOOST_REQUIRE(s.size() - at >= n);
      f.data = s.substr(at, n);
      at += n;
    }
    out.push_back(f);
  }
  return out;
}

double as_double(std::uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

float as_float(std::uint64_t bits) {
  const auto b = static_cast<std::uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

std::vector<double> packed_doubles(std::string_view s) {
  BOOST_REQUIRE(s.size() % 8 == 0);
  std::vector<double> v;
  for (std::size_t i = 0; i < s.size(); i += 8) v.push_back(as_double(read_le(s, i, 8)));
  return v;
}

struct Event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::string file_version;
  bool has_summary = false;
  std::string tag;
  std::optional<float> simple_value;
  std::optional<Histogram> histo;
};

Histogram decode_histo(std::string_view s) {
  Histogram h;
  for (const Field& f : fields(s)) {
    if (f.number >= 1 && f.number <= 5) BOOST_REQUIRE(f.wire == 1);
    switch (f.number) {
      case 1:
        h.min = as_double(f.value);
        break;
      case 2:
        h.max = as_double(f.value);
        break;
      case 3:
        h.num = as_double(f.value);
        break;
      case 4:
        h.sum = as_double(f.value);
        break;
      case 5:
        h.sum_squares = as_double(f.value);
        break;
      case 6:
        h.bucket_limit = packed_doubles(f.data);
        break;
      case 7:
        h.bucket = packed_doubles(f.data);
        break;
      default:
        BOOST_ERROR("unexpected HistogramProto field " << f.number);
    }
  }
  return h;
}

Event decode_event(std::string_view payload) {
  Event e;
  for (const Field& f : fields(payload)) {
    if (f.number == 1) {
      BOOST_REQUIRE(f.wire == 1);
      e.wall_time = as_double(f.value);
    } else if (f.number == 2) {
      BOOST_REQUIRE(f.wire == 0);
      e.step = static_cast<std::int64_t>(f.value);
    } else if (f.number == 3) {
      e.file_version = std::string(f.data);
    } else if (f.number == 5) {
      e.has_summary = true;
      const auto values = fields(f.data);
      BOOST_REQUIRE_EQUAL(values.size(), 1u);  // one Value per event
      BOOST_REQUIRE(values[0].number == 1 && values[0].wire == 2);
      for (const Field& v : fields(values[0].data)) {
        if (v.number == 1) {
          e.tag = std::string(v.data);
        } else if (v.number == 2) {
          BOOST_REQUIRE(v.wire == 5);
          e.simple_value = as_float(v.value);
        } else if (v.number == 5) {
          e.histo = decode_histo(v.data);
        } else {
          BOOST_ERROR("unexpected Summary.Value field " << v.number);
        }
      }
    } else {
      BOOST_ERROR("unexpected Event field " << f.number);
    }
  }
  return e;
}

// The one event file in `dir`, decoded; checks the file name and the leading file_version.
std::vector<Event> read_dir(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  BOOST_REQUIRE_EQUAL(files.size(), 1u);
  const std::string name = files[0].filename().string();
  const std::regex pattern(R"(events\.out\.tfevents\.\d{10}\.(.+)\.(\d+)(\.\d+)?\.v2)");
  std::smatch m;
  BOOST_TEST_REQUIRE(std::regex_match(name, m, pattern), name);
  BOOST_TEST(m[2].str() == std::to_string(getpid()));
  std::vector<Event> events;
  for (const auto& payload : read_records(files[0])) events.push_back(decode_event(payload));
  BOOST_REQUIRE(!events.empty());
  BOOST_TEST(events[0].file_version == "brain.Event:2");
  BOOST_TEST(!events[0].has_summary);
  for (const Event& e : events) BOOST_TEST(e.wall_time > 1.5e9);  // seconds since 1970
  return events;
}

// tag -> (step, value) of the scalar events, in file order.
std::map<std::string, std::vector<std::pair<std::int64_t, float>>> scalars(
    const std::vector<Event>& events) {
  std::map<std::string, std::vector<std::pair<std::int64_t, float>>> out;
  for (const Event& e : events)
    if (e.simple_value) out[e.tag].emplace_back(e.step, *e.simple_value);
  return out;
}

// Records the batch logs and, at every epoch end, the weights (runs after TensorBoard).
class Recorder : public Callback {
 public:
  std::vector<Logs> batch_logs;
  std::vector<std::vector<std::pair<std::string, Tensor>>> weights;
  void on_batch_end(std::size_t, const Logs& logs) override { batch_logs.push_back(logs); }
  void on_epoch_end(int, const Logs&) override {
    weights.emplace_back();
    for (const auto& [name, t] : model().named_weights())
      weights.back().emplace_back(name, t.clone());
  }
};

Sequential small_model() {
  clear_session();
  set_random_seed(7);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 4, .activation = "relu"}),
                std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  m.compile("categorical_crossentropy", "sgd", {"accuracy"});
  return m;
}

void check_histogram(const Histogram& h, const Tensor& w) {
  const float* p = w.data();
  double sum = 0, sq = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    sum += p[i];
    sq += double(p[i]) * p[i];
  }
  BOOST_TEST(h.num == double(w.size()));
  BOOST_TEST(h.sum == sum);
  BOOST_TEST(h.sum_squares == sq);
  BOOST_TEST(h.min == double(*std::min_element(p, p + w.size())));
  BOOST_TEST(h.max == double(*std::max_element(p, p + w.size())));
  BOOST_REQUIRE_EQUAL(h.bucket.size(), h.bucket_limit.size());
  BOOST_REQUIRE(!h.bucket.empty());
  BOOST_TEST(h.bucket_limit.back() == h.max);
  double total = 0;
  for (std::size_t i = 0; i < h.bucket.size(); ++i) {
    total += h.bucket[i];
    if (i > 0) BOOST_TEST(h.bucket_limit[i] > h.bucket_limit[i - 1]);
  }
  BOOST_TEST(total == h.num);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training_tensorboard)

BOOST_AUTO_TEST_CASE(crc32c_matches_published_vectors) {
  using tb::crc32c;
  BOOST_TEST(crc32c("123456789") == 0xe3069283u);
  BOOST_TEST(crc32c("") == 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  BOOST_TEST(crc32c(zeros) == 0x8a9136aau);
  BOOST_TEST(crc32c(ones) == 0x62a8ab43u);
  BOOST_TEST(crc32c(up) == 0x46dd794eu);
  BOOST_TEST(crc32c(down) == 0x113fdb5cu);
  // Continuing a CRC equals the CRC of the whole.
  BOOST_TEST(crc32c("6789", crc32c("12345")) == 0xe3069283u);
  // The table-driven CRC agrees with the bitwise one on every byte value.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  BOOST_TEST(crc32c(all) == ref_crc32c(all));
}

BOOST_AUTO_TEST_CASE(masked_crc_rotates_and_adds_the_constant) {
  using tb::mask_crc;
  BOOST_TEST(mask_crc(0) == 0xa282ead8u);
  BOOST_TEST(mask_crc(1) == 0xa284ead8u);            // 1 << 17
  BOOST_TEST(mask_crc(0x8000u) == 0xa282ead9u);      // 0x8000 >> 15
  BOOST_TEST(mask_crc(0xffffffffu) == 0xa282ead7u);  // wraps
  BOOST_TEST(mask_crc(0xe3069283u) == ref_mask(0xe3069283u));
  // Every TensorFlow event file starts with 18 00 00 00 00 00 00 00 a3 7f 4b 22: the length 24
  // of its file_version event and that length's masked CRC.
  BOOST_TEST(mask_crc(tb::crc32c(le(24, 8))) == 0x224b7fa3u);
}

BOOST_AUTO_TEST_CASE(records_frame_the_payload_with_two_masked_crcs) {
  const std::string r = tb::frame_record("abc");
  BOOST_TEST(r == le(3, 8) + le(ref_mask(ref_crc32c(le(3, 8))), 4) + "abc" +
                      le(ref_mask(ref_crc32c("abc")), 4));
  const std::string empty = tb::frame_record("");
  BOOST_TEST(empty.size() == 16u);
  BOOST_TEST(empty.substr(12) == le(ref_mask(0), 4));
}

BOOST_AUTO_TEST_CASE(events_encode_to_the_bytes_derived_by_hand) {
  using namespace std::string_literals;
  // file_version: wall_time (field 1, fixed64: key 0x09), file_version (field 3, bytes: 0x1a).
  const std::string version = "\x09"s + le_double(1.5) + "\x1a\x0d"s + "brain.Event:2"s;
  BOOST_TEST(tb::file_version_event(1.5) == version);
  BOOST_TEST(version.size() == 24u);  // TensorFlow's first record
  // Value{tag "loss" (0x0a), simple_value 0.5f (field 2, fixed32: 0x15)}, 11 bytes; Summary{value
  // (0x0a)}, 13 bytes; Event{wall_time, step 300 (0x10, varint ac 02), summary (0x2a)}.
  const std::string value = "\x0a\x04"s + "loss"s + "\x15\x00\x00\x00\x3f"s;
  BOOST_TEST(value.size() == 11u);
  const std::string summary = "\x0a\x0b"s + value;
  BOOST_TEST(tb::scalar_event(2.0, 300, "loss", 0.5f) ==
             "\x09"s + le_double(2.0) + "\x10\xac\x02"s + "\x2a\x0d"s + summary);
  // step 0 is left out (proto3 default); simple_value 0 is written (a oneof member).
  const std::string a0 = "\x2a\x0a\x0a\x08\x0a\x01"s + "a"s + "\x15\x00\x00\x00\x00"s;
  BOOST_TEST(tb::scalar_event(2.0, 0, "a", 0.f) == "\x09"s + le_double(2.0) + a0);
  // A negative step is a ten-byte varint.
  const std::string a1 = "\x2a\x0a\x0a\x08\x0a\x01"s + "a"s + "\x15"s + le_float(1.f);
  BOOST_TEST(tb::scalar_event(2.0, -1, "a", 1.f) ==
             "\x09"s + le_double(2.0) + "\x10"s + std::string(9, '\xff') + "\x01"s + a1);
  // HistogramProto: min 0x09, max 0x11, num 0x19, sum 0x21, sum_squares 0x29 (fixed64);
  // bucket_limit 0x32 and bucket 0x3a packed (length 16 each); Value: tag, histo (0x2a).
  Histogram h;
  h.min = -1;
  h.max = 2;
  h.num = 3;
  h.sum = 1.5;
  h.sum_squares = 5.25;
  h.bucket_limit = {0.5, 2};
  h.bucket = {1, 2};
  const std::string histo = "\x09"s + le_double(-1) + "\x11"s + le_double(2) + "\x19"s +
                            le_double(3) + "\x21"s + le_double(1.5) + "\x29"s + le_double(5.25) +
                            "\x32\x10"s + le_double(0.5) + le_double(2) + "\x3a\x10"s +
                            le_double(1) + le_double(2);
  BOOST_TEST(histo.size() == 81u);
  const std::string hvalue = "\x0a\x01"s + "w"s + "\x2a\x51"s + histo;  // 81 = 0x51
  BOOST_TEST(hvalue.size() == 86u);
  BOOST_TEST(tb::histogram_event(2.0, 1, "w", h) ==
             "\x09"s + le_double(2.0) + "\x10\x01"s + "\x2a\x58"s + "\x0a\x56"s + hvalue);
  // Our decoder reads back what was encoded.
  const Event e = decode_event(tb::histogram_event(2.0, 1, "w", h));
  BOOST_TEST(e.step == 1);
  BOOST_TEST(e.tag == "w");
  BOOST_REQUIRE(e.histo);
  BOOST_TEST(e.histo->bucket_limit == h.bucket_limit, boost::test_tools::per_element());
  BOOST_TEST(e.histo->bucket == h.bucket, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(histograms_bucket_the_finite_values) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> v = {0.f, 1.f, 2.f, 3.f, std::nanf(""), inf, -inf};
  const Histogram h = make_histogram(v, 3);
  BOOST_TEST(h.min == 0.0);
  BOOST_TEST(h.max == 3.0);
  BOOST_TEST(h.num == 4.0);
  BOOST_TEST(h.sum == 6.0);
  BOOST_TEST(h.sum_squares == 14.0);
  BOOST_TEST(h.bucket_limit == (std::vector<double>{1, 2, 3}), boost::test_tools::per_element());
  // [0, 1), [1, 2), [2, 3]: the last bucket holds the maximum.
  BOOST_TEST(h.bucket == (std::vector<double>{1, 1, 2}), boost::test_tools::per_element());

  const std::vector<float> same = {-2.f, -2.f, -2.f};
  const Histogram s = make_histogram(same);
  BOOST_TEST(s.bucket_limit == (std::vector<double>{-2}), boost::test_tools::per_element());
  BOOST_TEST(s.bucket == (std::vector<double>{3}), boost::test_tools::per_element());

  const std::vector<float> nothing = {std::nanf("")};
  const Histogram n = make_histogram(nothing);
  BOOST_TEST(n.num == 0.0);
  BOOST_TEST(n.bucket.empty());
  BOOST_TEST(make_histogram({}, 30).bucket.empty());
  check_throws<std::invalid_argument>("buckets", [&] { make_histogram(v, 0); },
                                      {"make_histogram", "buckets", "got 0"});
}

BOOST_AUTO_TEST_CASE(the_writer_queues_whole_records_until_flush) {
  TempDir tmp;
  const fs::path dir = tmp.path / "a" / "b";
  EventFileWriter w(dir.string());
  BOOST_TEST(fs::path(w.path()).parent_path() == dir);
  BOOST_TEST(fs::file_size(w.path()) == 0u);  // the file_version record is queued
  w.add_scalar("x", 0.25, 4);
  const std::vector<float> values = {1.f, 2.f};
  w.add_histogram("h", values, 5);
  BOOST_TEST(fs::file_size(w.path()) == 0u);
  w.flush();
  auto records = read_records(w.path());
  BOOST_REQUIRE_EQUAL(records.size(), 3u);
  BOOST_TEST(decode_event(records[0]).file_version == "brain.Event:2");
  const Event x = decode_event(records[1]);
  BOOST_TEST(x.tag == "x");
  BOOST_TEST(x.step == 4);
  BOOST_TEST(x.simple_value.value() == 0.25f);
  const Event h = decode_event(records[2]);
  BOOST_TEST(h.tag == "h");
  BOOST_TEST(h.step == 5);
  BOOST_TEST(h.histo.value().num == 2.0);
  // Appended, never rewritten: a later flush adds to the same file.
  w.add_scalar("x", 0.5, 6);
  w.close();
  records = read_records(w.path());
  BOOST_REQUIRE_EQUAL(records.size(), 4u);
  BOOST_TEST(decode_event(records[3]).step == 6);
  check_throws<std::runtime_error>("closed", [&] { w.add_scalar("x", 1, 7); }, {"closed"});
  check_throws<std::invalid_argument>("tag",
                                      [&] { EventFileWriter(dir.string()).add_scalar("", 1, 0); },
                                      {"add_scalar", "empty tag"});
  // Two writers on one directory never share a file, even within the same second.
  EventFileWriter a(dir.string()), b(dir.string());
  BOOST_TEST(a.path() != b.path());
}

BOOST_AUTO_TEST_CASE(a_directory_that_cannot_be_made_is_reported) {
  TempDir tmp;
  const fs::path file = tmp.path / "plain";
  std::ofstream(file) << "x";
  check_throws<std::runtime_error>("writer", [&] { EventFileWriter((file / "logs").string()); },
                                   {"EventFileWriter", (file / "logs").string()});
  auto xy_ = xtape::testing::blobs(16, 3);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential m = small_model();
  auto tb = std::make_shared<TensorBoard>(TensorBoardOptions{.log_dir = file.string()});
  check_throws<std::runtime_error>(
      "fit", [&] { m.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {tb}}); },
      {(file / "train").string()});
}

BOOST_AUTO_TEST_CASE(options_are_checked) {
  check_throws<std::invalid_argument>("log_dir", [] { TensorBoard({.log_dir = ""}); },
                                      {"TensorBoard", "log_dir"});
  check_throws<std::invalid_argument>("histogram_freq", [] { TensorBoard({.histogram_freq = -1}); },
                                      {"histogram_freq", "-1"});
  check_throws<std::invalid_argument>("update_freq", [] { TensorBoard({.update_freq = "step"}); },
                                      {"update_freq", "\"step\""});
  check_throws<std::invalid_argument>(
      "both", [] { TensorBoard({.update_freq = "batch", .update_freq_batches = 3}); },
      {"update_freq", "3"});
  TensorBoard({.update_freq = "batch", .update_freq_batches = 1});
}

BOOST_AUTO_TEST_CASE(a_fit_writes_keras_event_files_that_read_back) {
  TempDir tmp;
  auto xy_ = xtape::testing::blobs(40, 5);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential m = small_model();
  auto tb = std::make_shared<TensorBoard>(TensorBoardOptions{
      .log_dir = (tmp.path / "run").string(), .histogram_freq = 1, .update_freq = "batch"});
  auto rec = std::make_shared<Recorder>();
  // 30 training rows in batches of 8: 4 batches per epoch.
  const History hist = m.fit(x, y,
                             {.batch_size = 8,
                              .epochs = 2,
                              .validation_split = 0.25f,
                              .verbose = 0,
                              .callbacks = {tb, rec}});
  BOOST_TEST(fs::path(tb->train_file()).parent_path() == tmp.path / "run" / "train");
  BOOST_TEST(fs::path(tb->validation_file()).parent_path() == tmp.path / "run" / "validation");

  const auto train = read_dir(tmp.path / "run" / "train");
  const auto val = read_dir(tmp.path / "run" / "validation");
  const auto ts = scalars(train), vs = scalars(val);
  const float lr = m.optimizer()->learning_rate();
  for (const auto& [tag, want] :
       std::map<std::string, std::vector<double>>{{"epoch_loss", hist.history.at("loss")},
                                                  {"epoch_accuracy", hist.history.at("accuracy")},
                                                  {"epoch_learning_rate", {lr, lr}}}) {
    BOOST_REQUIRE_MESSAGE(ts.count(tag), "train has no " << tag);
    BOOST_REQUIRE_EQUAL(ts.at(tag).size(), 2u);
    for (int e = 0; e < 2; ++e) {
      BOOST_TEST(ts.at(tag)[e].first == e);
      BOOST_TEST(ts.at(tag)[e].second == static_cast<float>(want[e]), tag);
    }
  }
  BOOST_TEST(vs.size() == 2u);  // epoch_loss and epoch_accuracy only, without "val_"
  for (const auto& [tag, want] : std::map<std::string, std::vector<double>>{
           {"epoch_loss", hist.history.at("val_loss")},
           {"epoch_accuracy", hist.history.at("val_accuracy")}}) {
    BOOST_REQUIRE_MESSAGE(vs.count(tag), "validation has no " << tag);
    BOOST_REQUIRE_EQUAL(vs.at(tag).size(), 2u);
    for (int e = 0; e < 2; ++e) {
      BOOST_TEST(vs.at(tag)[e].first == e);
      BOOST_TEST(vs.at(tag)[e].second == static_cast<float>(want[e]), tag);
    }
  }
  // Batch scalars: every batch, steps 1..8 across both epochs, the running averages.
  BOOST_REQUIRE_EQUAL(rec->batch_logs.size(), 8u);
  for (const std::string name : {"loss", "accuracy"}) {
    const auto& got = ts.at("batch_" + name);
    BOOST_REQUIRE_EQUAL(got.size(), 8u);
    for (std::size_t i = 0; i < 8; ++i) {
      BOOST_TEST(got[i].first == std::int64_t(i + 1));
      BOOST_TEST(got[i].second == static_cast<float>(rec->batch_logs[i].at(name)));
    }
    // The last batch's running average is the epoch's value.
    BOOST_TEST(got[3].second == static_cast<float>(hist.history.at(name)[0]));
  }
  BOOST_TEST(ts.size() == 5u);  // epoch_{loss,accuracy,learning_rate}, batch_{loss,accuracy}
  // Histograms of every weight at both epochs, as the weights were then.
  std::map<std::string, std::vector<std::pair<std::int64_t, Histogram>>> hs;
  for (const Event& e : train)
    if (e.histo) hs[e.tag].emplace_back(e.step, *e.histo);
  BOOST_REQUIRE_EQUAL(rec->weights.size(), 2u);
  BOOST_TEST(hs.size() == rec->weights[0].size());
  for (int e = 0; e < 2; ++e)
    for (const auto& [name, w] : rec->weights[e]) {
      const std::string tag = name + "/histogram";
      BOOST_REQUIRE_MESSAGE(hs.count(tag), "no histogram " << tag);
      BOOST_REQUIRE_EQUAL(hs.at(tag).size(), 2u);
      BOOST_TEST(hs.at(tag)[e].first == e);
      check_histogram(hs.at(tag)[e].second, w);
    }
  BOOST_TEST(hs.count("dense/kernel/histogram") + hs.count("dense_1/kernel/histogram") >= 1u);
}

BOOST_AUTO_TEST_CASE(update_freq_and_histogram_freq_count_batches_and_epochs) {
  TempDir tmp;
  auto xy_ = xtape::testing::blobs(24, 9);
  Tensor &x = xy_.first, &y = xy_.second;
  Sequential m = small_model();
  // 24 rows in batches of 8: 3 batches per epoch, 9 in all; every second batch: steps 2..8.
  auto tb = std::make_shared<TensorBoard>(TensorBoardOptions{
      .log_dir = (tmp.path / "run").string(), .histogram_freq = 2, .update_freq_batches = 2});
  const History hist = m.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .callbacks = {tb}});
  BOOST_TEST(!fs::exists(tmp.path / "run" / "validation"));  // no validation, no file
  BOOST_TEST(tb->validation_file().empty());
  const auto train = read_dir(tmp.path / "run" / "train");
  const auto ts = scalars(train);
  std::vector<std::int64_t> steps;
  for (const auto& [step, _] : ts.at("batch_loss")) steps.push_back(step);
  BOOST_TEST(steps == (std::vector<std::int64_t>{2, 4, 6, 8}), boost::test_tools::per_element());
  BOOST_TEST(ts.at("epoch_loss").size() == 3u);
  BOOST_TEST(ts.at("epoch_loss")[2].second == static_cast<float>(hist.history.at("loss")[2]));
  std::map<std::int64_t, int> histogram_steps;
  for (const Event& e : train)
    if (e.histo) ++histogram_steps[e.step];
  const int weights = static_cast<int>(m.named_weights().size());
  BOOST_TEST((histogram_steps == std::map<std::int64_t, int>{{0, weights}, {2, weights}}));

  // A second fit with the same callback starts new files; update_freq "epoch": no batch scalars.
  TempDir tmp2;
  auto quiet = std::make_shared<TensorBoard>(TensorBoardOptions{.log_dir = tmp2.path.string()});
  m.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {quiet}});
  const std::string first = quiet->train_file();
  m.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {quiet}});
  BOOST_TEST(quiet->train_file() != first);
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(tmp2.path / "train")) {
    ++files;
    std::vector<Event> events;
    for (const auto& p : read_records(entry.path())) events.push_back(decode_event(p));
    const auto s = scalars(events);
    BOOST_TEST(s.count("batch_loss") == 0u);
    BOOST_TEST(s.at("epoch_loss").size() == 1u);
  }
  BOOST_TEST(files == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
