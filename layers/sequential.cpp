#include "layers/sequential.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"

namespace xtape::layers {

namespace {

using Clock = std::chrono::steady_clock;

std::string with_commas(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string readable_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %s", bytes, units[u]);
  return buf;
}

// Cuts ASCII text to `width` display columns, ending in an ellipsis when cut.
std::string fit_cell(const std::string& s, std::size_t width) {
  if (s.size() <= width) return s + std::string(width - s.size(), ' ');
  return s.substr(0, width - 1) + "\u2026";
}

std::string repeat(const char* s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Keras 3's progress bar: " 422/422 ━━━━━━━━━━━━━━━━━━━━ 10s 14ms/step - loss: ... ".
class Progbar {
 public:
  Progbar(std::size_t target, int verbose) : target_(target), verbose_(verbose), start_(Clock::now()) {
    tty_ = isatty(STDOUT_FILENO) != 0;
  }

  void update(std::size_t current, const std::vector<std::pair<std::string, double>>& values, bool final) {
    if (verbose_ == 0) return;
    const auto now = Clock::now();
    if (!final && (!tty_ || verbose_ != 1 || now - last_ < std::chrono::milliseconds(100))) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    std::ostringstream line;
    const std::string t = std::to_string(target_), c = std::to_string(current);
    line << ' ' << std::string(t.size() > c.size() ? t.size() - c.size() : 0, ' ') << c << '/' << t << ' ';
    const std::size_t filled = target_ ? 20 * current / target_ : 20;
    line << repeat("\u2501", filled) << std::string(20 - filled, ' ') << ' ';
    const double per_step = current ? elapsed / double(current) : 0.0;
    if (final) {
      line << static_cast<long>(elapsed) << "s ";
    } else {
      line << static_cast<long>(per_step * double(target_ - current)) << "s ";
    }
    char buf[32];
    if (per_step >= 1.0) std::snprintf(buf, sizeof buf, "%.0fs/step", per_step);
    else if (per_step >= 1e-3) std::snprintf(buf, sizeof buf, "%.0fms/step", per_step * 1e3);
    else std::snprintf(buf, sizeof buf, "%.0fus/step", per_step * 1e6);
    line << buf;
    for (const auto& [k, v] : values) {
      std::snprintf(buf, sizeof buf, "%.4f", v);
      line << " - " << k << ": " << buf;
    }
    std::string s = line.str();
    if (tty_ && verbose_ == 1) {
      std::cout << '\r' << s;
      if (s.size() < width_) std::cout << std::string(width_ - s.size(), ' ');
      width_ = std::max(width_, s.size());
      if (final) std::cout << '\n';
    } else {
      std::cout << s << '\n';
    }
    std::cout.flush();
  }

 private:
  std::size_t target_;
  int verbose_;
  bool tty_ = false;
  std::size_t width_ = 0;
  Clock::time_point start_, last_{};
};

}  // namespace

Sequential::Sequential(std::vector<std::shared_ptr<Layer>> layers, std::string name)
    : name_(name.empty() ? unique_name("sequential") : std::move(name)),
      shuffle_rng_(global_rng().next_u64()) {
  for (auto& l : layers) add(std::move(l));
}

void Sequential::add(std::shared_ptr<Layer> layer) {
  if (!layer) throw std::invalid_argument("Sequential::add: null layer");
  if (auto* in = dynamic_cast<InputLayer*>(layer.get())) {
    if (!layers_.empty())
      throw std::invalid_argument("Sequential::add: an Input must be the first layer of '" + name_ + "'");
    layers_.push_back(std::move(layer));
    build(in->shape());
    return;
  }
  (void)layer->name();  // names are given in the order layers join the model
  layers_.push_back(std::move(layer));
  if (built_) {  // extend the built stack
    Shape s = input_shape_;
    for (std::size_t i = 0; i + 1 < layers_.size(); ++i) s = layers_[i]->compute_output_shape(s);
    layers_.back()->ensure_built(s);
  }
}

void Sequential::build(const Shape& input_shape) {
  Shape s = input_shape;
  for (auto& l : layers_) {
    l->ensure_built(s);
    s = l->compute_output_shape(s);
  }
  input_shape_ = input_shape;
  built_ = true;
}

Tensor Sequential::operator()(const Tensor& x, bool training) {
  if (!built_ && x.ndim() > 0) build(Shape(x.shape().begin() + 1, x.shape().end()));
  Tensor h = x;
  for (auto& l : layers_) h = (*l)(h, training);
  return h;
}

void Sequential::summary() const { summary(std::cout); }

void Sequential::summary(std::ostream& os) const {
  const std::size_t w1 = 33, w2 = 27, w3 = 12;
  auto row = [&](const std::string& a, const std::string& b, const std::string& c, const char* bar) {
    os << bar << ' ' << fit_cell(a, w1 - 2) << ' ' << bar << ' ' << fit_cell(b, w2 - 2) << ' ' << bar << ' ';
    const std::string cc = c.size() < w3 - 2 ? std::string(w3 - 2 - c.size(), ' ') + c : c;
    os << cc << ' ' << bar << '\n';
  };
  auto rule = [&](const char* l, const char* m, const char* r, const char* h) {
    os << l << repeat(h, w1) << m << repeat(h, w2) << m << repeat(h, w3) << r << '\n';
  };
  os << "Model: \"" << name_ << "\"\n";
  rule("\u250f", "\u2533", "\u2513", "\u2501");
  row("Layer (type)", "Output Shape", "Param #", "\u2503");
  rule("\u2521", "\u2547", "\u2529", "\u2501");
  Shape s = input_shape_;
  std::size_t total = 0, trainable = 0;
  bool first = true;
  for (const auto& l : layers_) {
    if (dynamic_cast<const InputLayer*>(l.get())) continue;
    if (!first) rule("\u251c", "\u253c", "\u2524", "\u2500");
    first = false;
    const std::string label = l->name() + " (" + l->class_name() + ")";
    std::string shape = "?";
    if (built_) {
      s = l->compute_output_shape(s);
      shape = batch_shape_str(s);
    }
    const std::size_t params = l->count_params();
    total += params;
    for (const Weight& w : l->weights())
      if (w.trainable) trainable += w.value.size();
    if (label.size() <= w1 - 2) {
      row(label, shape, with_commas(params), "\u2502");
    } else {
      row(l->name(), shape, with_commas(params), "\u2502");
      row("(" + l->class_name() + ")", "", "", "\u2502");
    }
  }
  rule("\u2514", "\u2534", "\u2518", "\u2500");
  os << " Total params: " << with_commas(total) << " (" << readable_bytes(4.0 * double(total)) << ")\n";
  os << " Trainable params: " << with_commas(trainable) << " (" << readable_bytes(4.0 * double(trainable))
     << ")\n";
  os << " Non-trainable params: " << with_commas(total - trainable) << " ("
     << readable_bytes(4.0 * double(total - trainable)) << ")\n";
}

void Sequential::compile(const std::string& loss, const std::string& optimizer,
                         const std::vector<std::string>& metrics) {
  compile(loss, std::shared_ptr<optim::Optimizer>(optim::make_optimizer(optimizer)), metrics);
}

void Sequential::compile(const std::string& loss, std::shared_ptr<optim::Optimizer> optimizer,
                         const std::vector<std::string>& metrics) {
  if (!optimizer) throw std::invalid_argument("Sequential::compile: null optimizer");
  loss_ = get_loss(loss);
  loss_name_ = loss;
  metrics_.clear();
  for (const auto& m : metrics) metrics_.emplace_back(m, get_metric(m));
  optimizer_ = std::move(optimizer);
}

std::vector<optim::Variable> Sequential::trainable_variables() const {
  std::vector<optim::Variable> vars;
  for (const auto& l : layers_)
    for (auto& v : l->trainable_variables()) vars.push_back(std::move(v));
  return vars;
}

std::size_t Sequential::count_params() const {
  std::size_t n = 0;
  for (const auto& l : layers_) n += l->count_params();
  return n;
}

namespace {
void check_xy(const char* who, const Tensor& x, const Tensor& y) {
  if (x.ndim() == 0 || y.ndim() == 0 || x.shape()[0] != y.shape()[0])
    throw std::invalid_argument(std::string(who) + ": x of shape " + shape_str(x.shape()) + " and y of shape " +
                                shape_str(y.shape()) + " must have the same number of samples");
  if (x.shape()[0] == 0) throw std::invalid_argument(std::string(who) + ": no samples");
}

std::vector<std::size_t> range(std::size_t begin, std::size_t end) {
  std::vector<std::size_t> r(end - begin);
  std::iota(r.begin(), r.end(), begin);
  return r;
}
}  // namespace

std::map<std::string, double> Sequential::run_eval(const Tensor& x, const Tensor& y, std::size_t begin,
                                                   std::size_t end, std::size_t batch_size, int verbose) {
  NoGrad no_grad;
  const std::size_t n = end - begin, steps = (n + batch_size - 1) / batch_size;
  Progbar bar(steps, verbose);
  double loss_total = 0;
  std::vector<MetricBatch> totals(metrics_.size());
  std::vector<std::pair<std::string, double>> shown;
  for (std::size_t s = 0; s < steps; ++s) {
    const std::size_t b0 = begin + s * batch_size, b1 = std::min(end, b0 + batch_size);
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
  for (std::size_t m = 0; m < metrics_.size(); ++m) out[metrics_[m].first] = totals[m].total / totals[m].count;
  return out;
}

History Sequential::fit(const Tensor& x, const Tensor& y, const FitOptions& o) {
  if (!optimizer_) throw std::invalid_argument("Sequential::fit: call compile() before fit()");
  check_xy("Sequential::fit", x, y);
  if (o.batch_size == 0) throw std::invalid_argument("Sequential::fit: batch_size must be positive");
  if (!(o.validation_split >= 0.f && o.validation_split < 1.f))
    throw std::invalid_argument("Sequential::fit: validation_split must be in [0, 1), got " +
                                std::to_string(o.validation_split));
  const std::size_t n = x.shape()[0];
  // Keras: the validation data is the last fraction of the samples, taken before shuffling.
  const double keep = 1.0 - std::round(double(o.validation_split) * 1e6) / 1e6;
  const std::size_t split = o.validation_split > 0.f ? static_cast<std::size_t>(std::floor(double(n) * keep)) : n;
  if (split == 0) throw std::invalid_argument("Sequential::fit: validation_split leaves no training samples");
  if (!built_) build(Shape(x.shape().begin() + 1, x.shape().end()));
  const auto vars = trainable_variables();
  const std::size_t steps = (split + o.batch_size - 1) / o.batch_size;
  History history;
  std::vector<std::size_t> order = range(0, split);
  std::vector<std::size_t> rows;
  for (int epoch = o.initial_epoch; epoch < o.epochs; ++epoch) {
    if (o.verbose) std::cout << "Epoch " << epoch + 1 << '/' << o.epochs << '\n';
    const auto t0 = Clock::now();
    if (o.shuffle)
      for (std::size_t i = split; i-- > 1;) std::swap(order[i], order[shuffle_rng_.below(i + 1)]);
    Progbar bar(steps, o.verbose);
    double loss_total = 0;
    std::size_t seen = 0;
    std::vector<MetricBatch> totals(metrics_.size());
    std::vector<std::pair<std::string, double>> shown;
    for (std::size_t s = 0; s < steps; ++s) {
      const std::size_t b0 = s * o.batch_size, b1 = std::min(split, b0 + o.batch_size);
      rows.assign(order.begin() + static_cast<long>(b0), order.begin() + static_cast<long>(b1));
      const Tensor xb = gather_rows(x, rows), yb = gather_rows(y, rows);
      const Tensor yp = (*this)(xb, true);
      Tensor loss = loss_(yb, yp);
      for (auto v : vars) v.value.zero_grad();
      loss.backward();
      optimizer_->apply(vars);
      const double lv = loss.item();
      if (!std::isfinite(lv))
        throw std::runtime_error("Sequential::fit: loss became " + std::to_string(lv) + " at epoch " +
                                 std::to_string(epoch + 1) + ", step " + std::to_string(s + 1));
      loss_total += lv * double(b1 - b0);
      seen += b1 - b0;
      for (std::size_t m = 0; m < metrics_.size(); ++m) {
        const MetricBatch mb = metrics_[m].second(yb, yp);
        totals[m].total += mb.total;
        totals[m].count += mb.count;
      }
      if (o.verbose && (s + 1 < steps)) {
        shown.clear();
        for (std::size_t m = 0; m < metrics_.size(); ++m)
          shown.emplace_back(metrics_[m].first, totals[m].total / totals[m].count);
        shown.emplace_back("loss", loss_total / double(seen));
        bar.update(s + 1, shown, false);
      }
    }
    std::vector<std::pair<std::string, double>> logs;
    logs.emplace_back("loss", loss_total / double(seen));
    for (std::size_t m = 0; m < metrics_.size(); ++m)
      logs.emplace_back(metrics_[m].first, totals[m].total / totals[m].count);
    if (split < n) {
      const auto val = run_eval(x, y, split, n, o.batch_size, 0);
      logs.emplace_back("val_loss", val.at("loss"));
      for (const auto& [name, _] : metrics_) logs.emplace_back("val_" + name, val.at(name));
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    for (const auto& [k, v] : logs) history.history[k].push_back(v);
    history.epoch_seconds.push_back(secs);
    bar.update(steps, logs, true);
  }
  return history;
}

std::map<std::string, double> Sequential::evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& o) {
  if (!loss_) throw std::invalid_argument("Sequential::evaluate: call compile() before evaluate()");
  check_xy("Sequential::evaluate", x, y);
  if (o.batch_size == 0) throw std::invalid_argument("Sequential::evaluate: batch_size must be positive");
  return run_eval(x, y, 0, x.shape()[0], o.batch_size, o.verbose);
}

Tensor Sequential::predict(const Tensor& x, const EvaluateOptions& o) {
  if (x.ndim() == 0 || x.shape()[0] == 0)
    throw std::invalid_argument("Sequential::predict: x of shape " + shape_str(x.shape()) + " has no samples");
  if (o.batch_size == 0) throw std::invalid_argument("Sequential::predict: batch_size must be positive");
  NoGrad no_grad;
  const std::size_t n = x.shape()[0];
  Tensor out;
  std::size_t row = 0;
  for (std::size_t b0 = 0; b0 < n; b0 += o.batch_size) {
    const std::size_t b1 = std::min(n, b0 + o.batch_size);
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

}  // namespace xtape::layers
