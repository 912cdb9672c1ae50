// The Open MPI communicator (built only when meson finds MPI). The sum is a reduce-scatter
// followed by an all-gather, each element reduced by exactly one rank, so every rank receives
// the same bits; its cost is a ring's: 2 (p-1)/p of the buffer sent and received per rank.
//
// XTAPE_COLLECTIVE_TIMEOUT=S (seconds, as NCCL's and PyTorch's collective timeouts): a rank that
// waits longer than S in one collective (a peer hangs) prints which one and exits with status 1,
// and mpirun then ends every other rank. Unset or 0: no limit.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "distributed/communicator.hpp"

namespace xtape::distributed {

namespace {

void check_rc(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(std::string("distributed::MpiCommunicator: ") + what +
                           " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// Exits the process when one collective lasts longer than the limit.
class Watchdog {
 public:
  explicit Watchdog(double seconds, int rank) : limit_(seconds), rank_(rank) {
    if (limit_ > 0) std::thread([this] { watch(); }).detach();
  }
  void begin(const char* what) {
    what_.store(what);
    since_.store(now());
  }
  void end() { since_.store(0); }

 private:
  static std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::int64_t since = since_.load();
      if (since != 0 && double(now() - since) > limit_ * 1000.0) {
        std::fprintf(stderr,
                     "xtape: rank %d waited more than %g s in %s for the other ranks "
                     "(XTAPE_COLLECTIVE_TIMEOUT); exiting\n",
                     rank_, limit_, what_.load());
        std::fflush(stderr);
        std::_Exit(1);
      }
    }
  }
  double limit_;
  int rank_;
  std::atomic<std::int64_t> since_{0};
  std::atomic<const char*> what_{""};
};

double timeout_from_env() {
  const char* t = std::getenv("XTAPE_COLLECTIVE_TIMEOUT");
  if (!t || !*t) return 0;
  char* end = nullptr;
  const double v = std::strtod(t, &end);
  if (*end != '\0' || !(v >= 0))
    throw std::invalid_argument(
        std::string("XTAPE_COLLECTIVE_TIMEOUT: expected seconds >= 0, got '") + t + "'");
  return v;
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check_rc(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided),
               "MPI_Init_thread");
      std::atexit(finalize_at_exit);
    }
    check_rc(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_rc(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    watchdog_ = std::make_unique<Watchdog>(timeout_from_env(), rank_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void allreduce_sum(float* data, std::size_t n) override { sum(data, n, MPI_FLOAT, fbuf_); }
  void allreduce_sum(double* data, std::size_t n) override { sum(data, n, MPI_DOUBLE, dbuf_); }

  using Communicator::broadcast;
  void broadcast(void* data, std::size_t bytes, int root) override {
    if (root < 0 || root >= size_)
      throw std::invalid_argument("MpiCommunicator::broadcast: root " + std::to_string(root) +
                                  " is not a rank of a group of " + std::to_string(size_));
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes;) {
      const int part = static_cast<int>(std::min<std::size_t>(bytes - done, INT_MAX / 2));
      timed("MPI_Bcast", [&] { return MPI_Bcast(p + done, part, MPI_BYTE, root, MPI_COMM_WORLD); });
      done += static_cast<std::size_t>(part);
    }
  }
  void barrier() override {
    timed("MPI_Barrier", [] { return MPI_Barrier(MPI_COMM_WORLD); });
  }
  void allgather(const void* data, std::size_t bytes, void* out) override {
    if (bytes > INT_MAX)
      throw std::invalid_argument("MpiCommunicator::allgather: " + std::to_string(bytes) +
                                  " bytes per rank, at most " + std::to_string(INT_MAX));
    timed("MPI_Allgather", [&] {
      return MPI_Allgather(data, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes),
                           MPI_BYTE, MPI_COMM_WORLD);
    });
  }
  void abort(int code) override {
    std::cout.flush();
    std::cerr.flush();
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  // Reduce-scatter of equal blocks (the buffer padded with zeros to p blocks), then all-gather:
  // block r is summed on rank r only. Pieces of at most 2^26 elements per rank keep counts in
  // int range.
  template <class T>
  void sum(T* data, std::size_t n, MPI_Datatype type, std::vector<T>& buf) {
    if (size_ == 1 || n == 0) return;
    const std::size_t p = static_cast<std::size_t>(size_);
    const std::size_t max_block = std::size_t(1) << 26;
    for (std::size_t done = 0; done < n;) {
      const std::size_t piece = std::min(n - done, max_block * p);
      const std::size_t block = (piece + p - 1) / p;
      buf.assign(block * p + block, T(0));  // padded send buffer, then this rank's block
      std::memcpy(buf.data(), data + done, piece * sizeof(T));
      T* mine = buf.data() + block * p;
      timed("MPI_Reduce_scatter_block", [&] {
        return MPI_Reduce_scatter_block(buf.data(), mine, static_cast<int>(block), type, MPI_SUM,
                                        MPI_COMM_WORLD);
      });
      timed("MPI_Allgather", [&] {
        return MPI_Allgather(mine, static_cast<int>(block), type, buf.data(),
                             static_cast<int>(block), type, MPI_COMM_WORLD);
      });
      std::memcpy(data + done, buf.data(), piece * sizeof(T));
      done += piece;
    }
  }

  // Runs one MPI call under the watchdog and throws on its error code.
  template <class F>
  void timed(const char* what, F&& call) {
    watchdog_->begin(what);
    const int rc = call();
    watchdog_->end();
    check_rc(rc, what);
  }

  int rank_ = 0, size_ = 1;
  std::unique_ptr<Watchdog> watchdog_;
  std::vector<float> fbuf_;
  std::vector<double> dbuf_;
};

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<Communicator> mpi_world() {
  static std::once_flag once;
  static std::shared_ptr<Communicator> w;
  std::call_once(once, [] { w = std::make_shared<MpiCommunicator>(); });
  return w;
}

std::shared_ptr<Communicator> world() {
  static const std::shared_ptr<Communicator> w =
      std::getenv("OMPI_COMM_WORLD_SIZE")
          ? mpi_world()
          : std::shared_ptr<Communicator>(std::make_shared<SingleProcess>());
  return w;
}

}  // namespace xtape::distributed
