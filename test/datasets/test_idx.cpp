// Tests of datasets/idx.cpp and datasets/mnist.cpp: IDX round trips (plain and gzip), every
// corrupt-file error, the MNIST/Fashion-MNIST loaders on a small fake file set, the conversions
// to float Tensors, and — when the real data is present — the real MNIST and Fashion-MNIST.
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "datasets/idx.hpp"
#include "datasets/mnist.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace xtape;
using namespace xtape::datasets;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

// A fresh directory under the system temp directory, removed with everything in it at scope end.
using TempDir = xtape::testing::TempDir;

// The raw bytes of an IDX ubyte file, written by hand (independently of write_idx).
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& data,
                std::uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    b.push_back(static_cast<std::uint8_t>(d >> 24));
    b.push_back(static_cast<std::uint8_t>(d >> 16));
    b.push_back(static_cast<std::uint8_t>(d >> 8));
    b.push_back(static_cast<std::uint8_t>(d));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_plain(const std::string& path, const Bytes& bytes) {
  std::ofstream os(path, std::ios::binary);
  os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  BOOST_REQUIRE(os.good());
}

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  BOOST_REQUIRE(f != nullptr);
  if (!bytes.empty()) {
    BOOST_REQUIRE_EQUAL(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
                        static_cast<int>(bytes.size()));
  }
  BOOST_REQUIRE_EQUAL(gzclose(f), Z_OK);
}

Bytes iota_bytes(std::size_t n, std::uint8_t start = 0, std::uint8_t step = 1) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + step * i);
  return b;
}

// Runs f, requires it to throw E, and checks the message holds every one of `parts`.
template <class E = std::runtime_error, class F>
void check_throws(F&& f, const std::vector<std::string>& parts) {
  std::optional<std::string> message;
  try {
    f();
  } catch (const E& e) {
    message = e.what();
  }
  BOOST_REQUIRE_MESSAGE(message.has_value(),
                        "expected an exception holding '" + parts.front() + "'");
  for (const std::string& part : parts) {
    BOOST_TEST(message->find(part) != std::string::npos,
               "message '" << *message << "' should contain '" << part << "'");
  }
}

// Sets an environment variable (or unsets it for nullopt) for one scope, then restores it.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> saved;
  ScopedEnv(std::string n, std::optional<std::string> value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) saved = v;
    if (value)
      setenv(name.c_str(), value->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    if (saved)
      setenv(name.c_str(), saved->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// Writes a fake MNIST-like 4-file set: n_train / n_test images of 28x28 with labels i % 10.
// Training files plain, test files gzip-compressed.
void write_fake_set(const TempDir& dir, std::uint32_t n_train, std::uint32_t n_test) {
  auto labels = [](std::uint32_t n) {
    Bytes b(n);
    for (std::uint32_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 7) % 10);
    return b;
  };
  write_plain(dir / "train-images-idx3-ubyte",
              idx_bytes({n_train, 28, 28}, iota_bytes(n_train * 784, 3, 5)));
  write_plain(dir / "train-labels-idx1-ubyte", idx_bytes({n_train}, labels(n_train)));
  write_gz(dir / "t10k-images-idx3-ubyte.gz",
           idx_bytes({n_test, 28, 28}, iota_bytes(n_test * 784, 11, 3)));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({n_test}, labels(n_test)));
}

boost::test_tools::assertion_result files_present(const std::string& dir, const char* what,
                                                  const char* how) {
  bool ok = true;
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    const fs::path p = fs::path(dir) / name;
    ok = ok && (fs::exists(p) || fs::exists(p.string() + ".gz"));
  }
  boost::test_tools::assertion_result r(ok);
  if (!ok) r.message() << what << " absent at " << dir << " (" << how << ")";
  return r;
}

boost::test_tools::assertion_result real_mnist_present(boost::unit_test::test_unit_id) {
  return files_present(mnist::default_dir(), "MNIST cache", "run: bash tools/xtape.sh setup");
}

boost::test_tools::assertion_result real_fashion_present(boost::unit_test::test_unit_id) {
  return files_present(fashion_mnist::default_dir(), "Fashion-MNIST",
                       "apt-get install dataset-fashion-mnist");
}

