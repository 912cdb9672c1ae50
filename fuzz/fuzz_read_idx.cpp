// libFuzzer target for datasets::read_idx: any byte string, plain or gzip, must either read into
// a consistent U8Array or throw std::runtime_error; anything else (a crash, a sanitizer report,
// another exception, a leak, a hang) is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "datasets/idx.hpp"

namespace {

// read_idx takes a path: the input goes to an in-memory file reached through /proc/self/fd.
const std::string& input_path() {
  static const std::string path = [] {
    const int fd = memfd_create("fuzz_read_idx", 0);
    if (fd < 0) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

void write_input(const std::string& path, const std::uint8_t* data, std::size_t size) {
  const int fd = std::stoi(path.substr(path.rfind('/') + 1));
  if (ftruncate(fd, 0) != 0) std::abort();
  std::size_t done = 0;
  while (done < size) {
    const ssize_t put = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (put <= 0) std::abort();
    done += static_cast<std::size_t>(put);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = input_path();
  write_input(path, data, size);
  try {
    const xtape::datasets::U8Array a = xtape::datasets::read_idx(path);
    if (a.data.size() != xtape::shape_size(a.shape) || a.shape.empty()) std::abort();
  } catch (const std::runtime_error&) {
    // A refused file: the expected outcome for most inputs.
  }
  return 0;
}
