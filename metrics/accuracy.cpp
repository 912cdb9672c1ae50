// Accuracy metrics (binary, categorical, sparse, top-k) and the regression errors (MSE, MAE,
// RMSE): per-sample values in double on raw buffers, averaged by Mean.
#include <cmath>
#include <utility>

#include "losses/detail.hpp"
#include "metrics/detail.hpp"
#include "metrics/metrics.hpp"

namespace xtape::metrics {

namespace detail {

std::invalid_argument shape_error(const std::string& who, const std::string& what,
                                  const Tensor& y_true, const Tensor& y_pred) {
  return std::invalid_argument(who + ": " + what + "; received y_true of shape " +
                               shape_str(y_true.shape()) + " and y_pred of shape " +
                               shape_str(y_pred.shape()));
}

void check_defined(const std::string& who, const Tensor& y_true, const Tensor& y_pred) {
  if (!y_true.defined() || !y_pred.defined())
    throw std::invalid_argument(who + ": y_true and y_pred must be defined tensors");
}

Shape matched_shape(const std::string& who, const Tensor& y_true, const Tensor& y_pred) {
  check_defined(who, y_true, y_pred);
  Shape ts = y_true.shape(), ps = y_pred.shape();
  losses::detail::squeeze_or_expand(ts, ps);
  if (ps.empty() || ts != ps)
    throw shape_error(who, "expected y_true of y_pred's shape (or (n,) against (n, 1))", y_true,
                      y_pred);
  return ps;
}

std::vector<std::size_t> broadcast_offsets(const std::string& who, const Shape& from,
                                           const Shape& to) {
  auto fail = [&] {
    return std::invalid_argument(who + ": sample_weight of shape " + shape_str(from) +
                                 " does not broadcast to shape " + shape_str(to));
  };
  if (from.size() > to.size()) throw fail();
  const std::size_t pad = to.size() - from.size();
  std::vector<std::size_t> stride(to.size(), 0);
  std::size_t s = 1;
  for (std::size_t i = from.size(); i-- > 0;) {
    const std::size_t a = i + pad;
    if (from[i] == to[a])
      stride[a] = from[i] == 1 ? 0 : s;
    else if (from[i] != 1)
      throw fail();
    s *= from[i];
  }
  std::vector<std::size_t> offsets(shape_size(to));
  std::vector<std::size_t> index(to.size(), 0);
  std::size_t offset = 0;
  for (std::size_t e = 0; e < offsets.size(); ++e) {
    offsets[e] = offset;
    for (std::size_t a = to.size(); a-- > 0;) {  // odometer step, last axis fastest
      offset += stride[a];
      if (++index[a] < to[a]) break;
      offset -= stride[a] * index[a];
      index[a] = 0;
    }
  }
  return offsets;
}

namespace {

// The first maximal element, or the first NaN (NaN ranks above every number, as in PyTorch's
// argmax), so a NaN prediction is not silently scored as a class.
std::size_t argmax(const float* row, std::size_t k) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < k && row[best] == row[best]; ++j)
    if (!(row[j] <= row[best])) best = j;
  return best;
}

// y_pred's shape without its class axis; throws unless there is at least one class.
Shape sample_shape(const std::string& who, const Tensor& y_true, const Tensor& y_pred) {
  if (y_pred.ndim() == 0 || y_pred.shape().back() == 0)
    throw shape_error(who, "expected y_pred with a class axis of at least one class", y_true,
                      y_pred);
  Shape s = y_pred.shape();
  s.pop_back();
  return s;
}

// Class indices from labels of shape y_pred.shape[:-1] (or with a trailing 1).
std::vector<std::size_t> class_labels(const std::string& who, const Tensor& labels,
                                      const Tensor& y_pred) {
  check_defined(who, labels, y_pred);
  const Shape expected = sample_shape(who, labels, y_pred);
  Shape ls = labels.shape();
  if (ls.size() == y_pred.ndim() && ls.back() == 1) ls.pop_back();
  if (ls != expected)
    throw shape_error(who,
                      "expected integer labels of shape " + shape_str(expected) +
                          " (y_pred's shape without the class axis)",
                      labels, y_pred);
  const std::size_t k = y_pred.shape().back();
  std::vector<std::size_t> ids(labels.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const float l = labels.data()[i];
    if (!(l >= 0.f && l < static_cast<float>(k)) || l != std::floor(l))
      throw std::invalid_argument(who + ": label " + std::to_string(l) + " at position " +
                                  std::to_string(i) + " is not a class index in [0, " +
                                  std::to_string(k) + ")");
    ids[i] = static_cast<std::size_t>(l);
  }
  return ids;
}

// argmax over the last axis of one-hot y_true of y_pred's shape.
std::vector<std::size_t> one_hot_classes(const std::string& who, const Tensor& y_true,
                                         const Tensor& y_pred) {
  check_defined(who, y_true, y_pred);
  if (y_true.shape() != y_pred.shape())
    throw shape_error(who, "expected one-hot y_true of y_pred's shape", y_true, y_pred);
  sample_shape(who, y_true, y_pred);
  const std::size_t k = y_pred.shape().back();
  std::vector<std::size_t> ids(y_pred.size() / k);
  for (std::size_t r = 0; r < ids.size(); ++r) ids[r] = argmax(y_true.data() + r * k, k);
  return ids;
}

Values matches(const std::string& who, const std::vector<std::size_t>& ids, const Tensor& y_true,
               const Tensor& y_pred) {
  const std::size_t k = y_pred.shape().back();
  Values out{sample_shape(who, y_true, y_pred), std::vector<double>(ids.size())};
  for (std::size_t r = 0; r < ids.size(); ++r)
    out.v[r] = argmax(y_pred.data() + r * k, k) == ids[r];
  return out;
}

}  // namespace

