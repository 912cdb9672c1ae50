#pragma once
/// @file callbacks.hpp
/// Keras's callbacks for Model::fit: a Callback base with hooks at the beginning and end of
/// training, of every epoch and of every batch, and ModelCheckpoint, EarlyStopping,
/// TerminateOnNaN, CSVLogger and LearningRateScheduler.
///
/// Hooks run in the order the callbacks are given in FitOptions::callbacks. Epochs are 0-based
/// in hooks (as in Keras); `logs` holds "loss", every compiled metric and, with a validation
/// split, "val_loss" and "val_<metric>" (epoch end only). Batch logs hold running averages over
/// the epoch so far. A callback stops training with model().set_stop_training(true).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "models/model.hpp"

namespace xtape::layers {

/// Base of every callback. Every hook does nothing by default.
/// What fit tells its callbacks before training (Keras's callback.params).
struct CallbackParams {
  int epochs = 0;
  /// Batches per epoch (0: unknown).
  std::size_t steps = 0;
  int verbose = 0;
};

class Callback {
 public:
  virtual ~Callback() = default;

  /// Called by fit before on_train_begin.
  void set_model(Model* model) { model_ = model; }
  /// The model being trained; throws std::logic_error outside fit.
  Model& model() const;
  /// Called by fit before on_train_begin.
  void set_params(const CallbackParams& params) { params_ = params; }
  const CallbackParams& params() const { return params_; }

  virtual void on_train_begin(const Logs& /*logs*/) {}
  virtual void on_train_end(const Logs& /*logs*/) {}
  /// `epoch` is 0-based.
  virtual void on_epoch_begin(int /*epoch*/, const Logs& /*logs*/) {}
  virtual void on_epoch_end(int /*epoch*/, const Logs& /*logs*/) {}
  /// `batch` counts from 0 within the epoch.
  virtual void on_batch_begin(std::size_t /*batch*/, const Logs& /*logs*/) {}
  virtual void on_batch_end(std::size_t /*batch*/, const Logs& /*logs*/) {}

  /// State to keep in checkpoints (key -> text), so that a resumed fit continues as the
  /// original one. Default: none.
  virtual LayerState save_state() const { return {}; }
  /// Restores save_state()'s form; throws std::invalid_argument naming a malformed entry.
  virtual void load_state(const LayerState& /*state*/) {}

 private:
  Model* model_ = nullptr;
  CallbackParams params_;
};

/// Keras's ProgbarLogger: "Epoch i/N" and the progress bar of fit (added last by fit when
/// verbose is not 0). Values show in the model's metrics_names() order.
class ProgbarLogger : public Callback {
 public:
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_batch_end(std::size_t batch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::vector<std::pair<std::string, double>> ordered(const Logs& logs, bool epoch) const;
  std::shared_ptr<class Progbar> bar_;
  std::size_t seen_ = 0;
};

/// Keras's History callback: every epoch's logs and duration (fit adds one and returns its
/// history).
class HistoryLogger : public Callback {
 public:
  void on_train_begin(const Logs& logs) override;
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  const History& history() const { return history_; }

 private:
  History history_;
  std::chrono::steady_clock::time_point start_;
};

/// "min", "max" or "auto" (max for names containing "acc", else min), as in Keras.
enum class MonitorMode { auto_, min, max };

/// Options of ModelCheckpoint.
struct ModelCheckpointOptions {
  /// Target file. "{epoch}" (or "{epoch:02d}"-style zero padding) is replaced by the 1-based
  /// epoch, so every epoch may get its own file.
  std::string filepath;
  /// Metric compared for save_best_only.
  std::string monitor = "val_loss";
  MonitorMode mode = MonitorMode::auto_;
  /// Save only when the monitored value improves on the best seen so far.
  bool save_best_only = false;
  /// true: Model::save_weights (weights only); false: Model::save_checkpoint
  /// (weights, optimizer state, epoch and RNG states, enough to resume bitwise).
  bool save_weights_only = false;
  /// 1 prints a line per save or skip.
  int verbose = 0;
};

/// Saves the model at the end of every epoch (or only the best one). Never saves weights from an
/// epoch whose loss is not finite, nor weights holding a NaN or an infinity: the previous good
/// file stays in place (every save is atomic).
class ModelCheckpoint : public Callback {
 public:
  /// Throws std::invalid_argument on an empty filepath or an "{epoch...}" field other than
  /// "{epoch}" or "{epoch:Nd}" / "{epoch:0Nd}" with N at most 20.
  explicit ModelCheckpoint(ModelCheckpointOptions options);
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// Best monitored value so far (save_best_only).
  std::optional<double> best() const { return best_; }
  /// Number of files written by this callback.
  int saves() const { return saves_; }
  /// The filepath with "{epoch...}" replaced by `epoch` (1-based).
  std::string path_for_epoch(int epoch) const;
  /// {"best": ...} once a best value is known.
  LayerState save_state() const override;
  void load_state(const LayerState& state) override;

