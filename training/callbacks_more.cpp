// ReduceLROnPlateau and BackupAndRestore.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "training/callbacks.hpp"
#include "training/state_numbers.hpp"

namespace xtape::layers {

namespace {

bool minimise_for(MonitorMode mode, const std::string& monitor) {
  if (mode == MonitorMode::min) return true;
  if (mode == MonitorMode::max) return false;
  return monitor.find("acc") == std::string::npos && monitor.find("auc") == std::string::npos;
}

}  // namespace

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : options_(std::move(options)) {
  if (!(options_.factor > 0.f && options_.factor < 1.f))
    throw std::invalid_argument("ReduceLROnPlateau: factor must be in (0, 1), got " +
                                std::to_string(options_.factor));
  if (options_.patience < 0 || options_.cooldown < 0 || !(options_.min_lr >= 0.f))
    throw std::invalid_argument(
        "ReduceLROnPlateau: patience, cooldown and min_lr must be >= 0, got " +
        std::to_string(options_.patience) + ", " + std::to_string(options_.cooldown) + ", " +
        std::to_string(options_.min_lr));
  minimise_ = minimise_for(options_.mode, options_.monitor);
  on_train_begin({});
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  best_ = minimise_ ? INFINITY : -INFINITY;
  wait_ = 0;
  cooldown_counter_ = 0;
}

void ReduceLROnPlateau::on_epoch_end(int epoch, const Logs& logs) {
  optim::Optimizer* opt = model().optimizer();
  if (!opt) throw std::logic_error("ReduceLROnPlateau: the model is not compiled");
  const auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    std::cout << "ReduceLROnPlateau: monitored metric '" << options_.monitor
              << "' is not available\n";
    return;
  }
  const double current = it->second;
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  const bool improved =
      minimise_ ? current < best_ - options_.min_delta : current > best_ + options_.min_delta;
  if (improved) {
    best_ = current;
    wait_ = 0;
  } else if (cooldown_counter_ == 0) {
    ++wait_;
    if (wait_ >= options_.patience) {
      const float old_lr = opt->learning_rate();
      if (old_lr > options_.min_lr) {
        const float new_lr = std::max(old_lr * options_.factor, options_.min_lr);
        opt->set_learning_rate(new_lr);
        if (options_.verbose)
          std::cout << "\nEpoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to "
                    << new_lr << ".\n";
        cooldown_counter_ = options_.cooldown;
        wait_ = 0;
      }
    }
  }
}

LayerState ReduceLROnPlateau::save_state() const {
  return {{"wait", std::to_string(wait_)},
          {"cooldown_counter", std::to_string(cooldown_counter_)},
          {"best", state_numbers::text(best_)}};
}

void ReduceLROnPlateau::load_state(const LayerState& state) {
  const int wait = state_numbers::integer(state, "wait", "ReduceLROnPlateau", 0, 1 << 30);
  const int cooldown =
      state_numbers::integer(state, "cooldown_counter", "ReduceLROnPlateau", 0, 1 << 30);
  const double best = state_numbers::number(state, "best", "ReduceLROnPlateau");
  wait_ = wait;
  cooldown_counter_ = cooldown;
  best_ = best;
}

// ---- BackupAndRestore ----

BackupAndRestore::BackupAndRestore(BackupAndRestoreOptions options) : options_(std::move(options)) {
  if (options_.backup_dir.empty())
    throw std::invalid_argument("BackupAndRestore: backup_dir is empty");
}

std::string BackupAndRestore::path() const {
  return (std::filesystem::path(options_.backup_dir) / "latest.safetensors").string();
}

void BackupAndRestore::on_train_begin(const Logs&) {
  resumed_from_ = -1;
  std::error_code ec;
  std::filesystem::create_directories(options_.backup_dir, ec);
  if (ec)
    throw std::runtime_error("BackupAndRestore: cannot create '" + options_.backup_dir +
                             "': " + ec.message());
  if (!std::filesystem::exists(path())) return;
  resumed_from_ = model().load_checkpoint(path());
  model().set_resume_epoch(resumed_from_);
}

void BackupAndRestore::on_epoch_end(int epoch, const Logs&) {
  if (model().is_chief()) model().save_checkpoint(path(), epoch + 1);
}

void BackupAndRestore::on_train_end(const Logs&) {
  if (options_.delete_checkpoint && model().is_chief()) {
    std::error_code ec;
    std::filesystem::remove(path(), ec);
  }
}

}  // namespace xtape::layers
