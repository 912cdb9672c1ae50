#pragma once
/// @file storage.hpp
/// Aligned float buffers from a caching allocator: a training step frees and re-allocates the
/// same sizes every iteration, so freed blocks are kept in per-size free lists and reused
/// instead of going back to the system (which would map and unmap pages every step).
#include <cstddef>
#include <cstdint>

namespace xtape::detail {

/// A 64-byte aligned buffer of `size` floats. Not copyable; tensors share it by shared_ptr.
class Storage {
 public:
  explicit Storage(std::size_t size);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  const float* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  float* data_;
  std::size_t size_;
};

/// Counters of the caching allocator (for tests and the benchmark).
struct AllocatorStats {
  std::uint64_t system_allocations = 0;  ///< blocks obtained from the system so far
  std::uint64_t cache_hits = 0;          ///< requests served from the free lists
  std::size_t cached_bytes = 0;          ///< bytes currently parked in the free lists
  std::size_t live_bytes = 0;            ///< bytes currently handed out
};
AllocatorStats allocator_stats();
/// Returns every cached block to the system.
void release_cached_memory();

}  // namespace xtape::detail