 private:
  ModelCheckpointOptions options_;
  std::optional<double> best_;
  int saves_ = 0;
};

/// Options of EarlyStopping (Keras defaults).
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  /// Smallest change that counts as an improvement.
  double min_delta = 0.0;
  /// Epochs without improvement before stopping.
  int patience = 0;
  MonitorMode mode = MonitorMode::auto_;
  /// When set, training stops unless the monitored value beats it within `patience` epochs.
  std::optional<double> baseline = std::nullopt;
  /// Restore the weights of the best epoch when stopping (and at the end of training).
  bool restore_best_weights = false;
  /// Epochs to wait before starting to monitor.
  int start_from_epoch = 0;
  int verbose = 0;
};

/// Stops training when the monitored metric has stopped improving.
class EarlyStopping : public Callback {
 public:
  /// Throws std::invalid_argument on a negative patience or start_from_epoch.
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;
  /// 0-based epoch at which training was stopped, or -1.
  int stopped_epoch() const { return stopped_epoch_; }
  /// 0-based epoch of the best monitored value, or -1.
  int best_epoch() const { return best_epoch_; }
  /// wait, best, best_epoch, stopped_epoch (the best weights of restore_best_weights are not
  /// kept: after a resume they are those of the best epoch seen since).
  LayerState save_state() const override;
  void load_state(const LayerState& state) override;
  int wait() const { return wait_; }

 private:
  EarlyStoppingOptions options_;
  bool minimise_ = true;
  double best_ = 0.0;
  bool have_best_ = false;
  int wait_ = 0;
  int stopped_epoch_ = -1;
  int best_epoch_ = -1;
  std::vector<Tensor> best_weights_;
};

/// Stops training as soon as a batch's loss is NaN or infinite (Keras's TerminateOnNaN), printing
/// "Batch <n>: Invalid loss, terminating training". With it, fit stops and returns instead of
/// throwing; the update of the bad batch is not applied (see Model::fit).
class TerminateOnNaN : public Callback {
 public:
  void on_batch_end(std::size_t batch, const Logs& logs) override;
  /// True once it stopped a training.
  bool triggered() const { return triggered_; }

 private:
  bool triggered_ = false;
};

/// Options of CSVLogger.
struct CSVLoggerOptions {
  std::string filename;
  char separator = ',';
  /// Keep the rows of an existing file and add to them.
  bool append = false;
};

/// Writes one row per epoch: "epoch" (0-based, as Keras) then every log in name order, under a
/// header row. The whole file is rewritten atomically after every epoch, so a kill never leaves a
/// half-written row.
class CSVLogger : public Callback {
 public:
  /// Throws std::invalid_argument on an empty filename.
  explicit CSVLogger(CSVLoggerOptions options);
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  CSVLoggerOptions options_;
  std::string text_;
  std::vector<std::string> keys_;
};

/// Sets the optimizer's learning rate at the beginning of every epoch to
/// schedule(epoch, current learning rate) (epoch 0-based), as Keras's LearningRateScheduler.
class LearningRateScheduler : public Callback {
 public:
  using Schedule = std::function<float(int epoch, float learning_rate)>;
  /// Throws std::invalid_argument on an empty schedule.
  explicit LearningRateScheduler(Schedule schedule, int verbose = 0);
  /// Throws std::invalid_argument when the schedule returns a negative or non-finite rate.
  void on_epoch_begin(int epoch, const Logs& logs) override;

