// Model::fit, evaluate and predict: Keras's training loop on in-memory arrays.
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "models/model.hpp"
#include "training/callbacks.hpp"
#include "training/progbar.hpp"

namespace xtape::layers {

using Clock = std::chrono::steady_clock;

namespace {
void check_xy(const char* who, const Tensor& x, const Tensor& y) {
  if (x.ndim() == 0 || y.ndim() == 0 || x.shape()[0] != y.shape()[0])
    throw std::invalid_argument(std::string(who) + ": x of shape " + shape_str(x.shape()) +
                                " and y of shape " + shape_str(y.shape()) +
                                " must have the same number of samples");
  if (x.shape()[0] == 0) throw std::invalid_argument(std::string(who) + ": no samples");
}

// ceil(n / batch) without overflow for any batch size.
std::size_t steps_for(std::size_t n, std::size_t batch) { return n / batch + (n % batch != 0); }

std::vector<std::size_t> range(std::size_t begin, std::size_t end) {
  std::vector<std::size_t> r(end - begin);
  std::iota(r.begin(), r.end(), begin);
  return r;
}
}  // namespace

std::map<std::string, double> Model::run_eval(const Tensor& x, const Tensor& y, std::size_t begin,
                                              std::size_t end, std::size_t batch_size,
                                              int verbose) {
  NoGrad no_grad;
  const FlushDenormal flush;
  const std::size_t n = end - begin, steps = steps_for(n, batch_size);
  Progbar bar(steps, verbose);
  double loss_total = 0;
  std::vector<MetricBatch> totals(metrics_.size());
  std::vector<std::pair<std::string, double>> shown;
  for (std::size_t s = 0; s < steps; ++s) {
    const std::size_t b0 = begin + s * batch_size, b1 = b0 + std::min(batch_size, end - b0);
    const auto rows = range(b0, b1);
    const Tensor xb = gather_rows(x, rows), yb = gather_rows(y, rows);
    const Tensor yp = (*this)(xb, false);
    loss_total += double(loss_(yb, yp).item()) * double(b1 - b0);
    for (std::size_t m = 0; m < metrics_.size(); ++m) {
      const MetricBatch mb = metrics_[m].second(yb, yp);
      totals[m].total += mb.total;
      totals[m].count += mb.count;
    }
    if (verbose) {
      shown.clear();
      for (std::size_t m = 0; m < metrics_.size(); ++m)
        shown.emplace_back(metrics_[m].first, totals[m].total / totals[m].count);
      shown.emplace_back("loss", loss_total / double(b1 - begin));
      bar.update(s + 1, shown, s + 1 == steps);
    }
  }
  std::map<std::string, double> out;
  out["loss"] = loss_total / double(n);
  for (std::size_t m = 0; m < metrics_.size(); ++m)
    out[metrics_[m].first] = totals[m].total / totals[m].count;
  return out;
}

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& o) {
  const std::string who = class_name() + "::fit";
  if (!optimizer_) throw std::invalid_argument(who + ": call compile() before fit()");
  check_xy(who.c_str(), x, y);
  if (o.batch_size == 0) throw std::invalid_argument(who + ": batch_size must be positive");
  if (!(o.validation_split >= 0.f && o.validation_split < 1.f))
    throw std::invalid_argument(who + ": validation_split must be in [0, 1), got " +
                                std::to_string(o.validation_split));
  if (o.epochs < 0 || o.initial_epoch < 0)
    throw std::invalid_argument(who + ": epochs and initial_epoch must be >= 0, got epochs " +
                                std::to_string(o.epochs) + ", initial_epoch " +
                                std::to_string(o.initial_epoch));
  for (const auto& cb : o.callbacks)
    if (!cb) throw std::invalid_argument(who + ": null callback");
  const std::size_t n = x.shape()[0];
  // Keras: the validation data is the last fraction of the samples, taken before shuffling.
  const double keep = 1.0 - std::round(double(o.validation_split) * 1e6) / 1e6;
  const std::size_t split =
      o.validation_split > 0.f ? static_cast<std::size_t>(std::floor(double(n) * keep)) : n;
  if (split == 0)
    throw std::invalid_argument(who + ": validation_split leaves no training samples");
  build_for(x);
  // As TensorFlow does for its ops: denormals computed as zero (see set_flush_denormal).
  const FlushDenormal flush;
  const auto vars = trainable_variables();
  const std::size_t steps = steps_for(split, o.batch_size);
  History history;
  std::vector<std::size_t> order;
  std::vector<std::size_t> rows;
  const auto& cbs = o.callbacks;
  stop_training_ = false;
  for (const auto& cb : cbs) cb->set_model(this);
  Logs logs;
  for (const auto& cb : cbs) cb->on_train_begin(logs);
  for (int epoch = o.initial_epoch; epoch < o.epochs && !stop_training_; ++epoch) {
    for (const auto& cb : cbs) cb->on_epoch_begin(epoch, {});
    if (o.verbose) std::cout << "Epoch " << epoch + 1 << '/' << o.epochs << '\n';
    const auto t0 = Clock::now();
    // A fresh permutation every epoch: the order depends on the RNG state alone, which a
    // checkpoint saves.
    order = range(0, split);
    if (o.shuffle)
      for (std::size_t i = split; i-- > 1;) std::swap(order[i], order[shuffle_rng_.below(i + 1)]);
    Progbar bar(steps, o.verbose);
    double loss_total = 0;
    std::size_t seen = 0, done = 0;
    std::vector<MetricBatch> totals(metrics_.size());
    std::vector<std::pair<std::string, double>> shown;
    Logs batch_logs;
    for (std::size_t s = 0; s < steps; ++s) {
      for (const auto& cb : cbs) cb->on_batch_begin(s, {});
      const std::size_t b0 = s * o.batch_size, b1 = b0 + std::min(o.batch_size, split - b0);
      rows.assign(order.begin() + static_cast<long>(b0), order.begin() + static_cast<long>(b1));
      const Tensor xb = gather_rows(x, rows), yb = gather_rows(y, rows);
      const Tensor yp = (*this)(xb, true);
      Tensor loss = loss_(yb, yp);
      for (auto v : vars) v.value.zero_grad();
      loss.backward();
      const double lv = loss.item();
      const bool finite = std::isfinite(lv);
      // A non-finite loss means non-finite gradients: that update is never applied.
      if (finite) optimizer_->apply(vars);
      loss_total += lv * double(b1 - b0);
      seen += b1 - b0;
      done = s + 1;
      for (std::size_t m = 0; m < metrics_.size(); ++m) {
        const MetricBatch mb = metrics_[m].second(yb, yp);
        totals[m].total += mb.total;
        totals[m].count += mb.count;
      }
      if (!cbs.empty()) {
        batch_logs["loss"] = loss_total / double(seen);
        for (std::size_t m = 0; m < metrics_.size(); ++m)
          batch_logs[metrics_[m].first] = totals[m].total / totals[m].count;
        for (const auto& cb : cbs) cb->on_batch_end(s, batch_logs);
      }
      if (!finite) {
        const std::string what = "loss became " + std::to_string(lv) + " at epoch " +
                                 std::to_string(epoch + 1) + ", step " + std::to_string(s + 1);
        if (!stop_training_) throw std::runtime_error(who + ": " + what);
        std::cout << who << ": " << what << "; that update was not applied and training stops\n";
      }
      if (stop_training_) break;
      if (o.verbose && (s + 1 < steps)) {
        shown.clear();
        for (std::size_t m = 0; m < metrics_.size(); ++m)
          shown.emplace_back(metrics_[m].first, totals[m].total / totals[m].count);
        shown.emplace_back("loss", loss_total / double(seen));
        bar.update(s + 1, shown, false);
      }
    }
    std::vector<std::pair<std::string, double>> epoch_logs;
    epoch_logs.emplace_back("loss", loss_total / double(seen));
    for (std::size_t m = 0; m < metrics_.size(); ++m)
      epoch_logs.emplace_back(metrics_[m].first, totals[m].total / totals[m].count);
    if (split < n) {
      const auto val = run_eval(x, y, split, n, o.batch_size, 0);
      epoch_logs.emplace_back("val_loss", val.at("loss"));
      for (const auto& [name, _] : metrics_) epoch_logs.emplace_back("val_" + name, val.at(name));
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    for (const auto& [k, v] : epoch_logs) history.history[k].push_back(v);
    history.epoch_seconds.push_back(secs);
    bar.update(done, epoch_logs, true);
    logs = Logs(epoch_logs.begin(), epoch_logs.end());
    for (const auto& cb : cbs) cb->on_epoch_end(epoch, logs);
  }
  for (const auto& cb : cbs) cb->on_train_end(logs);
  return history;
}

std::map<std::string, double> Model::evaluate(const Tensor& x, const Tensor& y,
                                              const EvaluateOptions& o) {
  if (!loss_)
    throw std::invalid_argument(class_name() + "::evaluate: call compile() before evaluate()");
  check_xy((class_name() + "::evaluate").c_str(), x, y);
  if (o.batch_size == 0)
    throw std::invalid_argument(class_name() + "::evaluate: batch_size must be positive");
  return run_eval(x, y, 0, x.shape()[0], o.batch_size, o.verbose);
}

Tensor Model::predict(const Tensor& x, const EvaluateOptions& o) {
  if (x.ndim() == 0 || x.shape()[0] == 0)
    throw std::invalid_argument(class_name() + "::predict: x of shape " + shape_str(x.shape()) +
                                " has no samples");
  if (o.batch_size == 0)
    throw std::invalid_argument(class_name() + "::predict: batch_size must be positive");
  NoGrad no_grad;
  const FlushDenormal flush;
  const std::size_t n = x.shape()[0];
  Tensor out;
  std::size_t row = 0;
  for (std::size_t b0 = 0; b0 < n; b0 = b0 + std::min(o.batch_size, n - b0)) {
    const std::size_t b1 = b0 + std::min(o.batch_size, n - b0);
    const Tensor yp = (*this)(gather_rows(x, range(b0, b1)), false);
    if (!out.defined()) {
      Shape s = yp.shape();
      s[0] = n;
      out = Tensor::empty(s);
      row = yp.size() / (b1 - b0);
    }
    std::memcpy(out.data() + b0 * row, yp.data(), yp.size() * sizeof(float));
  }
  return out;
}

void Model::build_for(const Tensor& x) {
  if (built()) return;
  // One inference call on one sample builds every layer, lazily created ones included, as a
  // first call does in Keras.
  NoGrad no_grad;
  const Tensor one = gather_rows(x, {0});
  (void)call_all({one}, false);
}

}  // namespace xtape::layers
