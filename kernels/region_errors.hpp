#pragma once
/// @file region_errors.hpp
/// Carries exceptions out of OpenMP regions. An exception that leaves a parallel region's
/// structured block calls std::terminate (the process aborts, nothing can catch it), so every
/// region in kernels/ whose body can throw (scratch buffers and tables that grow, GEMM packing
/// buffers) runs the body through RegionErrors::run and calls rethrow() after the region.
#include <atomic>
#include <exception>
#include <mutex>

namespace xtape::kernels::detail {

/// The first exception thrown by the bodies run through run(); later bodies are skipped once
/// one has failed (their results are discarded with the exception).
class RegionErrors {
 public:
  template <class F>
  void run(F&& body) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  /// Rethrows the first exception caught, if any (call after the region, on the calling thread).
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace xtape::kernels::detail
