#pragma once
/// @file storage.hpp
/// Aligned float buffers from a caching allocator: a training step frees and re-allocates the
/// same sizes every iteration, so freed blocks are kept in per-size free lists and reused
/// instead of going back to the system (which would map and unmap pages every step).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace xtape::detail {

/// The deferred contents of a Storage: computed once, into the buffer, on its first access.
/// Ops use this to fuse what follows them (conv2d + bias + relu is one pass when the
/// intermediate results are never read).
class Producer {
 public:
  virtual ~Producer() = default;
  /// Fills `out` (the storage's `size` floats). Must read its inputs through const access.
  virtual void run(float* out) const = 0;
};

/// A 64-byte aligned buffer of `size` floats. Not copyable; tensors share it by shared_ptr.
///
/// A storage may be deferred: it holds a Producer instead of values, and is allocated and
/// filled on the first data() call. A deferred storage registers itself as a reader of the
/// storages its producer reads; writable access (non-const data()) to one of those first
/// computes every deferred reader still pending, so deferral never observes a later write made
/// through a fresh access.
///
/// A write through a pointer obtained earlier cannot be intercepted, so a storage whose
/// writable pointer was handed to user code (expose(), behind Tensor::data()) is exposed for
/// the rest of its life, and nothing is deferred on it: make_deferred computes at once when a
/// storage it reads is exposed. Library code that keeps no pointer uses data() and leaves the
/// storage unexposed.
class Storage {
 public:
  explicit Storage(std::size_t size);
  /// A deferred buffer whose values `producer` computes on first access.
  Storage(std::size_t size, std::shared_ptr<const Producer> producer);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() {
    if (pending_.load(std::memory_order_acquire)) [[unlikely]]
      materialize();
    else if (has_readers_.load(std::memory_order_acquire)) [[unlikely]]
      flush_readers();
    return data_;
  }
  const float* data() const {
    if (pending_.load(std::memory_order_acquire)) [[unlikely]]
      materialize();
    return data_;
  }
  /// Writable access for user code: data(), and the storage is exposed from now on.
  float* expose() {
    if (!exposed_.load(std::memory_order_relaxed)) exposed_.store(true, std::memory_order_release);
    return data();
  }
  /// True once expose() was called: a pointer to the buffer may be outstanding.
  bool exposed() const { return exposed_.load(std::memory_order_acquire); }
  std::size_t size() const { return size_; }
  /// The producer of a deferred storage not yet computed, else null.
  std::shared_ptr<const Producer> producer() const;
  /// Registers a deferred storage whose producer reads this one (see the class comment).
  void add_reader(const std::shared_ptr<Storage>& reader);

 private:
  // Thread safety: a storage may be read from several threads (shared weights, a tensor
  // handed to worker threads); computing a deferred one and the reader list are guarded by
  // mutex_, and the fast paths only load the two flags.
  void materialize() const;
  void flush_readers();
  mutable float* data_ = nullptr;
  std::size_t size_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Producer> producer_;
  mutable std::atomic<bool> pending_{false};
  std::atomic<bool> has_readers_{false};
  std::atomic<bool> exposed_{false};
  std::vector<std::weak_ptr<Storage>> readers_;
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
