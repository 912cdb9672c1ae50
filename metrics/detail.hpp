#pragma once
/// @file detail.hpp
/// Internals shared by the metric sources (not installed): shape errors and the per-sample
/// functions of the accuracy and regression metrics, in double precision on raw buffers.
#include <stdexcept>
#include <string>
#include <vector>

#include "metrics/metrics.hpp"

namespace xtape::metrics::detail {

/// "<who>: <what>; received y_true of shape (..) and y_pred of shape (..)".
std::invalid_argument shape_error(const std::string& who, const std::string& what,
                                  const Tensor& y_true, const Tensor& y_pred);

/// Throws std::invalid_argument naming `who` unless both tensors are defined.
void check_defined(const std::string& who, const Tensor& y_true, const Tensor& y_pred);

/// y_true and y_pred shapes after Keras's squeeze/expand ((n,) vs (n, 1)), required equal and
/// of rank >= 1 (std::invalid_argument naming `who` otherwise). Reshaping moves no data.
Shape matched_shape(const std::string& who, const Tensor& y_true, const Tensor& y_pred);

/// For each element of `to` (row-major), the offset of the element of a `from`-shaped buffer that
/// NumPy broadcasting maps to it (`from` right-aligned, extents equal or 1). Throws
/// std::invalid_argument naming `who` and both shapes when `from` does not broadcast to `to`.
std::vector<std::size_t> broadcast_offsets(const std::string& who, const Shape& from,
                                           const Shape& to);

/// y == (p > threshold), per element.
Values binary_accuracy(const std::string& who, float threshold, const Tensor& y_true,
                       const Tensor& y_pred);
/// argmax(y_true) == argmax(y_pred) over the last axis.
Values categorical_accuracy(const std::string& who, const Tensor& y_true, const Tensor& y_pred);
/// label == argmax(y_pred); labels of shape y_pred.shape[:-1] (or with a trailing 1).
Values sparse_categorical_accuracy(const std::string& who, const Tensor& labels,
                                   const Tensor& y_pred);
/// Whether the true class (argmax of y_true, or the label when `sparse`) is among the k largest.
Values top_k_accuracy(const std::string& who, int k, bool sparse, const Tensor& y_true,
                      const Tensor& y_pred);
/// Per-sample mean over the last axis (rank >= 2) of (t - p)^2, or of |t - p| when !squared.
Values error(const std::string& who, bool squared, const Tensor& y_true, const Tensor& y_pred);

}  // namespace xtape::metrics::detail
