// 2-d convolution in NHWC via im2col + sgemm.
//
// The im2col matrix has one row per output pixel (flat index over n, out_h, out_w) and
// K = kh*kw*cin columns ordered (ky, kx, c), so the kernel (kh, kw, cin, cout) is already the
// (K, cout) right operand and the NHWC output is the (M, cout) product.
// Rows are processed in chunks whose size depends on the geometry only (never on the thread
// count), so each chunk's im2col buffer stays in L2 (~256 KiB) and every result is bitwise the
// same for any number of threads. Chunks (or groups of whole images, for the scatter of
// backward_input) run in parallel with single-threaded GEMMs.
// Special cases: 1x1 stride-1 unpadded kernels use the input as the im2col matrix; patches of
// at most 14 values (thin first layers, cin = 1) skip im2col and GEMM altogether and use
// register-blocked loops that read the patches in place.
#include "kernels/conv.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "kernels/compare.hpp"
#include "kernels/gemm.hpp"
#include "kernels/parallel.hpp"
#include "kernels/partials.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/row_cursors.hpp"
#include "kernels/winograd.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels {

namespace {

using batch = xsimd::batch<float>;
constexpr std::int64_t simd_width = static_cast<std::int64_t>(batch::size);

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

std::int64_t patch_size(const Conv2DGeometry& g) { return g.kh * g.kw * g.cin; }
std::int64_t total_rows(const Conv2DGeometry& g) { return g.n * g.out_h * g.out_w; }
// Single-thread time of the whole convolution as a direct one (Winograd does about half of
// those flops, so the same estimate halved serves it).
double conv_ns(const Conv2DGeometry& g) {
  return detail::flop_ns(2.0 * static_cast<double>(total_rows(g)) *
                         static_cast<double>(patch_size(g)) * static_cast<double>(g.cout));
}

// 1x1 kernel, unit stride, no padding: the input itself is the im2col matrix.
bool is_pointwise(const Conv2DGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
         g.pad_left == 0 && g.out_h == g.h && g.out_w == g.w;
}

// Rows per im2col chunk: about 64K floats (256 KiB, half an L2) but at least 128 rows so the
// GEMM is not dominated by packing; a multiple of 16. Patches of more than 32K values take
// fewer rows, so that a chunk's buffer never exceeds 4M floats (16 MiB) or one patch.
std::int64_t chunk_rows(const Conv2DGeometry& g) {
  const std::int64_t K = std::max<std::int64_t>(1, patch_size(g));
  const std::int64_t rows = std::clamp<std::int64_t>(65536 / K, 128, 8192) / 16 * 16;
  return std::max<std::int64_t>(1, std::min(rows, (std::int64_t{1} << 22) / K));
}

// GCC turns plain copy/zero loops back into memcpy/memset calls, which cost more than the
// copy for the short runs of thin layers: the im2col functions opt out of that, and the copy
// helpers are forced inline into them.
#if defined(__GNUC__) && !defined(__clang__)
#define XTAPE_NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#define XTAPE_FORCE_INLINE __attribute__((always_inline))
#else
#define XTAPE_NO_LIBCALL
#define XTAPE_FORCE_INLINE
#endif

// d[0, n) = s[0, n). Inline for short runs: a kernel row of kw * cin floats (3 for cin = 1,
// 96 for conv2), where a memcpy call costs about as much as the copy itself.
XTAPE_FORCE_INLINE inline void copy_floats(float* __restrict d, const float* __restrict s,
                                           std::int64_t n) {
  if (n > 64 * simd_width) {
    std::memcpy(d, s, sizeof(float) * static_cast<std::size_t>(n));
    return;
  }
  std::int64_t i = 0;
  for (; i + simd_width <= n; i += simd_width) batch::load_unaligned(s + i).store_unaligned(d + i);
  for (; i < n; ++i) d[i] = s[i];
}

XTAPE_FORCE_INLINE inline void zero_floats(float* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = 0.f;
}

// col[r - r0] = patch of output pixel r (flat over n, out_h, out_w), for r in [r0, r1).
XTAPE_NO_LIBCALL void im2col_rows(const Conv2DGeometry& g, const float* input, std::int64_t r0,
                                  std::int64_t r1, float* col) {
  const std::int64_t K = patch_size(g), cin = g.cin, run = g.kw * cin;
  const std::int64_t pix = g.out_h * g.out_w;
  std::int64_t b = r0 / pix, oy = (r0 % pix) / g.out_w, ox = r0 % g.out_w;
  for (std::int64_t r = r0; r < r1; ++r) {
    float* dst = col + (r - r0) * K;
    const float* img = input + b * g.h * g.w * cin;
    const std::int64_t x0 = ox * g.stride_w - g.pad_left;
    // A whole kernel row (kw taps) is one contiguous run of the input when dil_w == 1.
    const bool inside_x = g.dil_w == 1 && x0 >= 0 && x0 + g.kw <= g.w;
    for (std::int64_t ky = 0; ky < g.kh; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
      float* d = dst + ky * run;
      if (iy < 0 || iy >= g.h) {
        zero_floats(d, run);
        continue;
      }
      const float* row = img + iy * g.w * cin;
      if (inside_x) {
        copy_floats(d, row + x0 * cin, run);
        continue;
      }
      for (std::int64_t kx = 0; kx < g.kw; ++kx) {
        const std::int64_t ix = x0 + kx * g.dil_w;
        if (ix < 0 || ix >= g.w)
          zero_floats(d + kx * cin, cin);
        else
          copy_floats(d + kx * cin, row + ix * cin, cin);
      }
    }
    if (++ox == g.out_w) {
      ox = 0;
      if (++oy == g.out_h) oy = 0, ++b;
    }
  }
}

// dst[i] += src[i] for i < n (vectorised).
inline void add_to(float* dst, const float* src, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + simd_width <= n; i += simd_width)
    (batch::load_unaligned(dst + i) + batch::load_unaligned(src + i)).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] += src[i];
}

