#include "layers/losses.hpp"

#include <cmath>
#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

LossFn get_loss(const std::string& name) {
  if (name == "categorical_crossentropy")
    return [](const Tensor& t, const Tensor& p) { return mean(categorical_crossentropy(t, p)); };
  if (name == "sparse_categorical_crossentropy")
    return [](const Tensor& t, const Tensor& p) {
      return mean(sparse_categorical_crossentropy(t, p));
    };
  if (name == "mean_squared_error" || name == "mse")
    return [](const Tensor& t, const Tensor& p) {
      if (t.shape() != p.shape())
        throw std::invalid_argument("mean_squared_error: y_true of shape " + shape_str(t.shape()) +
                                    " does not match y_pred of shape " + shape_str(p.shape()));
      return mean(square(t - p));
    };
  throw std::invalid_argument(
      "unknown loss '" + name +
      "' (expected categorical_crossentropy, sparse_categorical_crossentropy or "
      "mean_squared_error)");
}

namespace {

// The first maximal element, or the first NaN (NaN is greater than every number, as in
// PyTorch's argmax).
std::size_t argmax_row(const float* row, std::size_t k) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < k; ++j)
    if (!(row[j] <= row[best]) && row[best] == row[best]) best = j;
  return best;
}

MetricBatch categorical_accuracy(const Tensor& t, const Tensor& p) {
  const std::size_t k = p.shape().back(), n = p.size() / k;
  MetricBatch m{0, double(n)};
  for (std::size_t i = 0; i < n; ++i)
    m.total += argmax_row(t.data() + i * k, k) == argmax_row(p.data() + i * k, k) ? 1 : 0;
  return m;
}

MetricBatch sparse_accuracy(const Tensor& t, const Tensor& p) {
  const std::size_t k = p.shape().back(), n = p.size() / k;
  if (t.size() != n)
    throw std::invalid_argument("sparse_categorical_accuracy: labels of shape " +
                                shape_str(t.shape()) + " do not match y_pred of shape " +
                                shape_str(p.shape()));
  MetricBatch m{0, double(n)};
  for (std::size_t i = 0; i < n; ++i)
    m.total += static_cast<float>(argmax_row(p.data() + i * k, k)) == t.data()[i] ? 1 : 0;
  return m;
}

MetricBatch binary_accuracy(const Tensor& t, const Tensor& p) {
  if (t.size() != p.size())
    throw std::invalid_argument("binary_accuracy: y_true of shape " + shape_str(t.shape()) +
                                " does not match y_pred of shape " + shape_str(p.shape()));
  MetricBatch m{0, double(p.size())};
  for (std::size_t i = 0; i < p.size(); ++i)
    m.total += (p.data()[i] > 0.5f) == (t.data()[i] > 0.5f) ? 1 : 0;
  return m;
}

}  // namespace

MetricFn get_metric(const std::string& name) {
  if (name == "accuracy" || name == "acc")
    return [](const Tensor& t, const Tensor& p) {
      if (p.ndim() >= 1 && p.shape().back() == 1) return binary_accuracy(t, p);
      if (t.shape() == p.shape()) return categorical_accuracy(t, p);
      return sparse_accuracy(t, p);
    };
  if (name == "categorical_accuracy")
    return [](const Tensor& t, const Tensor& p) {
      if (t.shape() != p.shape())
        throw std::invalid_argument("categorical_accuracy: y_true of shape " +
                                    shape_str(t.shape()) + " does not match y_pred of shape " +
                                    shape_str(p.shape()));
      return categorical_accuracy(t, p);
    };
  if (name == "sparse_categorical_accuracy") return sparse_accuracy;
  if (name == "binary_accuracy") return binary_accuracy;
  if (name == "mse" || name == "mean_squared_error")
    return [](const Tensor& t, const Tensor& p) {
      MetricBatch m{0, 0};
      const std::size_t n = p.ndim() ? p.shape()[0] : 1,
                        per = p.size() / std::max<std::size_t>(n, 1);
      for (std::size_t i = 0; i < p.size(); ++i) {
        const double d = double(t.data()[i]) - p.data()[i];
        m.total += d * d / double(per);
      }
      m.count = double(n);
      return m;
    };
  throw std::invalid_argument(
      "unknown metric '" + name +
      "' (expected accuracy, categorical_accuracy, sparse_categorical_accuracy, "
      "binary_accuracy or mse)");
}

}  // namespace xtape::layers
