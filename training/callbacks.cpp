#include "training/callbacks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "layers/saving.hpp"
#include "training/progbar.hpp"
#include "training/state_numbers.hpp"

namespace xtape::layers {

namespace {

bool minimise(MonitorMode mode, const std::string& monitor) {
  if (mode == MonitorMode::min) return true;
  if (mode == MonitorMode::max) return false;
  // Keras's "auto": accuracy-like metrics grow, everything else shrinks.
  return monitor.find("acc") == std::string::npos && monitor.find("auc") == std::string::npos;
}

bool better(double current, double best, bool min, double min_delta) {
  return min ? current < best - min_delta : current > best + min_delta;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5f", v);
  return buf;
}

bool weights_finite(const Model& model) {
  for (const auto& [_, t] : model.named_weights()) {
    const float* p = t.data();
    for (std::size_t i = 0, n = t.size(); i < n; ++i)
      if (!std::isfinite(p[i])) return false;
  }
  return true;
}

}  // namespace

Model& Callback::model() const {
  if (!model_) throw std::logic_error("Callback::model: the callback is not attached to a fit");
  return *model_;
}

// ---- ProgbarLogger and HistoryLogger ----

std::vector<std::pair<std::string, double>> ProgbarLogger::ordered(const Logs& logs,
                                                                   bool epoch) const {
  // Batches show the metrics, then the loss; an epoch's line the loss first, then the
  // metrics, then the validation values in the same order.
  std::vector<std::pair<std::string, double>> out;
  const std::vector<std::string> names = model().metrics_names();
  auto add = [&](const std::string& k) {
    if (const auto it = logs.find(k); it != logs.end()) out.emplace_back(k, it->second);
  };
  if (epoch) {
    for (const auto& n : names) add(n);
    for (const auto& n : names) add("val_" + n);
  } else {
    for (std::size_t i = 1; i < names.size(); ++i) add(names[i]);
    add("loss");
  }
  for (const auto& entry : logs) {  // anything a custom step logs, at the end
    const std::string& key = entry.first;
    if (std::none_of(out.begin(), out.end(), [&](const auto& p) { return p.first == key; }))
      out.emplace_back(entry);
  }
  return out;
}

void ProgbarLogger::on_epoch_begin(int epoch, const Logs&) {
  if (params().verbose) std::cout << "Epoch " << epoch + 1 << '/' << params().epochs << '\n';
  bar_ = std::make_shared<Progbar>(params().steps, params().verbose);
  seen_ = 0;
}

void ProgbarLogger::on_batch_end(std::size_t batch, const Logs& logs) {
  seen_ = batch + 1;
  if (params().verbose && bar_ && (params().steps == 0 || seen_ < params().steps))
    bar_->update(seen_, ordered(logs, false), false);
}

void ProgbarLogger::on_epoch_end(int, const Logs& logs) {
  if (bar_) bar_->update(seen_, ordered(logs, true), true);
}

void HistoryLogger::on_train_begin(const Logs&) { history_ = History{}; }

void HistoryLogger::on_epoch_begin(int, const Logs&) { start_ = std::chrono::steady_clock::now(); }

void HistoryLogger::on_epoch_end(int, const Logs& logs) {
  for (const auto& [k, v] : logs) history_.history[k].push_back(v);
  history_.epoch_seconds.push_back(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

// ---- ModelCheckpoint ----

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : options_(std::move(options)) {
  if (options_.filepath.empty()) throw std::invalid_argument("ModelCheckpoint: filepath is empty");
  const std::string& p = options_.filepath;
  const auto open = p.find("{epoch");
  if (open == std::string::npos) return;
  const auto close = p.find('}', open);
  const std::string spec =
      close == std::string::npos ? p.substr(open) : p.substr(open + 6, close - open - 6);
  bool ok = close != std::string::npos;
  if (ok && !spec.empty()) {
    // ":Nd" or ":0Nd", N of at most two digits and at most 20 (a 64-bit number's digits).
    std::string width = spec.size() >= 3 && spec[0] == ':' && spec.back() == 'd'
                            ? spec.substr(1, spec.size() - 2)
                            : std::string("x");
    if (!width.empty() && width[0] == '0') width = width.substr(1);
    ok = !width.empty() && width.size() <= 2 &&
         width.find_first_not_of("0123456789") == std::string::npos && std::stoi(width) <= 20;
  }
  if (!ok)
    throw std::invalid_argument(
        "ModelCheckpoint: filepath '" + p +
        "': expected '{epoch}' or '{epoch:Nd}' with N at most 20, got '" +
        (close == std::string::npos ? p.substr(open) : p.substr(open, close - open + 1)) + "'");
}

void ModelCheckpoint::on_train_begin(const Logs&) { saves_ = 0; }

std::string ModelCheckpoint::path_for_epoch(int epoch) const {
  const std::string& p = options_.filepath;
  const auto open = p.find("{epoch");
  if (open == std::string::npos) return p;
  const auto close = p.find('}', open);
  if (close == std::string::npos) return p;
  const std::string spec = p.substr(open + 6, close - open - 6);  // "" or ":02d"
  std::string digits = std::to_string(epoch);
  if (spec.size() >= 3 && spec[0] == ':' && spec.back() == 'd') {
    const std::string width = spec.substr(1, spec.size() - 2);
    const int w = width.empty() ? 0 : std::atoi(width.c_str());
    if (static_cast<int>(digits.size()) < w)
      digits.insert(0, static_cast<std::size_t>(w) - digits.size(), '0');
  }
  return p.substr(0, open) + digits + p.substr(close + 1);
}

void ModelCheckpoint::on_epoch_end(int epoch, const Logs& logs) {
  Model& m = model();
  const std::string path = path_for_epoch(epoch + 1);
  const bool chief = m.is_chief();  // data-parallel: rank 0 prints and writes
  auto say = [&](const std::string& s) {
    if (options_.verbose && chief) std::cout << "\nEpoch " << epoch + 1 << ": " << s << '\n';
  };
  const auto loss = logs.find("loss");
  if ((loss != logs.end() && !std::isfinite(loss->second)) || !weights_finite(m)) {
    // Printed whatever the verbosity: the user must learn that the file was kept.
    if (chief)
      std::cout << "\nEpoch " << epoch + 1 << ": ModelCheckpoint: loss or weights are not finite, "
                << "not saving over " << path << '\n';
    return;
  }
  if (options_.save_best_only) {
    const auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      std::cout << "ModelCheckpoint: can save best model only with " << options_.monitor
                << " available, skipping\n";
      return;
    }
    const double current = it->second;
    const bool min = minimise(options_.mode, options_.monitor);
    if (!std::isfinite(current) || (best_ && !better(current, *best_, min, 0.0))) {
      say(options_.monitor + " did not improve from " + (best_ ? num(*best_) : std::string("-")));
      return;
    }
    say(options_.monitor + " improved from " + (best_ ? num(*best_) : std::string("inf")) + " to " +
        num(current) + ", saving model to " + path);
    best_ = current;
  } else {
    say("saving model to " + path);
  }
  if (!chief) return;
  if (options_.save_weights_only) {
    m.save_weights(path);
  } else {
    m.save_checkpoint(path, epoch + 1);
  }
  ++saves_;
}

LayerState ModelCheckpoint::save_state() const {
  if (!best_) return {};
  return {{"best", state_numbers::text(*best_)}};
}

void ModelCheckpoint::load_state(const LayerState& state) {
  if (state.empty()) return;
  best_ = state_numbers::number(state, "best", "ModelCheckpoint");
}

// ---- EarlyStopping ----

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.patience < 0)
    throw std::invalid_argument("EarlyStopping: patience must be >= 0, got " +
                                std::to_string(options_.patience));
  if (options_.start_from_epoch < 0)
    throw std::invalid_argument("EarlyStopping: start_from_epoch must be >= 0, got " +
                                std::to_string(options_.start_from_epoch));
  minimise_ = minimise(options_.mode, options_.monitor);
  options_.min_delta = std::abs(options_.min_delta);
}

