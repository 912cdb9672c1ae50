#include "autodiff/storage.hpp"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xtape::detail {
namespace {

constexpr std::size_t kAlign = 64;
// Blocks above this size are rounded to 1/8 of their power of two; smaller ones to 64 bytes.
// The cache never holds more than kMaxCached bytes; beyond that, frees go to the system.
constexpr std::size_t kMaxCached = std::size_t{2} << 30;

std::size_t round_bytes(std::size_t bytes) {
  if (bytes <= 4096) return (bytes + kAlign - 1) / kAlign * kAlign;
  std::size_t p = 1;
  while (p < bytes) p <<= 1;
  const std::size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;

  void* take(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stats.live_bytes += bytes;
      auto it = free_lists.find(bytes);
      if (it != free_lists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats.cached_bytes -= bytes;
        ++stats.cache_hits;
        return p;
      }
      ++stats.system_allocations;
    }
    void* p = std::aligned_alloc(kAlign, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  void give(void* p, std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stats.live_bytes -= bytes;
      if (stats.cached_bytes + bytes <= kMaxCached) {
        free_lists[bytes].push_back(p);
        stats.cached_bytes += bytes;
        return;
      }
    }
    std::free(p);
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& [bytes, list] : free_lists)
      for (void* p : list) std::free(p);
    free_lists.clear();
    stats.cached_bytes = 0;
  }
};

Cache& cache() {
  // Leaked on purpose: tensors held by static objects may be freed after main returns.
  static Cache* c = new Cache();
  return *c;
}

}  // namespace

namespace {
std::size_t block_bytes(std::size_t size) { return round_bytes(std::max<std::size_t>(size, 1) * sizeof(float)); }
}  // namespace

Storage::Storage(std::size_t size) : size_(size) {
  data_ = static_cast<float*>(cache().take(block_bytes(size)));
}

Storage::Storage(std::size_t size, std::shared_ptr<const Producer> producer)
    : size_(size), producer_(std::move(producer)), pending_(producer_ != nullptr) {}

Storage::~Storage() {
  if (data_) cache().give(data_, block_bytes(size_));
}

std::shared_ptr<const Producer> Storage::producer() const {
  if (!pending_.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  return producer_;
}

void Storage::materialize() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!pending_.load(std::memory_order_relaxed)) return;  // another thread computed it
  if (!data_) data_ = static_cast<float*>(cache().take(block_bytes(size_)));
  // Released once run: the producer's inputs are no longer held once computed. A producer that
  // throws stays (the storage is still pending; a later read runs it again).
  producer_->run(data_);
  producer_.reset();
  pending_.store(false, std::memory_order_release);
}

void Storage::flush_readers() {
  std::vector<std::weak_ptr<Storage>> readers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    readers.swap(readers_);
    has_readers_.store(false, std::memory_order_release);
  }
  for (const auto& w : readers)
    if (auto r = w.lock()) (void)std::as_const(*r).data();  // computes it if still pending
}

void Storage::add_reader(const std::shared_ptr<Storage>& reader) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (readers_.size() >= 16)  // drop readers already computed or freed (long-lived weights)
    std::erase_if(readers_, [](const std::weak_ptr<Storage>& w) {
      auto r = w.lock();
      return !r || !r->pending_.load(std::memory_order_acquire);
    });
  readers_.push_back(reader);
  has_readers_.store(true, std::memory_order_release);
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().stats;
}

void release_cached_memory() { cache().release(); }

}  // namespace xtape::detail
