// Depthwise convolution kernels (see depthwise.hpp). Channels are innermost in NHWC, so each
// output element's sum over the kernel taps is vectorised over channels: a register of W
// channels per accumulator, with several output positions (or channel blocks) per tile for
// independent FMA chains. A depth multiplier m > 1 first spreads the input over the cin * m
// output channels (channel c copied to c * m .. c * m + m - 1), after which every pass is the
// m == 1 one on cin * m channels; the input gradient then adds the m copies' gradients.
//
// Summation orders, fixed by the geometry alone:
//   forward and input gradient: over the live taps in (kh, kw) order, from 0;
//   kernel gradient: over the output rows of each of a fixed set of row ranges
//   (detail::partial_ranges), positions in increasing order, the ranges' partials then added in
//   range order. No result depends on the thread count.
#include "kernels/depthwise.hpp"

#include <algorithm>
#include <tuple>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "kernels/compare.hpp"
#include "kernels/parallel.hpp"
#include "kernels/partials.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels {

namespace {

using batch = xsimd::batch<float>;
constexpr std::int64_t W = static_cast<std::int64_t>(batch::size);

// Rows of work below which a parallel region costs more than it saves.
constexpr std::int64_t parallel_rows = 8;

// Single-thread time of a pass on C channels: two flops per tap, output position and channel.
double pass_ns(const Conv2DGeometry& g, std::int64_t C) {
  return detail::flop_ns(2.0 * static_cast<double>(g.n * g.out_h * g.out_w) *
                         static_cast<double>(C) * static_cast<double>(g.kh * g.kw));
}

// The taps of one tile: tap t reads src[t][r * src_step + c] against ker[t][c] for position r.
class Taps {
 public:
  /// Room for `capacity` taps: on the stack up to 64, else on the heap.
  explicit Taps(std::int64_t capacity) {
    if (capacity > 64) {
      heap_.resize(2 * static_cast<std::size_t>(capacity));
      src = heap_.data(), ker = src + capacity;
    }
  }
  Taps(const Taps&) = delete;  // src and ker may point into the object
  Taps& operator=(const Taps&) = delete;
  void clear() { n_ = 0; }
  void add(const float* s, const float* k) { src[n_] = s, ker[n_] = k, ++n_; }
  std::int64_t size() const { return n_; }
  const float** src = local_;
  const float** ker = local_ + 64;

