// The Metric base, Mean and Sum (Keras's reduce_to_samplewise_values), MeanMetricWrapper,
// "accuracy" resolved from the loss or the shapes, the means of losses, and the registry get().
#include <algorithm>
#include <cmath>
#include <utility>

#include "autodiff/ops.hpp"
#include "losses/detail.hpp"
#include "losses/losses.hpp"
#include "metrics/detail.hpp"
#include "metrics/metrics.hpp"

namespace xtape::metrics {

// ---- Metric ----

Metric::Metric(std::string name) : name_(std::move(name)) {
  if (name_.empty()) throw std::invalid_argument("Metric: the name must not be empty");
}

std::vector<double> Metric::state() const { return {}; }

void Metric::set_state(const std::vector<double>& state) { check_state_size(state, 0); }

std::invalid_argument Metric::shape_error(const std::string& what, const Tensor& y_true,
                                          const Tensor& y_pred) const {
  return detail::shape_error(name_, what, y_true, y_pred);
}

void Metric::check_state_size(const std::vector<double>& state, std::size_t expected) const {
  if (state.size() != expected)
    throw std::invalid_argument(name_ + ": a state of " + std::to_string(state.size()) +
                                " numbers given, expected " + std::to_string(expected));
}

namespace {

detail::Values values_of(const Tensor& t) {
  return {t.shape(), std::vector<double>(t.data(), t.data() + t.size())};
}

// Values and weight shapes after Keras's squeeze/expand; the weight must not have more axes.
void fit_weight(const std::string& who, Shape& v, Shape& w) {
  losses::detail::squeeze_or_expand(v, w);
  if (w.size() > v.size())
    throw std::invalid_argument(who + ": sample_weight of shape " + shape_str(w) +
                                " has more axes than the values of shape " + shape_str(v));
}

}  // namespace

// ---- Mean ----

Mean::Mean(std::string name) : Metric(std::move(name)) {}

void Mean::accumulate(const detail::Values& values, const Tensor& sample_weight) {
  const Shape& vs = values.shape;
  const std::vector<double>& v = values.v;
  if (!sample_weight.defined()) {
    if (vs.empty()) {  // a scalar is one sample
      total_ += v.at(0);
      count_ += 1;
      return;
    }
    const std::size_t n = vs[0], per = n ? v.size() / n : 0;
    if (n > 0 && per == 0)
      throw std::invalid_argument(name() + ": no values per sample in shape " + shape_str(vs));
    for (std::size_t i = 0; i < n; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < per; ++j) s += v[i * per + j];
      total_ += s / static_cast<double>(per);
    }
    count_ += static_cast<double>(n);
    return;
  }
  // Keras's reduce_to_samplewise_values: values averaged down to the weight's rank, weighted
  // elementwise (extents of 1 broadcast), then averaged per sample, weights likewise.
  Shape vr = vs, w = sample_weight.shape();
  fit_weight(name(), vr, w);
  std::size_t inner = 1;
  for (std::size_t i = w.size(); i < vr.size(); ++i) inner *= vr[i];
  vr.resize(w.size());
  const std::vector<std::size_t> offsets = detail::broadcast_offsets(name(), w, vr);
  if (!offsets.empty() && inner == 0)
    throw std::invalid_argument(name() + ": no values per sample in shape " + shape_str(vs));
  const float* wv = sample_weight.data();
  const std::size_t samples = w.empty() ? 1 : vr[0];
  const std::size_t per = samples ? offsets.size() / samples : 0;
  if (samples > 0 && per == 0)
    throw std::invalid_argument(name() + ": no values per sample in shape " + shape_str(vs));
  for (std::size_t s = 0; s < samples; ++s) {
    double value = 0, weight = 0;
    for (std::size_t j = s * per; j < (s + 1) * per; ++j) {
      double m = 0;
      for (std::size_t k = 0; k < inner; ++k) m += v[j * inner + k];
      const double wj = wv[offsets[j]];
      value += m / static_cast<double>(inner) * wj;
      weight += wj;
    }
    total_ += value / static_cast<double>(per);
    count_ += weight / static_cast<double>(per);
  }
}

void Mean::update_values(const Tensor& values, const Tensor& sample_weight) {
  if (!values.defined()) throw std::invalid_argument(name() + ": values must be a defined tensor");
  NoGrad guard;
  accumulate(values_of(values), sample_weight);
}

void Mean::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  if (y_true.defined())
    throw std::invalid_argument(name() +
                                ": Mean takes values, not targets: call update_values(values), or "
                                "update_state with an undefined y_true and the values as y_pred");
  update_values(y_pred, sample_weight);
}

double Mean::result() const { return count_ == 0 ? 0.0 : total_ / count_; }

void Mean::reset_state() { total_ = count_ = 0; }

std::vector<double> Mean::state() const { return {total_, count_}; }

void Mean::set_state(const std::vector<double>& state) {
  check_state_size(state, 2);
  total_ = state[0];
  count_ = state[1];
}

// ---- Sum ----

Sum::Sum(std::string name) : Metric(std::move(name)) {}