// grad_input += scatter of dcol rows [r0, r1) (the adjoint of im2col_rows). Contributions to one
// input element are added in increasing (row, ky, kx) order.
void col2im_rows_add(const Conv2DGeometry& g, const float* dcol, std::int64_t r0, std::int64_t r1,
                     float* grad_input) {
  const std::int64_t K = patch_size(g), cin = g.cin;
  const std::int64_t pix = g.out_h * g.out_w;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t b = r / pix, p = r % pix, oy = p / g.out_w, ox = p % g.out_w;
    const float* src = dcol + (r - r0) * K;
    float* img = grad_input + b * g.h * g.w * cin;
    const std::int64_t x0 = ox * g.stride_w - g.pad_left;
    for (std::int64_t ky = 0; ky < g.kh; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
      if (iy < 0 || iy >= g.h) continue;
      const float* s = src + ky * g.kw * cin;
      float* row = img + iy * g.w * cin;
      if (g.dil_w == 1 && x0 >= 0 && x0 + g.kw <= g.w) {
        add_to(row + x0 * cin, s, g.kw * cin);
        continue;
      }
      for (std::int64_t kx = 0; kx < g.kw; ++kx) {
        const std::int64_t ix = x0 + kx * g.dil_w;
        if (ix >= 0 && ix < g.w) add_to(row + ix * cin, s + kx * cin, cin);
      }
    }
  }
}

// Patches this small (thin first layers, cin = 1) skip the GEMM in backward_kernel: its packing
// would cost more than the few multiply-adds per element.
constexpr std::int64_t small_patch = 14;

// Whether the small-patch loops (PatchWalker) take geometry g: K <= small_patch, and a
// dilated window that spans at most 64K floats of the input (border pixels are gathered into a
// buffer laid out like the input; a wider one would be mostly unused memory).
bool small_patch_in_place(const Conv2DGeometry& g) {
  constexpr std::int64_t max_window = std::int64_t{1} << 16;
  const std::int64_t K = patch_size(g);
  if (K < 1 || K > small_patch) return false;
  const std::int64_t span_y = (g.kh - 1) * g.dil_h, span_x = (g.kw - 1) * g.dil_w;
  if (span_y > max_window || span_x > max_window || (span_y > 0 && g.w > max_window)) return false;
  return (span_y * g.w + span_x + 1) * g.cin <= max_window;
}

// Walks output pixels from a flat row index and yields, for each, a pointer `a` with
// a[offset[q]] = patch value q (q < K <= small_patch): the input itself for interior pixels, or
// one of `slots` windows laid out like the input for border pixels, holding the pixel's taps
// (zeros for those in the padding) at the offsets and nothing else (only offsets are read).
class PatchWalker {
 public:
  PatchWalker(const Conv2DGeometry& g, const float* input, std::int64_t r0, int slots)
      : g_(g), input_(input) {
    for (std::int64_t ky = 0, q = 0; ky < g.kh; ++ky)
      for (std::int64_t kx = 0; kx < g.kw; ++kx)
        for (std::int64_t c = 0; c < g.cin; ++c, ++q)
          offset[q] = (ky * g.dil_h * g.w + kx * g.dil_w) * g.cin + c;
    span_y_ = (g.kh - 1) * g.dil_h;
    span_x_ = (g.kw - 1) * g.dil_w;
    window_ = offset[patch_size(g) - 1] + 1;
    border_ = scratch(slot_conv_aux, static_cast<std::size_t>(slots * window_));
    seek(r0);
  }

  void seek(std::int64_t r) {
    const std::int64_t pix = g_.out_h * g_.out_w;
    b_ = r / pix, oy_ = (r % pix) / g_.out_w, ox_ = r % g_.out_w;
  }

  // Patch of the current pixel (border windows use slot `slot`), then advance one pixel.
  const float* next(int slot) {
    const std::int64_t iy = oy_ * g_.stride_h - g_.pad_top, ix = ox_ * g_.stride_w - g_.pad_left;
    const float* a;
    if (iy >= 0 && ix >= 0 && iy + span_y_ < g_.h && ix + span_x_ < g_.w) {
      a = input_ + ((b_ * g_.h + iy) * g_.w + ix) * g_.cin;
    } else {
      float* win = border_ + slot * window_;
      for (std::int64_t q = 0; q < patch_size(g_); ++q) win[offset[q]] = 0.f;
      for (std::int64_t ky = 0; ky < g_.kh; ++ky)
        for (std::int64_t kx = 0; kx < g_.kw; ++kx) {
          const std::int64_t y = iy + ky * g_.dil_h, x = ix + kx * g_.dil_w;
          if (y < 0 || y >= g_.h || x < 0 || x >= g_.w) continue;
          const std::int64_t at = (ky * g_.kw + kx) * g_.cin;
          for (std::int64_t c = 0; c < g_.cin; ++c)
            win[offset[at + c]] = input_[((b_ * g_.h + y) * g_.w + x) * g_.cin + c];
        }
      a = win;
    }
    if (++ox_ == g_.out_w) {
      ox_ = 0;
      if (++oy_ == g_.out_h) oy_ = 0, ++b_;
    }
    return a;
  }

  std::int64_t offset[small_patch] = {};

 private:
  const Conv2DGeometry& g_;
  const float* input_;
  std::int64_t span_y_, span_x_, window_, b_ = 0, oy_ = 0, ox_ = 0;
  float* border_;
};

