#pragma once
/// @file data_parallel.hpp
/// Data-parallel training (PyTorch DDP's and Horovod's design): give a DataParallel to
/// FitOptions::distribute and run the program on every rank (`mpirun -np P prog`).
///
/// ```cpp
/// auto dp = std::make_shared<distributed::DataParallel>();   // distributed::world()
/// model.fit(x, y, {.batch_size = 128, .epochs = 5, .distribute = dp});
/// ```
/// What fit then does:
/// - at the start of every epoch (after the callbacks' on_epoch_begin) rank 0 broadcasts every
///   weight (trainable or not), the optimizer's slots, iterations and learning rate, the shuffle
///   RNG, global_rng() and every layer's state; ranks other than 0 then derive their own Dropout
///   (layer "rng" states) and global_rng() streams from rank 0's, so a run resumed from a rank-0
///   checkpoint on the same number of ranks continues bitwise, Dropout included;
/// - every epoch one permutation of the rows from the shared shuffle RNG (the same on every
///   rank); each global batch of batch_size rows is split into contiguous shards, rank r taking
///   rows [r b / P, (r + 1) b / P) of a batch of b rows; a last batch with fewer rows than ranks
///   is dropped, so every rank runs the same number of steps;
/// - after backward the gradients are packed into fixed-order buckets (reverse registration
///   order, about bucket_bytes each), each rank's scaled by its share of the global batch
///   (b_r / b), summed by one synchronous all-reduce per bucket (not overlapped with backward)
///   and copied back, before the compiled gradient transforms and the optimizer's own clipping:
///   every rank applies the same bits and keeps bitwise the same weights;
/// - loss and metric sums and counts are all-reduced after every batch and after validation
///   (validation rows are split contiguously between the ranks), so callbacks decide on global
///   values; only rank 0 prints the progress bar and writes checkpoints, CSV and TensorBoard
///   files, and every rank passes a barrier after each epoch's callbacks;
/// - an exception on any rank during training ends the whole job with MPI_Abort (exit status 1)
///   after printing it, so that no rank waits forever for a collective (a rank that hangs: see
///   XTAPE_COLLECTIVE_TIMEOUT in communicator.hpp).
/// Every rank must run the same collectives in the same order: a train_step of the user's must
/// call apply_gradients on every rank at every step, and with a Dataset every rank's Dataset
/// must yield its own shard in the same number of batches (fit checks the count).
#include <cstddef>
#include <memory>
#include <vector>

#include "distributed/communicator.hpp"
#include "optim/optimizers.hpp"

namespace xtape::distributed {

/// Options of DataParallel.
struct DataParallelOptions {
  /// The group (null: world()).
  std::shared_ptr<Communicator> communicator = nullptr;
  /// Target size of a gradient bucket in bytes (PyTorch DDP's bucket_cap_mb, 25 MB); a larger
  /// gradient gets a bucket of its own. Must be positive.
  std::size_t bucket_bytes = std::size_t(25) << 20;
};

/// The data-parallel strategy of fit (see the file comment), and the gradient all-reduce it
/// runs between backward and the optimizer.
class DataParallel {
 public:
  /// Throws std::invalid_argument on a bucket_bytes of 0.
  explicit DataParallel(DataParallelOptions options = {});

  Communicator& communicator() const { return *comm_; }
  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }

  /// Called by train_step after backward with this rank's rows in the batch and whether its loss
  /// is finite: one all-reduce of both. Returns true when every rank's loss is finite (then the
  /// update is applied everywhere, else nowhere); records this rank's share of the global batch.
  /// Throws std::runtime_error when no rank has a row.
  bool begin_step(std::size_t local_rows, bool loss_finite);

  /// The gradient transform: scales each gradient by this rank's share (1/P when no
  /// begin_step came since the last call, as from a user's train_step), packs them into the
  /// buckets, all-reduces every bucket and writes the sums back into the gradients. A variable
  /// without a gradient counts as zeros (and gets one). The buckets are planned at the first
  /// call and again when the variables change (names or sizes).
  void reduce_gradients(std::vector<optim::Variable>& variables);

  /// The buckets of the last reduce_gradients: element counts, in reduction order.
  const std::vector<std::size_t>& bucket_sizes() const { return bucket_sizes_; }
  /// Bytes of gradient all-reduced per step (the sum of the buckets, 4 bytes an element).
  std::size_t bytes_per_step() const;
  /// Steps reduced so far.
  std::size_t steps() const { return steps_; }

 private:
  struct Slot {
    std::size_t var, offset, size;
  };
  void plan(const std::vector<optim::Variable>& variables);

  std::shared_ptr<Communicator> comm_;
  std::size_t bucket_bytes_;
  float share_ = 1.f;
  std::size_t steps_ = 0;
  std::vector<std::string> planned_names_;
  std::vector<std::size_t> planned_sizes_;
  std::vector<std::vector<Slot>> buckets_;
  std::vector<std::size_t> bucket_sizes_;
  std::vector<float> buffer_;
};

}  // namespace xtape::distributed