void Sum::update_values(const Tensor& values, const Tensor& sample_weight) {
  if (!values.defined()) throw std::invalid_argument(name() + ": values must be a defined tensor");
  NoGrad guard;
  const float* v = values.data();
  if (!sample_weight.defined()) {
    for (std::size_t i = 0; i < values.size(); ++i) total_ += v[i];
    return;
  }
  Shape vr = values.shape(), w = sample_weight.shape();
  fit_weight(name(), vr, w);
  std::size_t inner = 1;
  for (std::size_t i = w.size(); i < vr.size(); ++i) inner *= vr[i];
  vr.resize(w.size());
  const std::vector<std::size_t> offsets = detail::broadcast_offsets(name(), w, vr);
  for (std::size_t j = 0; j < offsets.size(); ++j) {
    double s = 0;
    for (std::size_t k = 0; k < inner; ++k) s += v[j * inner + k];
    total_ += s * sample_weight.data()[offsets[j]];
  }
}

void Sum::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  if (y_true.defined())
    throw std::invalid_argument(name() +
                                ": Sum takes values, not targets: call update_values(values), or "
                                "update_state with an undefined y_true and the values as y_pred");
  update_values(y_pred, sample_weight);
}

void Sum::set_state(const std::vector<double>& state) {
  check_state_size(state, 1);
  total_ = state[0];
}

// ---- MeanMetricWrapper ----

MeanMetricWrapper::MeanMetricWrapper(std::string name, MetricFn fn)
    : Mean(std::move(name)), fn_(std::move(fn)) {
  if (!fn_)
    throw std::invalid_argument("MeanMetricWrapper: metric '" + this->name() + "' has no function");
}

void MeanMetricWrapper::update_state(const Tensor& y_true, const Tensor& y_pred,
                                     const Tensor& sample_weight) {
  detail::check_defined(name(), y_true, y_pred);
  NoGrad guard;
  Tensor t = y_true, p = y_pred;
  losses::detail::squeeze_or_expand(t, p);
  const Tensor values = fn_(t, p);
  if (!values.defined())
    throw std::logic_error(name() + ": the metric function returned no tensor");
  accumulate(values_of(values), sample_weight);
}

std::shared_ptr<Metric> make_metric(std::string name, MetricFn per_sample_fn) {
  return std::make_shared<MeanMetricWrapper>(std::move(name), std::move(per_sample_fn));
}

namespace {

// "accuracy" without a loss to go by: binary, sparse or categorical from the first batch's
// shapes (Keras's is_binary_or_sparse_categorical), kept from then on.
class AutoAccuracy : public Mean {
 public:
  using Mean::Mean;
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight) override {
    detail::check_defined(name(), y_true, y_pred);
    if (y_true.ndim() == 0 || y_pred.ndim() == 0)
      throw shape_error("expected y_true and y_pred of rank >= 1", y_true, y_pred);
    if (kind_ == Kind::unknown) {
      if (y_pred.shape().back() == 1)
        kind_ = Kind::binary;
      else if (y_true.ndim() < y_pred.ndim() || y_true.shape().back() == 1)
        kind_ = Kind::sparse;
      else
        kind_ = Kind::categorical;
    }
    NoGrad guard;
    switch (kind_) {
      case Kind::binary:
        return accumulate(detail::binary_accuracy(name(), 0.5f, y_true, y_pred), sample_weight);
      case Kind::sparse:
        return accumulate(detail::sparse_categorical_accuracy(name(), y_true, y_pred),
                          sample_weight);
      default:
        return accumulate(detail::categorical_accuracy(name(), y_true, y_pred), sample_weight);
    }
  }

 private:
  enum class Kind { unknown, binary, sparse, categorical } kind_ = Kind::unknown;
};

// The mean of a loss's per-sample values (Keras's metric classes of the losses).
class LossMean : public Mean {
 public:
  LossMean(std::string name, const std::string& loss, bool negate)
      : Mean(std::move(name)), loss_(losses::get(loss, losses::Reduction::none)), negate_(negate) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight) override {
    NoGrad guard;
    const Tensor values = (*loss_)(y_true, y_pred);
    accumulate(values_of(negate_ ? -values : values), sample_weight);
  }

 private:
  std::shared_ptr<losses::Loss> loss_;
  bool negate_;
};

struct Entry {
  std::vector<std::string> names;
  std::string class_name;
  std::string default_name;
  std::function<std::shared_ptr<Metric>(std::string)> make;
};

template <class M>
Entry named(std::vector<std::string> names, std::string class_name, std::string default_name) {
  return {std::move(names), std::move(class_name), std::move(default_name),
          [](std::string n) { return std::make_shared<M>(std::move(n)); }};
}

template <class M, class O>
Entry with_options(std::vector<std::string> names, std::string class_name,
                   std::string default_name) {
  return {std::move(names), std::move(class_name), std::move(default_name), [](std::string n) {
            O o;
            o.name = std::move(n);
            return std::make_shared<M>(std::move(o));
          }};
}

