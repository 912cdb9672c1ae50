#pragma once
/// @file helpers.hpp
/// Internal helpers shared by the op implementations (not part of the public API).
#include <string>
#include <vector>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"

namespace xtape::detail {

/// Normalises `axes` (negative counts from the end) against rank `ndim`, sorted and unique;
/// empty means all axes. Throws std::invalid_argument naming `op` and `shape` when out of range.
std::vector<int> normalize_axes(std::vector<int> axes, const Shape& shape, const char* op);

/// Shape after reducing `axes` (normalised) with or without keepdims.
Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims);

/// Copies src (shape `shape`) into dst with its axes permuted: dst axis i is src axis perm[i].
void permute_copy(const float* src, const Shape& shape, const std::vector<int>& perm, float* dst);

/// For the permutation `perm` of a tensor of shape `shape`: the source offset of each element of
/// the permuted tensor, in the permuted tensor's row-major order.
std::vector<std::size_t> permuted_offsets(const Shape& shape, const std::vector<int>& perm);

/// Sums x over `axes` (normalised) into a new tensor with keepdims shape; plain values, no tape.
Tensor sum_values(const Tensor& x, const std::vector<int>& axes);

/// Broadcasts x to `shape` (x's shape must broadcast to it); plain values, no tape.
Tensor broadcast_values(const Tensor& x, const Shape& shape);

/// Same storage, new shape, no tape (element counts must match).
Tensor view_as(const Tensor& x, const Shape& shape);

/// Tensor::empty(shape) for a result of `op` whose shape comes from its arguments (and may be
/// far larger than its inputs): throws std::length_error naming `op` when the shape is too large.
inline Tensor new_result(const Shape& shape, const char* op) {
  checked_size(shape, op);
  return Tensor::empty(shape);
}

/// "Op 'name': " prefix for error messages.
inline std::string op_error(const char* op, const std::string& what) {
  return std::string(op) + ": " + what;
}

}  // namespace xtape::detail
