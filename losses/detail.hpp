#pragma once
/// @file detail.hpp
/// Internals shared by the loss and metric sources (not installed): Keras's rank squeeze/expand
/// and small shape helpers.
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::losses::detail {

/// Keras's epsilon (backend.epsilon()).
constexpr float epsilon = 1e-7f;

/// Keras's squeeze_or_expand_to_same_rank on shapes: when the ranks differ by one and the
/// larger-rank shape ends in 1, that 1 is dropped, or (expand_rank_1, the other is rank 1) a 1
/// is appended to the other. Returns true when `a` or `b` changed.
bool squeeze_or_expand(Shape& a, Shape& b, bool expand_rank_1 = true);

/// The same on tensors, by reshape (differentiable).
void squeeze_or_expand(Tensor& a, Tensor& b, bool expand_rank_1 = true);

/// Axis `axis` (negative counts from the end) of a rank-`rank` tensor in [0, rank); throws
/// std::invalid_argument naming `who` and `shape` when out of range.
int normalize_axis(int axis, const Shape& shape, const std::string& who);

/// x reshaped to `shape` (differentiable).
Tensor reshaped(const Tensor& x, const Shape& shape);

/// mean(x, {-1}) for rank >= 2; x itself for rank 0 or 1 (one value per sample already).
Tensor mean_last(const Tensor& x);

}  // namespace xtape::losses::detail
