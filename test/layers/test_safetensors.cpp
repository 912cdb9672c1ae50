// layers/saving.cpp, the safetensors reader: strict header parsing (repeated fields, a byte
// order mark, NUL bytes), the limits (entries, rank, header size) on large headers, messages that
// quote names from the file, and reading hostile paths (FIFO, symlink loop, trailing slash,
// permission, sparse files larger than memory).
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "layers/saving.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace xtape;
using namespace xtape::layers;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the temporary directory, removed with the object.
using TempDir = xtape::testing::TempDir;

// The bytes of a safetensors file: the 8-byte little-endian header length, the header, the data.
std::vector<std::uint8_t> file_bytes(const std::string& header, const std::string& data = "") {
  std::vector<std::uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string as_string(const std::vector<std::uint8_t>& b) {
  return std::string(b.begin(), b.end());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An empty F32 tensor's entry (shape [0], no bytes), valid anywhere in a file.
std::string empty_entry(const std::string& name) {
  return "\"" + name + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
}

// A header of n empty tensors t0, t1, ...
std::string many_tensors(std::size_t n) {
  std::string h = "{";
  h.reserve(60 * n);
  for (std::size_t i = 0; i < n; ++i) h += (i ? "," : "") + empty_entry("t" + std::to_string(i));
  return h + "}";
}

// The message of the std::runtime_error parse_safetensors throws for `bytes` ("" when none).
std::string parse_error(const std::vector<std::uint8_t>& bytes) {
  try {
    parse_safetensors(bytes, "mem");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::string read_error(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const std::string k_good_header =
    R"({"__metadata__":{"format":"x"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
const std::string k_good_data(8, '\x01');

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_safetensors)

BOOST_AUTO_TEST_CASE(repeated_fields_a_byte_order_mark_and_nul_bytes_are_refused) {
  const SafetensorsFile good = parse_safetensors(file_bytes(k_good_header, k_good_data), "mem");
  BOOST_TEST(good.tensors.size() == 1u);
  struct Case {
    const char* what;
    std::string header;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"dtype twice",
       R"({"a":{"dtype":"I32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       {"tensor 'a'", "repeats the field 'dtype'"}},
      {"shape twice",
       R"({"a":{"dtype":"F32","shape":[1],"shape":[2],"data_offsets":[0,8]}})",
       {"tensor 'a'", "repeats the field 'shape'"}},
      {"metadata key twice",
       R"({"__metadata__":{"format":"x","format":"y"},)"
       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       {"__metadata__", "repeats the key 'format'"}},
      {"__metadata__ twice",
       R"({"__metadata__":{},"__metadata__":{"format":"x"},)"
       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       {"repeats the key '__metadata__'"}},
      {"byte order mark", "\xEF\xBB\xBF" + k_good_header, {"byte order mark"}},
      {"NUL after the JSON",
       k_good_header + std::string("\0 {\"b\":1}", 9),
       {"NUL byte", "offset"}},
      {"NUL padding", k_good_header + std::string(8, '\0'), {"NUL byte"}},
  };
  for (const Case& c : cases) {
    const std::string msg = parse_error(file_bytes(c.header, k_good_data));
    BOOST_TEST_CONTEXT(c.what << ": " << msg) {
      BOOST_TEST(contains(msg, "'mem'"));
      for (const auto& part : c.parts) BOOST_TEST(contains(msg, part), "expected '" << part << "'");
    }
  }
  // Space padding (what writers use to align the data) is fine.
  BOOST_TEST(parse_error(file_bytes(k_good_header + "       ", k_good_data)).empty());
}

BOOST_AUTO_TEST_CASE(entry_count_is_capped_and_large_headers_parse_in_linear_time) {
  // At the cap: accepted (the old parser rescanned the top object at every entry: 65,536
  // entries took minutes).
  const SafetensorsFile at_cap =
      parse_safetensors(file_bytes(many_tensors(k_safetensors_max_entries)), "mem");
  BOOST_TEST(at_cap.tensors.size() == k_safetensors_max_entries);
  BOOST_TEST(at_cap.tensors.count("t65535") == 1u);
  // 80,000 entries: refused on the count.
  const std::string msg = parse_error(file_bytes(many_tensors(80'000)));
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, "more than " + std::to_string(k_safetensors_max_entries) + " entries"));
  // Metadata entries count too.
  std::string meta = R"({"__metadata__":{)";
  for (std::size_t i = 0; i <= k_safetensors_max_entries; ++i)
    meta += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":\"v\"";
  meta += "}}";
  BOOST_TEST(contains(parse_error(file_bytes(meta)), "entries"));
}

BOOST_AUTO_TEST_CASE(a_header_at_the_size_limit_is_read_and_one_byte_more_is_refused) {
  // 100 MB: one metadata string of almost all of it, padded to the limit exactly.
  std::string header = R"({"__metadata__":{"k":")";
  const std::size_t value_size = k_safetensors_max_header - header.size() - 8;
  header.append(value_size, 'v');
  header += "\"}}";
  header.append(k_safetensors_max_header - header.size(), ' ');
  BOOST_REQUIRE_EQUAL(header.size(), k_safetensors_max_header);
  const SafetensorsFile f = parse_safetensors(file_bytes(header), "mem");
  BOOST_TEST(f.metadata.at("k").size() == value_size);
  header += ' ';
  BOOST_TEST(contains(parse_error(file_bytes(header)), "exceeds the limit"));
}

BOOST_AUTO_TEST_CASE(shape_rank_is_capped) {
  auto shape_of_rank = [](std::size_t rank) {
    std::string s = "[";
    for (std::size_t i = 0; i < rank; ++i) s += i ? ",1" : "1";
    return s + "]";
  };
  const auto header = [&](std::size_t rank) {
    return R"({"a":{"dtype":"F32","shape":)" + shape_of_rank(rank) + R"(,"data_offsets":[0,4]}})";
  };
  const SafetensorsFile ok =
      parse_safetensors(file_bytes(header(k_safetensors_max_rank), "abcd"), "mem");
  BOOST_TEST(ok.tensors.at("a").shape.size() == k_safetensors_max_rank);
  // A shape of a million extents would cost 8 MB per 2 MB of header.
  const std::string msg = parse_error(file_bytes(header(1'000'000), "abcd"));
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, "tensor 'a'"));
  BOOST_TEST(contains(msg, "more than " + std::to_string(k_safetensors_max_rank) + " extents"));
}

BOOST_AUTO_TEST_CASE(names_and_values_from_the_file_are_quoted_and_truncated) {
  // A terminal escape and a newline in a tensor name and in a dtype.
  const std::string evil = "\x1b[31mred\nline";
  std::string msg = parse_error(file_bytes(R"({")" + std::string("\\u001b[31mred\\nline") +
                                               R"(":{"dtype":"F32\u001b[2J","shape":[2],)"
                                               R"("data_offsets":[0,8]}})",
                                           k_good_data));
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, "'\\x1b[31mred\\nline'"));
  BOOST_TEST(contains(msg, "unknown dtype 'F32\\x1b[2J'"));
  BOOST_TEST(!contains(msg, "\x1b"));
  BOOST_TEST(!contains(msg, "\n"));
  // A name of 1 MB is cut, and the message says how long it was.
  const std::string long_name(1 << 20, 'n');
  msg = parse_error(file_bytes(R"({")" + long_name +
                                   R"(":{"dtype":"F99","shape":[2],)"
                                   R"("data_offsets":[0,8]}})",
                               k_good_data));
  BOOST_TEST_INFO(msg.substr(0, 300));
  BOOST_TEST(msg.size() < 400u);
  BOOST_TEST(contains(msg, "1048576 bytes"));
  BOOST_TEST(contains(msg, "unknown dtype 'F99'"));
  // A syntax error inside a huge string does not echo the string.
  msg = parse_error(file_bytes("{\"" + long_name + "\x01\":1}"));
  BOOST_TEST_INFO(msg.substr(0, 300));
  BOOST_TEST(contains(msg, "not valid JSON"));
  BOOST_TEST(msg.size() < 600u);
  BOOST_TEST(!contains(msg, "\x01"));
}

