// 2-d max and average pooling on NHWC buffers: OpenMP over (image, output row), xsimd over
// channels. Windows are clipped to the input; clipped positions are neither counted nor a
// candidate for the max (TensorFlow SAME semantics). A window with no valid position yields 0
// (and argmax -1, which the backward pass skips).
#include "kernels/pool.hpp"

#include <omp.h>

#include <algorithm>
#include <xsimd/xsimd.hpp>

namespace xtape::kernels {

namespace {

using batch = xsimd::batch<float>;
constexpr std::int64_t simd_width = static_cast<std::int64_t>(batch::size);

// Rows below this many output elements are not worth a parallel region.
constexpr std::int64_t parallel_pool_work = 1 << 15;

struct Window {
  std::int64_t y0, y1, x0, x1;  // valid input rows [y0, y1), columns [x0, x1)
  std::int64_t count() const { return std::max<std::int64_t>(0, y1 - y0) * std::max<std::int64_t>(0, x1 - x0); }
};

inline Window window(const Pool2DGeometry& g, std::int64_t oy, std::int64_t ox) {
  const std::int64_t ys = oy * g.stride_h - g.pad_top, xs = ox * g.stride_w - g.pad_left;
  return {std::max<std::int64_t>(ys, 0), std::min(ys + g.pool_h, g.h), std::max<std::int64_t>(xs, 0),
          std::min(xs + g.pool_w, g.w)};
}

// Max over one window for channels [c0, c0 + simd_width), tracking the row and column of the
// first maximum as floats (exact: far below 2^24) and turning them into flat int32 indices at
// the end, all in vector registers.
inline void max_window_simd(const Pool2DGeometry& g, const float* img, const Window& win, std::int64_t c0,
                            float* out, std::int32_t* argmax, std::int64_t img_offset) {
  const std::int64_t c = g.c;
  batch best = batch::load_unaligned(img + (win.y0 * g.w + win.x0) * c + c0);
  batch best_y(static_cast<float>(win.y0)), best_x(static_cast<float>(win.x0));
  for (std::int64_t y = win.y0; y < win.y1; ++y) {
    const batch vy(static_cast<float>(y));
    for (std::int64_t x = win.x0; x < win.x1; ++x) {
      const batch v = batch::load_unaligned(img + (y * g.w + x) * c + c0);
      const auto gt = v > best;  // strict: the first maximum wins
      best = xsimd::select(gt, v, best);
      best_y = xsimd::select(gt, vy, best_y);
      best_x = xsimd::select(gt, batch(static_cast<float>(x)), best_x);
    }
  }
  best.store_unaligned(out + c0);
  if (argmax != nullptr) {
    using ibatch = xsimd::batch<std::int32_t>;
    static_assert(ibatch::size == batch::size, "float and int32 batches must have the same width");
    alignas(64) std::int32_t lane[ibatch::size];
    for (std::size_t i = 0; i < ibatch::size; ++i) lane[i] = static_cast<std::int32_t>(i);
    const ibatch flat = xsimd::to_int(best_y) * ibatch(static_cast<std::int32_t>(g.w * c)) +
                        xsimd::to_int(best_x) * ibatch(static_cast<std::int32_t>(c)) +
                        ibatch(static_cast<std::int32_t>(img_offset + c0)) + ibatch::load_aligned(lane);
    flat.store_unaligned(argmax + c0);
  }
}

}  // namespace

void max_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output, std::int32_t* argmax) {
  const std::int64_t c = g.c, rows = g.n * g.out_h;
  const std::int64_t image = g.h * g.w * c;
#pragma omp parallel for schedule(static) if (rows * g.out_w * c >= parallel_pool_work)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t b = row / g.out_h, oy = row % g.out_h;
    const float* img = input + b * image;
    for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
      const Window win = window(g, oy, ox);
      const std::int64_t o = (row * g.out_w + ox) * c;
      float* out = output + o;
      std::int32_t* am = argmax != nullptr ? argmax + o : nullptr;
      if (win.count() == 0) {
        std::fill(out, out + c, 0.f);
        if (am != nullptr) std::fill(am, am + c, -1);
        continue;
      }
      std::int64_t c0 = 0;
      for (; c0 + simd_width <= c; c0 += simd_width) max_window_simd(g, img, win, c0, out, am, b * image);
      for (; c0 < c; ++c0) {  // channel tail
        float best = img[(win.y0 * g.w + win.x0) * c + c0];
        std::int64_t best_at = (win.y0 * g.w + win.x0) * c + c0;
        for (std::int64_t y = win.y0; y < win.y1; ++y)
          for (std::int64_t x = win.x0; x < win.x1; ++x) {
            const std::int64_t at = (y * g.w + x) * c + c0;
            if (img[at] > best) best = img[at], best_at = at;
          }
        out[c0] = best;
        if (am != nullptr) am[c0] = static_cast<std::int32_t>(b * image + best_at);
      }
    }
  }
}

