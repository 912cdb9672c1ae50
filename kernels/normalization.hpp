#pragma once
/// @file normalization.hpp
/// Kernels of the normalization layers on raw contiguous float buffers viewed as
/// (outer, channels, inner): per-channel statistics over outer and inner, and a per-channel
/// scale and shift. Results do not depend on the thread count.
#include <cstddef>

namespace xtape::kernels {

/// mean[c] and population variance var[c] of x over its outer and inner axes, in one pass:
/// sums of x and x^2 accumulated in double (in fixed blocks added in order), then
/// var = E[x^2] - E[x]^2 clamped at 0. outer * inner must be positive. NaN in a channel gives
/// NaN for its mean and variance.
void channel_moments(std::size_t outer, std::size_t channels, std::size_t inner, const float* x,
                     float* mean, float* var);

/// out = x * scale[c] + shift[c] for every element of channel c; out may alias x.
void channel_scale_shift(std::size_t outer, std::size_t channels, std::size_t inner, const float* x,
                         const float* scale, const float* shift, float* out);

/// sum_g[c] = sum of g and sum_gx[c] = sum of g * x over channel c's elements, in one pass over
/// both (double accumulation in fixed blocks: the same bits for any thread count). The
/// gradients of a scale and a shift in one read.
void channel_grad_sums(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                       const float* x, float* sum_g, float* sum_gx);

}  // namespace xtape::kernels
