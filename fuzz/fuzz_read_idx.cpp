// libFuzzer target for datasets::read_idx: any byte string, plain or gzip, must either read into
// a consistent U8Array or throw std::runtime_error; anything else (a crash, a sanitizer report,
// another exception, a leak, a hang) is a bug.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "datasets/idx.hpp"
#include "fuzz/input_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = xtape::fuzzing::input_path("fuzz_read_idx");
  xtape::fuzzing::write_input(path, data, size);
  try {
    const xtape::datasets::U8Array a = xtape::datasets::read_idx(path);
    if (a.data.size() != xtape::shape_size(a.shape) || a.shape.empty()) std::abort();
  } catch (const std::runtime_error&) {
    // A refused file: the expected outcome for most inputs.
  }
  return 0;
}
