#pragma once
/// @file tensorboard.hpp
/// Keras's TensorBoard callback: scalars and weight histograms in TensorBoard event files
/// (training/event_file.hpp), laid out as Keras lays them out, so `tensorboard --logdir <log_dir>`
/// shows a run's train and validation curves side by side.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "training/callbacks.hpp"
#include "training/event_file.hpp"

namespace xtape::layers {

/// Options of TensorBoard (Keras names and defaults).
struct TensorBoardOptions {
  /// Root of the run; events go to `<log_dir>/train/` and `<log_dir>/validation/`.
  std::string log_dir = "logs";
  /// Every this many epochs (0-based epoch % histogram_freq == 0) a histogram of every weight
  /// is written as "<weight path>/histogram" ("dense/kernel/histogram"); 0: none.
  int histogram_freq = 0;
  /// Accepted for Keras compatibility and ignored (Keras 3 does not write the graph either).
  bool write_graph = true;
  /// "epoch": scalars at the end of every epoch only; "batch": also "batch_<name>" scalars
  /// after every batch.
  std::string update_freq = "epoch";
  /// Keras's integer update_freq: when > 0, "batch_<name>" scalars every this many batches
  /// (update_freq must then be "epoch", or "batch" with 1).
  std::size_t update_freq_batches = 0;
};

/// Writes TensorBoard event files during fit, as keras.callbacks.TensorBoard:
/// - at every epoch end, in `<log_dir>/train/`, "epoch_<name>" for every log without the
///   "val_" prefix ("epoch_loss", "epoch_accuracy") and "epoch_learning_rate" (the optimizer's
///   rate), at step = the 0-based epoch; in `<log_dir>/validation/`, "epoch_<name>" for every
///   "val_<name>" log ("val_loss" -> "epoch_loss"), same step;
/// - every N batches (update_freq), in train/, "batch_<name>" for every batch log (running
///   averages over the epoch, as Keras), at step = the 1-based count of batches trained since
///   on_train_begin (N divides it);
/// - every histogram_freq epochs, in train/, the weight histograms, at step = the epoch.
/// Every fit starts new event files (as Keras's writers are made anew per fit); the validation
/// file is made only when a "val_" log first appears. Files are flushed after every epoch and
/// closed at the end of training (or when the callback is destroyed, if fit threw).
class TensorBoard : public Callback {
 public:
  /// Throws std::invalid_argument on an empty log_dir, a negative histogram_freq, an
  /// update_freq other than "epoch" or "batch", or "batch" with update_freq_batches > 1.
  explicit TensorBoard(TensorBoardOptions options = {});
  ~TensorBoard() override;

  /// Creates the train event file; throws std::runtime_error when it cannot be created.
  void on_train_begin(const Logs& logs) override;
  /// Counts the batch (the step of batch scalars).
  void on_batch_begin(std::size_t batch, const Logs& logs) override;
  /// Queues "batch_<name>" scalars when the batch count is a multiple of the update frequency.
  void on_batch_end(std::size_t batch, const Logs& logs) override;
  /// Writes the epoch scalars and histograms and flushes; throws std::runtime_error on a
  /// write error.
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// Flushes and closes the files.
  void on_train_end(const Logs& logs) override;

  /// Paths of the current (or last) fit's event files; empty before it made them.
  std::string train_file() const;
  std::string validation_file() const;

 private:
  EventFileWriter& validation_writer();

  TensorBoardOptions options_;
  /// Batch scalars every this many batches; 0: none.
  std::size_t batch_every_ = 0;
  std::int64_t global_batch_ = 0;
  std::unique_ptr<EventFileWriter> train_, validation_;
  std::string train_path_, validation_path_;
};

}  // namespace xtape::layers
