#include "layers/sequential.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "io/files.hpp"
#include "layers/callbacks.hpp"
#include "layers/core.hpp"
#include "layers/saving.hpp"

namespace xtape::layers {

namespace {

using Clock = std::chrono::steady_clock;

std::string with_commas(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
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
  Progbar(std::size_t target, int verbose)
      : target_(target), verbose_(verbose), start_(Clock::now()) {
    tty_ = isatty(STDOUT_FILENO) != 0;
  }

  void update(std::size_t current, const std::vector<std::pair<std::string, double>>& values,
              bool final) {
    if (verbose_ == 0) return;
    const auto now = Clock::now();
    if (!final && (!tty_ || verbose_ != 1 || now - last_ < std::chrono::milliseconds(100))) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    std::ostringstream line;
    const std::string t = std::to_string(target_), c = std::to_string(current);
    line << ' ' << std::string(t.size() > c.size() ? t.size() - c.size() : 0, ' ') << c << '/' << t
         << ' ';
    const std::size_t filled = target_ ? 20 * current / target_ : 20;
    line << repeat("\u2501", filled) << std::string(20 - filled, ' ') << ' ';
    const double per_step = current ? elapsed / double(current) : 0.0;
    if (final) {
      line << static_cast<long>(elapsed) << "s ";
    } else {
      line << static_cast<long>(per_step * double(target_ - current)) << "s ";
    }
    char buf[32];
    if (per_step >= 1.0)
      std::snprintf(buf, sizeof buf, "%.0fs/step", per_step);
    else if (per_step >= 1e-3)
      std::snprintf(buf, sizeof buf, "%.0fms/step", per_step * 1e3);
    else
      std::snprintf(buf, sizeof buf, "%.0fus/step", per_step * 1e6);
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
      throw std::invalid_argument("Sequential::add: an Input must be the first layer of '" + name_ +
                                  "'");
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
  auto row = [&](const std::string& a, const std::string& b, const std::string& c,
                 const char* bar) {
    os << bar << ' ' << fit_cell(a, w1 - 2) << ' ' << bar << ' ' << fit_cell(b, w2 - 2) << ' '
       << bar << ' ';
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
  os << " Total params: " << with_commas(total) << " (" << readable_bytes(4.0 * double(total))
     << ")\n";
  os << " Trainable params: " << with_commas(trainable) << " ("
     << readable_bytes(4.0 * double(trainable)) << ")\n";
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
    throw std::invalid_argument(std::string(who) + ": x of shape " + shape_str(x.shape()) +
                                " and y of shape " + shape_str(y.shape()) +
                                " must have the same number of samples");
  if (x.shape()[0] == 0) throw std::invalid_argument(std::string(who) + ": no samples");
}

std::vector<std::size_t> range(std::size_t begin, std::size_t end) {
  std::vector<std::size_t> r(end - begin);
  std::iota(r.begin(), r.end(), begin);
  return r;
}
}  // namespace

std::map<std::string, double> Sequential::run_eval(const Tensor& x, const Tensor& y,
                                                   std::size_t begin, std::size_t end,
                                                   std::size_t batch_size, int verbose) {
  NoGrad no_grad;
  const FlushDenormal flush;
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
  for (std::size_t m = 0; m < metrics_.size(); ++m)
    out[metrics_[m].first] = totals[m].total / totals[m].count;
  return out;
}

History Sequential::fit(const Tensor& x, const Tensor& y, const FitOptions& o) {
  if (!optimizer_) throw std::invalid_argument("Sequential::fit: call compile() before fit()");
  check_xy("Sequential::fit", x, y);
  if (o.batch_size == 0)
    throw std::invalid_argument("Sequential::fit: batch_size must be positive");
  if (!(o.validation_split >= 0.f && o.validation_split < 1.f))
    throw std::invalid_argument("Sequential::fit: validation_split must be in [0, 1), got " +
                                std::to_string(o.validation_split));
  for (const auto& cb : o.callbacks)
    if (!cb) throw std::invalid_argument("Sequential::fit: null callback");
  const std::size_t n = x.shape()[0];
  // Keras: the validation data is the last fraction of the samples, taken before shuffling.
  const double keep = 1.0 - std::round(double(o.validation_split) * 1e6) / 1e6;
  const std::size_t split =
      o.validation_split > 0.f ? static_cast<std::size_t>(std::floor(double(n) * keep)) : n;
  if (split == 0)
    throw std::invalid_argument("Sequential::fit: validation_split leaves no training samples");
  if (!built_) build(Shape(x.shape().begin() + 1, x.shape().end()));
  // As TensorFlow does for its ops: denormals computed as zero (see set_flush_denormal).
  const FlushDenormal flush;
  const auto vars = trainable_variables();
  const std::size_t steps = (split + o.batch_size - 1) / o.batch_size;
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
      const std::size_t b0 = s * o.batch_size, b1 = std::min(split, b0 + o.batch_size);
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
        if (!stop_training_) throw std::runtime_error("Sequential::fit: " + what);
        std::cout << "Sequential::fit: " << what
                  << "; that update was not applied and training stops\n";
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

std::map<std::string, double> Sequential::evaluate(const Tensor& x, const Tensor& y,
                                                   const EvaluateOptions& o) {
  if (!loss_) throw std::invalid_argument("Sequential::evaluate: call compile() before evaluate()");
  check_xy("Sequential::evaluate", x, y);
  if (o.batch_size == 0)
    throw std::invalid_argument("Sequential::evaluate: batch_size must be positive");
  return run_eval(x, y, 0, x.shape()[0], o.batch_size, o.verbose);
}

Tensor Sequential::predict(const Tensor& x, const EvaluateOptions& o) {
  if (x.ndim() == 0 || x.shape()[0] == 0)
    throw std::invalid_argument("Sequential::predict: x of shape " + shape_str(x.shape()) +
                                " has no samples");
  if (o.batch_size == 0)
    throw std::invalid_argument("Sequential::predict: batch_size must be positive");
  NoGrad no_grad;
  const FlushDenormal flush;
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

// ---- weights and checkpoints ----

namespace {

constexpr const char* k_weights_format = "xtape.weights";
constexpr const char* k_checkpoint_format = "xtape.checkpoint";
constexpr const char* k_optimizer_prefix = "optimizer/";
constexpr const char* k_layer_rng_prefix = "rng.layer/";

[[noreturn]] void file_error(const char* who, const std::string& path, const std::string& problem) {
  io::fail(who, path, problem);
}

std::string rng_text(const Rng::State& st) {
  std::string out;
  char buf[24];
  for (std::size_t i = 0; i < st.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(st[i]));
    if (i) out += ' ';
    out += buf;
  }
  return out;
}

// Exactly four space-separated 16-digit hex words.
std::optional<Rng::State> parse_rng(const std::string& text) {
  Rng::State st{};
  if (text.size() != 4 * 16 + 3) return std::nullopt;
  for (std::size_t i = 0; i < 4; ++i) {
    const char* b = text.data() + 17 * i;
    if (i < 3 && b[16] != ' ') return std::nullopt;
    const auto [end, ec] = std::from_chars(b, b + 16, st[i], 16);
    if (ec != std::errc() || end != b + 16) return std::nullopt;
  }
  return st;
}

std::optional<std::int64_t> parse_int(const std::string& text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string float_text(float v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

std::optional<float> parse_float(const std::string& text) {
  float v = 0.f;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

const std::string& meta(const char* who, const SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata.find(key);
  if (it == f.metadata.end()) file_error(who, f.path, "metadata entry '" + key + "' is missing");
  return it->second;
}

bool all_finite(const Tensor& t) {
  const float* p = t.data();
  for (std::size_t i = 0, n = t.size(); i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

// The model's weights read from `f`, in named_weights() order, after checking names, dtypes,
// shapes and values. Tensors under "optimizer/" are left to the caller when `allow_optimizer`.
std::vector<Tensor> checked_weights(const char* who, const SafetensorsFile& f,
                                    const std::vector<std::pair<std::string, Tensor>>& named,
                                    bool allow_optimizer) {
  std::map<std::string, const Tensor*> expected;
  for (const auto& [name, t] : named) expected[name] = &t;
  for (const auto& [name, e] : f.tensors) {
    if (expected.count(name)) continue;
    if (allow_optimizer && name.rfind(k_optimizer_prefix, 0) == 0) continue;
    file_error(who, f.path,
               "unknown tensor " + io::quoted(name) + " " + shape_str(e.shape) +
                   ": the model has no such weight");
  }
  std::vector<Tensor> values;
  for (const auto& [name, t] : named) {
    const auto it = f.tensors.find(name);
    if (it == f.tensors.end())
      file_error(who, f.path, "missing tensor '" + name + "' of shape " + shape_str(t.shape()));
    if (it->second.dtype != "F32")
      file_error(who, f.path, "tensor '" + name + "': expected dtype F32, got " + it->second.dtype);
    if (it->second.shape != t.shape())
      file_error(who, f.path,
                 "tensor '" + name + "': expected shape " + shape_str(t.shape()) + ", got " +
                     shape_str(it->second.shape));
    values.push_back(f.f32(name));  // also refuses NaN and infinities
  }
  return values;
}

std::vector<Dropout*> dropout_layers(const std::vector<std::shared_ptr<Layer>>& layers) {
  std::vector<Dropout*> out;
  for (const auto& l : layers)
    if (auto* d = dynamic_cast<Dropout*>(l.get())) out.push_back(d);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> Sequential::named_weights() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& l : layers_)
    for (const Weight& w : l->weights()) out.emplace_back(l->name() + "/" + w.name, w.value);
  return out;
}

std::vector<Tensor> Sequential::get_weights() const {
  std::vector<Tensor> out;
  for (const auto& [_, t] : named_weights()) out.push_back(t.clone());
  return out;
}

void Sequential::set_weights(const std::vector<Tensor>& values) {
  const auto named = named_weights();
  if (values.size() != named.size())
    throw std::invalid_argument("Sequential::set_weights: model '" + name_ + "' has " +
                                std::to_string(named.size()) + " weights, got " +
                                std::to_string(values.size()) + " values");
  for (std::size_t i = 0; i < named.size(); ++i)
    if (!values[i].defined() || values[i].shape() != named[i].second.shape())
      throw std::invalid_argument(
          "Sequential::set_weights: weight '" + named[i].first + "' has shape " +
          shape_str(named[i].second.shape()) + ", got " +
          (values[i].defined() ? shape_str(values[i].shape()) : "undefined"));
  NoGrad no_grad;
  for (std::size_t i = 0; i < named.size(); ++i) {
    Tensor w = named[i].second;
    w.assign(values[i]);
  }
}

void Sequential::save_weights(const std::string& path) const {
  if (!built_)
    throw std::logic_error("Sequential::save_weights: model '" + name_ + "' is not built");
  const auto named = named_weights();
  for (const auto& [name, t] : named)
    if (!all_finite(t))
      file_error("Sequential::save_weights", path,
                 "weight '" + name + "' holds NaN or infinite values");
  write_safetensors(path, named, {{"format", k_weights_format}});
}

void Sequential::load_weights(const std::string& path) {
  const char* who = "Sequential::load_weights";
  if (!built_)
    throw std::logic_error(std::string(who) + ": build model '" + name_ +
                           "' (or call it once) before loading weights into it");
  const SafetensorsFile f = read_safetensors(path);
  const auto fmt = f.metadata.find("format");
  const bool checkpoint = fmt != f.metadata.end() && fmt->second == k_checkpoint_format;
  const auto named = named_weights();
  const std::vector<Tensor> values = checked_weights(who, f, named, checkpoint);
  set_weights(values);
}

void Sequential::save_checkpoint(const std::string& path, int epoch) const {
  const char* who = "Sequential::save_checkpoint";
  if (!built_) throw std::logic_error(std::string(who) + ": model '" + name_ + "' is not built");
  if (!optimizer_)
    throw std::logic_error(std::string(who) + ": model '" + name_ + "' is not compiled");
  if (epoch < 0)
    throw std::invalid_argument(std::string(who) + ": epoch must be >= 0, got " +
                                std::to_string(epoch));
  auto tensors = named_weights();
  for (const auto& [name, t] : tensors)
    if (!all_finite(t)) file_error(who, path, "weight '" + name + "' holds NaN or infinite values");
  const auto slot_names = optimizer_->slot_names();
  const auto& slots = optimizer_->slots();
  for (const auto& v : trainable_variables()) {
    const auto it = slots.find(v.name);
    if (it == slots.end()) continue;
    for (std::size_t k = 0; k < it->second.size() && k < slot_names.size(); ++k)
      tensors.emplace_back(k_optimizer_prefix + v.name + "/" + slot_names[k], it->second[k]);
  }
  std::map<std::string, std::string> metadata = {
      {"format", k_checkpoint_format},
      {"epoch", std::to_string(epoch)},
      {"optimizer", optimizer_->name()},
      {"optimizer.iterations", std::to_string(optimizer_->iterations())},
      {"optimizer.learning_rate", float_text(optimizer_->learning_rate())},
      {"rng.shuffle", rng_text(shuffle_rng_.state())},
      {"rng.global", rng_text(global_rng().state())},
  };
  for (Dropout* d : dropout_layers(layers_))
    metadata[k_layer_rng_prefix + d->name()] = rng_text(d->rng().state());
  write_safetensors(path, tensors, metadata);
}

int Sequential::load_checkpoint(const std::string& path) {
  const char* who = "Sequential::load_checkpoint";
  if (!built_)
    throw std::logic_error(std::string(who) + ": build model '" + name_ +
                           "' (or call it once) before loading a checkpoint into it");
  if (!optimizer_)
    throw std::logic_error(std::string(who) + ": compile model '" + name_ +
                           "' with the checkpoint's optimizer before loading it");
  const SafetensorsFile f = read_safetensors(path);
  const std::string& fmt = meta(who, f, "format");
  if (fmt != k_checkpoint_format)
    file_error(who, path,
               "format " + io::quoted(fmt) + " is not '" + k_checkpoint_format +
                   "' (a weights file? use load_weights)");

  // Everything is read and checked into these before the model changes.
  const std::vector<Tensor> values = checked_weights(who, f, named_weights(), true);

  const std::string& opt_name = meta(who, f, "optimizer");
  if (opt_name != optimizer_->name())
    file_error(who, path,
               "optimizer " + io::quoted(opt_name) + " saved, the model is compiled with '" +
                   optimizer_->name() + "'");
  const auto slot_names = optimizer_->slot_names();
  std::map<std::string, std::vector<Tensor>> slots;
  for (const auto& v : trainable_variables()) {
    std::vector<Tensor> s;
    for (const auto& sn : slot_names) {
      const std::string key = k_optimizer_prefix + v.name + "/" + sn;
      if (!f.contains(key)) continue;
      const SafetensorsEntry& e = f.tensors.at(key);
      if (e.dtype != "F32")
        file_error(who, path, "tensor '" + key + "': expected dtype F32, got " + e.dtype);
      if (e.shape != v.value.shape())
        file_error(who, path,
                   "tensor '" + key + "': expected shape " + shape_str(v.value.shape()) + ", got " +
                       shape_str(e.shape));
      s.push_back(f.f32(key));
    }
    if (!s.empty() && s.size() != slot_names.size())
      file_error(who, path,
                 "optimizer state of '" + v.name + "' has " + std::to_string(s.size()) +
                     " of the " + std::to_string(slot_names.size()) + " slots of " + opt_name);
    if (!s.empty()) slots[v.name] = std::move(s);
  }
  for (const auto& [name, e] : f.tensors) {
    if (name.rfind(k_optimizer_prefix, 0) != 0) continue;
    const std::string rest = name.substr(std::strlen(k_optimizer_prefix));
    const auto slash = rest.rfind('/');
    const bool known =
        slash != std::string::npos && slots.count(rest.substr(0, slash)) &&
        std::find(slot_names.begin(), slot_names.end(), rest.substr(slash + 1)) != slot_names.end();
    if (!known)
      file_error(who, path,
                 "unknown optimizer tensor " + io::quoted(name) +
                     " (no such trainable variable or " + opt_name + " slot)");
  }

  const auto iterations = parse_int(meta(who, f, "optimizer.iterations"));
  if (!iterations || *iterations < 0)
    file_error(who, path,
               "metadata optimizer.iterations " + io::quoted(meta(who, f, "optimizer.iterations")) +
                   " is not a non-negative integer");
  const auto lr = parse_float(meta(who, f, "optimizer.learning_rate"));
  if (!lr || !std::isfinite(*lr) || *lr < 0.f)
    file_error(who, path,
               "metadata optimizer.learning_rate " +
                   io::quoted(meta(who, f, "optimizer.learning_rate")) +
                   " is not a finite non-negative number");
  const auto epoch = parse_int(meta(who, f, "epoch"));
  if (!epoch || *epoch < 0 || *epoch > std::numeric_limits<int>::max())
    file_error(
        who, path,
        "metadata epoch " + io::quoted(meta(who, f, "epoch")) + " is not a non-negative integer");
  auto rng_state = [&](const std::string& key) {
    const auto st = parse_rng(meta(who, f, key));
    if (!st)
      file_error(who, path,
                 "metadata " + key + " " + io::quoted(meta(who, f, key)) +
                     " is not four 16-digit hex words");
    return *st;
  };
  const Rng::State shuffle_state = rng_state("rng.shuffle"), global_state = rng_state("rng.global");
  const auto dropouts = dropout_layers(layers_);
  std::vector<Rng::State> dropout_states;
  for (Dropout* d : dropouts) dropout_states.push_back(rng_state(k_layer_rng_prefix + d->name()));
  for (const auto& [key, _] : f.metadata) {
    if (key.rfind(k_layer_rng_prefix, 0) != 0) continue;
    const std::string layer = key.substr(std::strlen(k_layer_rng_prefix));
    if (std::none_of(dropouts.begin(), dropouts.end(),
                     [&](Dropout* d) { return d->name() == layer; }))
      file_error(
          who, path,
          "metadata " + io::quoted(key) + ": the model has no Dropout layer " + io::quoted(layer));
  }

  // Every check passed: change the model.
  set_weights(values);
  optimizer_->slots() = std::move(slots);
  optimizer_->set_iterations(*iterations);
  optimizer_->set_learning_rate(*lr);
  shuffle_rng_.set_state(shuffle_state);
  global_rng().set_state(global_state);
  for (std::size_t i = 0; i < dropouts.size(); ++i) dropouts[i]->rng().set_state(dropout_states[i]);
  return static_cast<int>(*epoch);
}

}  // namespace xtape::layers
