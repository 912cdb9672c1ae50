// Depthwise convolution kernels (see depthwise.hpp). Channels are innermost in NHWC, so every
// inner loop runs over contiguous channels and vectorises; the outer loops are parallel over
// independent outputs (forward, input gradient) or kernel taps (kernel gradient).
#include "kernels/depthwise.hpp"

#include <algorithm>
#include <vector>

#include "kernels/parallel.hpp"

namespace xtape::kernels {

namespace {

// Rows of work below which a parallel region costs more than it saves.
constexpr std::int64_t parallel_rows = 8;

// Single-thread time of a pass: two flops per tap, output position and output channel.
double depthwise_ns(const Conv2DGeometry& g, std::int64_t mult) {
  return detail::flop_ns(2.0 * static_cast<double>(g.n * g.out_h * g.out_w) *
                         static_cast<double>(g.cin * mult) * static_cast<double>(g.kh * g.kw));
}

}  // namespace

void depthwise_conv2d_forward(const Conv2DGeometry& g, std::int64_t mult, const float* input,
                              const float* kernel, float* output) {
  const std::int64_t c = g.cin, co = g.cin * mult, rows = g.n * g.out_h;
  const int team = rows >= parallel_rows ? detail::parallel_team(depthwise_ns(g, mult), rows) : 1;
  detail::parallel_for_static(team, rows, [&](std::int64_t row) {
    const std::int64_t b = row / g.out_h, oh = row % g.out_h;
    float* out_row = output + row * g.out_w * co;
    std::fill(out_row, out_row + g.out_w * co, 0.f);
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const std::int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
      if (h < 0 || h >= g.h) continue;
      const float* in_row = input + ((b * g.h + h) * g.w) * c;
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
        float* o = out_row + ow * co;
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const std::int64_t w = ow * g.stride_w - g.pad_left + j * g.dil_w;
          if (w < 0 || w >= g.w) continue;
          const float* x = in_row + w * c;
          const float* k = kernel + (i * g.kw + j) * co;
          if (mult == 1) {
#pragma omp simd
            for (std::int64_t ch = 0; ch < c; ++ch) o[ch] += x[ch] * k[ch];
          } else {
            for (std::int64_t ch = 0; ch < c; ++ch)
              for (std::int64_t m = 0; m < mult; ++m) o[ch * mult + m] += x[ch] * k[ch * mult + m];
          }
        }
      }
    }
  });
}

void depthwise_conv2d_backward_input(const Conv2DGeometry& g, std::int64_t mult,
                                     const float* grad_output, const float* kernel,
                                     float* grad_input) {
  const std::int64_t c = g.cin, co = g.cin * mult, rows = g.n * g.h;
  const int team = rows >= parallel_rows ? detail::parallel_team(depthwise_ns(g, mult), rows) : 1;
  // Gather form: input row h receives from output rows oh with oh * stride - pad + i * dil = h.
  detail::parallel_for_static(team, rows, [&](std::int64_t row) {
    const std::int64_t b = row / g.h, h = row % g.h;
    float* gi_row = grad_input + row * g.w * c;
    std::fill(gi_row, gi_row + g.w * c, 0.f);
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const std::int64_t t = h + g.pad_top - i * g.dil_h;
      if (t < 0 || t % g.stride_h != 0 || t / g.stride_h >= g.out_h) continue;
      const float* go_row = grad_output + ((b * g.out_h + t / g.stride_h) * g.out_w) * co;
      for (std::int64_t w = 0; w < g.w; ++w) {
        float* gi = gi_row + w * c;
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const std::int64_t u = w + g.pad_left - j * g.dil_w;
          if (u < 0 || u % g.stride_w != 0 || u / g.stride_w >= g.out_w) continue;
          const float* go = go_row + (u / g.stride_w) * co;
          const float* k = kernel + (i * g.kw + j) * co;
          if (mult == 1) {
#pragma omp simd
            for (std::int64_t ch = 0; ch < c; ++ch) gi[ch] += go[ch] * k[ch];
          } else {
            for (std::int64_t ch = 0; ch < c; ++ch) {
              float s = 0.f;
              for (std::int64_t m = 0; m < mult; ++m) s += go[ch * mult + m] * k[ch * mult + m];
              gi[ch] += s;
            }
          }
        }
      }
    }
  });
}

void depthwise_conv2d_backward_kernel(const Conv2DGeometry& g, std::int64_t mult,
                                      const float* input, const float* grad_output,
                                      float* grad_kernel) {
  const std::int64_t c = g.cin, co = g.cin * mult, taps = g.kh * g.kw;
  // One tap per iteration: each owns its (cin, mult) slice and sums over every output position
  // in the same order whatever the thread count.
  const int team =
      g.n * g.out_h >= parallel_rows ? detail::parallel_team(depthwise_ns(g, mult), taps) : 1;
  detail::parallel_for_static(team, taps, [&](std::int64_t tap) {
    const std::int64_t i = tap / g.kw, j = tap % g.kw;
    float* gk = grad_kernel + tap * co;
    std::fill(gk, gk + co, 0.f);
    for (std::int64_t b = 0; b < g.n; ++b)
      for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        const std::int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
        if (h < 0 || h >= g.h) continue;
        const float* in_row = input + ((b * g.h + h) * g.w) * c;
        const float* go_row = grad_output + ((b * g.out_h + oh) * g.out_w) * co;
        for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
          const std::int64_t w = ow * g.stride_w - g.pad_left + j * g.dil_w;
          if (w < 0 || w >= g.w) continue;
          const float* x = in_row + w * c;
          const float* go = go_row + ow * co;
          if (mult == 1) {
#pragma omp simd
            for (std::int64_t ch = 0; ch < c; ++ch) gk[ch] += x[ch] * go[ch];
          } else {
            for (std::int64_t ch = 0; ch < c; ++ch)
              for (std::int64_t m = 0; m < mult; ++m)
                gk[ch * mult + m] += x[ch] * go[ch * mult + m];
          }
        }
      }
  });
}

}  // namespace xtape::kernels