 private:
  const float* local_[128];
  std::vector<const float*> heap_;
  std::int64_t n_ = 0;
};

// out[r * out_step + c] = sum over taps t (in order, from 0) of src[t][off + r * src_step + c] *
// ker[t][c], for r < RB and the channel blocks c in [c0, c0 + CB * W) from *c0 while whole
// blocks fit in C (advances *c0).
template <int RB, int CB>
inline void tile_blocks(std::int64_t nt, const float* const* src, const float* const* ker,
                        std::int64_t off, std::int64_t src_step, std::int64_t& c0, std::int64_t C,
                        float* out, std::int64_t out_step) {
  for (; c0 + CB * W <= C; c0 += CB * W) {
    batch acc[RB][CB];
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < CB; ++v) acc[r][v] = batch(0.f);
    for (std::int64_t t = 0; t < nt; ++t) {
      const float* s = src[t] + off + c0;
      const float* k = ker[t] + c0;
      batch kv[CB];
#pragma GCC unroll 4
      for (int v = 0; v < CB; ++v) kv[v] = batch::load_unaligned(k + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < CB; ++v)
          acc[r][v] =
              detail::fma(batch::load_unaligned(s + r * src_step + v * W), kv[v], acc[r][v]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < CB; ++v) acc[r][v].store_unaligned(out + r * out_step + c0 + v * W);
  }
}

// tile_blocks over all C channels (a scalar loop for the last C % W, in the same order).
template <int RB>
void tile(const Taps& taps, std::int64_t off, std::int64_t src_step, float* out,
          std::int64_t out_step, std::int64_t C) {
  constexpr int CB = RB >= 8 ? 1 : RB >= 4 ? 2 : 4;
  const std::int64_t nt = taps.size();
  const float* const* src = taps.src;
  const float* const* ker = taps.ker;
  std::int64_t c0 = 0;
  tile_blocks<RB, CB>(nt, src, ker, off, src_step, c0, C, out, out_step);
  if constexpr (CB > 1) tile_blocks<RB, 1>(nt, src, ker, off, src_step, c0, C, out, out_step);
  for (; c0 < C; ++c0)
    for (int r = 0; r < RB; ++r) {
      float s = 0.f;
      for (std::int64_t t = 0; t < nt; ++t)
        s = detail::madd(src[t][off + r * src_step + c0], ker[t][c0], s);
      out[r * out_step + c0] = s;
    }
}

// The tiles of 8 positions of a run with unit stride and dilation along the row whose taps come
// in whole kernel rows of KW (as the run's tap list holds them): position r reads tap j of kernel
// row t at taps.src[t * KW] + (r + j) * C, or with REV (an input gradient, whose taps walk the
// row backwards) at taps.src[t * KW + KW - 1] + (r + KW - 1 - j) * C. Each input vector is loaded
// once for the KW taps that read it. The sums run over the taps in the same order as tile's.
// Needs C % W == 0; returns the positions done (a multiple of 8).
template <int KW, bool REV>
std::int64_t reuse_tiles(const Taps& taps, std::int64_t count, float* out, std::int64_t C) {
  constexpr int RB = 8, P = RB + KW - 1;
  const std::int64_t krows = taps.size() / KW;
  std::int64_t r0 = 0;
  for (; r0 + RB <= count; r0 += RB)
    for (std::int64_t c0 = 0; c0 < C; c0 += W) {
      batch acc[RB];
#pragma GCC unroll 8
      for (int r = 0; r < RB; ++r) acc[r] = batch(0.f);
      for (std::int64_t t = 0; t < krows; ++t) {
        const float* base =
            taps.src[static_cast<std::size_t>(t * KW + (REV ? KW - 1 : 0))] + r0 * C + c0;
        const float* kr = taps.ker[static_cast<std::size_t>(t * KW)] + c0;
        batch kv[KW];
#pragma GCC unroll 8
        for (int j = 0; j < KW; ++j) kv[j] = batch::load_unaligned(kr + j * C);
          // Forward: acc[r] meets tap j at p = r + j, p rising: taps in rising order. REV: at
          // p = r + KW - 1 - j, p falling: again in rising order.
#pragma GCC unroll 16
        for (int q = 0; q < P; ++q) {
          const int p = REV ? P - 1 - q : q;
          const batch xv = batch::load_unaligned(base + p * C);
#pragma GCC unroll 8
          for (int j = 0; j < KW; ++j) {
            const int r = REV ? p - (KW - 1 - j) : p - j;
            if (r >= 0 && r < RB) acc[r] = detail::fma(xv, kv[j], acc[r]);
          }
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < RB; ++r) acc[r].store_unaligned(out + (r0 + r) * C + c0);
    }
  return r0;
}

// Positions [0, count) of a run that shares its taps (position r reads src + r * src_step and
// writes out + r * out_step): tiles of 8, then 4, then single positions. `reuse_kw` (3 or 5,
// else 0) and `rev`: the run qualifies for reuse_tiles (unit steps, whole kernel rows).
void run_tiles(const Taps& taps, std::int64_t count, std::int64_t src_step, float* out,
               std::int64_t out_step, std::int64_t C, std::int64_t reuse_kw = 0, bool rev = false) {
  std::int64_t r = 0;
  if (C % W == 0 && src_step == C && out_step == C) {
    if (reuse_kw == 3)
      r = rev ? reuse_tiles<3, true>(taps, count, out, C)
              : reuse_tiles<3, false>(taps, count, out, C);
    if (reuse_kw == 5)
      r = rev ? reuse_tiles<5, true>(taps, count, out, C)
              : reuse_tiles<5, false>(taps, count, out, C);
  }
  for (; r + 8 <= count; r += 8)
    tile<8>(taps, r * src_step, src_step, out + r * out_step, out_step, C);
  for (; r + 4 <= count; r += 4)
    tile<4>(taps, r * src_step, src_step, out + r * out_step, out_step, C);
  for (; r < count; ++r) tile<1>(taps, r * src_step, src_step, out + r * out_step, out_step, C);
}

// [lo, hi) of the positions o in [0, out) for which o * stride + off lies in [0, in) for every
// offset off in [first, last] (an empty range has lo == hi).
std::pair<std::int64_t, std::int64_t> inside(std::int64_t in, std::int64_t out, std::int64_t stride,
                                             std::int64_t first, std::int64_t last) {
  const std::int64_t lo = first >= 0 ? 0 : (-first + stride - 1) / stride;
  const std::int64_t top = in - 1 - last;  // o * stride <= top
  const std::int64_t hi = top < 0 ? 0 : top / stride + 1;
  const std::int64_t l = std::min(lo, out), h = std::clamp(hi, l, out);
  return {l, h};
}

// The m == 1 forward on C channels.
void forward_c(const Conv2DGeometry& g, std::int64_t C, const float* input, const float* kernel,
               float* output, const float* bias) {
  const std::int64_t rows = g.n * g.out_h;
  const std::int64_t reuse_kw = g.stride_w == 1 && g.dil_w == 1 ? g.kw : 0;
  // (no structured binding: clang 14 refuses to capture one in a lambda)
  const std::pair<std::int64_t, std::int64_t> span =
      inside(g.w, g.out_w, g.stride_w, -g.pad_left, (g.kw - 1) * g.dil_w - g.pad_left);
  const std::int64_t lo = span.first, hi = span.second;
  const int team = rows >= parallel_rows ? detail::parallel_team(pass_ns(g, C), rows) : 1;
  detail::RegionErrors errors;
  detail::parallel_for_static(team, rows, [&](std::int64_t row) {
    errors.run([&] {
      Taps taps(g.kh * g.kw);
      const std::int64_t b = row / g.out_h, oh = row % g.out_h;
      float* out_row = output + row * g.out_w * C;
      const float* in_rows[64];
      std::vector<const float*> more;
      const float** rp =
          g.kh <= 64 ? in_rows : (more.resize(static_cast<std::size_t>(g.kh)), more.data());
      for (std::int64_t i = 0; i < g.kh; ++i) {
        const std::int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
        rp[i] = h >= 0 && h < g.h ? input + (b * g.h + h) * g.w * C : nullptr;
      }
      // Interior positions: every tap inside the row.
      if (hi > lo) {
        taps.clear();
        for (std::int64_t i = 0; i < g.kh; ++i)
          if (rp[i])
            for (std::int64_t j = 0; j < g.kw; ++j)
              taps.add(rp[i] + (lo * g.stride_w - g.pad_left + j * g.dil_w) * C,
                       kernel + (i * g.kw + j) * C);
        run_tiles(taps, hi - lo, g.stride_w * C, out_row + lo * C, C, C, reuse_kw);
      }
      // Border positions: the taps inside the row only.
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
        if (ow == lo && hi > lo) ow = hi;
        if (ow >= g.out_w) break;
        taps.clear();
        for (std::int64_t i = 0; i < g.kh; ++i)
          if (rp[i])
            for (std::int64_t j = 0; j < g.kw; ++j) {
              const std::int64_t w = ow * g.stride_w - g.pad_left + j * g.dil_w;
              if (w >= 0 && w < g.w) taps.add(rp[i] + w * C, kernel + (i * g.kw + j) * C);
            }
        tile<1>(taps, 0, 0, out_row + ow * C, 0, C);
      }
      if (bias)  // while the row is in cache
        for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
          float* o = out_row + ow * C;
          std::int64_t c = 0;
          for (; c + W <= C; c += W)
            (batch::load_unaligned(o + c) + batch::load_unaligned(bias + c)).store_unaligned(o + c);
          for (; c < C; ++c) o[c] += bias[c];
        }
    });
  });
  errors.rethrow();
}

