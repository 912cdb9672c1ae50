// 2-d max and average pooling on NHWC buffers: OpenMP over (image, output row), xsimd over
// channels. Windows are clipped to the input; clipped positions are neither counted nor a
// candidate for the max (TensorFlow SAME semantics). A window with no valid position yields 0
// (and argmax -1, which the backward pass skips).
#include "kernels/pool.hpp"

#include <omp.h>

#include <algorithm>
#include <xsimd/xsimd.hpp>

#include "kernels/column_sums.hpp"
#include "kernels/compare.hpp"
#include "kernels/parallel.hpp"
#include "kernels/row_cursors.hpp"

namespace xtape::kernels {

namespace {

using batch = xsimd::batch<float>;
constexpr std::int64_t simd_width = static_cast<std::int64_t>(batch::size);

// Single-thread time of a pass over the input and (twice, values and indices) the output.
double pool_ns(const Pool2DGeometry& g) {
  return detail::byte_ns(4.0 * static_cast<double>(g.n) *
                         static_cast<double>(g.h * g.w * g.c + 2 * g.out_h * g.out_w * g.c));
}

struct Window {
  std::int64_t y0, y1, x0, x1;  // valid input rows [y0, y1), columns [x0, x1)
  std::int64_t count() const {
    return std::max<std::int64_t>(0, y1 - y0) * std::max<std::int64_t>(0, x1 - x0);
  }
};

inline Window window(const Pool2DGeometry& g, std::int64_t oy, std::int64_t ox) {
  const std::int64_t ys = oy * g.stride_h - g.pad_top, xs = ox * g.stride_w - g.pad_left;
  return {std::max<std::int64_t>(ys, 0), std::min(ys + g.pool_h, g.h),
          std::max<std::int64_t>(xs, 0), std::min(xs + g.pool_w, g.w)};
}

// Max over one window for channels [c0, c0 + simd_width), tracking the row and column of the
// first maximum as floats (exact: far below 2^24) and turning them into flat int32 indices at
// the end, all in vector registers.
inline void max_window_simd(const Pool2DGeometry& g, const float* img, const Window& win,
                            std::int64_t c0, float* out, std::int32_t* argmax,
                            std::int64_t img_offset) {
  const std::int64_t c = g.c;
  batch best = batch::load_unaligned(img + (win.y0 * g.w + win.x0) * c + c0);
  batch best_y(static_cast<float>(win.y0)), best_x(static_cast<float>(win.x0));
  for (std::int64_t y = win.y0; y < win.y1; ++y) {
    const batch vy(static_cast<float>(y));
    for (std::int64_t x = win.x0; x < win.x1; ++x) {
      const batch v = batch::load_unaligned(img + (y * g.w + x) * c + c0);
      const auto gt = detail::replaces_max(v, best);  // the first maximum (or NaN) wins
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
                        ibatch(static_cast<std::int32_t>(img_offset + c0)) +
                        ibatch::load_aligned(lane);
    flat.store_unaligned(argmax + c0);
  }
}

}  // namespace

// The 2x2 / stride-2 unpadded pooling of channels in whole SIMD vectors (fast paths below;
// their tap offsets, up to (w + 1) * c, are exact in floats).
bool is_pool2x2(const Pool2DGeometry& g) {
  return g.pool_h == 2 && g.pool_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_top == 0 &&
         g.pad_left == 0 && g.c % simd_width == 0 && 2 * g.out_h <= g.h && 2 * g.out_w <= g.w &&
         (g.w + 1) * g.c <= (1 << 24);
}

// 2x2 windows with stride 2, no padding, channels a multiple of the SIMD width (the common
// case): the four taps are loaded directly and the argmax is picked among four precomputed
// offsets, with no loop bookkeeping. Same results as the general path (first maximum in
// row-major window order wins).
void max_pool2x2_rows(const Pool2DGeometry& g, const float* input, float* output,
                      std::int32_t* argmax, std::int64_t row0, std::int64_t row1) {
  using ibatch = xsimd::batch<std::int32_t>;
  const std::int64_t c = g.c, image = g.h * g.w * c, wc = g.w * c;
  alignas(64) std::int32_t lane[simd_width];
  for (std::int64_t i = 0; i < simd_width; ++i) lane[i] = static_cast<std::int32_t>(i);
  const ibatch vlane = ibatch::load_aligned(lane);
  const batch off01(static_cast<float>(c)), off10(static_cast<float>(wc)),
      off11(static_cast<float>(wc + c));
  for (std::int64_t row = row0; row < row1; ++row) {
    const std::int64_t b = row / g.out_h, oy = row % g.out_h;
    const float* top = input + b * image + 2 * oy * wc;
    float* out = output + row * g.out_w * c;
    std::int32_t* am = argmax != nullptr ? argmax + row * g.out_w * c : nullptr;
    for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
      const float* p = top + 2 * ox * c;
      const std::int64_t base = b * image + 2 * oy * wc + 2 * ox * c;
      for (std::int64_t c0 = 0; c0 < c; c0 += simd_width) {
        const batch v00 = batch::load_unaligned(p + c0), v01 = batch::load_unaligned(p + c + c0);
        const batch v10 = batch::load_unaligned(p + wc + c0),
                    v11 = batch::load_unaligned(p + wc + c + c0);
        batch best = v00;
        const auto g01 = detail::replaces_max(v01, best);
        best = xsimd::select(g01, v01, best);
        const auto g10 = detail::replaces_max(v10, best);
        best = xsimd::select(g10, v10, best);
        const auto g11 = detail::replaces_max(v11, best);
        best = xsimd::select(g11, v11, best);
        best.store_unaligned(out + ox * c + c0);
        if (am != nullptr) {
          batch off = xsimd::select(g01, off01, batch(0.f));
          off = xsimd::select(g10, off10, off);
          off = xsimd::select(g11, off11, off);
          const ibatch flat =
              xsimd::to_int(off) + ibatch(static_cast<std::int32_t>(base + c0)) + vlane;
          flat.store_unaligned(am + ox * c + c0);
        }
      }
    }
  }
}

void max_pool2d_forward_rows(const Pool2DGeometry& g, const float* input, float* output,
                             std::int32_t* argmax, std::int64_t row0, std::int64_t row1) {
  if (is_pool2x2(g)) {
    max_pool2x2_rows(g, input, output, argmax, row0, row1);
    return;
  }
  const std::int64_t c = g.c, image = g.h * g.w * c;
  // The vector path tracks coordinates in floats: exact below 2^24.
  const std::int64_t vec_end =
      g.h <= (1 << 24) && g.w <= (1 << 24) ? c / simd_width * simd_width : 0;
  for (std::int64_t row = row0; row < row1; ++row) {
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
      for (; c0 < vec_end; c0 += simd_width) max_window_simd(g, img, win, c0, out, am, b * image);
      for (; c0 < c; ++c0) {  // channel tail
        float best = img[(win.y0 * g.w + win.x0) * c + c0];
        std::int64_t best_at = (win.y0 * g.w + win.x0) * c + c0;
        for (std::int64_t y = win.y0; y < win.y1; ++y)
          for (std::int64_t x = win.x0; x < win.x1; ++x) {
            const std::int64_t at = (y * g.w + x) * c + c0;
            if (detail::replaces_max(img[at], best)) best = img[at], best_at = at;
          }
        out[c0] = best;
        if (am != nullptr) am[c0] = static_cast<std::int32_t>(b * image + best_at);
      }
    }
  }
}

