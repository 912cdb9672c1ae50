// Thread-local, grow-only, 64-byte aligned scratch buffers (see workspace.hpp).
#include "kernels/workspace.hpp"

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace xtape::kernels {

namespace {

struct Buffer {
  float* data = nullptr;
  std::size_t capacity = 0;  // in floats
};

struct Table {
  Buffer slots[slot_count];
  ~Table() {
    for (Buffer& b : slots) std::free(b.data);
  }
};

thread_local Table table;

}  // namespace

float* scratch(int slot, std::size_t n_floats) {
  if (slot < 0 || slot >= slot_count)
    throw std::invalid_argument("scratch: slot must be in [0, " + std::to_string(slot_count) +
                                "), got " + std::to_string(slot));
  Buffer& b = table.slots[slot];
  if (n_floats == 0) n_floats = 1;
  if (n_floats > b.capacity) {
    // Grow by at least 1.5x so a slowly increasing request does not reallocate every call.
    std::size_t cap = b.capacity + b.capacity / 2;
    if (cap < n_floats) cap = n_floats;
    const std::size_t bytes = (cap * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    std::free(b.data);
    b.data = static_cast<float*>(p);
    b.capacity = bytes / sizeof(float);
  }
  return b.data;
}

void release_scratch() {
  for (Buffer& b : table.slots) {
    std::free(b.data);
    b.data = nullptr;
    b.capacity = 0;
  }
}

std::size_t scratch_bytes() {
  std::size_t total = 0;
  for (const Buffer& b : table.slots) total += b.capacity * sizeof(float);
  return total;
}

}  // namespace xtape::kernels
