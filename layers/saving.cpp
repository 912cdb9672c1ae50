// safetensors reading (every claim of the header checked against the file before it is used)
// and atomic writing.
#include "layers/saving.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/files.hpp"

namespace xtape::layers {

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  io::fail("safetensors", path, problem);
}

std::string bytes_word(std::uint64_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

// Bytes per element of every dtype of the format.
std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::uint64_t read_le_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// JSON text (a number token, a dumped string) cut for a message.
std::string excerpt(std::string text) {
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// A string value as JSON text for a message: escaped, ASCII only, cut.
std::string excerpt_string(std::string_view s) {
  return excerpt(
      json(std::string(s.substr(0, 48))).dump(-1, ' ', true, json::error_handler_t::replace));
}

// The header nests at most: object -> entry object -> shape / offsets array.
constexpr int k_max_depth = 3;

// Checks a header as nlohmann's SAX parser reads it and collects its tensors and metadata. No
// document tree is built: keys are checked for repeats as they arrive (one map lookup each)
// and every count the format bounds is checked as it grows, so time and memory stay linear in
// the header. The first problem is kept and parsing goes on to the end; problems are then
// reported in this order: not JSON, nested deeper than the format, the first other problem.
class HeaderReader {
 public:
  HeaderReader(SafetensorsFile& f, std::uint64_t data_size) : f_(f), data_size_(data_size) {}

  bool null() { return scalar("null"); }
  bool boolean(bool v) { return scalar(v ? "true" : "false"); }
  bool number_integer(json::number_integer_t v) { return scalar(std::to_string(v)); }
  bool number_unsigned(json::number_unsigned_t v) {
    if (stopped_) return true;
    if (where_ == Where::shape) {
      if (entry_.shape.size() == k_safetensors_max_rank) {
        return problem(tensor() + ": shape has more than " +
                       std::to_string(k_safetensors_max_rank) + " extents");
      }
      entry_.shape.push_back(static_cast<std::size_t>(v));
      return true;
    }
    if (where_ == Where::offsets) {
      if (offsets_ == 2) {
        return problem(tensor() + ": data_offsets must be an array [begin, end], got more than " +
                       "2 values");
      }
      (offsets_++ == 0 ? entry_.begin : entry_.end) = static_cast<std::size_t>(v);
      return true;
    }
    return scalar(std::to_string(v));
  }
  bool number_float(json::number_float_t, const std::string& text) { return scalar(excerpt(text)); }
  bool string(std::string& v) {
    if (stopped_) return true;
    if (where_ == Where::metadata) {
      f_.metadata.emplace(std::move(key_), std::move(v));
      return true;
    }
    if (where_ == Where::entry && field_ == "dtype") {
      if (dtype_size(v) == 0) return problem(tensor() + ": unknown dtype " + io::quoted(v));
      entry_.dtype = std::move(v);
      return true;
    }
    return scalar(excerpt_string(v));
  }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    if (!enter()) return true;
    switch (where_) {
      case Where::document:
        where_ = Where::top;
        return true;
      case Where::top:
        if (name_ == "__metadata__") {
          where_ = Where::metadata;
        } else {
          where_ = Where::entry;
          entry_ = SafetensorsEntry{};
          fields_ = 0;
        }
        return true;
      default:
        return scalar("an object");
    }
  }
  bool start_array(std::size_t) {
    if (!enter()) return true;
    if (where_ == Where::entry && field_ == "shape") {
      where_ = Where::shape;
      return true;
    }
    if (where_ == Where::entry && field_ == "data_offsets") {
      where_ = Where::offsets;
      offsets_ = 0;
      return true;
    }
    return scalar("an array");
  }
  bool key(std::string& k) {
    if (stopped_) return true;
    if (where_ == Where::top) {
      if (k == "__metadata__" ? metadata_seen_ : f_.tensors.count(k) != 0) {
        return problem("header repeats the key " + io::quoted(k));
      }
      if (k == "__metadata__") {
        metadata_seen_ = true;
      } else if (k.empty()) {
        return problem("a tensor has an empty name");
      } else if (!count_entry()) {
        return true;
      }
      name_ = std::move(k);
    } else if (where_ == Where::metadata) {
      if (f_.metadata.count(k) != 0)
        return problem("__metadata__ repeats the key " + io::quoted(k));
      if (!count_entry()) return true;
      key_ = std::move(k);
    } else {  // an entry
      static const std::array<const char*, 3> names = {"dtype", "shape", "data_offsets"};
      const auto it = std::find(names.begin(), names.end(), k);
      if (it == names.end()) {
        return problem(tensor() + ": unexpected field " + io::quoted(k) +
                       " (expected dtype, shape and data_offsets)");
      }
      const unsigned bit = 1u << (it - names.begin());
      if (fields_ & bit) return problem(tensor() + ": repeats the field " + io::quoted(k));
      fields_ |= bit;
      field_ = *it;
    }
    return true;
  }
  bool end_object() {
    --depth_;
    if (stopped_) return true;
    if (where_ == Where::entry) {
      finish_entry();
      where_ = Where::top;
    } else if (where_ == Where::metadata) {
      where_ = Where::top;
    } else {
      where_ = Where::done;
    }
    return true;
  }
  bool end_array() {
    --depth_;
    if (stopped_) return true;
    if (where_ == Where::offsets && offsets_ != 2) {
      return problem(tensor() + ": data_offsets must be an array [begin, end], got " +
                     std::to_string(offsets_) + (offsets_ == 1 ? " value" : " values"));
    }
    where_ = Where::entry;
    return true;
  }
  bool parse_error(std::size_t, const std::string& last_token,
                   const nlohmann::detail::exception& e) {
    // nlohmann's message quotes the last token read, which can be a megabyte long.
    std::string what = e.what();
    const std::string token = "last read: '" + last_token + "'";
    const std::size_t at = what.find(token);
    what = at == std::string::npos
               ? io::quoted(what, 300)
               : what.substr(0, at) + "last read: " + io::quoted(last_token, 40) +
                     what.substr(at + token.size());
    syntax_ =
        "header is not valid JSON" +
        (name_.empty() ? std::string() : " (in the entry of tensor " + io::quoted(name_) + ")") +
        ": " + what;
    return false;
  }

  // The problem to report, "" when the header is valid.
  std::string result() const {
    if (!syntax_.empty()) return syntax_;
    if (too_deep_) return "header nests deeper than the safetensors format allows";
    return first_;
  }

 private:
  enum class Where { document, top, metadata, entry, shape, offsets, done };

  std::string tensor() const { return "tensor " + io::quoted(name_); }

  bool problem(std::string text) {
    if (!stopped_) first_ = std::move(text);
    stopped_ = true;
    return true;  // parse on: a later syntax error is what the message reports
  }

  // A container opens; false once problems stopped the collection.
  bool enter() {
    if (depth_++ >= k_max_depth) {
      too_deep_ = true;
      stopped_ = true;
    }
    return !stopped_;
  }

  // A value that is no part of the format where it appears.
  bool scalar(const std::string& got) {
    if (stopped_) return true;
    switch (where_) {
      case Where::document:
        return problem("header must be a JSON object, got " + got);
      case Where::top:
        if (name_ == "__metadata__")
          return problem("__metadata__ must be an object of strings, got " + got);
        return problem(tensor() + ": expected an object with dtype, shape and data_offsets, got " +
                       got);
      case Where::metadata:
        return problem("__metadata__ entry " + io::quoted(key_) + " must be a string, got " + got);
      case Where::entry:
        if (field_ == "dtype") return problem(tensor() + ": dtype must be a string, got " + got);
        if (field_ == "shape") return problem(tensor() + ": shape must be an array, got " + got);
        return problem(tensor() + ": data_offsets must be an array [begin, end], got " + got);
      case Where::shape:
        return problem(tensor() + ": shape extent " + std::to_string(entry_.shape.size()) +
                       ": expected a non-negative integer, got " + got);
      case Where::offsets:
        return problem(tensor() + ": data_offsets " + (offsets_ == 0 ? "begin" : "end") +
                       ": expected a non-negative integer, got " + got);
      default:
        return problem("unexpected value " + got);
    }
  }

  bool count_entry() {
    if (++entries_ <= k_safetensors_max_entries) return true;
    problem("header has more than " + std::to_string(k_safetensors_max_entries) +
            " entries (tensors and metadata keys)");
    return false;
  }

  void finish_entry() {
    static const std::array<const char*, 3> names = {"dtype", "shape", "data_offsets"};
    for (unsigned i = 0; i < names.size(); ++i) {
      if (!(fields_ & (1u << i))) {
        problem(tensor() + ": missing field '" + names[i] + "'");
        return;
      }
    }
    SafetensorsEntry& e = entry_;
    std::size_t count = 1, nbytes = 0;
    bool overflow = false;
    for (std::size_t d : e.shape) overflow = overflow || __builtin_mul_overflow(count, d, &count);
    if (overflow || __builtin_mul_overflow(count, dtype_size(e.dtype), &nbytes)) {
      problem(tensor() + ": the byte size of shape " + shape_str(e.shape) + " overflows");
      return;
    }
    const std::string offsets =
        "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) {
      problem(tensor() + ": " + offsets + " end before they begin");
    } else if (e.end > data_size_) {
      problem(tensor() + ": " + offsets + " run past the data section of " +
              bytes_word(data_size_) + " (truncated file?)");
    } else if (e.end - e.begin != nbytes) {
      problem(tensor() + ": " + e.dtype + " shape " + shape_str(e.shape) + " needs " +
              bytes_word(nbytes) + ", " + offsets + " hold " + bytes_word(e.end - e.begin));
    } else {
      f_.tensors.emplace(name_, std::move(e));
    }
  }

  SafetensorsFile& f_;
  const std::uint64_t data_size_;
  Where where_ = Where::document;
  int depth_ = 0;
  std::size_t entries_ = 0;
  bool metadata_seen_ = false, stopped_ = false, too_deep_ = false;
  std::string name_;   // the current top-level key
  std::string key_;    // the current metadata key
  std::string field_;  // the current field of an entry
  unsigned fields_ = 0;
  std::size_t offsets_ = 0;
  SafetensorsEntry entry_;
  std::string syntax_, first_;
};