void max_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output,
                        std::int32_t* argmax) {
  const std::int64_t rows = g.n * g.out_h;
  // Fixed blocks of output rows (the split does not change any result).
  const std::int64_t block = 8, blocks = (rows + block - 1) / block;
  const int team = detail::parallel_team(pool_ns(g), blocks);
  detail::parallel_for(team, blocks, [&](std::int64_t blk) {
    max_pool2d_forward_rows(g, input, output, argmax, blk * block,
                            std::min(rows, (blk + 1) * block));
  });
}

// Backward of the 2x2 / stride-2 fast path for image b: every input element is written once
// (its window's gradient where it was the argmax, 0 elsewhere, 0 in the uncovered last row or
// column of odd extents), with no zero fill and no scatter. Adding +0 reproduces the
// scatter-add's bits exactly (0 + -0 = +0).
void max_pool2x2_backward_image(const Pool2DGeometry& g, const float* grad_output,
                                const std::int32_t* argmax, float* grad_input, std::int64_t b) {
  using ibatch = xsimd::batch<std::int32_t>;
  const std::int64_t c = g.c, wc = g.w * c, image = g.h * g.w * c,
                     out_image = g.out_h * g.out_w * c;
  alignas(64) std::int32_t lane[simd_width];
  for (std::int64_t i = 0; i < simd_width; ++i) lane[i] = static_cast<std::int32_t>(i);
  const ibatch vlane = ibatch::load_aligned(lane), izero(0);
  const batch zero(0.f);
  float* gi = grad_input + b * image;
  const float* go = grad_output + b * out_image;
  const std::int32_t* am = argmax + b * out_image;
  auto pick = [&](const ibatch& at, const ibatch& flat, const batch& gv) {
    const ibatch bits = xsimd::select(at == flat, xsimd::bitwise_cast<ibatch>(gv), izero);
    return xsimd::bitwise_cast<batch>(bits) + zero;
  };
  for (std::int64_t oy = 0; oy < g.out_h; ++oy) {
    float* top = gi + 2 * oy * wc;
    for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
      const std::int64_t o = (oy * g.out_w + ox) * c;
      const std::int32_t base = static_cast<std::int32_t>(b * image + 2 * oy * wc + 2 * ox * c);
      float* p = top + 2 * ox * c;
      for (std::int64_t c0 = 0; c0 < c; c0 += simd_width) {
        const batch gv = batch::load_unaligned(go + o + c0);
        const ibatch at = ibatch::load_unaligned(am + o + c0);
        const ibatch f00 = ibatch(base + static_cast<std::int32_t>(c0)) + vlane;
        pick(at, f00, gv).store_unaligned(p + c0);
        pick(at, f00 + ibatch(static_cast<std::int32_t>(c)), gv).store_unaligned(p + c + c0);
        pick(at, f00 + ibatch(static_cast<std::int32_t>(wc)), gv).store_unaligned(p + wc + c0);
        pick(at, f00 + ibatch(static_cast<std::int32_t>(wc + c)), gv)
            .store_unaligned(p + wc + c + c0);
      }
    }
    if (2 * g.out_w < g.w) {  // uncovered columns of the two rows
      std::fill(top + 2 * g.out_w * c, top + wc, 0.f);
      std::fill(top + wc + 2 * g.out_w * c, top + 2 * wc, 0.f);
    }
  }
  std::fill(gi + 2 * g.out_h * wc, gi + image, 0.f);  // uncovered rows
}