// The m == 1 input gradient on C channels (gather form: input position (h, w) receives from the
// output positions (oh, ow) with oh * stride_h - pad_top + i * dil_h = h, likewise for w).
void backward_input_c(const Conv2DGeometry& g, std::int64_t C, const float* grad_output,
                      const float* kernel, float* grad_input) {
  const std::int64_t rows = g.n * g.h;
  const std::int64_t reuse_kw = g.stride_w == 1 && g.dil_w == 1 ? g.kw : 0;
  // With unit stride, the positions w whose every tap j has an output column u = w + pad_left -
  // j * dil_w in [0, out_w) share their taps.
  std::int64_t lo = 0, hi = 0;
  if (g.stride_w == 1) {
    lo = std::clamp<std::int64_t>((g.kw - 1) * g.dil_w - g.pad_left, 0, g.w);
    hi = std::clamp<std::int64_t>(g.out_w - g.pad_left, lo, g.w);
  }
  const int team = rows >= parallel_rows ? detail::parallel_team(pass_ns(g, C), rows) : 1;
  detail::RegionErrors errors;
  detail::parallel_for_static(team, rows, [&](std::int64_t row) {
    errors.run([&] {
      Taps taps(g.kh * g.kw);
      const std::int64_t b = row / g.h, h = row % g.h;
      float* gi_row = grad_input + row * g.w * C;
      const float* go_rows[64];
      std::vector<const float*> more;
      const float** rp =
          g.kh <= 64 ? go_rows : (more.resize(static_cast<std::size_t>(g.kh)), more.data());
      for (std::int64_t i = 0; i < g.kh; ++i) {
        const std::int64_t t = h + g.pad_top - i * g.dil_h;
        rp[i] = t >= 0 && t % g.stride_h == 0 && t / g.stride_h < g.out_h
                    ? grad_output + (b * g.out_h + t / g.stride_h) * g.out_w * C
                    : nullptr;
      }
      if (hi > lo) {
        taps.clear();
        for (std::int64_t i = 0; i < g.kh; ++i)
          if (rp[i])
            for (std::int64_t j = 0; j < g.kw; ++j)
              taps.add(rp[i] + (lo + g.pad_left - j * g.dil_w) * C, kernel + (i * g.kw + j) * C);
        run_tiles(taps, hi - lo, C, gi_row + lo * C, C, C, reuse_kw, true);
      }
      for (std::int64_t w = 0; w < g.w; ++w) {
        if (w == lo && hi > lo) w = hi;
        if (w >= g.w) break;
        taps.clear();
        for (std::int64_t i = 0; i < g.kh; ++i)
          if (rp[i])
            for (std::int64_t j = 0; j < g.kw; ++j) {
              const std::int64_t u = w + g.pad_left - j * g.dil_w;
              if (u >= 0 && u % g.stride_w == 0 && u / g.stride_w < g.out_w)
                taps.add(rp[i] + (u / g.stride_w) * C, kernel + (i * g.kw + j) * C);
            }
        tile<1>(taps, 0, 0, gi_row + w * C, 0, C);
      }
    });
  });
  errors.rethrow();
}