// The header length from the first 8 bytes of a file of `size` bytes, checked against the file
// and the limit.
std::size_t header_length(const std::uint8_t* first8, std::uint64_t size, const std::string& path) {
  if (size < 8) {
    fail(path, "file of " + bytes_word(size) + " is too short for the 8-byte header length");
  }
  const std::uint64_t header_len = read_le_u64(first8);
  if (header_len > size - 8) {
    fail(path, "header length " + std::to_string(header_len) + " is larger than the file: " +
                   bytes_word(size - 8) + " follow the length field");
  }
  if (header_len > k_safetensors_max_header) {
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(k_safetensors_max_header) + " bytes");
  }
  return static_cast<std::size_t>(header_len);
}

// Parses and checks the header text into f.tensors and f.metadata, for a data section of
// `data_size` bytes.
void parse_header(const char* hb, std::size_t len, std::uint64_t data_size, SafetensorsFile& f) {
  const std::string& path = f.path;
  // nlohmann skips a byte order mark and stops at a NUL byte; the format allows neither.
  if (len >= 3 && std::memcmp(hb, "\xEF\xBB\xBF", 3) == 0) {
    fail(path, "header starts with a UTF-8 byte order mark (the format has none)");
  }
  if (const void* nul = len ? std::memchr(hb, 0, len) : nullptr) {
    fail(path, "header holds a NUL byte at offset " +
                   std::to_string(static_cast<const char*>(nul) - hb) +
                   " (it must be JSON text, padded with spaces)");
  }
  HeaderReader reader(f, data_size);
  json::sax_parse(hb, hb + len, &reader, json::input_format_t::json, /*strict=*/true);
  if (const std::string problem = reader.result(); !problem.empty()) fail(path, problem);

  // The data must be covered exactly once: sorted by offset, each tensor starts where the
  // previous one ended, and the last ends at the end of the file.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> order;
  order.reserve(f.tensors.size());
  for (const auto& [name, e] : f.tensors) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  std::size_t pos = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, e] : order) {
    if (e->begin < pos) {
      fail(path, "tensor " + io::quoted(*name) + " at data_offsets [" + std::to_string(e->begin) +
                     ", " + std::to_string(e->end) + "] overlaps tensor " + io::quoted(*prev) +
                     " ending at " + std::to_string(pos));
    }
    if (e->begin > pos) {
      fail(path, "bytes [" + std::to_string(pos) + ", " + std::to_string(e->begin) +
                     ") of the data belong to no tensor (before tensor " + io::quoted(*name) + ")");
    }
    pos = e->end;
    prev = name;
  }
  if (pos != data_size) {
    fail(path, "the data section holds " + bytes_word(data_size) + " but the tensors cover " +
                   bytes_word(pos) + " (trailing bytes)");
  }
}

