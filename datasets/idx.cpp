// IDX reading, plain or gzip (inflated with zlib straight into the array), with every size
// claim in the header checked before it is trusted; atomic writing.
#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

#include "io/files.hpp"

namespace xtape::datasets {

namespace {

constexpr std::uint8_t k_type_ubyte = 0x08;
// Deflate's largest expansion: a 258-byte match costs at least 2 bits, so no stream inflates to
// more than 1032 times its size (the zlib FAQ's figure); a larger claim is a lie.
constexpr std::uint64_t k_deflate_max_ratio = 1032;
// Compressed bytes read from the file at a time.
constexpr std::size_t k_gzip_input_chunk = std::size_t{1} << 18;
// How much content after the claimed data is inflated to say how much there is.
constexpr std::size_t k_trailing_probe = std::size_t{1} << 20;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  io::fail("read_idx", path, problem);
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

std::string bytes_word(std::uint64_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

// The content of an IDX file: the file's bytes, or, when it starts with the gzip magic
// (1F 8B), the inflated bytes of its gzip members. Bytes after the last member that do not
// start another member are refused, as is a stream that is cut short or corrupt (zlib checks
// each member's CRC and length).
class Content {
 public:
  explicit Content(const std::string& path) : file_(path, "read_idx", "an IDX file") {
    sniffed_ = file_.read(sniff_.data(), sniff_.size());
    gzip_ = sniffed_ == 2 && sniff_[0] == 0x1F && sniff_[1] == 0x8B;
    if (!gzip_) return;
    in_.resize(k_gzip_input_chunk);
    std::memcpy(in_.data(), sniff_.data(), sniffed_);
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(sniffed_);
    read_from_file_ = sniffed_;
    const int ret = inflateInit2(&zs_, 15 + 16);  // gzip framing only
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    if (ret != Z_OK) file_.fail("cannot initialise zlib (error " + std::to_string(ret) + ")");
    inflating_ = true;
  }
  ~Content() {
    if (inflating_) inflateEnd(&zs_);
  }
  Content(const Content&) = delete;
  Content& operator=(const Content&) = delete;

  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_.size(); }

  // Reads up to n bytes of content into dst; returns fewer only at the end of the content.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    std::size_t done = 0;
    if (!gzip_) {
      for (; sniff_pos_ < sniffed_ && done < n; ++sniff_pos_) dst[done++] = sniff_[sniff_pos_];
      return done + file_.read(dst + done, n - done);
    }
    while (done < n && !stream_end_) {
      if (zs_.avail_in == 0 && !file_end_) refill();
      const auto room = static_cast<uInt>(std::min<std::size_t>(n - done, 1u << 30));
      zs_.next_out = dst + done;
      zs_.avail_out = room;
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      done += room - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        member_end();
      } else if (ret == Z_BUF_ERROR && zs_.avail_in == 0 && file_end_) {
        file_.fail("corrupt or truncated gzip stream: the file ends inside the compressed data");
      } else if (ret == Z_BUF_ERROR && zs_.avail_in != 0) {
        file_.fail("corrupt gzip stream: zlib cannot make progress");
      } else if (ret == Z_MEM_ERROR) {
        throw std::bad_alloc();
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        file_.fail(std::string("corrupt or truncated gzip stream: ") +
                   (zs_.msg ? zs_.msg : "zlib error " + std::to_string(ret)));
      }
    }
    return done;
  }

 private:
  // Moves the unread compressed bytes to the front of the buffer and reads more after them.
  void refill() {
    if (zs_.avail_in > 0 && zs_.next_in != in_.data())
      std::memmove(in_.data(), zs_.next_in, zs_.avail_in);
    zs_.next_in = in_.data();
    const std::size_t want = in_.size() - zs_.avail_in;
    const std::size_t got = file_.read(in_.data() + zs_.avail_in, want);
    zs_.avail_in += static_cast<uInt>(got);
    read_from_file_ += got;
    if (got < want) file_end_ = true;
  }