 private:
  Schedule schedule_;
  int verbose_;
};

/// Options of ReduceLROnPlateau (Keras defaults).
struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  /// New rate = rate * factor; in (0, 1).
  float factor = 0.1f;
  /// Epochs without improvement before a reduction.
  int patience = 10;
  int verbose = 0;
  MonitorMode mode = MonitorMode::auto_;
  /// Smallest change that counts as an improvement.
  double min_delta = 1e-4;
  /// Epochs to wait after a reduction before counting again.
  int cooldown = 0;
  /// Lower bound of the learning rate.
  float min_lr = 0.f;
};

/// Reduces the learning rate when the monitored metric stops improving (Keras's
/// ReduceLROnPlateau); adds "learning_rate" to the epoch logs it sees.
class ReduceLROnPlateau : public Callback {
 public:
  /// Throws std::invalid_argument on a factor outside (0, 1), a negative patience, cooldown
  /// or min_lr.
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// wait, cooldown_counter, best.
  LayerState save_state() const override;
  void load_state(const LayerState& state) override;
  int wait() const { return wait_; }
  int cooldown_counter() const { return cooldown_counter_; }

 private:
  ReduceLROnPlateauOptions options_;
  bool minimise_ = true;
  double best_ = 0;
  int wait_ = 0, cooldown_counter_ = 0;
};

/// Callbacks from lambdas (Keras's LambdaCallback); empty hooks do nothing.
struct LambdaCallbackOptions {
  std::function<void(int, const Logs&)> on_epoch_begin = nullptr;
  std::function<void(int, const Logs&)> on_epoch_end = nullptr;
  std::function<void(std::size_t, const Logs&)> on_batch_begin = nullptr;
  std::function<void(std::size_t, const Logs&)> on_batch_end = nullptr;
  std::function<void(const Logs&)> on_train_begin = nullptr;
  std::function<void(const Logs&)> on_train_end = nullptr;
};

class LambdaCallback : public Callback {
 public:
  explicit LambdaCallback(LambdaCallbackOptions options) : o_(std::move(options)) {}
  void on_epoch_begin(int e, const Logs& l) override {
    if (o_.on_epoch_begin) o_.on_epoch_begin(e, l);
  }
  void on_epoch_end(int e, const Logs& l) override {
    if (o_.on_epoch_end) o_.on_epoch_end(e, l);
  }
  void on_batch_begin(std::size_t b, const Logs& l) override {
    if (o_.on_batch_begin) o_.on_batch_begin(b, l);
  }
  void on_batch_end(std::size_t b, const Logs& l) override {
    if (o_.on_batch_end) o_.on_batch_end(b, l);
  }
  void on_train_begin(const Logs& l) override {
    if (o_.on_train_begin) o_.on_train_begin(l);
  }
  void on_train_end(const Logs& l) override {
    if (o_.on_train_end) o_.on_train_end(l);
  }

 private:
  LambdaCallbackOptions o_;
};

/// Options of BackupAndRestore.
struct BackupAndRestoreOptions {
  /// Directory of the backup (created if missing); the checkpoint is "<dir>/latest.safetensors".
  std::string backup_dir;
  /// Remove the backup when training ends normally.
  bool delete_checkpoint = true;
};

/// Resumes an interrupted fit (Keras's BackupAndRestore): a checkpoint (weights, optimizer,
/// RNGs, layer and callback states: Model::save_checkpoint) is written atomically at the end of
/// every epoch; a fit that finds one at its start restores it and continues from the epoch
/// after it, bitwise as the uninterrupted run (same thread count).
class BackupAndRestore : public Callback {
 public:
  /// Throws std::invalid_argument on an empty backup_dir.
  explicit BackupAndRestore(BackupAndRestoreOptions options);
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;
  /// "<backup_dir>/latest.safetensors".
  std::string path() const;
  /// The epoch a fit resumed from (-1: started afresh).
  int resumed_from() const { return resumed_from_; }

 private:
  BackupAndRestoreOptions options_;
  int resumed_from_ = -1;
};

}  // namespace xtape::layers
