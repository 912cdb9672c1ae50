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

/// out = a[c] * g + ((x - mean[c]) * b[c] + c[c]) for every element of channel c (fused
/// multiply-adds): a batch normalization's input gradient in one pass, x centred first so a
/// large mean costs no digits. out may alias g or x.
void channel_norm_dx(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                     const float* x, const float* mean, const float* a, const float* b,
                     const float* c, float* out);

/// sum_g[c] = sum of g and sum_gx[c] = sum of g * (x - centre[c]) over channel c's elements (no
/// centre: 0), in one pass over both (double accumulation in fixed blocks: the same bits for any
/// thread count). The gradients of a scale and a shift in one read; a batch normalization
/// passes its mean as the centre, so a large mean costs no digits.
void channel_grad_sums(std::size_t outer, std::size_t channels, std::size_t inner, const float* g,
                       const float* x, float* sum_g, float* sum_gx, const float* centre = nullptr);

}  // namespace xtape::kernels

namespace xtape::kernels {

/// Layer normalization of `rows` rows of `features` contiguous values. Per row, in two passes
/// over it (the second from cache): the mean, then var = the mean of (x - mean)^2 and
/// rstd = 1 / sqrt(var + epsilon), each sum in float lanes over chunks of 512 values whose
/// totals add in double; then y = (x - mean) * (rstd * gamma[f]) + beta[f]. gamma and beta may be
/// null (1 and 0). mean and rstd receive one value per row. NaN in a row makes the row's
/// statistics and outputs NaN. Each row is computed alone: the same bits for any thread count.
void layer_norm_forward(std::size_t rows, std::size_t features, const float* x, const float* gamma,
                        const float* beta, float epsilon, float* y, float* mean, float* rstd);

/// Gradients of layer_norm_forward given g = dL/dy and the saved mean and rstd: dx (null: not
/// wanted) = rstd * (d - mean(d) - xhat * mean(d * xhat)) per row, d = g * gamma, xhat =
/// (x - mean) * rstd; dgamma[f] = sum over rows of g * xhat and dbeta[f] = sum of g (either null:
/// not wanted), summed in double in fixed blocks of rows added in block order.
void layer_norm_backward(std::size_t rows, std::size_t features, const float* g, const float* x,
                         const float* mean, const float* rstd, const float* gamma, float* dx,
                         float* dgamma, float* dbeta);

/// Group normalization of x viewed as (n, spatial, channels), channels last, the channels in
/// `groups` consecutive groups of channels / groups: per (sample, group) mean and rstd =
/// 1 / sqrt(var + epsilon) over spatial * channels / groups values (sums in double in fixed
/// blocks of rows), then y = (x - mean) * (rstd * gamma[c]) + beta[c] (gamma, beta may be null).
/// mean and rstd receive n * groups values (sample-major).
void group_norm_forward(std::size_t n, std::size_t spatial, std::size_t channels,
                        std::size_t groups, const float* x, const float* gamma, const float* beta,
                        float epsilon, float* y, float* mean, float* rstd);

/// Gradients of group_norm_forward given g = dL/dy (as layer_norm_backward, the mean over each
/// sample's group): dx (null: not wanted), dgamma and dbeta (per channel; null: not wanted).
/// One pass over g and x for the sums (double, fixed blocks), one more for dx.
void group_norm_backward(std::size_t n, std::size_t spatial, std::size_t channels,
                         std::size_t groups, const float* g, const float* x, const float* mean,
                         const float* rstd, const float* gamma, float* dx, float* dgamma,
                         float* dbeta);

}  // namespace xtape::kernels