Values binary_accuracy(const std::string& who, float threshold, const Tensor& y_true,
                       const Tensor& y_pred) {
  Values out{matched_shape(who, y_true, y_pred), std::vector<double>(y_pred.size())};
  const float *t = y_true.data(), *p = y_pred.data();
  for (std::size_t i = 0; i < out.v.size(); ++i) out.v[i] = t[i] == (p[i] > threshold ? 1.f : 0.f);
  return out;
}

Values categorical_accuracy(const std::string& who, const Tensor& y_true, const Tensor& y_pred) {
  return matches(who, one_hot_classes(who, y_true, y_pred), y_true, y_pred);
}

Values sparse_categorical_accuracy(const std::string& who, const Tensor& labels,
                                   const Tensor& y_pred) {
  return matches(who, class_labels(who, labels, y_pred), labels, y_pred);
}

Values top_k_accuracy(const std::string& who, int k, bool sparse, const Tensor& y_true,
                      const Tensor& y_pred) {
  const std::vector<std::size_t> ids =
      sparse ? class_labels(who, y_true, y_pred) : one_hot_classes(who, y_true, y_pred);
  const std::size_t classes = y_pred.shape().back();
  Values out{sample_shape(who, y_true, y_pred), std::vector<double>(ids.size())};
  for (std::size_t r = 0; r < ids.size(); ++r) {
    const float* row = y_pred.data() + r * classes;
    const float target = row[ids[r]];
    // In the top k when fewer than k predictions are strictly larger (ties count in). NaN ranks
    // above every number (as in argmax and PyTorch's topk), and a NaN target is never in it.
    std::size_t larger = 0;
    for (std::size_t j = 0; j < classes; ++j) larger += row[j] > target || std::isnan(row[j]);
    out.v[r] = !std::isnan(target) && larger < static_cast<std::size_t>(k);
  }
  return out;
}