void max_pool2d_backward(const Pool2DGeometry& g, const float* grad_output,
                         const std::int32_t* argmax, float* grad_input) {
  const std::int64_t image = g.h * g.w * g.c, out_image = g.out_h * g.out_w * g.c;
  const int team = detail::parallel_team(pool_ns(g), g.n);
  if (is_pool2x2(g)) {
    detail::parallel_for_static(team, g.n, [&](std::int64_t b) {
      max_pool2x2_backward_image(g, grad_output, argmax, grad_input, b);
    });
    return;
  }
  // Windows of one image only point into that image: images are independent scatter targets.
  detail::parallel_for_static(team, g.n, [&](std::int64_t b) {
    float* gi = grad_input + b * image;
    std::fill(gi, gi + image, 0.f);
    const float* go = grad_output + b * out_image;
    const std::int32_t* am = argmax + b * out_image;
    for (std::int64_t i = 0; i < out_image; ++i)
      if (am[i] >= 0) grad_input[am[i]] += go[i];
  });
}

bool pooled_grad_rows_supported(const Pool2DGeometry& g) { return is_pool2x2(g); }

void add_column_sums_pooled(const Pool2DGeometry& g, const float* grad_output,
                            const std::int32_t* argmax, float* column_sums) {
  detail::blocked_column_sums(static_cast<std::size_t>(g.n * g.h * g.w),
                              static_cast<std::size_t>(g.c), PooledGradRows(g, grad_output, argmax),
                              column_sums);
}

