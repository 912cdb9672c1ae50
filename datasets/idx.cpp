// IDX reading through zlib (gzopen reads gzip and passes plain files through unchanged), with
// every size claim in the header checked before it is trusted.
#include <unistd.h>

#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace xtape::datasets {

namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t k_type_ubyte = 0x08;
// Largest single gzread request (its length argument is an unsigned int).
constexpr std::size_t k_max_chunk = std::size_t{1} << 30;
// The data buffer grows (doubling) as data arrives, starting from at most this many bytes, so a
// header that lies about the size costs little memory.
constexpr std::size_t k_initial_reserve = std::size_t{1} << 20;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error("read_idx: '" + path + "': " + problem);
}

const char* type_name(std::uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

std::string hex_byte(std::uint8_t b) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 0xF];
}

// Owns a gzFile and reads from it, turning zlib errors into messages naming the file.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (!fs::exists(st)) fail(path, "no such file");
    if (fs::is_directory(st)) fail(path, "is a directory, expected an IDX file");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) {
      fail(path, std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(file_, 1u << 17);
  }
  ~GzReader() {
    if (file_) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes into dst; returns how many were read (fewer only at the end of the data).
  std::size_t read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    while (done < n) {
      const auto want = static_cast<unsigned>(std::min(n - done, k_max_chunk));
      const int got = gzread(file_, out + done, want);
      if (got < 0) stream_error();
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    // A short read is either a clean end or a gzip stream cut short / corrupted.
    if (done < n) check_stream();
    return done;
  }

  // True when zlib reads the file without decompressing it (valid after the first read).
  bool is_plain() const { return gzdirect(file_) == 1; }

 private:
  void check_stream() {
    int code = Z_OK;
    const char* msg = gzerror(file_, &code);
    if (code != Z_OK) fail(path_, std::string("corrupt or truncated gzip stream: ") + msg);
  }
  [[noreturn]] void stream_error() {
    int code = Z_OK;
    const char* msg = gzerror(file_, &code);
    if (code == Z_ERRNO) fail(path_, std::string("read error: ") + std::strerror(errno));
    fail(path_, std::string("corrupt or truncated gzip stream: ") + msg);
  }

  std::string path_;
  gzFile file_ = nullptr;
};

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string bytes_word(std::size_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

}  // namespace

U8Array read_idx(const std::string& path) {
  GzReader in(path);

  std::array<std::uint8_t, 4> magic{};
  const std::size_t got_magic = in.read(magic.data(), magic.size());
  if (got_magic < magic.size()) {
    fail(path, "truncated header: expected a 4-byte magic number, got " + bytes_word(got_magic) +
                   " (empty or not an IDX file)");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail(path, "wrong magic number: expected 0x00 0x00 <type> <rank>, got " + hex_byte(magic[0]) +
                   " " + hex_byte(magic[1]) + " " + hex_byte(magic[2]) + " " + hex_byte(magic[3]) +
                   " (not an IDX file)");
  }
  if (magic[2] != k_type_ubyte) {
    fail(path, "unsupported element type " + hex_byte(magic[2]) + " (" + type_name(magic[2]) +
                   "): only 0x08 (unsigned byte) is supported");
  }
  const std::size_t rank = magic[3];
  if (rank == 0) fail(path, "rank 0 in the header: expected at least one dimension");

  std::vector<std::uint8_t> dims_raw(4 * rank);
  const std::size_t got_dims = in.read(dims_raw.data(), dims_raw.size());
  if (got_dims < dims_raw.size()) {
    fail(path, "truncated header: rank " + std::to_string(rank) + " needs " +
                   bytes_word(dims_raw.size()) + " of extents after the magic number, got " +
                   std::to_string(got_dims));
  }
  U8Array out;
  out.shape.resize(rank);
  std::size_t expected = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::uint32_t d = big_endian_u32(&dims_raw[4 * i]);
    // Extents are signed 32-bit integers in the IDX format.
    if (d > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max())) {
      fail(path, "absurd extent " + std::to_string(d) + " for axis " + std::to_string(i) +
                     ": expected a non-negative signed 32-bit integer");
    }
    out.shape[i] = d;
    if (__builtin_mul_overflow(expected, std::size_t{d}, &expected)) {
      fail(path, "absurd extents " + shape_str(out.shape) + "...: their product overflows");
    }
  }
  const std::size_t header_bytes = 4 + 4 * rank;
  const std::string claim = "header " + shape_str(out.shape) + " claims " + bytes_word(expected);

  // The size of a plain file is known: compare the claim with it before allocating anything.
  bool size_verified = false;
  if (in.is_plain()) {
    std::error_code ec;
    const std::uintmax_t file_bytes = fs::file_size(path, ec);
    if (!ec) {
      const std::uintmax_t have = file_bytes - header_bytes;
      if (have < expected) {
        fail(path, "truncated data: " + claim + " after the " + std::to_string(header_bytes) +
                       "-byte header, the file holds " + bytes_word(have));
      }
      if (have > expected) {
        fail(path, "trailing garbage: " + claim + " after the " + std::to_string(header_bytes) +
                       "-byte header, the file holds " + std::to_string(have - expected) + " more");
      }
      size_verified = true;
    }
  }

  // A verified size is read in one piece; otherwise (gzip) in doubling chunks, so that a header
  // that lies about the size cannot make us allocate far more than the stream decompresses to.
  const std::size_t first_chunk = size_verified ? expected : k_initial_reserve;
  std::size_t filled = 0;
  while (filled < expected) {
    const std::size_t step = std::min(expected - filled, std::max(filled, first_chunk));
    out.data.resize(filled + step);
    const std::size_t got = in.read(out.data.data() + filled, step);
    filled += got;
    if (got < step) {
      fail(path, "truncated data: " + claim + " after the header, the stream holds " +
                     bytes_word(filled));
    }
  }
  std::array<std::uint8_t, 4096> extra{};
  std::size_t trailing = 0;
  for (std::size_t got; (got = in.read(extra.data(), extra.size())) > 0;) trailing += got;
  if (trailing > 0) {
    fail(path, "trailing garbage: " + claim + " after the header, the stream holds " +
                   std::to_string(trailing) + " more");
  }
  return out;
}

