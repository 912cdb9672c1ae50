// Confusion-matrix metrics: AUC (ROC and PR, Keras's bucketed thresholds and summations),
// Precision and Recall (one threshold, optional top_k and class_id).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "losses/detail.hpp"
#include "metrics/detail.hpp"
#include "metrics/metrics.hpp"

namespace xtape::metrics {

namespace {

constexpr float neg_inf = -1e10f;  // Keras's NEG_INF for predictions outside the top k

double divide_no_nan(double a, double b) { return b == 0 ? 0.0 : a / b; }

// Labels (1 where y_true is nonzero), predictions and per-element weights, flattened.
struct Batch {
  Shape shape;
  std::vector<float> label, pred;
  std::vector<double> weight;
};

// Keras's update_confusion_matrix_variables up to the counting: y_pred and y_true squeezed or
// expanded to equal shapes, the sample weight expanded by one axis, squeezed against y_true
// and broadcast over y_pred, then the top-k filter and the class slice.
Batch prepare(const std::string& who, const Tensor& y_true, const Tensor& y_pred,
              const Tensor& sample_weight, std::optional<int> top_k = std::nullopt,
              std::optional<int> class_id = std::nullopt) {
  const Shape shape = detail::matched_shape(who, y_true, y_pred);
  Batch b{shape, std::vector<float>(y_pred.size()),
          std::vector<float>(y_pred.data(), y_pred.data() + y_pred.size()),
          std::vector<double>(y_pred.size(), 1.0)};
  for (std::size_t i = 0; i < b.label.size(); ++i) b.label[i] = y_true.data()[i] != 0.f ? 1.f : 0.f;
  if (sample_weight.defined()) {
    Shape t = shape, w = sample_weight.shape();
    w.push_back(1);
    losses::detail::squeeze_or_expand(t, w, false);
    const std::vector<std::size_t> offsets = detail::broadcast_offsets(who, w, shape);
    for (std::size_t i = 0; i < offsets.size(); ++i) b.weight[i] = sample_weight.data()[offsets[i]];
  }
  const std::size_t k = shape.back();
  if (top_k) {
    // Keep the k largest of each row (ties: the lower index first, as top_k), mask the rest.
    std::vector<std::size_t> order(k);
    for (std::size_t r = 0; k && r < b.pred.size() / k; ++r) {
      float* row = b.pred.data() + r * k;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [row](std::size_t i, std::size_t j) { return row[i] > row[j]; });
      for (std::size_t j = static_cast<std::size_t>(*top_k); j < k; ++j) row[order[j]] = neg_inf;
    }
  }
  if (class_id) {
    if (shape.size() < 2 || static_cast<std::size_t>(*class_id) >= k)
      throw detail::shape_error(who,
                                "class_id " + std::to_string(*class_id) +
                                    " needs y_pred of shape (samples, classes) with more classes",
                                y_true, y_pred);
    Batch s{shape, {}, {}, {}};
    s.shape.back() = 1;
    for (std::size_t i = static_cast<std::size_t>(*class_id); i < b.pred.size(); i += k) {
      s.label.push_back(b.label[i]);
      s.pred.push_back(b.pred[i]);
      s.weight.push_back(b.weight[i]);
    }
    return s;
  }
  return b;
}

void check_options(const PrecisionRecallOptions& o, const std::string& who) {
  if (o.threshold && !(*o.threshold >= 0.f && *o.threshold <= 1.f))
    throw std::invalid_argument(who + ": threshold must be in [0, 1], got " +
                                std::to_string(*o.threshold));
  if (o.top_k && *o.top_k < 1)
    throw std::invalid_argument(who + ": top_k must be >= 1, got " + std::to_string(*o.top_k));
  if (o.class_id && *o.class_id < 0)
    throw std::invalid_argument(who + ": class_id must be >= 0, got " +
                                std::to_string(*o.class_id));
}

float threshold_of(const PrecisionRecallOptions& o) {
  return o.threshold ? *o.threshold : (o.top_k ? neg_inf : 0.5f);
}

PrecisionRecallOptions named(PrecisionRecallOptions o, const char* name) {
  if (o.name.empty()) o.name = name;
  return o;
}

}  // namespace

// ---- Precision, Recall ----

Precision::Precision(PrecisionRecallOptions options)
    : Metric(named(options, "precision").name), options_(named(std::move(options), "precision")) {
  check_options(options_, name());
}

void Precision::update_state(const Tensor& y_true, const Tensor& y_pred,
                             const Tensor& sample_weight) {
  NoGrad guard;
  const Batch b = prepare(name(), y_true, y_pred, sample_weight, options_.top_k, options_.class_id);
  const float threshold = threshold_of(options_);
  for (std::size_t i = 0; i < b.pred.size(); ++i)
    if (b.pred[i] > threshold) (b.label[i] != 0.f ? tp_ : fp_) += b.weight[i];
}

double Precision::result() const { return divide_no_nan(tp_, tp_ + fp_); }

void Precision::set_state(const std::vector<double>& state) {
  check_state_size(state, 2);
  tp_ = state[0];
  fp_ = state[1];
}

Recall::Recall(PrecisionRecallOptions options)
    : Metric(named(options, "recall").name), options_(named(std::move(options), "recall")) {
  check_options(options_, name());
}

void Recall::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  NoGrad guard;
  const Batch b = prepare(name(), y_true, y_pred, sample_weight, options_.top_k, options_.class_id);
  const float threshold = threshold_of(options_);
  for (std::size_t i = 0; i < b.pred.size(); ++i)
    if (b.label[i] != 0.f) (b.pred[i] > threshold ? tp_ : fn_) += b.weight[i];
}