void max_pool2d_mask_positive(std::int64_t count, const float* grad_output,
                              const std::int32_t* argmax, const float* values, float* masked) {
  // Vector gathers, no branches (the sign of values[argmax] is a coin flip for a branch).
  using ibatch = xsimd::batch<std::int32_t>;
  const std::int64_t vec_end = count / simd_width * simd_width;
  const ibatch izero(0);
  const batch zero(0.f);
  const int team = detail::parallel_team(detail::byte_ns(16.0 * static_cast<double>(count)));
  detail::parallel_for_static(team, vec_end / simd_width, [&](std::int64_t vi) {
    const std::int64_t i = vi * simd_width;
    const ibatch at = ibatch::load_unaligned(argmax + i);
    const auto valid = at >= izero;
    const batch v = batch::gather(values, xsimd::select(valid, at, izero));
    const batch kept =
        xsimd::select(detail::relu_passes(v), batch::load_unaligned(grad_output + i), zero);
    const ibatch bits = xsimd::select(valid, xsimd::bitwise_cast<ibatch>(kept), izero);
    xsimd::bitwise_cast<batch>(bits).store_unaligned(masked + i);
  });
  for (std::int64_t i = vec_end; i < count; ++i) {
    const std::int32_t at = argmax[i];
    masked[i] = at >= 0 && detail::relu_passes(values[at]) ? grad_output[i] : 0.f;
  }
}

void max_pool2d_mask_positive_pooled(std::int64_t count, const float* grad_output,
                                     const float* pooled, float* masked) {
  const std::int64_t vec_end = count / simd_width * simd_width;
  const batch zero(0.f);
  const int team = detail::parallel_team(detail::byte_ns(12.0 * static_cast<double>(count)));
  detail::parallel_for_static(team, vec_end / simd_width, [&](std::int64_t vi) {
    const std::int64_t i = vi * simd_width;
    xsimd::select(detail::relu_passes(batch::load_unaligned(pooled + i)),
                  batch::load_unaligned(grad_output + i), zero)
        .store_unaligned(masked + i);
  });
  for (std::int64_t i = vec_end; i < count; ++i)
    masked[i] = detail::relu_passes(pooled[i]) ? grad_output[i] : 0.f;
}

void avg_pool2d_forward(const Pool2DGeometry& g, const float* input, float* output) {
  const std::int64_t c = g.c, rows = g.n * g.out_h;
  const std::int64_t image = g.h * g.w * c;
  const int team = detail::parallel_team(pool_ns(g), rows);
  detail::parallel_for_static(team, rows, [&](std::int64_t row) {
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
          for (std::int64_t x = win.x0; x < win.x1; ++x)
            s += batch::load_unaligned(img + (y * g.w + x) * c + c0);
        (s / batch(cnt)).store_unaligned(out + c0);
      }
      for (; c0 < c; ++c0) {
        float s = 0.f;
        for (std::int64_t y = win.y0; y < win.y1; ++y)
          for (std::int64_t x = win.x0; x < win.x1; ++x) s += img[(y * g.w + x) * c + c0];
        out[c0] = s / cnt;
      }
    }
  });
}

void avg_pool2d_backward(const Pool2DGeometry& g, const float* grad_output, float* grad_input) {
  const std::int64_t c = g.c, image = g.h * g.w * c, out_image = g.out_h * g.out_w * c;
  const int team = detail::parallel_team(pool_ns(g), g.n);
  detail::parallel_for_static(team, g.n, [&](std::int64_t b) {
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
              (batch::load_unaligned(dst + c0) + batch::load_unaligned(src + c0) / batch(cnt))
                  .store_unaligned(dst + c0);
            for (; c0 < c; ++c0) dst[c0] += src[c0] / cnt;
          }
        }
      }
    }
  });
}

}  // namespace xtape::kernels
