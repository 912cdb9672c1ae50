// libFuzzer target for gzip IDX files that inflate far beyond any input: the input is a recipe
//   <members: 1 byte> <fill: 1 byte> head 0xFF tail
// that becomes the file  gzip(head) + members x Z(fill) + tail,  where Z(fill) is a gzip member
// of 1 MiB of the byte `fill` (about 1 KB compressed, near deflate's 1032:1 limit); bits 0-5 of
// `members` count the members (up to 63 MiB inflated), bit 7 puts head in the file raw instead
// of compressed (for hand-made gzip headers). Headers claiming more or less than the stream
// holds, ratios near the limit, trailing members and garbage all come up. Any outcome but a
// consistent U8Array or a std::runtime_error is a bug.
#include <zlib.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "datasets/idx.hpp"
#include "fuzz/input_file.hpp"

namespace {

std::string gzip(std::string_view bytes) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&zs, bytes.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A gzip member of 1 MiB of `fill`, made once per value.
const std::string& member(std::uint8_t fill) {
  static std::array<std::string, 256> cache;
  if (cache[fill].empty()) cache[fill] = gzip(std::string(std::size_t{1} << 20, char(fill)));
  return cache[fill];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int members = data[0] & 63;
  const bool raw_head = (data[0] & 0x80) != 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t sep = rest.find('\xFF');
  const std::string_view head = rest.substr(0, sep);
  const std::string_view tail =
      sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 1);
  std::string file = raw_head ? std::string(head) : gzip(head);
  for (int i = 0; i < members; ++i) file += member(data[1]);
  file += tail;
  const std::string& path = xtape::fuzzing::input_path("fuzz_read_idx_big");
  xtape::fuzzing::write_input(path, file.data(), file.size());
  try {
    const xtape::datasets::U8Array a = xtape::datasets::read_idx(path);
    if (a.data.size() != xtape::shape_size(a.shape) || a.shape.empty()) std::abort();
    // The data never exceeds what the file can inflate to.
    if (a.data.size() > (head.size() + tail.size()) * 1032 + (std::size_t{1} << 20) * members)
      std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
