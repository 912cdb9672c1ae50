// libFuzzer target for the safetensors reader and for loading weights and checkpoints into a
// small model: any byte string must either load or throw std::runtime_error; anything else (a
// crash, a sanitizer report, another exception, a leak, a hang) is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "layers/core.hpp"
#include "layers/saving.hpp"
#include "models/sequential.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

// The model the seed corpus was written for (fuzz/make_corpus.py): dense (3 -> 4), dropout,
// dense_1 (4 -> 2), compiled with Adam.
Sequential& model() {
  static Sequential* m = [] {
    clear_session();
    set_random_seed(1);
    auto* s = new Sequential({Input({3}), std::make_shared<Dense>(DenseOptions{.units = 4}),
                              std::make_shared<Dropout>(0.5f),
                              std::make_shared<Dense>(DenseOptions{.units = 2})});
    s->compile("mse", "adam");
    return s;
  }();
  return *m;
}

const std::string& input_path() {
  static const std::string path = [] {
    const int fd = memfd_create("fuzz_safetensors", 0);
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
  // The parser on memory, then every F32 tensor it accepted.
  try {
    const SafetensorsFile f =
        parse_safetensors(std::vector<std::uint8_t>(data, data + size), "input");
    for (const auto& [name, e] : f.tensors) {
      if (e.end > f.bytes.size() - f.data_start) std::abort();  // validated offsets hold
      if (e.dtype == "F32") (void)f.f32(name, false);
    }
  } catch (const std::runtime_error&) {
  }
  // The whole loading path on a file.
  const std::string& path = input_path();
  write_input(path, data, size);
  Sequential& m = model();
  try {
    m.load_weights(path);
  } catch (const std::runtime_error&) {
  }
  try {
    m.load_checkpoint(path);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