BOOST_AUTO_TEST_CASE(fifo_symlink_loop_trailing_slash_and_permission_report_their_reason) {
  TempDir dir;
  const std::string good = as_string(file_bytes(k_good_header, k_good_data));
  write_bytes(dir / "good.safetensors", good);
  BOOST_TEST(read_safetensors(dir / "good.safetensors").tensors.size() == 1u);
  const std::string fifo = testing::make_fifo(dir.path.string());
  std::string msg = read_error(fifo);
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, fifo));
  BOOST_TEST(contains(msg, "is a FIFO"));
  const std::string loop = testing::make_symlink_loop(dir.path.string());
  msg = read_error(loop);
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, loop));
  BOOST_TEST(contains(msg, std::strerror(ELOOP)));
  msg = read_error(dir / "good.safetensors/");
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, std::strerror(ENOTDIR)));
  BOOST_TEST(!contains(msg, "no such file"));
  std::string locked;
  const std::string outcome = testing::outcome_without_permission(
      dir.path.string(), good, [](const std::string& p) { read_safetensors(p); }, &locked);
  BOOST_TEST_INFO(outcome);
  BOOST_TEST(outcome.rfind("runtime_error: ", 0) == 0);
  BOOST_TEST(contains(outcome, locked));
  BOOST_TEST(contains(outcome, std::strerror(EACCES)));
  BOOST_TEST(!contains(outcome, "no such file"));
  BOOST_TEST(contains(read_error(dir / "absent"), "no such file"));
}