// acc[j][v] += x[(o * stride + x0 + j * dil) * C + c0 + v * W] * go[o * C + c0 + v * W] for
// the taps j < JB of one kernel row and positions o in [o0, o1) (x and go: their rows).
template <int JB, int CB>
inline void kernel_rows(batch (&acc)[3][2], const float* x, std::int64_t x0, const float* go,
                        std::int64_t o0, std::int64_t o1, std::int64_t xs, std::int64_t dil,
                        std::int64_t C, std::int64_t c0) {
  batch a[JB][CB];  // in registers for the loop (acc is indexed at run time elsewhere)
  for (int j = 0; j < JB; ++j)
    for (int v = 0; v < CB; ++v) a[j][v] = acc[j][v];
  const float* xp = x + (o0 * xs + x0) * C + c0;
  const float* gp = go + o0 * C + c0;
  const std::int64_t xstep = xs * C, jstep = dil * C;
  for (std::int64_t o = o0; o < o1; ++o, xp += xstep, gp += C) {
    batch gv[CB];
#pragma GCC unroll 2
    for (int v = 0; v < CB; ++v) gv[v] = batch::load_unaligned(gp + v * W);
#pragma GCC unroll 3
    for (int j = 0; j < JB; ++j)
#pragma GCC unroll 2
      for (int v = 0; v < CB; ++v)
        a[j][v] = detail::fma(batch::load_unaligned(xp + j * jstep + v * W), gv[v], a[j][v]);
  }
  for (int j = 0; j < JB; ++j)
    for (int v = 0; v < CB; ++v) acc[j][v] = a[j][v];
}