void max_pool2d_backward(const Pool2DGeometry& g, const float* grad_output, const std::int32_t* argmax,
                         float* grad_input) {
  const std::int64_t image = g.h * g.w * g.c, out_image = g.out_h * g.out_w * g.c;
  // Windows of one image only point into that image: images are independent scatter targets.
#pragma omp parallel for schedule(static) if (g.n > 1 && g.n * out_image >= parallel_pool_work)
  for (std::int64_t b = 0; b < g.n; ++b) {
    float* gi = grad_input + b * image;
    std::fill(gi, gi + image, 0.f);
    const float* go = grad_output + b * out_image;
    const std::int32_t* am = argmax + b * out_image;
    for (std::int64_t i = 0; i < out_image; ++i)
      if (am[i] >= 0) grad_input[am[i]] += go[i];
  }
}

void avg_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output) {
  const std::int64_t c = g.c, rows = g.n * g.out_h;
  const std::int64_t image = g.h * g.w * c;
#pragma omp parallel for schedule(static) if (rows * g.out_w * c >= parallel_pool_work)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t b = row / g.out_h, oy = row % g.out_h;
    const float* img = input + b * image;
    for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
      const Window win = window(g, oy, ox);
      float* out = output + (row * g.out_w + ox) * c;
      const std::int64_t count = win.count();
      if (count == 0) {
        std::fill(out, out + c, 0.f);
        continue;
      }
      const float cnt = static_cast<float>(count);
      std::int64_t c0 = 0;
      for (; c0 + simd_width <= c; c0 += simd_width) {
        batch s(0.f);
        for (std::int64_t y = win.y0; y < win.y1; ++y)
          for (std::int64_t x = win.x0; x < win.x1; ++x) s += batch::load_unaligned(img + (y * g.w + x) * c + c0);
        (s / batch(cnt)).store_unaligned(out + c0);
      }
      for (; c0 < c; ++c0) {
        float s = 0.f;
        for (std::int64_t y = win.y0; y < win.y1; ++y)
          for (std::int64_t x = win.x0; x < win.x1; ++x) s += img[(y * g.w + x) * c + c0];
        out[c0] = s / cnt;
      }
    }
  }
}

void avg_pool2d_backward(const Pool2DGeometry& g, const float* grad_output, float* grad_input) {
  const std::int64_t c = g.c, image = g.h * g.w * c, out_image = g.out_h * g.out_w * c;
#pragma omp parallel for schedule(static) if (g.n > 1 && g.n * out_image >= parallel_pool_work)
  for (std::int64_t b = 0; b < g.n; ++b) {
    float* gi = grad_input + b * image;
    std::fill(gi, gi + image, 0.f);
    const float* go = grad_output + b * out_image;
    for (std::int64_t oy = 0; oy < g.out_h; ++oy) {
      for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
        const Window win = window(g, oy, ox);
        const std::int64_t count = win.count();
        if (count == 0) continue;
        const float* src = go + (oy * g.out_w + ox) * c;
        const float cnt = static_cast<float>(count);
        for (std::int64_t y = win.y0; y < win.y1; ++y) {
          for (std::int64_t x = win.x0; x < win.x1; ++x) {
            float* dst = gi + (y * g.w + x) * c;
            std::int64_t c0 = 0;
            for (; c0 + simd_width <= c; c0 += simd_width)
              (batch::load_unaligned(dst + c0) + batch::load_unaligned(src + c0) / batch(cnt)).store_unaligned(dst + c0);
            for (; c0 < c; ++c0) dst[c0] += src[c0] / cnt;
          }
        }
      }
    }
  }
}

}  // namespace xtape::kernels