BOOST_AUTO_TEST_CASE(sparse_files_larger_than_memory_are_refused_naming_the_file) {
  TempDir dir;
  const std::uint64_t gib = std::uint64_t{1} << 30;
  const std::uint64_t size = std::max<std::uint64_t>(64 * gib, 2 * testing::physical_memory());
  // A valid header (padded to 256 bytes) describing one U8 tensor that fills the sparse rest.
  const std::uint64_t data = size - 8 - 256;
  std::string header = R"({"a":{"dtype":"U8","shape":[)" + std::to_string(data) +
                       R"(],"data_offsets":[0,)" + std::to_string(data) + "]}}";
  header.append(256 - header.size(), ' ');
  const std::string p = dir / "sparse.safetensors";
  testing::make_sparse_file(p, as_string(file_bytes(header)), size);
  std::string msg = read_error(p);
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, p));
  BOOST_TEST(contains(msg, std::to_string(size) + " bytes"));
  BOOST_TEST(contains(msg, "memory"));
  // A sparse file of zeros: refused on its header, before the data is read.
  const std::string zeros = dir / "zeros.safetensors";
  testing::make_sparse_file(zeros, "", 64 * gib);
  msg = read_error(zeros);
  BOOST_TEST_INFO(msg);
  BOOST_TEST(contains(msg, "not valid JSON"));
}

#if !XTAPE_TEST_ASAN
// Under AddressSanitizer a failed allocation aborts instead of throwing: plain build only.
BOOST_AUTO_TEST_CASE(an_allocation_failure_is_an_error_naming_the_file) {
  TempDir dir;
  const std::uint64_t data = 512u << 20;
  const std::string header = R"({"a":{"dtype":"U8","shape":[)" + std::to_string(data) +
                             R"(],"data_offsets":[0,)" + std::to_string(data) + "]}}";
  const std::string p = dir / "big.safetensors";
  testing::make_sparse_file(p, as_string(file_bytes(header)), 8 + header.size() + data);
  const std::string outcome = testing::outcome_in_child(
      [&] { read_safetensors(p); }, [] { return testing::cap_address_space(256 << 20); });
  BOOST_TEST_INFO(outcome);
  BOOST_TEST(outcome.rfind("runtime_error: ", 0) == 0);
  BOOST_TEST(contains(outcome, p));
  BOOST_TEST(contains(outcome, "out of memory"));
}
#endif

BOOST_AUTO_TEST_SUITE_END()