// out (K, N) = patches^T (K, rows) x go (rows, N) over output rows [r0, r1), for
// K <= small_patch, without an im2col buffer: the K x 2 vector accumulators of one column
// block stay in registers; rows are summed in increasing order. KT > 0 fixes K at compile time.
template <int KT, class GradRows>
void small_patch_outer(const Conv2DGeometry& g, const float* input, std::int64_t r0,
                       std::int64_t r1, GradRows grad_rows, float* out) {
  constexpr int KMAX = KT > 0 ? KT : static_cast<int>(small_patch);
  const std::int64_t K = KT > 0 ? KT : patch_size(g), N = g.cout;
  PatchWalker walk(g, input, r0, 1);
  const std::int64_t* offset = walk.offset;
  std::int64_t c0 = 0;
  while (c0 + simd_width <= N) {
    const bool two = c0 + 2 * simd_width <= N;
    batch acc[KMAX][2];
#pragma GCC unroll 14
    for (int q = 0; q < KMAX; ++q) acc[q][0] = acc[q][1] = batch(0.f);
    walk.seek(r0);
    grad_rows.seek(r0);
    for (std::int64_t r = r0; r < r1; ++r, grad_rows.advance()) {
      const batch g0 = grad_rows.load(c0), g1 = two ? grad_rows.load(c0 + simd_width) : batch(0.f);
      const float* a = walk.next(0);
#pragma GCC unroll 14
      for (int q = 0; q < KMAX; ++q) {
        if (q < K) {
          const batch av(a[offset[q]]);
          acc[q][0] = detail::fma(av, g0, acc[q][0]);
          acc[q][1] = detail::fma(av, g1, acc[q][1]);
        }
      }
    }
    for (std::int64_t q = 0; q < K; ++q) {
      for (int v = 0; v < (two ? 2 : 1); ++v)
        acc[q][v].store_unaligned(out + q * N + c0 + v * simd_width);
    }
    c0 += two ? 2 * simd_width : simd_width;
  }
  if (c0 < N) {  // column tail
    float sums[small_patch];
    for (; c0 < N; ++c0) {
      std::fill(sums, sums + K, 0.f);
      walk.seek(r0);
      grad_rows.seek(r0);
      for (std::int64_t r = r0; r < r1; ++r, grad_rows.advance()) {
        const float* a = walk.next(0);
        const float gv = grad_rows.at(c0);
        for (std::int64_t q = 0; q < K; ++q) sums[q] = std::fma(a[offset[q]], gv, sums[q]);
      }
      for (std::int64_t q = 0; q < K; ++q) out[q * N + c0] = sums[q];
    }
  }
}

// output rows [r0, r1) for K <= small_patch without an im2col buffer: the kernel block
// (K x 2 vectors) stays in registers and each pixel's patch comes from a PatchWalker. Four
// pixels are computed together so that 8 independent accumulator chains hide the FMA latency.
// KT > 0 fixes K at compile time (clean register allocation for the common 3x3x1).
template <int KT>
void small_patch_forward(const Conv2DGeometry& g, const float* input, const float* kernel,
                         std::int64_t r0, std::int64_t r1, float* output, const ConvEpilogue& ep) {
  constexpr int KMAX = KT > 0 ? KT : static_cast<int>(small_patch), RB = 4;
  const std::int64_t K = KT > 0 ? KT : patch_size(g), N = g.cout;
  PatchWalker walk(g, input, r0, RB);
  const std::int64_t* offset = walk.offset;
  std::int64_t c0 = 0;
  while (c0 < N) {
    const std::int64_t width = std::min<std::int64_t>(N - c0, 2 * simd_width);
    const bool vec = width >= simd_width, two = width == 2 * simd_width;
    batch kv[KMAX][2];
#pragma GCC unroll 14
    for (int q = 0; q < KMAX; ++q) {
      const bool load = q < K && vec;
      kv[q][0] = load ? batch::load_unaligned(kernel + q * N + c0) : batch(0.f);
      kv[q][1] = load && two ? batch::load_unaligned(kernel + q * N + c0 + simd_width) : batch(0.f);
    }
    walk.seek(r0);
    for (std::int64_t r = r0; r < r1; r += RB) {
      const std::int64_t rows = std::min<std::int64_t>(RB, r1 - r);
      const float* a[RB];
      for (int i = 0; i < RB; ++i)
        a[i] = i < rows ? walk.next(i) : a[i - 1];  // short group: repeat, not stored
      float* o = output + r * N + c0;
      if (vec) {
        batch acc[RB][2];
#pragma GCC unroll 4
        for (int i = 0; i < RB; ++i) acc[i][0] = acc[i][1] = batch(0.f);
#pragma GCC unroll 14
        for (int q = 0; q < KMAX; ++q) {
          if (q < K) {
            const std::int64_t off = offset[q];
#pragma GCC unroll 4
            for (int i = 0; i < RB; ++i) {
              const batch av(a[i][off]);
              acc[i][0] = detail::fma(av, kv[q][0], acc[i][0]);
              acc[i][1] = detail::fma(av, kv[q][1], acc[i][1]);
            }
          }
        }
        if (ep.bias) {
          const batch b0 = batch::load_unaligned(ep.bias + c0);
          const batch b1 = two ? batch::load_unaligned(ep.bias + c0 + simd_width) : batch(0.f);
#pragma GCC unroll 4
          for (int i = 0; i < RB; ++i) acc[i][0] += b0, acc[i][1] += b1;
        }
        if (ep.scale) {
          const batch s0 = batch::load_unaligned(ep.scale + c0);
          const batch s1 = two ? batch::load_unaligned(ep.scale + c0 + simd_width) : batch(0.f);
          const batch t0 = batch::load_unaligned(ep.shift + c0);
          const batch t1 = two ? batch::load_unaligned(ep.shift + c0 + simd_width) : batch(0.f);
#pragma GCC unroll 4
          for (int i = 0; i < RB; ++i)
            acc[i][0] = detail::fma(acc[i][0], s0, t0), acc[i][1] = detail::fma(acc[i][1], s1, t1);
        }
        if (ep.relu) {
#pragma GCC unroll 4
          for (int i = 0; i < RB; ++i)
            acc[i][0] = detail::relu(acc[i][0]), acc[i][1] = detail::relu(acc[i][1]);
        }
        for (std::int64_t i = 0; i < rows; ++i) {
          acc[i][0].store_unaligned(o + i * N);
          if (two) acc[i][1].store_unaligned(o + i * N + simd_width);
        }
      } else {
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < width; ++j) {
            float sum = 0.f;
            for (std::int64_t q = 0; q < K; ++q)
              sum = std::fma(a[i][offset[q]], kernel[q * N + c0 + j], sum);
            if (ep.bias) sum += ep.bias[c0 + j];
            if (ep.scale) sum = detail::madd(sum, ep.scale[c0 + j], ep.shift[c0 + j]);
            if (ep.relu) sum = detail::relu(sum);
            o[i * N + j] = sum;
          }
      }
    }
    c0 += vec ? (two ? 2 : 1) * simd_width : width;
  }
}