double Recall::result() const { return divide_no_nan(tp_, tp_ + fn_); }

void Recall::set_state(const std::vector<double>& state) {
  check_state_size(state, 2);
  tp_ = state[0];
  fn_ = state[1];
}

// ---- AUC ----

AUC::AUC(AUCOptions options) : Metric(options.name), options_(std::move(options)) {
  if (options_.num_thresholds <= 1)
    throw std::invalid_argument(name() + ": num_thresholds must be > 1, got " +
                                std::to_string(options_.num_thresholds));
  reset_state();
}

std::vector<double> AUC::thresholds() const {
  const int t = options_.num_thresholds;
  std::vector<double> out{0.0 - 1e-7};
  for (int i = 0; i < t - 2; ++i) out.push_back((i + 1) * 1.0 / (t - 1));
  out.push_back(1.0 + 1e-7);
  return out;
}

void AUC::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  NoGrad guard;
  const Batch b = prepare(name(), y_true, y_pred, sample_weight);
  const std::size_t t = tp_.size();
  // Keras's bucketed count: a prediction p is above the thresholds below bucket
  // max(ceil(p (T - 1)) - 1, 0) + 1 (the first threshold is below 0), so per-bucket sums,
  // accumulated from the top, give the counts at every threshold at once.
  std::vector<double> pos(t, 0.0), neg(t, 0.0);
  double total_pos = 0, total_neg = 0;
  for (std::size_t i = 0; i < b.pred.size(); ++i) {
    float p = b.pred[i];
    if (options_.from_logits) p = 1.f / (1.f + std::exp(-p));
    if (!std::isfinite(p))
      throw std::invalid_argument(name() + ": prediction " + std::to_string(b.pred[i]) +
                                  " at position " + std::to_string(i) + " is not finite");
    p = std::min(std::max(p, 0.f), 1.f);
    const float bucket = std::max(std::ceil(p * static_cast<float>(t - 1)) - 1.f, 0.f);
    const std::size_t k = static_cast<std::size_t>(bucket);
    const double w = b.weight[i];
    (b.label[i] != 0.f ? pos[k] : neg[k]) += w;
    (b.label[i] != 0.f ? total_pos : total_neg) += w;
  }
  double tp = 0, fp = 0;
  for (std::size_t j = t; j-- > 0;) {
    tp += pos[j];
    fp += neg[j];
    tp_[j] += tp;
    fp_[j] += fp;
    tn_[j] += total_neg - fp;
    fn_[j] += total_pos - tp;
  }
}

double AUC::interpolate_pr() const {
  // Davis & Goadrich (2006): precision interpolated between thresholds, as Keras computes it.
  double auc = 0;
  for (std::size_t i = 0; i + 1 < tp_.size(); ++i) {
    const double dtp = tp_[i] - tp_[i + 1];
    const double p0 = tp_[i] + fp_[i], p1 = tp_[i + 1] + fp_[i + 1];
    const double slope = divide_no_nan(dtp, std::max(p0 - p1, 0.0));
    const double intercept = tp_[i + 1] - slope * p1;
    const double ratio = p0 > 0 && p1 > 0 ? divide_no_nan(p0, std::max(p1, 0.0)) : 1.0;
    auc += divide_no_nan(slope * (dtp + intercept * std::log(ratio)),
                         std::max(tp_[i + 1] + fn_[i + 1], 0.0));
  }
  return auc;
}

double AUC::result() const {
  if (options_.curve == AUCCurve::PR && options_.summation_method == AUCSummation::interpolation)
    return interpolate_pr();
  const std::size_t t = tp_.size();
  std::vector<double> x(t), y(t);
  for (std::size_t i = 0; i < t; ++i) {
    const double recall = divide_no_nan(tp_[i], tp_[i] + fn_[i]);
    if (options_.curve == AUCCurve::ROC) {
      x[i] = divide_no_nan(fp_[i], fp_[i] + tn_[i]);
      y[i] = recall;
    } else {
      x[i] = recall;
      y[i] = divide_no_nan(tp_[i], tp_[i] + fp_[i]);
    }
  }
  double auc = 0;
  for (std::size_t i = 0; i + 1 < t; ++i) {
    double height = (y[i] + y[i + 1]) / 2;
    if (options_.summation_method == AUCSummation::minoring) height = std::min(y[i], y[i + 1]);
    if (options_.summation_method == AUCSummation::majoring) height = std::max(y[i], y[i + 1]);
    auc += (x[i] - x[i + 1]) * height;
  }
  return auc;
}

void AUC::reset_state() {
  const std::size_t t = static_cast<std::size_t>(options_.num_thresholds);
  tp_.assign(t, 0.0);
  fp_.assign(t, 0.0);
  tn_.assign(t, 0.0);
  fn_.assign(t, 0.0);
}

std::vector<double> AUC::state() const {
  std::vector<double> s;
  for (const auto* v : {&tp_, &fp_, &tn_, &fn_}) s.insert(s.end(), v->begin(), v->end());
  return s;
}

void AUC::set_state(const std::vector<double>& state) {
  const std::size_t t = tp_.size();
  check_state_size(state, 4 * t);
  std::size_t at = 0;
  for (auto* v : {&tp_, &fp_, &tn_, &fn_}) {
    std::copy(state.begin() + static_cast<long>(at), state.begin() + static_cast<long>(at + t),
              v->begin());
    at += t;
  }
}

}  // namespace xtape::metrics