void EarlyStopping::on_train_begin(const Logs&) {
  wait_ = 0;
  stopped_epoch_ = -1;
  best_epoch_ = -1;
  best_weights_.clear();
  have_best_ = false;
  best_ = 0.0;
}

void EarlyStopping::on_epoch_end(int epoch, const Logs& logs) {
  const auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    std::cout << "EarlyStopping: monitored metric '" << options_.monitor << "' is not available\n";
    return;
  }
  if (epoch < options_.start_from_epoch) return;
  const double current = it->second;
  ++wait_;
  if (std::isfinite(current) &&
      (!have_best_ || better(current, best_, minimise_, options_.min_delta))) {
    best_ = current;
    have_best_ = true;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = model().get_weights();
    // Keras: the wait restarts only when the baseline is beaten too.
    if (!options_.baseline || better(current, *options_.baseline, minimise_, options_.min_delta))
      wait_ = 0;
    return;
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model().set_stop_training(true);
  }
}

void EarlyStopping::on_train_end(const Logs&) {
  if (stopped_epoch_ >= 0 && options_.verbose)
    std::cout << "Epoch " << stopped_epoch_ + 1 << ": early stopping\n";
  if (options_.restore_best_weights && !best_weights_.empty()) {
    if (options_.verbose)
      std::cout << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1
                << ".\n";
    model().set_weights(best_weights_);
  }
}