std::array<std::size_t, 10> histogram(const U8Array& labels) {
  std::array<std::size_t, 10> h{};
  for (std::uint8_t v : labels.data) {
    BOOST_REQUIRE_LT(v, 10);
    ++h[v];
  }
  return h;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(datasets_idx)

// ------------------------------------------------------------------------------ round trips

BOOST_AUTO_TEST_CASE(reads_plain_idx_values_and_shape) {
  TempDir dir;
  const Bytes data = iota_bytes(2 * 3 * 4, 250, 7);  // wraps around 255
  write_plain(dir / "a-idx3-ubyte", idx_bytes({2, 3, 4}, data));
  const U8Array a = read_idx(dir / "a-idx3-ubyte");
  BOOST_TEST(a.shape == (Shape{2, 3, 4}), "shape " << shape_str(a.shape));
  BOOST_TEST(a.data == data, boost::test_tools::per_element());
  BOOST_TEST(a.size() == 24u);
  BOOST_TEST(a.ndim() == 3u);
}

BOOST_AUTO_TEST_CASE(reads_gzip_idx_values_and_shape) {
  TempDir dir;
  // Extents above 255 exercise every byte of the big-endian header.
  const Bytes data = iota_bytes(300 * 2, 1, 13);
  write_gz(dir / "b-idx2-ubyte.gz", idx_bytes({300, 2}, data));
  const U8Array b = read_idx(dir / "b-idx2-ubyte.gz");
  BOOST_TEST(b.shape == (Shape{300, 2}), "shape " << shape_str(b.shape));
  BOOST_TEST(b.data == data, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(reads_one_dimensional_and_empty_arrays) {
  TempDir dir;
  write_plain(dir / "labels", idx_bytes({5}, {9, 0, 1, 2, 3}));
  const U8Array l = read_idx(dir / "labels");
  BOOST_TEST(l.shape == (Shape{5}));
  BOOST_TEST(l.data == (Bytes{9, 0, 1, 2, 3}), boost::test_tools::per_element());
  write_plain(dir / "empty", idx_bytes({0, 28, 28}, {}));
  const U8Array e = read_idx(dir / "empty");
  BOOST_TEST(e.shape == (Shape{0, 28, 28}));
  BOOST_TEST(e.data.empty());
}

BOOST_AUTO_TEST_CASE(write_idx_round_trips_and_matches_the_format) {
  TempDir dir;
  U8Array a{{3, 1, 2}, iota_bytes(6, 40, 9)};
  write_idx(dir / "w", a);
  const U8Array back = read_idx(dir / "w");
  BOOST_TEST(back.shape == a.shape);
  BOOST_TEST(back.data == a.data, boost::test_tools::per_element());
  // Byte-for-byte the same as the hand-made file.
  std::ifstream is(dir / "w", std::ios::binary);
  const Bytes on_disk((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  BOOST_TEST(on_disk == idx_bytes({3, 1, 2}, a.data), boost::test_tools::per_element());
  check_throws<std::invalid_argument>(
      [&] {
        write_idx(dir / "x", U8Array{{2, 2}, {1, 2, 3}});
      },
      {"(2, 2)", "4", "3"});
  check_throws<std::invalid_argument>(
      [&] {
        write_idx(dir / "x", U8Array{{}, {1}});
      },
      {"rank", "0"});
}

BOOST_AUTO_TEST_CASE(write_idx_removes_stale_temporaries_of_dead_processes) {
  TempDir dir;
  const std::string p = dir / "w-idx1-ubyte";
  const pid_t child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  BOOST_REQUIRE(waitpid(child, nullptr, 0) == child);
  const std::string stale = p + ".tmp" + std::to_string(child) + ".AbC123";
  const std::string own = p + ".tmp" + std::to_string(getpid()) + ".AbC123";
  write_plain(stale, {1});
  write_plain(own, {1});
  write_idx(p, U8Array{{3}, {1, 2, 3}});
  BOOST_TEST(!fs::exists(stale));
  BOOST_TEST(fs::exists(own));
  BOOST_TEST(read_idx(p).data == (Bytes{1, 2, 3}), boost::test_tools::per_element());
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += (void(e), 1);
  BOOST_TEST(files == 2u);  // the file and the live process's temporary
}

// ------------------------------------------------------------------------------ corrupt files

BOOST_AUTO_TEST_CASE(wrong_magic_names_file_and_bytes) {
  TempDir dir;
  Bytes b = idx_bytes({4}, {1, 2, 3, 4});
  b[0] = 0x1F;  // e.g. a gzip file that was not named .gz is still fine; this is not gzip
  b[1] = 0x00;
  const std::string p = dir / "badmagic";
  write_plain(p, b);
  check_throws([&] { read_idx(p); }, {p, "wrong magic", "0x1F 0x00 0x08 0x01"});
  // The same corruption inside a gzip stream.
  write_gz(p + ".gz", b);
  check_throws([&] { read_idx(p + ".gz"); }, {p + ".gz", "wrong magic"});
  // A text file.
  write_plain(p + ".txt", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
  check_throws([&] { read_idx(p + ".txt"); }, {p + ".txt", "wrong magic", "not an IDX file"});
}

BOOST_AUTO_TEST_CASE(unsupported_type_byte_is_rejected) {
  TempDir dir;
  const std::string p = dir / "floats";
  write_plain(p, idx_bytes({1}, {0, 0, 0x80, 0x3F}, 0x0D));
  check_throws([&] { read_idx(p); }, {p, "unsupported element type 0x0D", "float32", "0x08"});
  write_gz(p + ".gz", idx_bytes({1}, {7}, 0x42));
  check_throws([&] { read_idx(p + ".gz"); }, {p + ".gz", "0x42"});
}

BOOST_AUTO_TEST_CASE(truncated_header_is_rejected) {
  TempDir dir;
  const std::string empty = dir / "empty";
  write_plain(empty, {});
  check_throws([&] { read_idx(empty); }, {empty, "truncated header", "got 0 bytes"});
  const std::string two = dir / "two";
  write_plain(two, {0, 0});
  check_throws([&] { read_idx(two); }, {two, "truncated header", "2 bytes"});
  // Rank 3 but only 2 extents (and nothing after).
  Bytes b = idx_bytes({60000, 28, 28}, {});
  b.resize(4 + 8 + 2);
  const std::string dims = dir / "dims";
  write_plain(dims, b);
  check_throws([&] { read_idx(dims); }, {dims, "truncated header", "rank 3", "12 bytes", "got 10"});
  write_gz(dims + ".gz", b);
  check_throws([&] { read_idx(dims + ".gz"); }, {dims + ".gz", "truncated header"});
  const std::string rank0 = dir / "rank0";
  write_plain(rank0, {0, 0, 8, 0, 1, 2});
  check_throws([&] { read_idx(rank0); }, {rank0, "rank 0"});
}

BOOST_AUTO_TEST_CASE(truncated_data_is_rejected) {
  TempDir dir;
  Bytes b = idx_bytes({3, 4}, iota_bytes(12));
  b.pop_back();
  const std::string p = dir / "short";
  write_plain(p, b);
  check_throws([&] { read_idx(p); }, {p, "truncated data", "(3, 4)", "12 bytes", "11 bytes"});
  write_gz(p + ".gz", b);
  check_throws([&] { read_idx(p + ".gz"); }, {p + ".gz", "truncated data", "12 bytes", "11 bytes"});
}

BOOST_AUTO_TEST_CASE(trailing_bytes_are_rejected) {
  TempDir dir;
  Bytes b = idx_bytes({3, 4}, iota_bytes(12));
  b.insert(b.end(), {0xDE, 0xAD, 0xBE});
  const std::string p = dir / "long";
  write_plain(p, b);
  check_throws([&] { read_idx(p); }, {p, "trailing garbage", "12 bytes", "3 more"});
  write_gz(p + ".gz", b);
  check_throws([&] { read_idx(p + ".gz"); }, {p + ".gz", "trailing garbage", "3 more"});
}

BOOST_AUTO_TEST_CASE(absurd_extents_are_rejected_without_huge_allocations) {
  TempDir dir;
  // Product overflows 64 bits.
  const std::string over = dir / "overflow";
  write_plain(over, idx_bytes({0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF}, {1, 2, 3}));
  check_throws([&] { read_idx(over); }, {over, "overflows"});
  // An extent that is negative as a signed 32-bit integer.
  const std::string neg = dir / "negative";
  write_plain(neg, idx_bytes({0x80000000u}, {1}));
  check_throws([&] { read_idx(neg); }, {neg, "absurd extent 2147483648"});
  // A product that fits (~4.6e18 bytes) but is absurd for a 20-byte file: must fail on the size
  // check, not by trying to allocate exabytes; a gzip file cannot inflate that far either.
  const std::string huge = dir / "huge";
  write_plain(huge, idx_bytes({0x7FFFFFFF, 0x7FFFFFFF}, {1, 2, 3, 4}));
  check_throws([&] { read_idx(huge); }, {huge, "truncated data", "4 bytes"});
  write_gz(huge + ".gz", idx_bytes({0x7FFFFFFF, 0x7FFFFFFF}, {1, 2, 3, 4}));
  check_throws([&] { read_idx(huge + ".gz"); }, {huge + ".gz", "impossible size", "1032:1"});
}

BOOST_AUTO_TEST_CASE(corrupt_gzip_stream_is_rejected) {
  TempDir dir;
  const std::string p = dir / "cut.gz";
  write_gz(p, idx_bytes({64, 64}, iota_bytes(64 * 64, 0, 37)));
  // Cut the compressed file in the middle of the deflate stream.
  const auto size = fs::file_size(p);
  fs::resize_file(p, size / 2);
  check_throws([&] { read_idx(p); }, {p});
  // Flip bytes inside the deflate stream: either a zlib error or a CRC mismatch, never success.
  write_gz(p, idx_bytes({64, 64}, iota_bytes(64 * 64, 0, 37)));
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    const char junk[4] = {'\xFF', '\x00', '\xFF', '\x00'};
    f.write(junk, 4);
  }
  check_throws([&] { read_idx(p); }, {p});
}

BOOST_AUTO_TEST_CASE(missing_file_and_directory_are_reported) {
  TempDir dir;
  const std::string p = dir / "nope-idx1-ubyte";
  check_throws([&] { read_idx(p); }, {p, "no such file"});
  check_throws([&] { read_idx(dir.path.string()); }, {dir.path.string(), "is a directory"});
}

BOOST_AUTO_TEST_CASE(gzip_bytes_after_the_stream_are_refused) {
  TempDir dir;
  const Bytes content = idx_bytes({3, 4}, iota_bytes(12));
  // A valid gzip stream, then garbage: zlib's gzread ignores such bytes; the format does not.
  const std::string p = dir / "junk.gz";
  write_gz(p, content);
  {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out << "JUNK";
  }
  check_throws([&] { read_idx(p); }, {p, "trailing garbage", "after the gzip stream", "4 bytes"});
  // Zero padding is garbage too.
  write_gz(p, content);
  {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out.write("\0\0\0\0\0\0\0\0", 8);
  }
  check_throws([&] { read_idx(p); }, {p, "trailing garbage", "after the gzip stream"});
  // Concatenated gzip members are one valid stream (as gzip -d reads them).
  const std::string two = dir / "two.gz";
  write_gz(two, Bytes(content.begin(), content.begin() + 7));
  write_gz(dir / "rest.gz", Bytes(content.begin() + 7, content.end()));
  {
    std::ifstream rest(dir / "rest.gz", std::ios::binary);
    std::ofstream out(two, std::ios::binary | std::ios::app);
    out << rest.rdbuf();
  }
  const U8Array a = read_idx(two);
  BOOST_TEST(a.shape == (Shape{3, 4}));
  BOOST_TEST(a.data == iota_bytes(12), boost::test_tools::per_element());
  // A second member holding data beyond the claim is trailing data.
  write_gz(dir / "extra.gz", Bytes{1, 2, 3, 4, 5});
  {
    std::ifstream rest(dir / "extra.gz", std::ios::binary);
    std::ofstream out(two, std::ios::binary | std::ios::app);
    out << rest.rdbuf();
  }
  check_throws([&] { read_idx(two); }, {two, "trailing garbage", "5 more"});
}

BOOST_AUTO_TEST_CASE(gzip_claims_beyond_the_deflate_ratio_are_refused_before_inflating) {
  TempDir dir;
  // 10^9 bytes claimed by a gzip file of a few dozen bytes: deflate cannot expand beyond
  // 1032:1, so the claim is a lie, refused before any buffer is allocated or byte inflated.
  const std::string p = dir / "liar.gz";
  write_gz(p, idx_bytes({1000, 1000, 1000}, iota_bytes(16)));
  check_throws([&] { read_idx(p); }, {p, "(1000, 1000, 1000)", "1000000000 bytes", "1032"});
  // A stream that really inflates far beyond its claim stops at the claim (1 MiB claimed,
  // 64 MiB of zeros follow): refused as trailing data without inflating all of it.
  const std::string big = dir / "zeros.gz";
  {
    gzFile f = gzopen(big.c_str(), "wb9");
    BOOST_REQUIRE(f != nullptr);
    const Bytes head = idx_bytes({1024, 1024}, {});
    BOOST_REQUIRE(gzwrite(f, head.data(), static_cast<unsigned>(head.size())) > 0);
    const Bytes zeros(1 << 20, 0);
    for (int i = 0; i < 65; ++i)
      BOOST_REQUIRE(gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size())) > 0);
    BOOST_REQUIRE_EQUAL(gzclose(f), Z_OK);
  }
  check_throws([&] { read_idx(big); }, {big, "trailing garbage", "at least"});
  // A legitimate file near deflate's limit is read: 4 MiB of zeros compress about 1030:1.
  const std::string dense = dir / "dense.gz";
  {
    gzFile f = gzopen(dense.c_str(), "wb9");
    BOOST_REQUIRE(f != nullptr);
    const Bytes all = idx_bytes({4, 1 << 20}, Bytes(4 << 20, 0));
    BOOST_REQUIRE(gzwrite(f, all.data(), static_cast<unsigned>(all.size())) > 0);
    BOOST_REQUIRE_EQUAL(gzclose(f), Z_OK);
  }
  BOOST_TEST_MESSAGE("4 MiB of zeros: gzip file of " << fs::file_size(dense) << " bytes");
  const U8Array z = read_idx(dense);
  BOOST_TEST(z.shape == (Shape{4, 1 << 20}));
  BOOST_TEST(std::all_of(z.data.begin(), z.data.end(), [](std::uint8_t v) { return v == 0; }));
}

BOOST_AUTO_TEST_CASE(sparse_files_larger_than_memory_are_refused_naming_the_file) {
  TempDir dir;
  // A 64 GiB file (at least twice the machine's memory) with 4 KB on disk and a header that
  // claims exactly its size: refused on the size, not by allocating it (std::bad_alloc).
  const std::uint64_t gib = std::uint64_t{1} << 30;
  const std::uint64_t blocks =
      std::max<std::uint64_t>(64, 2 * testing::physical_memory() / gib + 1);
  const std::string p = dir / "sparse-idx2-ubyte";
  const Bytes head = idx_bytes({static_cast<std::uint32_t>(blocks), 1u << 30}, {});
  testing::make_sparse_file(p, std::string(head.begin(), head.end()), head.size() + blocks * gib);
  check_throws([&] { read_idx(p); }, {p, std::to_string(blocks * gib) + " bytes", "memory"});
  // A sparse file of zeros is refused on its first bytes.
  const std::string zeros = dir / "zeros";
  testing::make_sparse_file(zeros, "", 64 * gib);
  check_throws([&] { read_idx(zeros); }, {zeros, "unsupported element type 0x00"});
}

#if !XTAPE_TEST_ASAN
// Under AddressSanitizer a failed allocation aborts instead of throwing, so this runs in the
// plain build only.
BOOST_AUTO_TEST_CASE(an_allocation_failure_is_an_error_naming_the_file) {
  TempDir dir;
  // 512 MiB of claimed (and present, sparse) data, read by a child whose address space is
  // capped so that the buffer cannot be allocated.
  const std::string p = dir / "big-idx2-ubyte";
  const Bytes head = idx_bytes({512, 1 << 20}, {});
  testing::make_sparse_file(p, std::string(head.begin(), head.end()), head.size() + (512u << 20));
  const std::string outcome = testing::outcome_in_child(
      [&] { read_idx(p); }, [] { return testing::cap_address_space(256 << 20); });
  BOOST_TEST_INFO(outcome);
  BOOST_TEST(outcome.rfind("runtime_error: ", 0) == 0);
  BOOST_TEST(outcome.find(p) != std::string::npos);
  BOOST_TEST(outcome.find("out of memory") != std::string::npos);
}
#endif

BOOST_AUTO_TEST_CASE(fifo_symlink_loop_trailing_slash_and_permission_report_their_reason) {
  TempDir dir;
  const Bytes good = idx_bytes({2}, {7, 8});
  write_plain(dir / "good", good);
  // A FIFO would block open() forever: refused before opening.
  const std::string fifo = testing::make_fifo(dir.path.string());
  check_throws([&] { read_idx(fifo); }, {fifo, "is a FIFO", "expected an IDX file"});
  // errno's own reason, not "no such file".
  const std::string loop = testing::make_symlink_loop(dir.path.string());
  check_throws([&] { read_idx(loop); }, {loop, std::strerror(ELOOP)});
  const std::string slash = dir / "good/";
  check_throws([&] { read_idx(slash); }, {slash, std::strerror(ENOTDIR)});
  // A file behind a directory the reader may not search (as root: checked unprivileged).
  std::string locked;
  const std::string outcome = testing::outcome_without_permission(
      dir.path.string(), std::string(good.begin(), good.end()),
      [](const std::string& path) { read_idx(path); }, &locked);
  BOOST_TEST_INFO(outcome);
  BOOST_TEST(outcome.rfind("runtime_error: ", 0) == 0);
  BOOST_TEST(outcome.find(locked) != std::string::npos);
  BOOST_TEST(outcome.find(std::strerror(EACCES)) != std::string::npos);
  BOOST_TEST(outcome.find("no such file") == std::string::npos);
  // The good file still reads (each case failed for its own reason).
  BOOST_TEST(read_idx(dir / "good").data == (Bytes{7, 8}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(paths_are_quoted_in_messages) {
  TempDir dir;
  // A file name holding a terminal escape and a newline appears escaped, on one line.
  const std::string p = dir / "bad\x1b[2J\nname";
  write_plain(p, Bytes{'h', 'i', '!', '!'});
  check_throws([&] { read_idx(p); }, {"bad\\x1b[2J\\nname", "wrong magic"});
  try {
    read_idx(p);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find('\x1b') == std::string::npos);
    BOOST_TEST(msg.find('\n') == std::string::npos);
  }
}

// ------------------------------------------------------------------------------ loaders

BOOST_AUTO_TEST_CASE(load_split_checks_counts_labels_and_rank) {
  TempDir dir;
  const std::string images = dir / "images";
  write_plain(images, idx_bytes({3, 2, 2}, iota_bytes(12)));
  const std::string four = dir / "labels4";
  write_plain(four, idx_bytes({4}, {0, 1, 2, 3}));
  check_throws([&] { load_split(images, four); }, {images, four, "3 images", "4 labels"});
  const std::string big = dir / "labels_big";
  write_plain(big, idx_bytes({3}, {0, 10, 2}));
  check_throws([&] { load_split(images, big); }, {images, big, "[0, 9]", "got 10", "index 1"});
  const std::string flat = dir / "labels2d";
  write_plain(flat, idx_bytes({3, 1}, {0, 1, 2}));
  check_throws([&] { load_split(images, flat); }, {images, flat, "1-D labels", "(3, 1)"});
  const std::string good = dir / "labels";
  write_plain(good, idx_bytes({3}, {2, 0, 1}));
  auto [x, y] = load_split(images, good, 3);
  BOOST_TEST(x.shape == (Shape{3, 2, 2}));
  BOOST_TEST(y.data == (Bytes{2, 0, 1}), boost::test_tools::per_element());
  check_throws([&] { load_split(images, good, 2); }, {good, "[0, 1]", "got 2"});
}

BOOST_AUTO_TEST_CASE(load_data_reads_a_fake_set_from_an_explicit_directory) {
  TempDir dir;
  write_fake_set(dir, 5, 3);
  for (const Dataset& ds :
       {mnist::load_data(dir.path.string()), fashion_mnist::load_data(dir.path.string())}) {
    const auto& [train, test] = ds;
    BOOST_TEST(train.first.shape == (Shape{5, 28, 28}), shape_str(train.first.shape));
    BOOST_TEST(train.second.shape == (Shape{5}));
    BOOST_TEST(test.first.shape == (Shape{3, 28, 28}), shape_str(test.first.shape));
    BOOST_TEST(test.second.shape == (Shape{3}));
    BOOST_TEST(train.first.data == iota_bytes(5 * 784, 3, 5), boost::test_tools::per_element());
    BOOST_TEST(test.first.data == iota_bytes(3 * 784, 11, 3), boost::test_tools::per_element());
    BOOST_TEST(train.second.data == (Bytes{0, 7, 4, 1, 8}), boost::test_tools::per_element());
    BOOST_TEST(test.second.data == (Bytes{0, 7, 4}), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(load_data_environment_overrides) {
  TempDir dir;
  write_fake_set(dir, 2, 1);
  {
    ScopedEnv e("XTAPE_MNIST_DIR", dir.path.string());
    BOOST_TEST(mnist::default_dir() == dir.path.string());
    BOOST_TEST(mnist::load_data().first.first.shape == (Shape{2, 28, 28}));
  }
  {
    ScopedEnv e("XTAPE_FASHION_MNIST_DIR", dir.path.string());
    BOOST_TEST(fashion_mnist::default_dir() == dir.path.string());
    BOOST_TEST(fashion_mnist::load_data().second.second.shape == (Shape{1}));
  }
  ScopedEnv no_mnist("XTAPE_MNIST_DIR", std::nullopt);
  ScopedEnv no_fashion("XTAPE_FASHION_MNIST_DIR", std::nullopt);
  BOOST_TEST(fashion_mnist::default_dir() == "/usr/share/datasets/fashion-mnist");
  {
    ScopedEnv data("XTAPE_DATA_DIR", "/data/x");
    BOOST_TEST(mnist::default_dir() == "/data/x/mnist");
  }
  ScopedEnv no_data("XTAPE_DATA_DIR", std::nullopt);
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    BOOST_TEST(mnist::default_dir() == "/xdg/xtape/mnist");
  }
  ScopedEnv no_xdg("XDG_CACHE_HOME", std::nullopt);
  ScopedEnv home("HOME", "/home/someone");
  BOOST_TEST(mnist::default_dir() == "/home/someone/.cache/xtape/mnist");
}

BOOST_AUTO_TEST_CASE(load_data_missing_files_say_how_to_fetch_them) {
  TempDir dir;
  const std::string d = dir.path.string();
  check_throws([&] { mnist::load_data(d); },
               {d, "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "bash tools/xtape.sh setup",
                "XTAPE_MNIST_DIR"});
  check_throws([&] { fashion_mnist::load_data(d); },
               {d, "train-labels-idx1-ubyte", "apt-get install dataset-fashion-mnist",
                "XTAPE_FASHION_MNIST_DIR"});
  // Only one file missing: only that one is listed.
  write_fake_set(dir, 2, 1);
  fs::remove(dir.path / "t10k-labels-idx1-ubyte.gz");
  std::string message;
  try {
    mnist::load_data(d);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  BOOST_TEST(message.find("t10k-labels-idx1-ubyte") != std::string::npos, message);
  BOOST_TEST(message.find("train-images-idx3-ubyte") == std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(load_data_checks_consistency_of_the_set) {
  TempDir dir;
  write_fake_set(dir, 4, 2);
  // Labels disagree with images in count.
  write_plain(dir / "train-labels-idx1-ubyte", idx_bytes({3}, {1, 2, 3}));
  check_throws(
      [&] { mnist::load_data(dir.path.string()); },
      {dir / "train-images-idx3-ubyte", dir / "train-labels-idx1-ubyte", "4 images", "3 labels"});
  // Label out of range.
  write_plain(dir / "train-labels-idx1-ubyte", idx_bytes({4}, {1, 2, 3, 255}));
  check_throws([&] { mnist::load_data(dir.path.string()); },
               {dir / "train-images-idx3-ubyte", dir / "train-labels-idx1-ubyte", "got 255"});
  // Images that are not 28x28.
  write_plain(dir / "train-labels-idx1-ubyte", idx_bytes({4}, {1, 2, 3, 4}));
  write_plain(dir / "train-images-idx3-ubyte", idx_bytes({4, 27, 28}, iota_bytes(4 * 27 * 28)));
  check_throws([&] { mnist::load_data(dir.path.string()); },
               {dir / "train-images-idx3-ubyte", "(n, 28, 28)", "(4, 27, 28)"});
  // A corrupt file in the set surfaces read_idx's message.
  write_plain(dir / "train-images-idx3-ubyte", idx_bytes({4, 28, 28}, iota_bytes(4 * 784 - 1)));
  check_throws([&] { mnist::load_data(dir.path.string()); },
               {dir / "train-images-idx3-ubyte", "truncated data"});
}

// ------------------------------------------------------------------------------ conversions

BOOST_AUTO_TEST_CASE(to_float_scales_and_keeps_shape) {
  const U8Array a{{2, 3}, {0, 1, 2, 127, 254, 255}};
  const Tensor t = to_float(a, 1.f / 255.f);
  BOOST_TEST(t.shape() == (Shape{2, 3}));
  const std::vector<float> v = t.to_vector();
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    BOOST_TEST(v[i] == static_cast<float>(a.data[i]) * (1.f / 255.f));
  }
  BOOST_TEST(v[5] == 1.f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(to_float(a).to_vector() == (std::vector<float>{0, 1, 2, 127, 254, 255}),
             boost::test_tools::per_element());
  check_throws<std::invalid_argument>([] { to_float(U8Array{{2, 2}, {1}}); }, {"(2, 2)"});
}

BOOST_AUTO_TEST_CASE(expand_dims_inserts_an_axis_of_one) {
  const U8Array a{{4, 28, 28}, Bytes(4 * 784, 7)};
  BOOST_TEST(expand_dims(a).shape == (Shape{4, 28, 28, 1}));
  BOOST_TEST(expand_dims(a, 0).shape == (Shape{1, 4, 28, 28}));
  BOOST_TEST(expand_dims(a, 1).shape == (Shape{4, 1, 28, 28}));
  BOOST_TEST(expand_dims(a, -4).shape == (Shape{1, 4, 28, 28}));
  BOOST_TEST(expand_dims(a).data == a.data);
  BOOST_TEST(to_float(expand_dims(a), 2.f).shape() == (Shape{4, 28, 28, 1}));
  check_throws<std::invalid_argument>([&] { expand_dims(a, 4); }, {"axis 4", "[-4, 3]"});
  check_throws<std::invalid_argument>([&] { expand_dims(a, -5); }, {"axis -5"});
}

BOOST_AUTO_TEST_CASE(to_categorical_is_one_hot) {
  const U8Array labels{{4}, {3, 0, 9, 3}};
  const Tensor t = to_categorical(labels, 10);
  BOOST_TEST(t.shape() == (Shape{4, 10}));
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t c = 0; c < 10; ++c) {
      BOOST_TEST(t.at({i, c}) == (c == labels.data[i] ? 1.f : 0.f), "row " << i << " col " << c);
    }
  }
  // (n, 1) labels drop the trailing axis; num_classes 0 infers max + 1.
  const Tensor u = to_categorical(U8Array{{3, 1}, {0, 2, 1}});
  BOOST_TEST(u.shape() == (Shape{3, 3}));
  BOOST_TEST(u.to_vector() == (std::vector<float>{1, 0, 0, 0, 0, 1, 0, 1, 0}),
             boost::test_tools::per_element());
  check_throws<std::invalid_argument>([&] { to_categorical(labels, 9); },
                                      {"[0, 8]", "got 9", "index 2"});
}

// ------------------------------------------------------------------------------ real data

BOOST_AUTO_TEST_CASE(real_mnist_shapes_and_label_histogram,
                     *boost::unit_test::precondition(real_mnist_present)) {
  BOOST_TEST_MESSAGE("reading MNIST from " << mnist::default_dir());
  const auto [train, test] = mnist::load_data();
  BOOST_TEST(train.first.shape == (Shape{60000, 28, 28}));
  BOOST_TEST(train.second.shape == (Shape{60000}));
  BOOST_TEST(test.first.shape == (Shape{10000, 28, 28}));
  BOOST_TEST(test.second.shape == (Shape{10000}));
  // The published per-digit counts of MNIST.
  const std::array<std::size_t, 10> train_counts{5923, 6742, 5958, 6131, 5842,
                                                 5421, 5918, 6265, 5851, 5949};
  const std::array<std::size_t, 10> test_counts{980, 1135, 1032, 1010, 982,
                                                892, 958,  1028, 974,  1009};
  const auto h_train = histogram(train.second);
  const auto h_test = histogram(test.second);
  BOOST_TEST(h_train == train_counts, boost::test_tools::per_element());
  BOOST_TEST(h_test == test_counts, boost::test_tools::per_element());
  std::size_t sum_train = 0, sum_test = 0;
  for (std::size_t c = 0; c < 10; ++c) sum_train += h_train[c], sum_test += h_test[c];
  BOOST_TEST(sum_train == 60000u);
  BOOST_TEST(sum_test == 10000u);
  // Images are 8-bit grey levels with black background and white strokes.
  const auto [lo, hi] = std::minmax_element(train.first.data.begin(), train.first.data.end());
  BOOST_TEST(*lo == 0);
  BOOST_TEST(*hi == 255);
}

BOOST_AUTO_TEST_CASE(real_fashion_mnist_shapes_and_balanced_classes,
                     *boost::unit_test::precondition(real_fashion_present)) {
  BOOST_TEST_MESSAGE("reading Fashion-MNIST from " << fashion_mnist::default_dir());
  const auto [train, test] = fashion_mnist::load_data();
  BOOST_TEST(train.first.shape == (Shape{60000, 28, 28}));
  BOOST_TEST(test.first.shape == (Shape{10000, 28, 28}));
  for (std::size_t count : histogram(train.second)) BOOST_TEST(count == 6000u);
  for (std::size_t count : histogram(test.second)) BOOST_TEST(count == 1000u);
}

BOOST_AUTO_TEST_SUITE_END()
