// libFuzzer target for the safetensors reader and for loading weights and checkpoints into a
// small model: any byte string must either load or throw std::runtime_error; anything else (a
// crash, a sanitizer report, another exception, a leak, a hang) is a bug.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz/input_file.hpp"
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
  const std::string& path = fuzzing::input_path("fuzz_safetensors");
  fuzzing::write_input(path, data, size);
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