// out[r, c] = act((out[r, c] + bias[c]) * scale[c] + shift[c]) for rows [0, rows) of width N
// (the epilogue of a GEMM chunk, applied while the chunk is still in cache).
void apply_epilogue(float* out, std::int64_t rows, std::int64_t N, const ConvEpilogue& ep) {
  if (!ep.any()) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    float* o = out + r * N;
    std::int64_t c = 0;
    for (; c + simd_width <= N; c += simd_width) {
      batch v = batch::load_unaligned(o + c);
      if (ep.bias) v += batch::load_unaligned(ep.bias + c);
      if (ep.scale)
        v = detail::fma(v, batch::load_unaligned(ep.scale + c),
                        batch::load_unaligned(ep.shift + c));
      if (ep.relu) v = detail::relu(v);
      v.store_unaligned(o + c);
    }
    for (; c < N; ++c) {
      float v = o[c];
      if (ep.bias) v += ep.bias[c];
      if (ep.scale) v = detail::madd(v, ep.scale[c], ep.shift[c]);
      if (ep.relu) v = detail::relu(v);
      o[c] = v;
    }
  }
}

// A 3x3 kernel on one input channel with unit stride and dilation and no padding (a first
// layer's 'valid' convolution, as MNIST's): every patch lies inside the image, three runs of
// three floats on consecutive input rows, so pixels are walked with plain pointers. Same
// operations, in the same order, as small_patch_forward<9>. Needs cout % W == 0.
bool is_3x3_c1_valid(const Conv2DGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.cin == 1 && g.stride_h == 1 && g.stride_w == 1 &&
         g.dil_h == 1 && g.dil_w == 1 && g.pad_top == 0 && g.pad_left == 0 && g.out_h + 2 <= g.h &&
         g.out_w + 2 <= g.w && g.cout % simd_width == 0;
}

void conv3x3_c1_forward(const Conv2DGeometry& g, const float* input, const float* kernel,
                        std::int64_t r0, std::int64_t r1, float* output, const ConvEpilogue& ep) {
  // One channel vector at a time: its 9 kernel vectors and RB pixel accumulators stay in
  // registers (RB independent FMA chains).
  constexpr int RB = 8;
  const std::int64_t N = g.cout, pix = g.out_h * g.out_w;
  const batch zero(0.f);
  for (std::int64_t c0 = 0; c0 < N; c0 += simd_width) {
    batch kv[9];
    for (int q = 0; q < 9; ++q) kv[q] = batch::load_unaligned(kernel + q * N + c0);
    const batch bias = ep.bias ? batch::load_unaligned(ep.bias + c0) : zero;
    const batch scale = ep.scale ? batch::load_unaligned(ep.scale + c0) : zero;
    const batch shift = ep.scale ? batch::load_unaligned(ep.shift + c0) : zero;
    auto store = [&](batch v, float* o) {
      if (ep.bias) v += bias;
      if (ep.scale) v = detail::fma(v, scale, shift);
      if (ep.relu) v = detail::relu(v);
      v.store_unaligned(o);
    };
    for (std::int64_t r = r0; r < r1;) {
      const std::int64_t b = r / pix, oy = (r % pix) / g.out_w, ox0 = r % g.out_w;
      const std::int64_t end = std::min(r1, r + (g.out_w - ox0));  // the rest of this output row
      const float* top = input + (b * g.h + oy) * g.w + ox0;
      const std::int64_t w = g.w;
      for (; r + RB <= end; r += RB, top += RB) {
        batch acc[RB];
#pragma GCC unroll 8
        for (int i = 0; i < RB; ++i) acc[i] = zero;
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx)
#pragma GCC unroll 8
            for (int i = 0; i < RB; ++i)
              acc[i] = detail::fma(batch(top[ky * w + kx + i]), kv[ky * 3 + kx], acc[i]);
        for (int i = 0; i < RB; ++i) store(acc[i], output + (r + i) * N + c0);
      }
      for (; r < end; ++r, ++top) {
        batch acc = zero;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx)
            acc = detail::fma(batch(top[ky * w + kx]), kv[ky * 3 + kx], acc);
        store(acc, output + r * N + c0);
      }
    }
  }
}

// out (9, N) = patches^T x go over output rows [r0, r1) for is_3x3_c1_valid geometries: the
// patch of pixel (b, oy, ox) is read straight from three input rows. Same operations, in the
// same order, as small_patch_outer<9> (rows summed in increasing order per element).
template <class GradRows>
void conv3x3_c1_outer(const Conv2DGeometry& g, const float* input, std::int64_t r0, std::int64_t r1,
                      GradRows grad_rows, float* out) {
  const std::int64_t N = g.cout, pix = g.out_h * g.out_w, w = g.w;
  const batch zero(0.f);
  for (std::int64_t c0 = 0; c0 < N;) {
    const bool two = c0 + 2 * simd_width <= N;
    batch acc[9][2];
    for (int q = 0; q < 9; ++q) acc[q][0] = acc[q][1] = zero;
    grad_rows.seek(r0);
    for (std::int64_t r = r0; r < r1;) {
      const std::int64_t b = r / pix, oy = (r % pix) / g.out_w, ox0 = r % g.out_w;
      const std::int64_t end = std::min(r1, r + (g.out_w - ox0));  // the rest of this output row
      const float* top = input + (b * g.h + oy) * w + ox0;
      for (; r < end; ++r, ++top, grad_rows.advance()) {
        const batch g0 = grad_rows.load(c0), g1 = two ? grad_rows.load(c0 + simd_width) : zero;
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx) {
            const batch av(top[ky * w + kx]);
            acc[ky * 3 + kx][0] = detail::fma(av, g0, acc[ky * 3 + kx][0]);
            if (two) acc[ky * 3 + kx][1] = detail::fma(av, g1, acc[ky * 3 + kx][1]);
          }
      }
    }
    for (int q = 0; q < 9; ++q) {
      acc[q][0].store_unaligned(out + q * N + c0);
      if (two) acc[q][1].store_unaligned(out + q * N + c0 + simd_width);
    }
    c0 += two ? 2 * simd_width : simd_width;
  }
}

