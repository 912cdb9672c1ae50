// libFuzzer target for safetensors headers far larger than any input: the input is a recipe
//   <e: 1 byte> <m: 2 bytes, little-endian> prefix 0xFF unit 0xFF suffix 0xFF data
// (missing parts are empty) expanded into the header
//   prefix + unit(0) + unit(1) + ... + unit(count - 1) + suffix,
// with count = 2^e + m mod 2^e (e at most 20: counts spread evenly over the scales), where every
// '#' of the unit becomes the repetition's index (so repeated entries get distinct names), cut
// at k_max_header bytes; the file is the 8-byte header length, the header and the data. It
// reaches what inputs of a few kilobytes cannot: headers of hundreds of kilobytes (a parser
// that is not linear in the header shows up as a timeout), long shapes, long strings and many
// metadata keys.
// Any outcome but a valid SafetensorsFile or a std::runtime_error is a bug.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "layers/saving.hpp"

using namespace xtape::layers;

namespace {

// Largest expanded header: big enough that a parse quadratic in the number of entries (about
// 9,000 here) exceeds the fuzzer's timeout, small enough that a linear one takes well under a
// second under the fuzzer's instrumentation.
constexpr std::size_t k_max_header = std::size_t{1} << 19;

std::vector<std::uint8_t> expand(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return {};
  const unsigned e = std::min<unsigned>(data[0] & 31, 20);
  const std::size_t count =
      (std::size_t{1} << e) + ((data[1] | (data[2] << 8)) & ((std::size_t{1} << e) - 1));
  std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
  std::string_view parts[4];
  for (int i = 0; i < 3; ++i) {
    const std::size_t sep = rest.find('\xFF');
    parts[i] = rest.substr(0, sep);
    rest = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 1);
  }
  parts[3] = rest;
  std::string header(parts[0]);
  for (std::size_t i = 0; i < count && header.size() < k_max_header && !parts[1].empty(); ++i) {
    const std::string index = std::to_string(i);
    for (char c : parts[1]) {
      if (c == '#')
        header += index;
      else
        header += c;
    }
  }
  header += parts[2];
  if (header.size() > k_max_header) header.resize(k_max_header);
  std::vector<std::uint8_t> file;
  file.reserve(8 + header.size() + parts[3].size());
  for (int i = 0; i < 8; ++i) file.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
  file.insert(file.end(), header.begin(), header.end());
  file.insert(file.end(), parts[3].begin(), parts[3].end());
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> file = expand(data, size);
  const std::size_t file_size = file.size();
  try {
    const SafetensorsFile f = parse_safetensors(std::move(file), "input");
    // What a valid file guarantees: within the limits, and the tensors tile the data section.
    if (f.tensors.size() + f.metadata.size() > k_safetensors_max_entries) std::abort();
    std::size_t covered = 0;
    for (const auto& [name, e] : f.tensors) {
      if (e.shape.size() > k_safetensors_max_rank || e.begin > e.end) std::abort();
      if (e.end > file_size - f.data_start) std::abort();
      covered += e.end - e.begin;
    }
    if (covered != file_size - f.data_start) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