// One range of output rows [p0, p1) of the m == 1 kernel gradient on C channels into
// out (kh, kw, C). Taps go three at a time (one kernel row), 2 channel vectors per pass.
void backward_kernel_range(const Conv2DGeometry& g, std::int64_t C, const float* input,
                           const float* grad_output, std::int64_t p0, std::int64_t p1, float* out) {
  // Positions ow for which tap j reads inside the row: [lo[j], hi[j]).
  std::vector<std::int64_t> lo(static_cast<std::size_t>(g.kw)), hi(lo.size());
  for (std::int64_t j = 0; j < g.kw; ++j) {
    const std::int64_t off = j * g.dil_w - g.pad_left;
    std::tie(lo[static_cast<std::size_t>(j)], hi[static_cast<std::size_t>(j)]) =
        inside(g.w, g.out_w, g.stride_w, off, off);
  }
  const std::int64_t xs = g.stride_w;
  for (std::int64_t i = 0; i < g.kh; ++i)
    for (std::int64_t j0 = 0; j0 < g.kw; j0 += 3) {
      const std::int64_t jb = std::min<std::int64_t>(3, g.kw - j0);
      std::int64_t cl = 0, ch = g.out_w;  // positions where all jb taps read inside
      for (std::int64_t j = j0; j < j0 + jb; ++j)
        cl = std::max(cl, lo[static_cast<std::size_t>(j)]),
        ch = std::min(ch, hi[static_cast<std::size_t>(j)]);
      auto pass = [&]<int CB>(std::int64_t c0) {
        batch acc[3][2];
        for (auto& a : acc) a[0] = a[1] = batch(0.f);
        for (std::int64_t row = p0; row < p1; ++row) {
          const std::int64_t b = row / g.out_h, oh = row % g.out_h;
          const std::int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
          if (h < 0 || h >= g.h) continue;
          // Tap j0 + j at position o reads input column o * stride + x0 + j * dil.
          const float* x = input + (b * g.h + h) * g.w * C;
          const std::int64_t x0 = j0 * g.dil_w - g.pad_left;
          const float* go = grad_output + row * g.out_w * C;
          auto one = [&](std::int64_t j, std::int64_t o0, std::int64_t o1) {
            for (std::int64_t o = o0; o < o1; ++o)
              for (int v = 0; v < CB; ++v)
                acc[j][v] = detail::fma(
                    batch::load_unaligned(x + ((o * xs + x0 + j * g.dil_w) * C) + c0 + v * W),
                    batch::load_unaligned(go + o * C + c0 + v * W), acc[j][v]);
          };
          if (cl < ch) {
            for (std::int64_t j = 0; j < jb; ++j) one(j, lo[static_cast<std::size_t>(j0 + j)], cl);
            if (jb == 3)
              kernel_rows<3, CB>(acc, x, x0, go, cl, ch, xs, g.dil_w, C, c0);
            else if (jb == 2)
              kernel_rows<2, CB>(acc, x, x0, go, cl, ch, xs, g.dil_w, C, c0);
            else
              kernel_rows<1, CB>(acc, x, x0, go, cl, ch, xs, g.dil_w, C, c0);
            for (std::int64_t j = 0; j < jb; ++j) one(j, ch, hi[static_cast<std::size_t>(j0 + j)]);
          } else {
            for (std::int64_t j = 0; j < jb; ++j)
              one(j, lo[static_cast<std::size_t>(j0 + j)], hi[static_cast<std::size_t>(j0 + j)]);
          }
        }
        for (std::int64_t j = 0; j < jb; ++j)
          for (int v = 0; v < CB; ++v)
            acc[j][v].store_unaligned(out + (i * g.kw + j0 + j) * C + c0 + v * W);
      };
      std::int64_t c0 = 0;
      for (; c0 + 2 * W <= C; c0 += 2 * W) pass.template operator()<2>(c0);
      for (; c0 + W <= C; c0 += W) pass.template operator()<1>(c0);
      for (; c0 < C; ++c0)  // channel tail, the same order
        for (std::int64_t j = j0; j < j0 + jb; ++j) {
          float s = 0.f;
          for (std::int64_t row = p0; row < p1; ++row) {
            const std::int64_t b = row / g.out_h, oh = row % g.out_h;
            const std::int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
            if (h < 0 || h >= g.h) continue;
            const float* x = input + (b * g.h + h) * g.w * C;
            const float* go = grad_output + row * g.out_w * C;
            for (std::int64_t o = lo[static_cast<std::size_t>(j)];
                 o < hi[static_cast<std::size_t>(j)]; ++o)
              s = detail::madd(x[(o * xs + j * g.dil_w - g.pad_left) * C + c0], go[o * C + c0], s);
          }
          out[(i * g.kw + j) * C + c0] = s;
        }
    }
}

