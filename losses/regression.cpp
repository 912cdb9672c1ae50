// Regression and hinge losses: MSE, MAE, MAPE, MSLE, Huber, log-cosh, cosine similarity, hinge,
// squared hinge, categorical hinge. Compositions of primitives, Keras 3's formulas.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "autodiff/ops.hpp"
#include "losses/detail.hpp"
#include "losses/losses.hpp"

namespace xtape::losses {

using detail::epsilon;
using detail::mean_last;

namespace {

constexpr float float_max = std::numeric_limits<float>::max();

// max(x, lo) as a primitive: the gradient passes where x >= lo.
Tensor at_least(const Tensor& x, float lo) { return clip(x, lo, float_max); }

// Hinge labels: {0, 1} labels (all of them) become {-1, 1}; other labels are kept.
Tensor hinge_labels(const Tensor& y_true) {
  const float* t = y_true.data();
  for (std::size_t i = 0; i < y_true.size(); ++i)
    if (t[i] != 0.f && t[i] != 1.f) return y_true;
  return y_true * 2.f - 1.f;
}

}  // namespace

MeanSquaredError::MeanSquaredError(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor MeanSquaredError::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_last(square(y_true - y_pred));
}

MeanAbsoluteError::MeanAbsoluteError(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor MeanAbsoluteError::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_last(abs(y_true - y_pred));
}

MeanAbsolutePercentageError::MeanAbsolutePercentageError(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor MeanAbsolutePercentageError::call(const Tensor& y_true, const Tensor& y_pred) const {
  return 100.f * mean_last(abs((y_true - y_pred) / at_least(abs(y_true), epsilon)));
}

MeanSquaredLogarithmicError::MeanSquaredLogarithmicError(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor MeanSquaredLogarithmicError::call(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor first = log(at_least(y_pred, epsilon) + 1.f);
  const Tensor second = log(at_least(y_true, epsilon) + 1.f);
  return mean_last(square(first - second));
}

Huber::Huber(HuberOptions options)
    : Loss(options.name, options.reduction), options_(std::move(options)) {
  if (!(options_.delta > 0.f) || !std::isfinite(options_.delta))
    throw std::invalid_argument(name() + ": delta must be finite and > 0, got " +
                                std::to_string(options_.delta));
}

Tensor Huber::call(const Tensor& y_true, const Tensor& y_pred) const {
  const float d = options_.delta;
  const Tensor a = abs(y_pred - y_true);
  // With q = min(|e|, delta): 0.5 q^2 + delta (|e| - q) is 0.5 e^2 inside and
  // delta |e| - 0.5 delta^2 outside, without a select.
  const Tensor q = clip(a, 0.f, d);
  return mean_last(0.5f * square(q) + d * (a - q));
}

LogCosh::LogCosh(Reduction reduction, std::string name) : Loss(std::move(name), reduction) {}

Tensor LogCosh::call(const Tensor& y_true, const Tensor& y_pred) const {
  // log cosh(e) = |e| + log(1 + exp(-2|e|)) - log 2: no overflow, and the gradient
  // sign(e) (1 - exp(-2|e|)) / (1 + exp(-2|e|)) = tanh(e) is 0 at e = 0.
  const Tensor a = abs(y_pred - y_true);
  return mean_last(a + log(1.f + exp(-2.f * a)) - std::log(2.f));
}

CosineSimilarity::CosineSimilarity(CosineSimilarityOptions options)
    : Loss(options.name, options.reduction), options_(std::move(options)) {}

void CosineSimilarity::check_shapes(const Tensor& y_true, const Tensor& y_pred) const {
  Loss::check_shapes(y_true, y_pred);
  detail::normalize_axis(options_.axis, y_pred.shape(), name());
}

Tensor CosineSimilarity::call(const Tensor& y_true, const Tensor& y_pred) const {
  const int axis = options_.axis;
  // x / max(|x|, 1e-7) as Keras's normalize: the squared norm floored at 1e-14.
  auto normalize = [axis](const Tensor& x) {
    return x / sqrt(at_least(sum(square(x), {axis}, true), epsilon * epsilon));
  };
  return -sum(normalize(y_true) * normalize(y_pred), {axis});
}

Hinge::Hinge(Reduction reduction, std::string name) : Loss(std::move(name), reduction) {}

Tensor Hinge::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_last(relu(1.f - hinge_labels(y_true) * y_pred));
}

SquaredHinge::SquaredHinge(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor SquaredHinge::call(const Tensor& y_true, const Tensor& y_pred) const {
  return mean_last(square(relu(1.f - hinge_labels(y_true) * y_pred)));
}

CategoricalHinge::CategoricalHinge(Reduction reduction, std::string name)
    : Loss(std::move(name), reduction) {}

Tensor CategoricalHinge::call(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor pos = sum(y_true * y_pred, {-1});
  const Tensor neg = max((1.f - y_true) * y_pred, {-1});
  return relu(neg - pos + 1.f);
}

}  // namespace xtape::losses