[[noreturn]] void out_of_memory(const std::string& path, std::uint64_t allocating) {
  fail(path, "out of memory" + (allocating ? " allocating " + bytes_word(allocating)
                                           : std::string(" while reading")));
}

}  // namespace

SafetensorsFile parse_safetensors(std::vector<std::uint8_t> bytes, const std::string& path) {
  try {
    SafetensorsFile f;
    f.path = path;
    const std::size_t header_len = header_length(bytes.data(), bytes.size(), path);
    f.data_start = 8 + header_len;
    parse_header(reinterpret_cast<const char*>(bytes.data() + 8), header_len,
                 bytes.size() - f.data_start, f);
    f.bytes = std::move(bytes);
    return f;
  } catch (const std::bad_alloc&) {
    out_of_memory(path, 0);
  }
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::uint64_t allocating = 0;
  try {
    io::InputFile in(path, "safetensors", "a safetensors file");
    const std::uint64_t size = in.size();
    // The header first (at most k_safetensors_max_header bytes): a file that is not what it
    // claims is refused before its data is allocated.
    std::array<std::uint8_t, 8> length{};
    const std::size_t got_length = in.read(length.data(), std::min<std::uint64_t>(size, 8));
    const std::size_t header_len =
        header_length(length.data(), got_length < 8 ? got_length : size, path);
    allocating = header_len;
    std::vector<char> header(header_len);
    allocating = 0;
    if (in.read(header.data(), header_len) != header_len) {
      fail(path, "the file shrank while it was read");
    }
    SafetensorsFile f;
    f.path = path;
    f.data_start = 8 + header_len;
    const std::uint64_t data_size = size - f.data_start;
    parse_header(header.data(), header_len, data_size, f);

    io::check_memory("safetensors", path, size, "the file");
    allocating = size;
    f.bytes.resize(static_cast<std::size_t>(size));
    allocating = 0;
    std::memcpy(f.bytes.data(), length.data(), 8);
    std::copy(header.begin(), header.end(), f.bytes.begin() + 8);
    if (in.read(f.bytes.data() + f.data_start, data_size) != data_size) {
      fail(path, "the file shrank while it was read");
    }
    return f;
  } catch (const std::bad_alloc&) {
    out_of_memory(path, allocating);
  }
}

