#pragma once
/// @file ops_normalization.hpp
/// Primitives of the normalization layers (autodiff/ops/normalization.cpp): statistics in one
/// pass over the input, a per-channel scale and shift in one pass, and layer and group
/// normalization as one kernel each way. All are differentiable twice.
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
/// Batch normalization in training over every axis but `axis`: y = (x - mean) / sqrt(var +
/// epsilon) * gamma + beta with the batch's per-channel mean and population variance (one pass
/// for the statistics in double, one for y), gamma and beta of shape (channels) or undefined
/// (absent). The backward is one pass over g and x for the sums and one for dx (the recorded
/// composition while creating a graph). The batch statistics, without history, go to
/// batch_mean and batch_var (shape (channels)) when given. Throws std::invalid_argument naming
/// "batch_normalization" for an axis out of range, a negative epsilon or weights of the wrong
/// shape.
Tensor batch_normalization(const Tensor& x, int axis, const Tensor& gamma, const Tensor& beta,
                           float epsilon, Tensor* batch_mean = nullptr,
                           Tensor* batch_var = nullptr);

/// x * scale + shift. Throws std::invalid_argument naming "scale_shift" when scale and shift
/// differ in shape or do not broadcast to x.
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift);

/// Layer normalization over the trailing axes [begin_axis, rank) of x (negative counts from the
/// end): (x - mean) / sqrt(var + epsilon) * gamma + beta, the statistics per leading index.
/// gamma and beta have the shape of those trailing axes, or are undefined (absent: 1 and 0).
/// Forward and backward are one kernel each (two-pass statistics per row, one pass to
/// normalize; kernels/normalization.hpp); the backward is a composition of ops when creating a
/// graph (differentiable twice). Throws std::invalid_argument naming "layer_normalization" for
/// an axis out of range, weights of another shape or a negative epsilon.
Tensor layer_normalization(const Tensor& x, int begin_axis, const Tensor& gamma, const Tensor& beta,
                           float epsilon);

/// Group normalization of a channels-last x (n, ..., channels): the channels split into `groups`
/// consecutive groups, each sample's group normalized over its spatial positions and channels,
/// then times gamma plus beta (shape (channels), or undefined: absent). As layer_normalization,
/// one kernel each way and a composed backward when creating a graph. Throws
/// std::invalid_argument naming "group_normalization" for a rank below 2, groups not dividing
/// the channels, weights of another shape or a negative epsilon.
Tensor group_normalization(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                           float epsilon);

}  // namespace xtape
