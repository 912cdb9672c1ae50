#include "training/tensorboard.hpp"

#include <filesystem>
#include <span>
#include <stdexcept>

namespace xtape::layers {

namespace {

bool is_validation(const std::string& name) { return name.rfind("val_", 0) == 0; }

}  // namespace

TensorBoard::TensorBoard(TensorBoardOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  if (o.log_dir.empty()) throw std::invalid_argument("TensorBoard: log_dir is empty");
  if (o.histogram_freq < 0)
    throw std::invalid_argument("TensorBoard: histogram_freq must be >= 0, got " +
                                std::to_string(o.histogram_freq));
  if (o.update_freq != "epoch" && o.update_freq != "batch")
    throw std::invalid_argument("TensorBoard: update_freq must be \"epoch\" or \"batch\", got \"" +
                                o.update_freq + "\"");
  if (o.update_freq == "batch" && o.update_freq_batches > 1)
    throw std::invalid_argument(
        "TensorBoard: update_freq \"batch\" means every batch, but update_freq_batches is " +
        std::to_string(o.update_freq_batches));
  batch_every_ = o.update_freq == "batch" ? 1 : o.update_freq_batches;
}

TensorBoard::~TensorBoard() = default;

std::string TensorBoard::train_file() const { return train_path_; }
std::string TensorBoard::validation_file() const { return validation_path_; }

EventFileWriter& TensorBoard::validation_writer() {
  if (!validation_) {
    validation_ = std::make_unique<EventFileWriter>(
        (std::filesystem::path(options_.log_dir) / "validation").string());
    validation_path_ = validation_->path();
  }
  return *validation_;
}

void TensorBoard::on_train_begin(const Logs&) {
  // Files of an earlier fit that threw are closed here (their errors swallowed).
  train_.reset();
  validation_.reset();
  train_path_.clear();
  validation_path_.clear();
  global_batch_ = 0;
  if (!model().is_chief()) return;  // data-parallel: rank 0 writes
  train_ = std::make_unique<EventFileWriter>(
      (std::filesystem::path(options_.log_dir) / "train").string());
  train_path_ = train_->path();
}

void TensorBoard::on_batch_begin(std::size_t, const Logs&) { ++global_batch_; }

void TensorBoard::on_batch_end(std::size_t, const Logs& logs) {
  if (batch_every_ == 0 || !train_ || global_batch_ % static_cast<std::int64_t>(batch_every_) != 0)
    return;
  for (const auto& [name, value] : logs) train_->add_scalar("batch_" + name, value, global_batch_);
}

void TensorBoard::on_epoch_end(int epoch, const Logs& logs) {
  if (!model().is_chief()) return;
  if (!train_) throw std::logic_error("TensorBoard::on_epoch_end: called before on_train_begin");
  const std::int64_t step = epoch;
  if (!logs.empty()) {
    Logs train_logs;
    for (const auto& [name, value] : logs)
      if (!is_validation(name)) train_logs[name] = value;
    if (const auto* opt = model().optimizer()) train_logs["learning_rate"] = opt->learning_rate();
    for (const auto& [name, value] : train_logs) train_->add_scalar("epoch_" + name, value, step);
    for (const auto& [name, value] : logs)
      if (is_validation(name))
        validation_writer().add_scalar("epoch_" + name.substr(4), value, step);
  }
  if (options_.histogram_freq > 0 && epoch % options_.histogram_freq == 0)
    for (const auto& [name, weight] : model().named_weights())
      train_->add_histogram(name + "/histogram",
                            std::span<const float>(weight.data(), weight.size()), step);
  train_->flush();
  if (validation_) validation_->flush();
}

void TensorBoard::on_train_end(const Logs&) {
  if (train_) train_->close();
  if (validation_) validation_->close();
  train_.reset();
  validation_.reset();
}

}  // namespace xtape::layers