void backward_kernel_c(const Conv2DGeometry& g, std::int64_t C, const float* input,
                       const float* grad_output, float* grad_kernel) {
  const std::int64_t kn = g.kh * g.kw * C, rows = g.n * g.out_h;
  if (kn == 0) return;
  if (rows == 0 || g.out_w == 0) {
    std::fill(grad_kernel, grad_kernel + kn, 0.f);
    return;
  }
  // Ranges of about 2K output positions each.
  const detail::PartialRanges ranges =
      detail::partial_ranges(rows, std::max<std::int64_t>(1, 2048 / g.out_w), kn);
  const std::int64_t parts = ranges.count, range = ranges.size;
  float* partial =
      parts == 1 ? grad_kernel : scratch(slot_conv_partial, static_cast<std::size_t>(parts * kn));
  const int team = rows >= parallel_rows ? detail::parallel_team(pass_ns(g, C), parts) : 1;
  detail::RegionErrors errors;
  detail::parallel_for(team, parts, [&](std::int64_t part) {
    errors.run([&] {
      const std::int64_t p0 = part * range, p1 = std::min(rows, p0 + range);
      backward_kernel_range(g, C, input, grad_output, p0, p1,
                            partial + (parts == 1 ? 0 : part * kn));
    });
  });
  errors.rethrow();
  if (parts > 1) detail::sum_partials(parts, kn, partial, grad_kernel);
}

// e (n, h, w, cin * mult): every input channel c repeated at c * mult .. c * mult + mult - 1.
float* spread_input(const Conv2DGeometry& g, std::int64_t mult, const float* input) {
  const std::int64_t pixels = g.n * g.h * g.w, co = g.cin * mult;
  float* e = scratch(slot_conv_aux, static_cast<std::size_t>(pixels * co));
  const int team = detail::parallel_team(
      detail::byte_ns(4.0 * static_cast<double>(pixels * (co + g.cin))), g.n * g.h);
  detail::parallel_for_static(team, g.n * g.h, [&](std::int64_t row) {
    const float* __restrict x = input + row * g.w * g.cin;
    float* __restrict d = e + row * g.w * co;
    for (std::int64_t q = 0; q < g.w * g.cin; ++q)
      for (std::int64_t m = 0; m < mult; ++m) d[q * mult + m] = x[q];
  });
  return e;
}

}  // namespace

void depthwise_conv2d_forward(const Conv2DGeometry& g, std::int64_t mult, const float* input,
                              const float* kernel, float* output, const float* bias) {
  if (g.n * g.out_h * g.out_w * g.cin * mult == 0) return;
  if (mult == 1) {
    forward_c(g, g.cin, input, kernel, output, bias);
    return;
  }
  forward_c(g, g.cin * mult, spread_input(g, mult, input), kernel, output, bias);
}

void depthwise_conv2d_backward_input(const Conv2DGeometry& g, std::int64_t mult,
                                     const float* grad_output, const float* kernel,
                                     float* grad_input) {
  const std::int64_t pixels = g.n * g.h * g.w, co = g.cin * mult;
  if (pixels * g.cin == 0) return;
  if (mult == 1) {
    backward_input_c(g, g.cin, grad_output, kernel, grad_input);
    return;
  }
  // The gradient of the spread input, then the sum of each channel's mult copies (in order).
  float* e = scratch(slot_conv_aux, static_cast<std::size_t>(pixels * co));
  backward_input_c(g, co, grad_output, kernel, e);
  const int team = detail::parallel_team(
      detail::byte_ns(4.0 * static_cast<double>(pixels * (co + g.cin))), g.n * g.h);
  detail::parallel_for_static(team, g.n * g.h, [&](std::int64_t row) {
    const float* __restrict s = e + row * g.w * co;
    float* __restrict d = grad_input + row * g.w * g.cin;
    for (std::int64_t q = 0; q < g.w * g.cin; ++q) {
      float sum = s[q * mult];
      for (std::int64_t m = 1; m < mult; ++m) sum += s[q * mult + m];
      d[q] = sum;
    }
  });
}

void depthwise_conv2d_backward_kernel(const Conv2DGeometry& g, std::int64_t mult,
                                      const float* input, const float* grad_output,
                                      float* grad_kernel) {
  if (mult == 1) {
    backward_kernel_c(g, g.cin, input, grad_output, grad_kernel);
    return;
  }
  const float* e = g.n * g.h * g.w * g.cin == 0 ? input : spread_input(g, mult, input);
  backward_kernel_c(g, g.cin * mult, e, grad_output, grad_kernel);
}

}  // namespace xtape::kernels