void write_idx(const std::string& path, const U8Array& array) {
  const std::size_t rank = array.shape.size();
  if (rank == 0 || rank > 255) {
    throw std::invalid_argument("write_idx: '" + path + "': expected rank 1..255, got " +
                                std::to_string(rank));
  }
  for (std::size_t d : array.shape) {
    if (d > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      throw std::invalid_argument("write_idx: '" + path + "': extent " + std::to_string(d) +
                                  " of shape " + shape_str(array.shape) +
                                  " does not fit a signed 32-bit integer");
    }
  }
  if (shape_size(array.shape) != array.data.size()) {
    throw std::invalid_argument("write_idx: '" + path + "': shape " + shape_str(array.shape) +
                                " needs " + std::to_string(shape_size(array.shape)) +
                                " elements, got " + std::to_string(array.data.size()));
  }
  std::vector<char> header{0, 0, static_cast<char>(k_type_ubyte), static_cast<char>(rank)};
  for (std::size_t d : array.shape) {
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<char>(d >> shift));
  }
  // Written atomically: a temporary file in the same directory, flushed, then renamed over the
  // target, so an interrupted write leaves any previous file intact.
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    os.write(header.data(), static_cast<std::streamsize>(header.size()));
    os.write(reinterpret_cast<const char*>(array.data.data()),
             static_cast<std::streamsize>(array.data.size()));
    os.flush();
    os.close();
    if (!os) {
      std::remove(tmp.c_str());
      throw std::runtime_error("write_idx: '" + path + "': cannot write the file");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("write_idx: '" + path + "': cannot rename the temporary file into place");
  }
}

Tensor to_float(const U8Array& array, float scale) {
  if (shape_size(array.shape) != array.data.size()) {
    throw std::invalid_argument("to_float: shape " + shape_str(array.shape) + " needs " +
                                std::to_string(shape_size(array.shape)) + " elements, got " +
                                std::to_string(array.data.size()));
  }
  Tensor out = Tensor::empty(array.shape);
  float* dst = out.data();
  const std::uint8_t* src = array.data.data();
  const std::size_t n = array.data.size();
  for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale;
  return out;
}

U8Array expand_dims(U8Array array, int axis) {
  const long rank = static_cast<long>(array.shape.size());
  const long pos = axis < 0 ? axis + rank + 1 : axis;
  if (pos < 0 || pos > rank) {
    throw std::invalid_argument("expand_dims: axis " + std::to_string(axis) + " out of range [" +
                                std::to_string(-rank - 1) + ", " + std::to_string(rank) +
                                "] for shape " + shape_str(array.shape));
  }
  array.shape.insert(array.shape.begin() + pos, 1);
  return array;
}

Tensor to_categorical(const U8Array& labels, std::size_t num_classes) {
  if (shape_size(labels.shape) != labels.data.size()) {
    throw std::invalid_argument("to_categorical: shape " + shape_str(labels.shape) + " needs " +
                                std::to_string(shape_size(labels.shape)) + " labels, got " +
                                std::to_string(labels.data.size()));
  }
  if (num_classes == 0) {
    if (labels.data.empty()) {
      throw std::invalid_argument(
          "to_categorical: cannot infer num_classes (0 given) from an empty label array");
    }
    num_classes = std::size_t{*std::max_element(labels.data.begin(), labels.data.end())} + 1;
  }
  const auto bad = std::find_if(labels.data.begin(), labels.data.end(),
                                [&](std::uint8_t v) { return v >= num_classes; });
  if (bad != labels.data.end()) {
    throw std::invalid_argument("to_categorical: expected labels in [0, " +
                                std::to_string(num_classes - 1) + "], got " + std::to_string(*bad) +
                                " at index " + std::to_string(bad - labels.data.begin()) +
                                " of labels " + shape_str(labels.shape));
  }
  Shape shape = labels.shape;
  if (shape.size() > 1 && shape.back() == 1) shape.pop_back();
  shape.push_back(num_classes);
  Tensor out(shape, 0.f);
  float* dst = out.data();
  for (std::size_t i = 0; i < labels.data.size(); ++i) dst[i * num_classes + labels.data[i]] = 1.f;
  return out;
}

}  // namespace xtape::datasets