// Pointers to the first input element of the patch of each output pixel in [r0, r1), in a
// per-thread table, or nullptr when a patch reaches outside the image (padding).
const float* const* patch_pointers(const Conv2DGeometry& g, const float* input, std::int64_t r0,
                                   std::int64_t r1) {
  thread_local std::vector<const float*> table;
  if (table.size() < static_cast<std::size_t>(r1 - r0))
    table.resize(static_cast<std::size_t>(r1 - r0));
  const std::int64_t pix = g.out_h * g.out_w, span_y = (g.kh - 1) * g.dil_h,
                     span_x = (g.kw - 1) * g.dil_w;
  std::int64_t b = r0 / pix, oy = (r0 % pix) / g.out_w, ox = r0 % g.out_w;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t iy = oy * g.stride_h - g.pad_top, ix = ox * g.stride_w - g.pad_left;
    if (iy < 0 || ix < 0 || iy + span_y >= g.h || ix + span_x >= g.w) return nullptr;
    table[static_cast<std::size_t>(r - r0)] = input + ((b * g.h + iy) * g.w + ix) * g.cin;
    if (++ox == g.out_w) {
      ox = 0;
      if (++oy == g.out_h) oy = 0, ++b;
    }
  }
  return table.data();
}

// A convolution with padding whose patches would be copied into an im2col buffer chunk by
// chunk reads them in place from one zero-padded copy of its input instead (a first layer's
// 3 channels: the copy holds the input once, im2col kh * kw times). The GEMM on patches read
// in place is bitwise the one on the copied patches, so the result does not change.
bool reads_padded_copy(const Conv2DGeometry& g) {
  if (is_pointwise(g) || is_3x3_c1_valid(g) || small_patch_in_place(g) || g.dil_w != 1 ||
      winograd::supported(g))
    return false;
  const bool padded = g.pad_top > 0 || g.pad_left > 0 ||
                      (g.out_h - 1) * g.stride_h + (g.kh - 1) * g.dil_h >= g.pad_top + g.h ||
                      (g.out_w - 1) * g.stride_w + (g.kw - 1) * g.dil_w >= g.pad_left + g.w;
  return padded && sgemm_gathered_rows_supported(std::min(chunk_rows(g), total_rows(g)), g.cout,
                                                 patch_size(g));
}

// The geometry of g on its zero-padded input: no padding, every read inside.
Conv2DGeometry padded_geometry(const Conv2DGeometry& g) {
  Conv2DGeometry p = g;
  p.h = std::max(g.pad_top + g.h, (g.out_h - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1);
  p.w = std::max(g.pad_left + g.w, (g.out_w - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1);
  p.pad_top = p.pad_left = 0;
  return p;
}

// Images [b0, b1) of input (geometry g) into `padded` (geometry p = padded_geometry(g)).
void pad_images(const Conv2DGeometry& g, const Conv2DGeometry& p, const float* input,
                std::int64_t b0, std::int64_t b1, float* padded) {
  const std::int64_t row = g.w * g.cin, prow = p.w * p.cin;
  for (std::int64_t b = b0; b < b1; ++b) {
    float* out = padded + (b - b0) * p.h * prow;
    std::fill(out, out + p.h * prow, 0.f);
    for (std::int64_t y = 0; y < g.h; ++y)
      std::copy(input + (b * g.h + y) * row, input + (b * g.h + y + 1) * row,
                out + (y + g.pad_top) * prow + g.pad_left * g.cin);
  }
}

// The whole input of g zero-padded to geometry p (padded_geometry(g)), in the calling
// thread's slot_conv_padded buffer.
const float* padded_input(const Conv2DGeometry& g, const Conv2DGeometry& p, const float* input) {
  const std::int64_t image = p.h * p.w * g.cin;
  float* padded = scratch(slot_conv_padded, static_cast<std::size_t>(g.n * image));
  const int team =
      detail::parallel_team(detail::byte_ns(8.0 * static_cast<double>(g.n * image)), g.n);
  detail::parallel_for_static(
      team, g.n, [&](std::int64_t b) { pad_images(g, p, input, b, b + 1, padded + b * image); });
  return padded;
}

// Output rows [r0, r1) (at most chunk_rows) of a non-pointwise convolution.
void forward_rows(const Conv2DGeometry& g, const float* input, const float* kernel, std::int64_t r0,
                  std::int64_t r1, float* output, const ConvEpilogue& ep) {
  const std::int64_t K = patch_size(g), N = g.cout;
  if (is_3x3_c1_valid(g)) {
    conv3x3_c1_forward(g, input, kernel, r0, r1, output, ep);
    return;
  }
  if (small_patch_in_place(g)) {
    if (K == 9)
      small_patch_forward<9>(g, input, kernel, r0, r1, output, ep);
    else
      small_patch_forward<0>(g, input, kernel, r0, r1, output, ep);
    return;
  }
  // Patches read in place when every one lies inside the image, when the GEMM runs on this
  // thread (inside a parallel loop, or too small for a team; else sgemm's own threading).
  if (g.dil_w == 1 && detail::gemm_team(r1 - r0, N, K) == 1 &&
      sgemm_gathered_rows_supported(r1 - r0, N, K))
    if (const float* const* rows = patch_pointers(g, input, r0, r1)) {
      sgemm_gathered_rows(r1 - r0, N, K, 1.f, rows, g.kw * g.cin, g.dil_h * g.w * g.cin, kernel, N,
                          0.f, output + r0 * N, N);
      apply_epilogue(output + r0 * N, r1 - r0, N, ep);
      return;
    }
  float* col = scratch(slot_conv_col, static_cast<std::size_t>((r1 - r0) * K));
  im2col_rows(g, input, r0, r1, col);
  sgemm(false, false, r1 - r0, N, K, 1.f, col, K, kernel, N, 0.f, output + r0 * N, N);
  apply_epilogue(output + r0 * N, r1 - r0, N, ep);
}

}  // namespace

void conv2d_forward(const Conv2DGeometry& g, const float* input, const float* kernel, float* output,
                    const ConvEpilogue& ep) {
  const std::int64_t M = total_rows(g), K = patch_size(g), N = g.cout;
  if (M == 0 || N == 0) return;
  if (is_pointwise(g)) {
    sgemm(false, false, M, N, K, 1.f, input, K, kernel, N, 0.f, output, N);
    if (ep.any()) {
      const std::int64_t blocks = ceil_div(M, 256);
      const int team = detail::parallel_team(detail::byte_ns(8.0 * M * N), blocks);
      detail::parallel_for_static(team, blocks, [&](std::int64_t b) {
        const std::int64_t r0 = b * 256;
        apply_epilogue(output + r0 * N, std::min<std::int64_t>(256, M - r0), N, ep);
      });
    }
    return;
  }
  if (winograd::supported(g)) {  // one image per task, as the fused conv + pool computes it
    const float* u = winograd::transform_kernel(g, kernel);
    detail::RegionErrors errors;
    const int team = detail::parallel_team(conv_ns(g) / 2, g.n);
    detail::parallel_for(team, g.n, [&](std::int64_t b) {
      errors.run([&] { winograd::forward_images(g, input, u, b, b + 1, output, ep); });
    });
    errors.rethrow();
    return;
  }
  const std::int64_t R = chunk_rows(g), chunks = ceil_div(M, R);
  const bool pad_copy = reads_padded_copy(g);
  const Conv2DGeometry gp = pad_copy ? padded_geometry(g) : g;
  const float* in = pad_copy ? padded_input(g, gp, input) : input;
  // One chunk: a single parallel GEMM. Several: chunks in parallel, each GEMM single-threaded.
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g), chunks);
  detail::parallel_for(team, chunks, [&](std::int64_t ch) {
    errors.run([&] {
      const std::int64_t r0 = ch * R;
      forward_rows(gp, in, kernel, r0, std::min(M, r0 + R), output, ep);
    });
  });
  errors.rethrow();
}

