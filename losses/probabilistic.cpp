// Probabilistic losses: binary, categorical and sparse categorical cross-entropy, KL divergence,
// Poisson. Compositions of primitives (no backward code), Keras 3's formulas.
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "autodiff/ops.hpp"
#include "losses/detail.hpp"
#include "losses/losses.hpp"

namespace xtape::losses {

using detail::epsilon;

namespace {

void check_smoothing(float s, const std::string& who) {
  if (!(s >= 0.f && s <= 1.f))
    throw std::invalid_argument(who + ": label_smoothing must be in [0, 1], got " +
                                std::to_string(s));
}

// x with a trailing axis of extent 1.
Tensor with_unit_axis(const Tensor& x) {
  Shape s = x.shape();
  s.push_back(1);
  return detail::reshaped(x, s);
}

}  // namespace

// ---- BinaryCrossentropy ----

BinaryCrossentropy::BinaryCrossentropy(BinaryCrossentropyOptions options)
    : Loss(options.name, options.reduction), options_(std::move(options)) {
  check_smoothing(options_.label_smoothing, name());
}

Tensor BinaryCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  const int axis = detail::normalize_axis(options_.axis, y_pred.shape(), name());
  const float s = options_.label_smoothing;
  const Tensor t = s > 0.f ? y_true * (1.f - s) + 0.5f * s : y_true;
  Tensor elementwise;
  if (options_.from_logits) {
    // -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) is the categorical cross-entropy of the
    // two logits (0, x) against (1 - t, t): log_softmax makes it exact at large |x|, with the
    // gradient sigmoid(x) - t everywhere (also at x = 0, where relu/abs forms have a kink).
    const Tensor x = with_unit_axis(y_pred), t1 = with_unit_axis(t);
    elementwise = categorical_crossentropy(concat({1.f - t1, t1}, -1),
                                           concat({Tensor(x.shape(), 0.f), x}, -1), true);
  } else {
    const Tensor p = clip(y_pred, epsilon, 1.f - epsilon);
    elementwise = -(t * log(p) + (1.f - t) * log(1.f - p));
  }
  // One value per sample already for rank 1 (see the file comment of losses.hpp).
  if (elementwise.ndim() == 1) return elementwise;
  return mean(elementwise, {axis});
}

// ---- CategoricalCrossentropy ----

CategoricalCrossentropy::CategoricalCrossentropy(CategoricalCrossentropyOptions options)
    : Loss(options.name, options.reduction), options_(std::move(options)) {
  check_smoothing(options_.label_smoothing, name());
}

void CategoricalCrossentropy::check_shapes(const Tensor& y_true, const Tensor& y_pred) const {
  Loss::check_shapes(y_true, y_pred);
  detail::normalize_axis(options_.axis, y_pred.shape(), name());
}

Tensor CategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  const int axis = detail::normalize_axis(options_.axis, y_pred.shape(), name());
  const float s = options_.label_smoothing;
  const float classes = static_cast<float>(y_pred.shape()[static_cast<std::size_t>(axis)]);
  const Tensor t = s > 0.f ? y_true * (1.f - s) + s / classes : y_true;
  const int last = static_cast<int>(y_pred.ndim()) - 1;
  if (axis == last) return categorical_crossentropy(t, y_pred, options_.from_logits);
  // The op works on the last axis: move the class axis there (the other axes keep their order,
  // so the result has y_pred's shape without the class axis).
  std::vector<int> perm;
  for (int i = 0; i <= last; ++i)
    if (i != axis) perm.push_back(i);
  perm.push_back(axis);
  return categorical_crossentropy(transpose(t, perm), transpose(y_pred, perm),
                                  options_.from_logits);
}

// ---- SparseCategoricalCrossentropy ----

SparseCategoricalCrossentropy::SparseCategoricalCrossentropy(
    SparseCategoricalCrossentropyOptions options)
    : Loss(options.name, options.reduction), options_(std::move(options)) {}

namespace {
// Labels (n, ..., 1) against y_pred (n, ..., k) lose their trailing 1.
Tensor squeezed_labels(const Tensor& labels, const Tensor& y_pred) {
  if (labels.ndim() == y_pred.ndim() && labels.ndim() > 0 && labels.shape().back() == 1) {
    Shape s = labels.shape();
    s.pop_back();
    return detail::reshaped(labels, s);
  }
  return labels;
}
}  // namespace

void SparseCategoricalCrossentropy::check_shapes(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() == 0) throw shape_error("expected y_pred of rank >= 1", y_true, y_pred);
  Shape expected = y_pred.shape();
  expected.pop_back();
  if (squeezed_labels(y_true, y_pred).shape() != expected)
    throw shape_error("expected integer labels of shape " + shape_str(expected) +
                          " (y_pred's shape without the class axis)",
                      y_true, y_pred);
}

Tensor SparseCategoricalCrossentropy::one_hot(const Tensor& labels, const Tensor& y_pred) const {
  const std::size_t k = y_pred.shape().back();
  Tensor out(y_pred.shape(), 0.f);
  const float* l = labels.data();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (options_.ignore_class && l[i] == static_cast<float>(*options_.ignore_class)) continue;
    if (!(l[i] >= 0.f && l[i] < static_cast<float>(k)) || l[i] != std::floor(l[i]))
      throw std::invalid_argument(name() + ": label " + std::to_string(l[i]) + " at position " +
                                  std::to_string(i) + " is not a class index in [0, " +
                                  std::to_string(k) + ")");
    out.data()[i * k + static_cast<std::size_t>(l[i])] = 1.f;
  }
  return out;
}

Tensor SparseCategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred) const {
  // An ignored label has an all-zero one-hot row: its loss is exactly 0 (and mask() drops it
  // from the count), with no 0/0 from zeroed predictions.
  return categorical_crossentropy(one_hot(squeezed_labels(y_true, y_pred), y_pred), y_pred,
                                  options_.from_logits);
}

Tensor SparseCategoricalCrossentropy::mask(const Tensor& y_true, const Tensor& y_pred) const {
  if (!options_.ignore_class) return Tensor();
  const Tensor labels = squeezed_labels(y_true, y_pred);
  Tensor m = Tensor::empty(labels.shape());
  const float ignore = static_cast<float>(*options_.ignore_class);
  for (std::size_t i = 0; i < labels.size(); ++i)
    m.data()[i] = labels.data()[i] == ignore ? 0.f : 1.f;
  return m;
}

// ---- KLDivergence, Poisson ----

KLDivergence::KLDivergence(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor KLDivergence::call(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor t = clip(y_true, epsilon, 1.f), p = clip(y_pred, epsilon, 1.f);
  return sum(t * log(t / p), {-1});
}

Poisson::Poisson(Reduction reduction, std::string name) : Loss(std::move(name), reduction) {}

Tensor Poisson::call(const Tensor& y_true, const Tensor& y_pred) const {
  return detail::mean_last(y_pred - y_true * log(y_pred + epsilon));
}

}  // namespace xtape::losses