Tensor SafetensorsFile::f32(const std::string& name, bool require_finite) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) fail(path, "no tensor " + io::quoted(name));
  const SafetensorsEntry& e = it->second;
  if (e.dtype != "F32") {
    fail(path, "tensor " + io::quoted(name) + ": expected dtype F32, got " + e.dtype);
  }
  Tensor t = Tensor::empty(e.shape);
  float* dst = t.data();
  const std::uint8_t* src = bytes.data() + data_start + e.begin;
  const std::size_t n = (e.end - e.begin) / 4;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t bits = std::uint32_t{src[4 * i]} | (std::uint32_t{src[4 * i + 1]} << 8) |
                               (std::uint32_t{src[4 * i + 2]} << 16) |
                               (std::uint32_t{src[4 * i + 3]} << 24);
    std::memcpy(dst + i, &bits, 4);
    if (require_finite && !std::isfinite(dst[i])) {
      fail(path, "tensor " + io::quoted(name) + " of shape " + shape_str(e.shape) + ": element " +
                     std::to_string(i) + " is " + (std::isnan(dst[i]) ? "NaN" : "infinite") +
                     " (a corrupt file or a diverged model)");
    }
  }
  return t;
}

std::string to_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& p : tensors) {
    if (p.first.empty() || p.first == "__metadata__") {
      throw std::invalid_argument("to_safetensors: invalid tensor name '" + p.first + "'");
    }
    if (!p.second.defined()) {
      throw std::invalid_argument("to_safetensors: tensor '" + p.first + "' is undefined");
    }
    order.push_back(&p);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (order[i]->first == order[i - 1]->first) {
      throw std::invalid_argument("to_safetensors: tensor name '" + order[i]->first +
                                  "' given twice");
    }
  }
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto* p : order) {
    const std::size_t nbytes = p->second.size() * 4;
    header[p->first] = {{"dtype", "F32"},
                        {"shape", p->second.shape()},
                        {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xFF));
  out += text;
  for (const auto* p : order) {
    const float* src = p->second.data();
    for (std::size_t i = 0, n = p->second.size(); i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, src + i, 4);
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((bits >> (8 * b)) & 0xFF));
    }
  }
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, to_safetensors(tensors, metadata));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  io::write_file_atomic(path, {bytes});
}

}  // namespace xtape::layers