LayerState EarlyStopping::save_state() const {
  LayerState s = {{"wait", std::to_string(wait_)},
                  {"best_epoch", std::to_string(best_epoch_)},
                  {"stopped_epoch", std::to_string(stopped_epoch_)}};
  if (have_best_) s["best"] = state_numbers::text(best_);
  return s;
}

void EarlyStopping::load_state(const LayerState& state) {
  const int wait = state_numbers::integer(state, "wait", "EarlyStopping", 0, 1 << 30);
  const int best_epoch = state_numbers::integer(state, "best_epoch", "EarlyStopping", -1, 1 << 30);
  const int stopped = state_numbers::integer(state, "stopped_epoch", "EarlyStopping", -1, 1 << 30);
  const bool have = state.count("best") != 0;
  const double best = have ? state_numbers::number(state, "best", "EarlyStopping") : 0.0;
  wait_ = wait;
  best_epoch_ = best_epoch;
  stopped_epoch_ = stopped;
  have_best_ = have;
  best_ = best;
}

// ---- TerminateOnNaN ----

void TerminateOnNaN::on_batch_end(std::size_t batch, const Logs& logs) {
  const auto it = logs.find("loss");
  if (it != logs.end() && !std::isfinite(it->second)) {
    std::cout << "Batch " << batch << ": Invalid loss, terminating training\n";
    triggered_ = true;
    model().set_stop_training(true);
  }
}

// ---- CSVLogger ----

CSVLogger::CSVLogger(CSVLoggerOptions options) : options_(std::move(options)) {
  if (options_.filename.empty()) throw std::invalid_argument("CSVLogger: filename is empty");
}

void CSVLogger::on_train_begin(const Logs&) {
  text_.clear();
  keys_.clear();
  if (options_.append && std::filesystem::exists(options_.filename)) {
    std::ifstream in(options_.filename, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    text_ = ss.str();
    // Keep the existing columns: the header is the first line.
    const std::string header = text_.substr(0, text_.find('\n'));
    std::string key;
    std::istringstream hs(header);
    bool first = true;
    while (std::getline(hs, key, options_.separator)) {
      if (!first) keys_.push_back(key);
      first = false;
    }
    if (!text_.empty() && text_.back() != '\n') text_ += '\n';
  }
}

void CSVLogger::on_epoch_end(int epoch, const Logs& logs) {
  if (keys_.empty()) {
    for (const auto& [k, _] : logs) keys_.push_back(k);
    text_ += "epoch";
    for (const auto& k : keys_) text_ += options_.separator + k;
    text_ += '\n';
  }
  text_ += std::to_string(epoch);
  char buf[40];
  for (const auto& k : keys_) {
    text_ += options_.separator;
    const auto it = logs.find(k);
    if (it == logs.end()) {
      text_ += "NA";
    } else {
      std::snprintf(buf, sizeof buf, "%.17g", it->second);
      text_ += buf;
    }
  }
  text_ += '\n';
  if (model().is_chief()) write_file_atomic(options_.filename, text_);
}

// ---- LearningRateScheduler ----

LearningRateScheduler::LearningRateScheduler(Schedule schedule, int verbose)
    : schedule_(std::move(schedule)), verbose_(verbose) {
  if (!schedule_) throw std::invalid_argument("LearningRateScheduler: empty schedule");
}

void LearningRateScheduler::on_epoch_begin(int epoch, const Logs&) {
  auto* opt = model().optimizer();
  if (!opt) throw std::logic_error("LearningRateScheduler: the model is not compiled");
  const float lr = schedule_(epoch, opt->learning_rate());
  if (!std::isfinite(lr) || lr < 0.f)
    throw std::invalid_argument("LearningRateScheduler: the schedule returned " +
                                std::to_string(lr) + " at epoch " + std::to_string(epoch) +
                                ", expected a finite rate >= 0");
  opt->set_learning_rate(lr);
  if (verbose_)
    std::cout << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to "
              << lr << ".\n";
}

}  // namespace xtape::layers
