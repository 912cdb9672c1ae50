#include "training/event_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace xtape::layers {

namespace tfevents {

namespace {

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<std::uint32_t, 256> crc_table = make_crc_table();

// ---- protobuf wire format: tags, varints, fixed-width and length-delimited fields ----

enum Wire : std::uint32_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_tag(std::string& out, std::uint32_t field, Wire wire) {
  put_varint(out, (std::uint64_t{field} << 3) | wire);
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_double(std::string& out, std::uint32_t field, double v) {
  put_tag(out, field, fixed64);
  put_le(out, std::bit_cast<std::uint64_t>(v), 8);
}

// proto3 leaves a plain (non-oneof) field out when it holds its default; for a double that is
// the bit pattern of +0.0 (-0.0 is written).
void put_double_unless_zero(std::string& out, std::uint32_t field, double v) {
  if (std::bit_cast<std::uint64_t>(v) != 0) put_double(out, field, v);
}

void put_float(std::string& out, std::uint32_t field, float v) {
  put_tag(out, field, fixed32);
  put_le(out, std::bit_cast<std::uint32_t>(v), 4);
}

void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_tag(out, field, length_delimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_packed_doubles(std::string& out, std::uint32_t field, const std::vector<double>& v) {
  if (v.empty()) return;
  put_tag(out, field, length_delimited);
  put_varint(out, 8 * v.size());
  for (const double d : v) put_le(out, std::bit_cast<std::uint64_t>(d), 8);
}

// Event{wall_time, step, summary{value{...}}}, `value` a serialized Summary.Value.
std::string summary_event(double wall_time, std::int64_t step, const std::string& value) {
  std::string summary, event;
  put_bytes(summary, 1, value);
  put_double_unless_zero(event, 1, wall_time);
  if (step != 0) {
    put_tag(event, 2, varint);
    put_varint(event, static_cast<std::uint64_t>(step));  // negative: ten bytes, as protobuf
  }
  put_bytes(event, 5, summary);
  return event;
}

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t crc) {
  crc = ~crc;
  for (const char ch : data)
    crc = crc_table[(crc ^ static_cast<unsigned char>(ch)) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

std::uint32_t mask_crc(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string frame_record(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  put_le(out, payload.size(), 8);
  put_le(out, mask_crc(crc32c(out)), 4);
  out.append(payload);
  put_le(out, mask_crc(crc32c(payload)), 4);
  return out;
}

std::string file_version_event(double wall_time) {
  std::string event;
  put_double_unless_zero(event, 1, wall_time);
  put_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string scalar_event(double wall_time, std::int64_t step, std::string_view tag, float value) {
  std::string v;
  put_bytes(v, 1, tag);
  put_float(v, 2, value);  // a oneof member: written even when 0
  return summary_event(wall_time, step, v);
}

std::string histogram_event(double wall_time, std::int64_t step, std::string_view tag,
                            const Histogram& h) {
  std::string histo;
  put_double_unless_zero(histo, 1, h.min);
  put_double_unless_zero(histo, 2, h.max);
  put_double_unless_zero(histo, 3, h.num);
  put_double_unless_zero(histo, 4, h.sum);
  put_double_unless_zero(histo, 5, h.sum_squares);
  put_packed_doubles(histo, 6, h.bucket_limit);
  put_packed_doubles(histo, 7, h.bucket);
  std::string v;
  put_bytes(v, 1, tag);
  put_bytes(v, 5, histo);  // a oneof member: written even when empty
  return summary_event(wall_time, step, v);
}

Histogram make_histogram(std::span<const float> values, std::size_t buckets) {
  if (buckets == 0)
    throw std::invalid_argument("make_histogram: buckets must be at least 1, got 0");
  Histogram h;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const float f : values) {
    if (!std::isfinite(f)) continue;
    const double d = f;
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    h.num += 1;
    h.sum += d;
    h.sum_squares += d * d;
  }
  if (h.num == 0) return h;
  h.min = lo;
  h.max = hi;
  if (lo == hi) {
    h.bucket_limit = {hi};
    h.bucket = {h.num};
    return h;
  }
  const double width = (hi - lo) / static_cast<double>(buckets);
  h.bucket_limit.resize(buckets);
  for (std::size_t i = 0; i + 1 < buckets; ++i)
    h.bucket_limit[i] = lo + static_cast<double>(i + 1) * width;
  h.bucket_limit.back() = hi;
  h.bucket.assign(buckets, 0.0);
  // Bucket i holds limit[i-1] <= v < limit[i]; the last one also holds the maximum.
  const auto inner_end = h.bucket_limit.end() - 1;
  for (const float f : values) {
    if (!std::isfinite(f)) continue;
    const auto i = std::upper_bound(h.bucket_limit.begin(), inner_end, double{f});
    h.bucket[static_cast<std::size_t>(i - h.bucket_limit.begin())] += 1;
  }
  return h;
}

}  // namespace tfevents

namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string host(buf);
  std::replace(host.begin(), host.end(), '/', '_');
  return host;
}

std::string errno_text(int err) { return std::system_category().message(err); }

}  // namespace

EventFileWriter::EventFileWriter(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::runtime_error("EventFileWriter: cannot create the directory '" + dir +
                             "': " + (ec ? ec.message() : "it exists and is not a directory"));
  const double wall = now_seconds();
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%010lld", static_cast<long long>(wall));
  const std::string base = (fs::path(dir) / "events.out.tfevents.").string() + stamp + "." +
                           host_name() + "." + std::to_string(getpid());
  for (int n = 0; fd_ < 0; ++n) {
    path_ = base;
    if (n > 0) path_.append(".").append(std::to_string(n));
    path_.append(".v2");
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    const int err = errno;
    if (fd_ < 0 && (err != EEXIST || n == 999))
      throw std::runtime_error("EventFileWriter: cannot create '" + path_ +
                               "': " + errno_text(err));
  }
  queue(tfevents::file_version_event(wall));
}

EventFileWriter::~EventFileWriter() {
  try {
    close();
  } catch (...) {
  }
}

void EventFileWriter::queue(const std::string& payload) {
  if (fd_ < 0) throw std::runtime_error("EventFileWriter: '" + path_ + "' is closed");
  pending_ += tfevents::frame_record(payload);
}

void EventFileWriter::add_scalar(const std::string& tag, double value, std::int64_t step) {
  if (tag.empty()) throw std::invalid_argument("EventFileWriter::add_scalar: empty tag");
  queue(tfevents::scalar_event(now_seconds(), step, tag, static_cast<float>(value)));
}

void EventFileWriter::add_histogram(const std::string& tag, std::span<const float> values,
                                    std::int64_t step, std::size_t buckets) {
  if (tag.empty()) throw std::invalid_argument("EventFileWriter::add_histogram: empty tag");
  queue(tfevents::histogram_event(now_seconds(), step, tag,
                                  tfevents::make_histogram(values, buckets)));
}

void EventFileWriter::flush() {
  if (fd_ < 0) throw std::runtime_error("EventFileWriter: '" + path_ + "' is closed");
  std::size_t done = 0;
  // One write call for all queued records; a short write is continued by the next call.
  while (done < pending_.size()) {
    const ssize_t w = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      pending_.erase(0, done);
      throw std::runtime_error("EventFileWriter: cannot write '" + path_ + "': " + errno_text(err));
    }
    done += static_cast<std::size_t>(w);
  }
  pending_.clear();
}

void EventFileWriter::close() {
  if (fd_ < 0) return;
  std::exception_ptr failed;
  try {
    flush();
  } catch (...) {
    failed = std::current_exception();
  }
  const int rc = ::close(fd_);
  const int err = errno;
  fd_ = -1;
  if (failed) std::rethrow_exception(failed);
  if (rc != 0)
    throw std::runtime_error("EventFileWriter: cannot close '" + path_ + "': " + errno_text(err));
}

}  // namespace xtape::layers
