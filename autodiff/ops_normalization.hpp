#pragma once
/// @file ops_normalization.hpp
/// Primitives of the normalization layers (autodiff/ops/normalization.cpp): statistics in one
/// pass over the input and a per-channel scale and shift in one pass. Both are differentiable;
/// their backward rules are compositions of ops.
#include <utility>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape {

/// (mean, population variance) of x over `axes` (negative counts from the end; empty: every
/// axis), with the values and gradients of moments(). When the axes kept form one contiguous
/// block (batch normalization: every axis but the channels; layer normalization: trailing
/// axes), both come from one pass over x accumulating sums of x and x^2 in double; otherwise
/// (and for zero-size inputs) this is moments(). Throws std::invalid_argument naming
/// "fused_moments" for an axis out of range.
std::pair<Tensor, Tensor> fused_moments(const Tensor& x, std::vector<int> axes,
                                        bool keepdims = false);

/// x * scale + shift in one pass over x, for scale and shift of one shape broadcasting to x's
/// whose extents other than 1 form one contiguous block of axes equal to x's (a per-channel
/// vector (c), (1, c, 1, 1), a per-row (n, 1)); any other pair of shapes is computed as
/// x * scale + shift. Throws std::invalid_argument naming "scale_shift" when scale and shift
/// differ in shape or do not broadcast to x.
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift);

}  // namespace xtape
