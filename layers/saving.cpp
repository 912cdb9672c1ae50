// safetensors reading (every claim of the header checked against the file before it is used)
// and atomic writing.
#include "layers/saving.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace xtape::layers {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error("safetensors: '" + path + "': " + problem);
}

std::string bytes_word(std::size_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

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

// A JSON value as short text for messages (values from a hostile file can be huge).
std::string excerpt(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

std::size_t unsigned_number(const json& v, const std::string& path, const std::string& what) {
  // nlohmann keeps integers that fit 64 bits as integers; anything else (negative, fractional,
  // exponent, too large, inf) is another number type and is refused here.
  if (!v.is_number_unsigned()) {
    fail(path, what + ": expected a non-negative integer, got " + excerpt(v));
  }
  return v.get<std::size_t>();
}

// The header nests at most: object -> entry object -> shape / offsets array.
constexpr int k_max_depth = 3;

}  // namespace

SafetensorsFile parse_safetensors(std::vector<std::uint8_t> bytes, const std::string& path) {
  SafetensorsFile f;
  f.path = path;
  const std::size_t size = bytes.size();
  if (size < 8) {
    fail(path, "file of " + bytes_word(size) + " is too short for the 8-byte header length");
  }
  const std::uint64_t header_len = read_le_u64(bytes.data());
  if (header_len > size - 8) {
    fail(path, "header length " + std::to_string(header_len) + " is larger than the file: " +
                   bytes_word(size - 8) + " follow the length field");
  }
  if (header_len > k_safetensors_max_header) {
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(k_safetensors_max_header) + " bytes");
  }
  const auto* hb = reinterpret_cast<const char*>(bytes.data() + 8);
  const std::size_t data_start = 8 + static_cast<std::size_t>(header_len);
  const std::size_t data_size = size - data_start;

  // Top-level keys are checked for repeats (nlohmann would keep the last one silently), and
  // nesting deeper than the format's is refused without building the deep value.
  std::set<std::string> seen;
  std::string repeated, current;
  bool too_deep = false;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      current = parsed.get<std::string>();
      if (!seen.insert(current).second && repeated.empty()) repeated = current;
    }
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= k_max_depth) {
      too_deep = true;
      return false;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(hb, hb + header_len, cb, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    fail(path,
         "header is not valid JSON" +
             (current.empty() ? std::string() : " (in the entry of tensor '" + current + "')") +
             ": " + e.what());
  }
  if (too_deep) fail(path, "header nests deeper than the safetensors format allows");
  if (!repeated.empty()) fail(path, "header repeats the key '" + repeated + "'");
  if (!header.is_object()) {
    fail(path, std::string("header must be a JSON object, got a ") + header.type_name());
  }

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) {
        fail(path,
             std::string("__metadata__ must be an object of strings, got a ") + value.type_name());
      }
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) {
          fail(path, "__metadata__ entry '" + k + "' must be a string, got " + excerpt(v));
        }
        f.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (name.empty()) fail(path, "a tensor has an empty name");
    if (!value.is_object()) {
      fail(path, where + ": expected an object with dtype, shape and data_offsets, got " +
                     excerpt(value));
    }
    for (const auto& [k, _] : value.items()) {
      if (k != "dtype" && k != "shape" && k != "data_offsets") {
        fail(path,
             where + ": unexpected field '" + k + "' (expected dtype, shape and data_offsets)");
      }
    }
    for (const char* k : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(k)) fail(path, where + ": missing field '" + k + "'");
    }
    SafetensorsEntry e;
    const json& dtype = value["dtype"];
    if (!dtype.is_string()) fail(path, where + ": dtype must be a string, got " + excerpt(dtype));
    e.dtype = dtype.get<std::string>();
    const std::size_t elem = dtype_size(e.dtype);
    if (elem == 0) fail(path, where + ": unknown dtype '" + e.dtype + "'");

    const json& shape = value["shape"];
    if (!shape.is_array()) fail(path, where + ": shape must be an array, got " + excerpt(shape));
    std::size_t count = 1;
    bool overflow = false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      const std::size_t d =
          unsigned_number(shape[i], path, where + ": shape extent " + std::to_string(i));
      e.shape.push_back(d);
      overflow = overflow || __builtin_mul_overflow(count, d, &count);
    }
    std::size_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(count, elem, &nbytes)) {
      fail(path, where + ": the byte size of shape " + shape_str(e.shape) + " overflows");
    }

    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2) {
      fail(path, where + ": data_offsets must be an array [begin, end], got " + excerpt(offsets));
    }
    e.begin = unsigned_number(offsets[0], path, where + ": data_offsets begin");
    e.end = unsigned_number(offsets[1], path, where + ": data_offsets end");
    if (e.begin > e.end) {
      fail(path, where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] end before they begin");
    }
    if (e.end > data_size) {
      fail(path, where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] run past the data section of " +
                     bytes_word(data_size) + " (truncated file?)");
    }
    if (e.end - e.begin != nbytes) {
      fail(path, where + ": " + e.dtype + " shape " + shape_str(e.shape) + " needs " +
                     bytes_word(nbytes) + ", data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] hold " + bytes_word(e.end - e.begin));
    }
    f.tensors.emplace(name, std::move(e));
  }

  // The data must be covered exactly once: sorted by offset, each tensor starts where the
  // previous one ended, and the last ends at the end of the file.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> order;
  for (const auto& [name, e] : f.tensors) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  std::size_t pos = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, e] : order) {
    if (e->begin < pos) {
      fail(path, "tensor '" + *name + "' at data_offsets [" + std::to_string(e->begin) + ", " +
                     std::to_string(e->end) + "] overlaps tensor '" + *prev + "' ending at " +
                     std::to_string(pos));
    }
    if (e->begin > pos) {
      fail(path, "bytes [" + std::to_string(pos) + ", " + std::to_string(e->begin) +
                     ") of the data belong to no tensor (before tensor '" + *name + "')");
    }
    pos = e->end;
    prev = name;
  }
  if (pos != data_size) {
    fail(path, "the data section holds " + bytes_word(data_size) + " but the tensors cover " +
                   bytes_word(pos) + " (trailing bytes)");
  }
  f.bytes = std::move(bytes);
  f.data_start = data_start;
  return f;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) fail(path, "no such file");
  if (fs::is_directory(st)) fail(path, "is a directory, expected a safetensors file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(sb.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("read error: ") + std::strerror(err));
    }
    if (got == 0) break;  // the file shrank while we read: parse what is there
    done += static_cast<std::size_t>(got);
  }
  ::close(fd);
  bytes.resize(done);
  return parse_safetensors(std::move(bytes), path);
}

Tensor SafetensorsFile::f32(const std::string& name, bool require_finite) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) fail(path, "no tensor '" + name + "'");
  const SafetensorsEntry& e = it->second;
  if (e.dtype != "F32") {
    fail(path, "tensor '" + name + "': expected dtype F32, got " + e.dtype);
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
      fail(path, "tensor '" + name + "' of shape " + shape_str(e.shape) + ": element " +
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
  auto sys_fail = [&](const std::string& what, int err) {
    throw std::runtime_error("write_file_atomic: '" + path + "': " + what + ": " +
                             std::strerror(err));
  };
  std::string tmp = path + ".tmp" + std::to_string(::getpid()) + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) sys_fail("cannot create a temporary file in the target's directory", errno);
  auto abandon = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    sys_fail(what, err);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) abandon("cannot write the temporary file " + tmp);
    done += static_cast<std::size_t>(put);
  }
  // mkstemp creates 0600; give the file the usual permissions (0666 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) abandon("cannot set permissions of " + tmp);
  if (::fsync(fd) != 0) abandon("cannot fsync the temporary file " + tmp);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    sys_fail("cannot close the temporary file " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    sys_fail("cannot rename " + tmp + " over the target", err);
  }
  // Make the rename itself durable.
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace xtape::layers