Values error(const std::string& who, bool squared, const Tensor& y_true, const Tensor& y_pred) {
  Shape s = matched_shape(who, y_true, y_pred);
  // Rank 1: one value per sample (see losses.hpp); else the mean over the last axis.
  const std::size_t per = s.size() >= 2 ? s.back() : 1;
  if (s.size() >= 2) s.pop_back();
  Values out{s, std::vector<double>(per ? y_pred.size() / per : 0)};
  const float *t = y_true.data(), *p = y_pred.data();
  for (std::size_t r = 0; r < out.v.size(); ++r) {
    double acc = 0;
    for (std::size_t j = r * per; j < (r + 1) * per; ++j) {
      const double d = static_cast<double>(t[j]) - p[j];
      acc += squared ? d * d : std::abs(d);
    }
    out.v[r] = acc / static_cast<double>(per);
  }
  return out;
}

}  // namespace detail

BinaryAccuracy::BinaryAccuracy(BinaryAccuracyOptions options)
    : Mean(options.name), options_(std::move(options)) {
  if (!std::isfinite(options_.threshold))
    throw std::invalid_argument(name() + ": threshold must be finite, got " +
                                std::to_string(options_.threshold));
}

void BinaryAccuracy::update_state(const Tensor& y_true, const Tensor& y_pred,
                                  const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::binary_accuracy(name(), options_.threshold, y_true, y_pred), sample_weight);
}

CategoricalAccuracy::CategoricalAccuracy(std::string name) : Mean(std::move(name)) {}

void CategoricalAccuracy::update_state(const Tensor& y_true, const Tensor& y_pred,
                                       const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::categorical_accuracy(name(), y_true, y_pred), sample_weight);
}

SparseCategoricalAccuracy::SparseCategoricalAccuracy(std::string name) : Mean(std::move(name)) {}

void SparseCategoricalAccuracy::update_state(const Tensor& y_true, const Tensor& y_pred,
                                             const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::sparse_categorical_accuracy(name(), y_true, y_pred), sample_weight);
}

namespace {
void check_k(int k, const std::string& who) {
  if (k < 1) throw std::invalid_argument(who + ": k must be >= 1, got " + std::to_string(k));
}
}  // namespace

TopKCategoricalAccuracy::TopKCategoricalAccuracy(TopKCategoricalAccuracyOptions options)
    : Mean(options.name), options_(std::move(options)) {
  check_k(options_.k, name());
}

void TopKCategoricalAccuracy::update_state(const Tensor& y_true, const Tensor& y_pred,
                                           const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::top_k_accuracy(name(), options_.k, false, y_true, y_pred), sample_weight);
}

SparseTopKCategoricalAccuracy::SparseTopKCategoricalAccuracy(
    SparseTopKCategoricalAccuracyOptions options)
    : Mean(options.name), options_(std::move(options)) {
  check_k(options_.k, name());
}

void SparseTopKCategoricalAccuracy::update_state(const Tensor& y_true, const Tensor& y_pred,
                                                 const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::top_k_accuracy(name(), options_.k, true, y_true, y_pred), sample_weight);
}

MeanSquaredError::MeanSquaredError(std::string name) : Mean(std::move(name)) {}

void MeanSquaredError::update_state(const Tensor& y_true, const Tensor& y_pred,
                                    const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::error(name(), true, y_true, y_pred), sample_weight);
}

MeanAbsoluteError::MeanAbsoluteError(std::string name) : Mean(std::move(name)) {}

void MeanAbsoluteError::update_state(const Tensor& y_true, const Tensor& y_pred,
                                     const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::error(name(), false, y_true, y_pred), sample_weight);
}

RootMeanSquaredError::RootMeanSquaredError(std::string name) : Mean(std::move(name)) {}

void RootMeanSquaredError::update_state(const Tensor& y_true, const Tensor& y_pred,
                                        const Tensor& sample_weight) {
  NoGrad guard;
  accumulate(detail::error(name(), true, y_true, y_pred), sample_weight);
}

double RootMeanSquaredError::result() const { return std::sqrt(Mean::result()); }

}  // namespace xtape::metrics