void conv2d_max_pool2d_forward(const Conv2DGeometry& g, const float* input, const float* kernel,
                               const ConvEpilogue& ep, const Pool2DGeometry& pool, float* output,
                               std::int32_t* argmax) {
  const std::int64_t conv_image = g.out_h * g.out_w * g.cout, in_image = g.h * g.w * g.cin;
  const std::int64_t pool_image = pool.out_h * pool.out_w * pool.c;
  Conv2DGeometry g1 = g;
  g1.n = 1;
  Pool2DGeometry p1 = pool;
  p1.n = 1;
  const std::int64_t rows = g.out_h * g.out_w, R = chunk_rows(g);
  const bool wino = winograd::supported(g);
  const float* u = wino ? winograd::transform_kernel(g, kernel) : nullptr;
  // One image per task, on the thread that runs it (no nested parallel regions).
  detail::RegionErrors errors;
  const int team = detail::parallel_team(wino ? conv_ns(g) / 2 : conv_ns(g), g.n);
  detail::parallel_for(team, g.n, [&](std::int64_t b) {
    errors.run([&] {
      float* conv_out = scratch(slot_conv_fused, static_cast<std::size_t>(conv_image));
      const float* in = input + b * in_image;
      if (wino)
        winograd::forward_images(g1, in, u, 0, 1, conv_out, ep);
      else if (is_pointwise(g))
        for (std::int64_t r0 = 0; r0 < rows; r0 += R) {
          const std::int64_t r1 = std::min(rows, r0 + R);
          sgemm(false, false, r1 - r0, g.cout, g.cin, 1.f, in + r0 * g.cin, g.cin, kernel, g.cout,
                0.f, conv_out + r0 * g.cout, g.cout);
          apply_epilogue(conv_out + r0 * g.cout, r1 - r0, g.cout, ep);
        }
      else if (reads_padded_copy(g1)) {
        const Conv2DGeometry gp = padded_geometry(g1);
        float* padded = scratch(slot_conv_padded, static_cast<std::size_t>(gp.h * gp.w * g.cin));
        pad_images(g1, gp, in, 0, 1, padded);
        for (std::int64_t r0 = 0; r0 < rows; r0 += R)
          forward_rows(gp, padded, kernel, r0, std::min(rows, r0 + R), conv_out, ep);
      } else
        for (std::int64_t r0 = 0; r0 < rows; r0 += R)
          forward_rows(g1, in, kernel, r0, std::min(rows, r0 + R), conv_out, ep);
      std::int32_t* am = argmax != nullptr ? argmax + b * pool_image : nullptr;
      max_pool2d_forward_rows(p1, conv_out, output + b * pool_image, am, 0, pool.out_h);
      if (am != nullptr) {  // indices into image 0 -> into image b of the full output
        const auto shift = static_cast<std::int32_t>(b * conv_image);
        for (std::int64_t i = 0; i < pool_image; ++i)
          if (am[i] >= 0) am[i] += shift;
      }
    });
  });
  errors.rethrow();
}

namespace {
// Whether the input gradient of g is a Winograd convolution of grad_output with the flipped
// kernel (its padding, 2 - pad, must not be negative).
bool winograd_input_grad(const Conv2DGeometry& g) {
  return g.pad_top <= 2 && g.pad_left <= 2 && winograd::supported(winograd::input_grad_geometry(g));
}
}  // namespace

void conv2d_backward_input(const Conv2DGeometry& g, const float* grad_output, const float* kernel,
                           float* grad_input) {
  const std::int64_t M = total_rows(g), K = patch_size(g), N = g.cout;
  const std::int64_t image = g.h * g.w * g.cin;
  if (g.n == 0 || image == 0) return;
  if (M == 0 || N == 0) {
    std::fill(grad_input, grad_input + g.n * image, 0.f);
    return;
  }
  // dcol = grad_output (M, cout) x kernel^T (cout, K); grad_input = col2im(dcol).
  if (is_pointwise(g)) {
    sgemm(false, true, M, K, N, 1.f, grad_output, N, kernel, N, 0.f, grad_input, K);
    return;
  }
  // A 3x3 unit-stride kernel: the input gradient is a Winograd convolution of grad_output with
  // the flipped kernel (no dcol matrix, no scatter), two images per task.
  const Conv2DGeometry gi = winograd::input_grad_geometry(g);
  if (winograd_input_grad(g)) {
    const float* u = winograd::transform_kernel_for_input_grad(g, kernel);
    const std::int64_t group = winograd::input_grad_group, tasks = ceil_div(g.n, group);
    detail::RegionErrors errors;
    const int team = detail::parallel_team(conv_ns(g) / 2, tasks);
    detail::parallel_for(team, tasks, [&](std::int64_t t) {
      errors.run([&] {
        winograd::forward_images(gi, grad_output, u, t * group, std::min(g.n, (t + 1) * group),
                                 grad_input, {});
      });
    });
    errors.rethrow();
    return;
  }
  // kernel^T (cout, K) once, so the GEMM packs B with plain row copies.
  float* kernel_t = scratch(slot_conv_aux, static_cast<std::size_t>(K * N));
  for (std::int64_t q = 0; q < K; ++q)
    for (std::int64_t co = 0; co < N; ++co) kernel_t[co * K + q] = kernel[q * N + co];
  const std::int64_t R = chunk_rows(g), pix = g.out_h * g.out_w;
  // Images are independent scatter targets: each task owns a fixed group of whole images and
  // walks their rows in order, R at a time (about 4 chunks per task, so few GEMMs end on a
  // partial row panel).
  const std::int64_t group = std::max<std::int64_t>(1, 4 * R / pix), tasks = ceil_div(g.n, group);
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g), tasks);
  detail::parallel_for(team, tasks, [&](std::int64_t t) {
    errors.run([&] {
      const std::int64_t b0 = t * group, b1 = std::min(g.n, b0 + group);
      std::fill(grad_input + b0 * image, grad_input + b1 * image, 0.f);
      float* dcol =
          scratch(slot_conv_col, static_cast<std::size_t>(std::min(R, (b1 - b0) * pix) * K));
      for (std::int64_t r0 = b0 * pix; r0 < b1 * pix; r0 += R) {
        const std::int64_t r1 = std::min(b1 * pix, r0 + R);
        sgemm(false, false, r1 - r0, K, N, 1.f, grad_output + r0 * N, N, kernel_t, K, 0.f, dcol, K);
        col2im_rows_add(g, dcol, r0, r1, grad_input);
      }
    });
  });
  errors.rethrow();
}

