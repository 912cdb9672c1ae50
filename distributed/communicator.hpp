#pragma once
/// @file communicator.hpp
/// The collective operations data-parallel training needs (Horovod's and PyTorch's
/// ProcessGroup's small core): rank, size, all-reduce (sum, in place), broadcast, barrier,
/// all-gather and abort. Two implementations: one process (every collective is the identity)
/// and Open MPI (distributed/mpi.cpp, built when meson finds MPI).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace xtape::distributed {

/// A group of processes ("ranks") that take part in every collective together, in the same
/// order. Every collective blocks until the whole group has called it.
class Communicator {
 public:
  virtual ~Communicator() = default;
  /// This process's index in the group, in [0, size()).
  virtual int rank() const = 0;
  /// Number of processes in the group (>= 1).
  virtual int size() const = 0;
  /// "single-process" or "mpi".
  virtual std::string name() const = 0;

  /// Sums `n` floats over the group, in place. The result is bitwise the same on every rank
  /// (each element is reduced by one rank, then copied to the others).
  virtual void allreduce_sum(float* data, std::size_t n) = 0;
  /// The same for doubles (metric sums and counts).
  virtual void allreduce_sum(double* data, std::size_t n) = 0;
  /// Copies `bytes` bytes from rank `root`'s buffer into every rank's.
  virtual void broadcast(void* data, std::size_t bytes, int root = 0) = 0;
  /// Returns when every rank has called it.
  virtual void barrier() = 0;
  /// Every rank gives `bytes` bytes; `out` (size() * bytes) receives them in rank order.
  virtual void allgather(const void* data, std::size_t bytes, void* out) = 0;
  /// Ends every process of the group with `code` (MPI_Abort); one process: std::exit(code)
  /// after flushing. Used when a rank fails, so that no other rank waits forever.
  [[noreturn]] virtual void abort(int code) = 0;

  /// True on rank 0, the rank that prints and writes files (Horovod's "chief").
  bool is_chief() const { return rank() == 0; }
  /// Broadcast of a string of any length from `root` (its length first).
  void broadcast(std::string& text, int root = 0);
  /// True on every rank when `value` is true on every rank.
  bool all_true(bool value);
};

/// A group of one process: every collective returns its input.
class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single-process"; }
  void allreduce_sum(float*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  using Communicator::broadcast;
  void broadcast(void*, std::size_t, int root = 0) override;
  void barrier() override {}
  void allgather(const void* data, std::size_t bytes, void* out) override;
  [[noreturn]] void abort(int code) override;
};

/// True when this library was built with MPI (meson found `dependency('mpi')`).
bool mpi_available();

/// The group of every process of the job: Open MPI's MPI_COMM_WORLD when the library has MPI
/// and the process was started by mpirun (OMPI_COMM_WORLD_SIZE is set), else a SingleProcess.
/// MPI is initialised on the first call (MPI_THREAD_FUNNELED: collectives from one thread) and
/// finalised at exit. The same object on every call. With XTAPE_COLLECTIVE_TIMEOUT=S (seconds;
/// unset or 0: no limit) a rank that waits longer than S in one collective prints which one and
/// exits with status 1, and mpirun ends the other ranks; std::invalid_argument when it is not
/// a number >= 0. Throws std::runtime_error in a build without MPI started by mpirun on more
/// than one rank (each process would otherwise train alone).
std::shared_ptr<Communicator> world();

/// Open MPI's world communicator; throws std::runtime_error when the library was built without
/// MPI.
std::shared_ptr<Communicator> mpi_world();

}  // namespace xtape::distributed
