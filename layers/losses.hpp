#pragma once
/// @file losses.hpp
/// Losses and metrics by Keras name, as used by Sequential::compile.
#include <functional>
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::layers {

/// A loss: (y_true, y_pred) -> scalar mean over the batch, differentiable in y_pred.
using LossFn = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;

/// "categorical_crossentropy", "sparse_categorical_crossentropy", "mean_squared_error" / "mse".
/// Throws std::invalid_argument naming the unknown loss.
LossFn get_loss(const std::string& name);

/// A metric's contribution of one batch: (sum of per-sample values, number of samples).
struct MetricBatch {
  double total = 0;
  double count = 0;
};

/// Computes a metric on one batch (no tape). "accuracy" resolves, as Keras does, to
/// categorical accuracy when y_true has y_pred's shape with more than one class, to sparse
/// accuracy for integer labels, and to binary accuracy (threshold 0.5) for one output.
using MetricFn = std::function<MetricBatch(const Tensor& y_true, const Tensor& y_pred)>;

/// "accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy", "mse".
MetricFn get_metric(const std::string& name);

}  // namespace xtape::layers