namespace {

// The kernel gradient of a thin convolution (patch of K <= thin_patch values, cout a multiple
// of the vector width) over output rows [r0, r1), patches read in place through `patches`
// (one pointer per row, every patch inside its image) at offsets `off` (K of them): the same
// sums as sgemm(true, false, K, N, r1 - r0, 1, col, K, grad_output, N, beta, out, N) on the
// im2col matrix, in the same k slices and order, so the same bits; without the im2col copy and
// the packing of both operands that dominate such a product.
constexpr std::int64_t thin_patch = 64;

template <int IR, int NV>
void thin_kernel_block(const float* const* patches, const std::int64_t* off, std::int64_t i0,
                       const float* grad_output, std::int64_t N, std::int64_t j0, std::int64_t s0,
                       std::int64_t s1, bool overwrite, float* out) {
  constexpr std::int64_t W = simd_width;
  batch acc[IR][NV];
  for (int i = 0; i < IR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = batch(0.f);
  for (std::int64_t p = s0; p < s1; ++p) {
    const float* gy = grad_output + p * N + j0;
    const float* patch = patches[p - s0];
    batch gv[NV];
    for (int v = 0; v < NV; ++v) gv[v] = batch::load_unaligned(gy + v * W);
    for (int i = 0; i < IR; ++i) {
      const batch a(patch[off[i0 + i]]);
      for (int v = 0; v < NV; ++v) acc[i][v] = detail::fma(a, gv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < IR; ++i) {
    float* o = out + (i0 + i) * N + j0;
    for (int v = 0; v < NV; ++v) {
      batch r = acc[i][v];
      if (!overwrite) r = detail::fma(batch(1.f), batch::load_unaligned(o + v * W), r);
      r.store_unaligned(o + v * W);
    }
  }
}

// Rows [i0, i0 + IR) of the kernel gradient, in column blocks of two vectors: IR * 2
// accumulators, two gradient vectors and a broadcast patch value fit the 16 AVX2 registers.
template <int IR>
void thin_kernel_rows(const float* const* patches, const std::int64_t* off, std::int64_t i0,
                      const float* grad_output, std::int64_t N, std::int64_t s0, std::int64_t s1,
                      bool overwrite, float* out) {
  const std::int64_t vectors = N / simd_width;
  std::int64_t v0 = 0;
  for (; v0 + 2 <= vectors; v0 += 2)
    thin_kernel_block<IR, 2>(patches, off, i0, grad_output, N, v0 * simd_width, s0, s1, overwrite,
                             out);
  if (v0 < vectors)
    thin_kernel_block<IR, 1>(patches, off, i0, grad_output, N, v0 * simd_width, s0, s1, overwrite,
                             out);
}

bool thin_backward_kernel_supported(const Conv2DGeometry& g) {
  return patch_size(g) <= thin_patch && g.cout % simd_width == 0 && g.cout > 0 && g.dil_w == 1;
}

// out (K x N) = beta * out + sum over rows [r0, r1) of patch(r)^T grad_output(r), patches from
// `input` whose geometry g has every patch inside (padded_geometry), rows in sgemm's k slices.
void thin_backward_kernel(const Conv2DGeometry& g, const float* input, const float* grad_output,
                          std::int64_t r0, std::int64_t r1, float beta, float* out) {
  const std::int64_t K = patch_size(g), N = g.cout;
  std::int64_t off[thin_patch];
  for (std::int64_t ky = 0, q = 0; ky < g.kh; ++ky)
    for (std::int64_t kx = 0; kx < g.kw; ++kx)
      for (std::int64_t c = 0; c < g.cin; ++c) off[q++] = (ky * g.dil_h * g.w + kx) * g.cin + c;
  const std::int64_t slice = sgemm_k_slice(r1 - r0);
  for (std::int64_t s0 = r0; s0 < r1; s0 += slice) {
    const std::int64_t s1 = std::min(r1, s0 + slice);
    const float* const* patches = patch_pointers(g, input, s0, s1);
    if (patches == nullptr)  // the callers pass a geometry with every patch inside
      throw std::logic_error("conv2d_backward_kernel: thin kernel on a patch outside the image");
    const bool overwrite = s0 == r0 && beta == 0.f;
    // Row blocks of 6, then one of the remaining 1-5 rows.
    using Rows = void (*)(const float* const*, const std::int64_t*, std::int64_t, const float*,
                          std::int64_t, std::int64_t, std::int64_t, bool, float*);
    static constexpr Rows rows_of[] = {nullptr,
                                       thin_kernel_rows<1>,
                                       thin_kernel_rows<2>,
                                       thin_kernel_rows<3>,
                                       thin_kernel_rows<4>,
                                       thin_kernel_rows<5>,
                                       thin_kernel_rows<6>};
    for (std::int64_t i0 = 0; i0 < K; i0 += 6)
      rows_of[std::min<std::int64_t>(6, K - i0)](patches, off, i0, grad_output, N, s0, s1,
                                                 overwrite, out);
  }
}

// conv2d_backward_kernel with the gradient rows from `make_rows(r)` in the small-patch path
// (the only one a pooled gradient takes) and from grad_output (dense) in the GEMM paths.
template <class MakeRows>
void backward_kernel_impl(const Conv2DGeometry& g, const float* input, const float* grad_output,
                          const MakeRows& make_rows, float* grad_kernel) {
  const std::int64_t M = total_rows(g), K = patch_size(g), N = g.cout;
  const std::int64_t kn = K * N;
  if (kn == 0) return;
  if (M == 0) {
    std::fill(grad_kernel, grad_kernel + kn, 0.f);
    return;
  }
  // grad_kernel = col^T (K, M) x grad_output (M, cout), reduced over fixed row ranges:
  // `parts` partial products (one per range, sub-chunks accumulated in order) are summed in
  // range order. Ranges: ~1K rows each, at most 32, and at most 4M floats (16 MiB) of partials.
  const detail::PartialRanges ranges = detail::partial_ranges(M, 1024, kn);
  const std::int64_t parts = ranges.count, range = ranges.size;
  const std::int64_t R = std::min(chunk_rows(g), range);
  const bool pointwise = is_pointwise(g);
  // A thin patch whose GEMM would run on copied patches: the thin kernel on the patches read
  // in place (from a zero-padded copy of the input when the convolution pads).
  const bool thin = !pointwise && !is_3x3_c1_valid(g) && !small_patch_in_place(g) &&
                    thin_backward_kernel_supported(g) &&
                    !sgemm_gathered_supported(K, N, std::min(R, M), g.kw * g.cin);
  const Conv2DGeometry gp = thin ? padded_geometry(g) : g;
  const bool pads = gp.h != g.h || gp.w != g.w || g.pad_top != 0 || g.pad_left != 0;
  const float* in = thin && pads ? padded_input(g, gp, input) : input;
  float* partial =
      parts == 1 ? grad_kernel : scratch(slot_conv_partial, static_cast<std::size_t>(parts * kn));
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g), parts);
  detail::parallel_for(team, parts, [&](std::int64_t part) {
    errors.run([&] {
      const std::int64_t p0 = part * range, p1 = std::min(M, p0 + range);
      float* out = partial + (parts == 1 ? 0 : part * kn);
      if (!pointwise &&
          (is_3x3_c1_valid(g) || small_patch_in_place(g))) {  // no im2col: patches read in place
        if (is_3x3_c1_valid(g))
          conv3x3_c1_outer(g, input, p0, p1, make_rows(), out);
        else if (K == 9)
          small_patch_outer<9>(g, input, p0, p1, make_rows(), out);
        else
          small_patch_outer<0>(g, input, p0, p1, make_rows(), out);
        return;
      }
      if (thin) {
        for (std::int64_t r0 = p0; r0 < p1; r0 += R)
          thin_backward_kernel(gp, in, grad_output + 0, r0, std::min(p1, r0 + R),
                               r0 == p0 ? 0.f : 1.f, out);
        return;
      }
      float* col = pointwise ? nullptr : scratch(slot_conv_col, static_cast<std::size_t>(R * K));
      for (std::int64_t r0 = p0; r0 < p1; r0 += R) {
        const std::int64_t r1 = std::min(p1, r0 + R);
        const float beta = r0 == p0 ? 0.f : 1.f;
        // Patches read in place when every one lies inside the image (no im2col copy).
        if (!pointwise && g.dil_w == 1 && sgemm_gathered_supported(K, N, r1 - r0, g.kw * g.cin)) {
          const float* const* columns = patch_pointers(g, input, r0, r1);
          if (columns) {
            sgemm_gathered_at(K, N, r1 - r0, 1.f, columns, g.kw * g.cin, g.dil_h * g.w * g.cin,
                              grad_output + r0 * N, N, beta, out, N);
            continue;
          }
        }
        const float* a = pointwise ? input + r0 * K : col;
        if (!pointwise) im2col_rows(g, input, r0, r1, col);
        sgemm(true, false, K, N, r1 - r0, 1.f, a, K, grad_output + r0 * N, N, beta, out, N);
      }
    });
  });
  errors.rethrow();
  if (parts > 1) detail::sum_partials(parts, kn, partial, grad_kernel);
}

}  // namespace

void conv2d_backward_kernel(const Conv2DGeometry& g, const float* input, const float* grad_output,
                            float* grad_kernel) {
  if (g.n > 0 && winograd::supported(g)) {
    winograd::backward_kernel(g, input, grad_output, grad_kernel);
    return;
  }
  backward_kernel_impl(
      g, input, grad_output, [&] { return DenseRows(grad_output, g.cout); }, grad_kernel);
}

void conv2d_backward(const Conv2DGeometry& g, const float* input, const float* grad_output,
                     const float* kernel, float* grad_input, float* grad_kernel) {
  if (g.n > 0 && winograd::supported(g) && winograd_input_grad(g)) {
    winograd::backward(g, input, grad_output, kernel, grad_input, grad_kernel);
    return;
  }
  conv2d_backward_input(g, grad_output, kernel, grad_input);
  conv2d_backward_kernel(g, input, grad_output, grad_kernel);
}

bool conv2d_backward_kernel_pooled_supported(const Conv2DGeometry& g, const Pool2DGeometry& pool) {
  return !is_pointwise(g) && (is_3x3_c1_valid(g) || small_patch_in_place(g)) &&
         pooled_grad_rows_supported(pool) && pool.n == g.n && pool.h == g.out_h &&
         pool.w == g.out_w && pool.c == g.cout;
}

void conv2d_backward_kernel_pooled(const Conv2DGeometry& g, const float* input,
                                   const Pool2DGeometry& pool, const float* grad_pooled,
                                   const std::int32_t* argmax, float* grad_kernel) {
  backward_kernel_impl(
      g, input, nullptr, [&] { return PooledGradRows(pool, grad_pooled, argmax); }, grad_kernel);
}

}  // namespace xtape::kernels