  // A member ended: the end of the file, another member (as `gzip -d` reads concatenated
  // files), or garbage.
  void member_end() {
    while (zs_.avail_in < 2 && !file_end_) refill();
    if (zs_.avail_in == 0) {
      stream_end_ = true;
      return;
    }
    if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1F && zs_.next_in[1] == 0x8B) {
      inflateReset(&zs_);
      return;
    }
    const std::uint64_t offset = read_from_file_ - zs_.avail_in;
    file_.fail("trailing garbage after the gzip stream: " +
               bytes_word(std::max(file_.size(), read_from_file_) - offset) + " at offset " +
               std::to_string(offset) + " that do not start a gzip member");
  }

  io::InputFile file_;
  std::array<std::uint8_t, 2> sniff_{};
  std::size_t sniffed_ = 0, sniff_pos_ = 0;
  bool gzip_ = false, inflating_ = false, file_end_ = false, stream_end_ = false;
  std::vector<unsigned char> in_;
  z_stream zs_{};
  std::uint64_t read_from_file_ = 0;
};

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

U8Array read_content(Content& in, const std::string& path, std::uint64_t& allocating) {
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

  std::array<std::uint8_t, 4 * 255> dims_raw{};
  const std::size_t got_dims = in.read(dims_raw.data(), 4 * rank);
  if (got_dims < 4 * rank) {
    fail(path, "truncated header: rank " + std::to_string(rank) + " needs " + bytes_word(4 * rank) +
                   " of extents after the magic number, got " + std::to_string(got_dims));
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
  const std::uint64_t header_bytes = 4 + 4 * rank;
  const std::string claim = "header " + shape_str(out.shape) + " claims " + bytes_word(expected);

  // Every claim is checked before the data buffer is allocated: against the size of a plain
  // file, against the most a gzip file of its size can inflate to, and against memory.
  if (!in.gzip()) {
    const std::uint64_t have = in.file_size() - std::min(in.file_size(), header_bytes);
    if (have < expected) {
      fail(path, "truncated data: " + claim + " after the " + std::to_string(header_bytes) +
                     "-byte header, the file holds " + bytes_word(have));
    }
    if (have > expected) {
      fail(path, "trailing garbage: " + claim + " after the " + std::to_string(header_bytes) +
                     "-byte header, the file holds " + std::to_string(have - expected) + " more");
    }
  } else {
    std::uint64_t most = 0;
    if (!__builtin_mul_overflow(in.file_size(), k_deflate_max_ratio, &most) &&
        header_bytes + expected > most) {
      fail(path, "impossible size: " + claim + ", but a gzip file of " +
                     bytes_word(in.file_size()) + " inflates to at most " + bytes_word(most) +
                     " (deflate expands at most " + std::to_string(k_deflate_max_ratio) +
                     ":1): corrupt or forged header");
    }
  }
  io::check_memory("read_idx", path, expected, "the data of shape " + shape_str(out.shape));

  allocating = expected;
  out.data.resize(expected);
  allocating = 0;
  const std::size_t got = in.read(out.data.data(), expected);
  if (got < expected) {
    fail(path,
         "truncated data: " + claim + " after the header, the stream holds " + bytes_word(got));
  }
  // Content beyond the claim (a gzip stream that inflates to more): inflated only far enough
  // to say how much.
  std::array<std::uint8_t, 1 << 16> extra{};
  std::size_t trailing = 0;
  for (std::size_t n; trailing < k_trailing_probe && (n = in.read(extra.data(), extra.size())) > 0;)
    trailing += n;
  if (trailing > 0) {
    fail(path, "trailing garbage: " + claim + " after the header, the stream holds " +
                   (trailing >= k_trailing_probe ? "at least " : "") + std::to_string(trailing) +
                   " more");
  }
  return out;
}

}  // namespace

U8Array read_idx(const std::string& path) {
  std::uint64_t allocating = 0;
  try {
    Content in(path);
    return read_content(in, path, allocating);
  } catch (const std::bad_alloc&) {
    fail(path,
         "out of memory" + (allocating ? " allocating " + bytes_word(allocating) + " for the data"
                                       : std::string(" while reading")));
  }
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
  // Atomic (temporary file, fsync, rename), and stale temporaries of killed writers go.
  io::write_file_atomic(
      path,
      {std::string_view(header.data(), header.size()),
       std::string_view(reinterpret_cast<const char*>(array.data.data()), array.data.size())},
      "write_idx");
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