Entry loss_mean(std::vector<std::string> names, std::string class_name, std::string default_name,
                std::string loss, bool negate = false) {
  return {std::move(names), std::move(class_name), std::move(default_name),
          [loss, negate](std::string n) {
            return std::make_shared<LossMean>(std::move(n), loss, negate);
          }};
}

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      with_options<BinaryAccuracy, BinaryAccuracyOptions>({"binary_accuracy"}, "BinaryAccuracy",
                                                          "binary_accuracy"),
      named<CategoricalAccuracy>({"categorical_accuracy"}, "CategoricalAccuracy",
                                 "categorical_accuracy"),
      named<SparseCategoricalAccuracy>({"sparse_categorical_accuracy"}, "SparseCategoricalAccuracy",
                                       "sparse_categorical_accuracy"),
      with_options<TopKCategoricalAccuracy, TopKCategoricalAccuracyOptions>(
          {"top_k_categorical_accuracy"}, "TopKCategoricalAccuracy", "top_k_categorical_accuracy"),
      with_options<SparseTopKCategoricalAccuracy, SparseTopKCategoricalAccuracyOptions>(
          {"sparse_top_k_categorical_accuracy"}, "SparseTopKCategoricalAccuracy",
          "sparse_top_k_categorical_accuracy"),
      named<MeanSquaredError>({"mean_squared_error", "mse", "MSE"}, "MeanSquaredError",
                              "mean_squared_error"),
      named<MeanAbsoluteError>({"mean_absolute_error", "mae", "MAE"}, "MeanAbsoluteError",
                               "mean_absolute_error"),
      named<RootMeanSquaredError>({"root_mean_squared_error"}, "RootMeanSquaredError",
                                  "root_mean_squared_error"),
      with_options<AUC, AUCOptions>({"auc"}, "AUC", "auc"),
      with_options<Precision, PrecisionRecallOptions>({"precision"}, "Precision", "precision"),
      with_options<Recall, PrecisionRecallOptions>({"recall"}, "Recall", "recall"),
      named<Mean>({"mean"}, "Mean", "mean"),
      named<Sum>({"sum"}, "Sum", "sum"),
      loss_mean({"binary_crossentropy", "bce", "BCE"}, "BinaryCrossentropy", "binary_crossentropy",
                "binary_crossentropy"),
      loss_mean({"categorical_crossentropy"}, "CategoricalCrossentropy", "categorical_crossentropy",
                "categorical_crossentropy"),
      loss_mean({"sparse_categorical_crossentropy"}, "SparseCategoricalCrossentropy",
                "sparse_categorical_crossentropy", "sparse_categorical_crossentropy"),
      loss_mean({"kl_divergence", "kld", "KLD"}, "KLDivergence", "kl_divergence", "kl_divergence"),
      loss_mean({"poisson"}, "Poisson", "poisson", "poisson"),
      loss_mean({"hinge"}, "Hinge", "hinge", "hinge"),
      loss_mean({"squared_hinge"}, "SquaredHinge", "squared_hinge", "squared_hinge"),
      loss_mean({"categorical_hinge"}, "CategoricalHinge", "categorical_hinge",
                "categorical_hinge"),
      loss_mean({"mean_absolute_percentage_error", "mape", "MAPE"}, "MeanAbsolutePercentageError",
                "mean_absolute_percentage_error", "mean_absolute_percentage_error"),
      loss_mean({"mean_squared_logarithmic_error", "msle", "MSLE"}, "MeanSquaredLogarithmicError",
                "mean_squared_logarithmic_error", "mean_squared_logarithmic_error"),
      // Keras's metric is the similarity itself, the loss its negative.
      loss_mean({"cosine_similarity"}, "CosineSimilarity", "cosine_similarity", "cosine_similarity",
                true),
      loss_mean({"logcosh", "log_cosh_error"}, "LogCoshError", "logcosh", "log_cosh"),
  };
  return entries;
}

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return s == n; });
}

}  // namespace

std::shared_ptr<Metric> get(const std::string& name, const std::string& loss_name) {
  if (name == "accuracy" || name == "acc") {
    if (one_of(loss_name, {"categorical_crossentropy", "CategoricalCrossentropy"}))
      return std::make_shared<CategoricalAccuracy>(name);
    if (one_of(loss_name, {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}))
      return std::make_shared<SparseCategoricalAccuracy>(name);
    if (one_of(loss_name, {"binary_crossentropy", "bce", "BCE", "BinaryCrossentropy"}))
      return std::make_shared<BinaryAccuracy>(BinaryAccuracyOptions{.name = name});
    return std::make_shared<AutoAccuracy>(name);
  }
  std::string known = "accuracy";
  for (const Entry& e : registry()) {
    if (e.class_name == name) return e.make(e.default_name);
    if (std::find(e.names.begin(), e.names.end(), name) != e.names.end()) return e.make(name);
    known += ", " + e.names.front();
  }
  throw std::invalid_argument("unknown metric '" + name + "' (expected one of " + known +
                              ", their aliases or class names)");
}

}  // namespace xtape::metrics
