// Packed, cache-blocked SGEMM (BLIS-style loop nest) with an xsimd register-blocked micro-kernel.
//
// Loop nest:  jc (NC columns of C)  ->  pc (KC slice of k, fixed order)  ->  pack op(B) slice
//             -> ic (MC rows) -> pack op(A) block -> jr (NR panel) -> ir (MR panel)
//             -> micro-kernel (MR x NR tile, kc FMAs deep).
// A may skip packing (see `in_place` in blocked_gemm). Threads only split C into
// rectangles of whole tiles; the k slices are visited in the same order by every thread count
// and the micro-kernel arithmetic does not depend on where a tile sits, so the result is
// bitwise identical for any number of threads.
#include "kernels/gemm.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <xsimd/xsimd.hpp>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/fma.hpp"
#include "kernels/parallel.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels {

namespace detail {

using batch = xsimd::batch<float>;
constexpr int simd_width = static_cast<int>(batch::size);

#if defined(__AVX512F__)
// The mask of the first `lanes` (0-16) of a 16-float vector: partial B panels and C tiles.
inline __mmask16 first_lanes(std::int64_t lanes) {
  return static_cast<__mmask16>(lanes >= 16 ? 0xFFFFu : lanes <= 0 ? 0u : (1u << lanes) - 1u);
}
#endif

// Register blocking, two tile shapes. AVX-512 has 32 vector registers: 14 rows x 2 vectors = 28
// accumulators plus 2 for the B row and 1 for the broadcast A value; or 6 rows x 4 vectors = 24
// accumulators plus 4 B vectors, half the A broadcasts per multiply-add (measured faster when
// n is a multiple of 64). With 16 registers (AVX2/SSE/NEON) 6 x 2 = 12 accumulators. Every
// shape computes each element of C with the same operations in the same order (see
// micro_kernel), so the choice never changes a result.
template <int MR_, int NV_>
struct Tile {
  static constexpr int MR = MR_, NV = NV_, NR = NV_ * simd_width;
};
using NarrowTile = Tile<simd_width >= 16 ? 14 : 6, 2>;
using WideTile = Tile<6, 4>;
// The tile of the gathered-A products (convolution patches read in place): 6 rows either way.
using GatherTile = std::conditional_t<(simd_width >= 16), WideTile, NarrowTile>;

// Cache blocking. KC = 384 keeps the conv shapes (k = 288) in one k slice, so C is written
// once, and a KC x NR micro-panel of B (24 KiB with AVX2, 48 KiB with AVX-512) streams from
// L1/L2. KC also fixes the k slices and so the bits of every product: it is the same on every
// machine. The MC x KC block of A takes about half of this machine's L2 (MC rows, read at run
// time: 336 on a 1 MiB L2 as on Zen 4/5, 168 on Zen 2's 512 KiB), and the packed KC x NC slice
// of B lives in L2/L3.
constexpr std::int64_t gemm_kc = 384;
constexpr std::int64_t gemm_nc_panels = 64;

// Up to this many rows of A, B is read in place rather than packed (see blocked_gemm).
constexpr std::int64_t b_rows_max = 12;

// A cache of one core in bytes: from the C library (cpuid on x86), else from sysfs (index0:
// L1d, index2: L2), else `fallback`.
std::int64_t cache_bytes(int sysconf_name, const char* sysfs_size, std::int64_t fallback) {
  const long from_libc = sysconf(sysconf_name);
  if (from_libc > 0) return static_cast<std::int64_t>(from_libc);
  if (std::FILE* f = std::fopen(sysfs_size, "r")) {
    long kib = 0;
    const int got = std::fscanf(f, "%ldK", &kib);
    std::fclose(f);
    if (got == 1 && kib > 0) return static_cast<std::int64_t>(kib) * 1024;
  }
  return fallback;
}

std::int64_t l2_bytes() {
  static const std::int64_t bytes =
      cache_bytes(_SC_LEVEL2_CACHE_SIZE, "/sys/devices/system/cpu/cpu0/cache/index2/size",
                  std::int64_t{1} << 20);
  return bytes;
}

std::int64_t l1d_bytes() {
  static const std::int64_t bytes =
      cache_bytes(_SC_LEVEL1_DCACHE_SIZE, "/sys/devices/system/cpu/cpu0/cache/index0/size",
                  std::int64_t{32} << 10);
  return bytes;
}

// Rows of the A block: half the L2 over KC floats a row, within [48, 960].
std::int64_t gemm_mc_rows() {
  return std::clamp<std::int64_t>(l2_bytes() / 2 / (gemm_kc * 4), 48, 960);
}

// Below this many multiply-adds the packing and threading overhead dominates.
constexpr std::int64_t small_gemm_work = 32 * 1024;

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Splits `total` into ceil(total / max_block) nearly equal blocks rounded up to `unit`.
inline std::int64_t even_block(std::int64_t total, std::int64_t max_block, std::int64_t unit) {
  const std::int64_t nb = ceil_div(total, max_block);
  return ceil_div(ceil_div(total, nb), unit) * unit;
}

// Packs rows [i0, i0 + mc) x columns [p0, p0 + kc) of op(A) into MR-row micro-panels:
// panel r holds, for each p, the MR values op(A)(i0 + r*MR + i, p0 + p); rows past m are 0.
template <class T>
void pack_a(bool trans_a, const float* a, std::int64_t lda, std::int64_t m, std::int64_t i0,
            std::int64_t mc, std::int64_t p0, std::int64_t kc, float* dst) {
  constexpr int mr = T::MR;
  // A vector copy of a piece spills (W - 1) / MR slots past p; those are rewritten later.
  constexpr std::int64_t spill = (simd_width - 1) / mr;
  const std::int64_t full_rows =
      std::max<std::int64_t>(0, std::min(mc, m - i0));  // rows that exist
  if (trans_a) {
    // op(A)(i, p) = a[p * lda + i]: walk each source row once (streaming) and drop MR-wide
    // pieces into the panels. A full piece is one vector copy when W >= MR: the extra lanes land
    // in the next p slots, which are written next; the last p slots take the scalar path so
    // nothing spills into the next panel. A vector read stays within the existing rows.
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* src = a + (p0 + p) * lda + i0;
      std::int64_t r = 0;
      if (simd_width >= mr && p + spill < kc)
        for (; r + simd_width <= full_rows; r += mr)
          batch::load_unaligned(src + r).store_unaligned(dst + r * kc + p * mr);
      for (; r < mc; r += mr) {
        float* d = dst + r * kc + p * mr;
        const std::int64_t rows = std::clamp<std::int64_t>(full_rows - r, 0, mr);
        std::int64_t i = 0;
        for (; i < rows; ++i) d[i] = src[r + i];
        for (; i < mr; ++i) d[i] = 0.f;
      }
    }
    return;
  }
  // op(A)(i, p) = a[i * lda + p]: contiguous in p, scattered with stride MR into the panel.
  for (std::int64_t r = 0; r < mc; r += mr) {
    float* panel = dst + r * kc;
    const std::int64_t rows = std::clamp<std::int64_t>(full_rows - r, 0, mr);
    for (std::int64_t i = 0; i < rows; ++i) {
      const float* src = a + (i0 + r + i) * lda + p0;
      for (std::int64_t p = 0; p < kc; ++p) panel[p * mr + i] = src[p];
    }
    for (std::int64_t i = rows; i < mr; ++i)
      for (std::int64_t p = 0; p < kc; ++p) panel[p * mr + i] = 0.f;
  }
}

// dst[q * ld_dst + r] = src[r * ld_src + q] for r, q in [0, W): one W x W block transposed in
// registers (AVX-512 and AVX2; element by element elsewhere). A copy: no rounding.
// (GCC 12 warns of the _mm512_undefined_ps its own unpack and shuffle intrinsics pass as the
// unused merge source: its bug 105593.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
inline void transpose_block(const float* src, std::int64_t ld_src, float* dst,
                            std::int64_t ld_dst) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld_src);
    // Within each 128-bit lane: pairs of rows interleaved, then groups of four rows.
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
      r[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
      r[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
      r[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      r[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    // r[4g + q], lane L: rows 4g..4g+3 of column 4L + q. Gather the four groups' lanes.
    for (int q = 0; q < 4; ++q) {
      const __m512 even01 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
      const __m512 even23 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
      const __m512 odd01 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
      const __m512 odd23 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
      _mm512_storeu_ps(dst + q * ld_dst, _mm512_shuffle_f32x4(even01, even23, 0x88));
      _mm512_storeu_ps(dst + (8 + q) * ld_dst, _mm512_shuffle_f32x4(even01, even23, 0xDD));
      _mm512_storeu_ps(dst + (4 + q) * ld_dst, _mm512_shuffle_f32x4(odd01, odd23, 0x88));
      _mm512_storeu_ps(dst + (12 + q) * ld_dst, _mm512_shuffle_f32x4(odd01, odd23, 0xDD));
    }
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (simd_width == 8) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {
      r[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
      r[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
      r[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      r[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    // r[4g + q], lane L: rows 4g..4g+3 of column 4L + q.
    for (int q = 0; q < 4; ++q) {
      _mm256_storeu_ps(dst + q * ld_dst, _mm256_permute2f128_ps(r[q], r[4 + q], 0x20));
      _mm256_storeu_ps(dst + (4 + q) * ld_dst, _mm256_permute2f128_ps(r[q], r[4 + q], 0x31));
    }
    return;
  }
#endif
  for (int q = 0; q < simd_width; ++q)
    for (int r = 0; r < simd_width; ++r) dst[q * ld_dst + r] = src[r * ld_src + q];
}
#pragma GCC diagnostic pop

// Packs NR-column micro-panel number `panel` of op(B) rows [p0, p0 + kc), columns from j0:
// for each p, NR contiguous values op(B)(p0 + p, j0 + panel*NR + j); columns past n are 0.
template <class T>
void pack_b_panel(bool trans_b, const float* b, std::int64_t ldb, std::int64_t n, std::int64_t j0,
                  std::int64_t panel, std::int64_t p0, std::int64_t kc, float* dst) {
  constexpr int nr = T::NR;
  const std::int64_t jb = j0 + panel * nr;
  const std::int64_t cols = std::min<std::int64_t>(nr, n - jb);
  float* out = dst + panel * nr * kc;
  if (!trans_b) {  // op(B)(p, j) = b[p * ldb + j]
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + jb;
      float* d = out + p * nr;
      if (cols == nr) {
        for (int v = 0; v < T::NV; ++v)
          batch::load_unaligned(src + v * simd_width).store_aligned(d + v * simd_width);
      } else {
        // A partial panel (n not a multiple of NR: a 10-class output layer): whole vectors
        // of the columns that exist, then the rest of the last one and zeros.
        std::int64_t j = 0;
        for (int v = 0; v < T::NV; ++v, j += simd_width) {
          if (j + simd_width <= cols) {
            batch::load_unaligned(src + j).store_aligned(d + j);
            continue;
          }
#if defined(__AVX512F__)
          if constexpr (simd_width == 16) {
            _mm512_store_ps(d + j, _mm512_maskz_loadu_ps(first_lanes(cols - j), src + j));
            continue;
          }
#endif
          for (std::int64_t q = j; q < j + simd_width; ++q) d[q] = q < cols ? src[q] : 0.f;
        }
      }
    }
  } else {  // op(B)(p, j) = b[j * ldb + p]: a transpose, in W x W blocks held in registers
    std::int64_t p = 0;
    if (cols == nr)
      for (; p + simd_width <= kc; p += simd_width)
        for (std::int64_t j = 0; j < nr; j += simd_width)
          transpose_block(b + (jb + j) * ldb + p0 + p, ldb, out + p * nr + j, nr);
    // The rest (the last kc % W rows; all of a partial panel), in blocks of 16 p so that the
    // rows written stay in L1 while every column visits them.
    for (std::int64_t pb = p; pb < kc; pb += 16) {
      const std::int64_t pe = std::min<std::int64_t>(kc, pb + 16);
      for (std::int64_t j = 0; j < cols; ++j) {
        const float* src = b + (jb + j) * ldb + p0;
        for (std::int64_t q = pb; q < pe; ++q) out[q * nr + j] = src[q];
      }
      for (std::int64_t j = cols; j < nr; ++j)
        for (std::int64_t q = pb; q < pe; ++q) out[q * nr + j] = 0.f;
    }
  }
}

// One MR x NR tile: acc = sum_p A(:, p) b_panel(p, :), then
// C = fma(beta_eff, C, alpha * acc) (or alpha * acc when overwrite). A is a packed micro-panel
// (element (i, p) at ap[p * MR + i]) or read in place from the caller's matrix, only for full
// MR-row panels: AMode::rows, element (i, p) at ap[i * a_rs + p] (untransposed A), or
// AMode::cols, element (i, p) at ap[p * a_rs + i] (transposed A). Rows/columns beyond
// (mr, nr) are computed on zero padding and dropped; the scalar edge path applies exactly the
// same rounding steps as the vector path.
// AMode::gathered: element (i, p) at a_cols[p][a_rs + i] (a_rs: the panel's offset).
// AMode::gathered_rows: element (i, p) at a_cols[i][off(p)], off starting at a_rs with
// g_left floats left in its run, then skipping g_jump floats every g_run (a patch's kernel rows).
enum class AMode { packed, rows, cols, gathered, gathered_rows };

// BRows: B is read in place, row p of the panel at bp + p * b_rs (unaligned), instead of a
// packed micro-panel (row p at bp + p * NR); only for full NR-column panels.
template <class T, AMode Mode, bool BRows = false>
void micro_kernel(std::int64_t kc, const float* __restrict ap, std::int64_t a_rs,
                  const float* __restrict bp, float* c, std::int64_t ldc, std::int64_t mr,
                  std::int64_t nr, float alpha, float beta_eff, bool overwrite,
                  const float* const* a_cols = nullptr, std::int64_t g_run = 0,
                  std::int64_t g_jump = 0, std::int64_t g_left = 0, std::int64_t b_rs = 0) {
  constexpr int MR = T::MR, NV = T::NV, W = simd_width, NR = T::NR;
  auto load_b = [&](std::int64_t p, int v) {
    if constexpr (BRows)
      return batch::load_unaligned(bp + p * b_rs + v * W);
    else
      return batch::load_aligned(bp + p * NR + v * W);
  };
  // The C tile is read (and written) only after the k loop: fetch it now, so a C that is not
  // in cache (large products) does not stall every tile.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NR - 1, 1);
  }
  batch acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = batch(0.f);
  if constexpr (Mode == AMode::gathered_rows) {
    const float* rows[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) rows[i] = a_cols[i];
    std::int64_t off = a_rs, left = g_left;
    for (std::int64_t p = 0; p < kc; ++p) {
      batch bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = load_b(p, v);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const batch av(rows[i][off]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = detail::fma(av, bv[v], acc[i][v]);
      }
      ++off;
      if (--left == 0) off += g_jump, left = g_run;
    }
  } else
    for (std::int64_t p = 0; p < kc; ++p) {
      batch bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = load_b(p, v);
      const float* col = Mode == AMode::gathered ? a_cols[p] + a_rs : nullptr;
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const batch av(Mode == AMode::rows       ? ap[i * a_rs + p]
                       : Mode == AMode::cols     ? ap[p * a_rs + i]
                       : Mode == AMode::gathered ? col[i]
                                                 : ap[p * MR + i]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = detail::fma(av, bv[v], acc[i][v]);
      }
    }
  const batch va(alpha), vb(beta_eff);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* crow = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        batch r = acc[i][v] * va;
        if (!overwrite) r = detail::fma(vb, batch::load_unaligned(crow + v * W), r);
        r.store_unaligned(crow + v * W);
      }
    }
    return;
  }
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    // A partial tile (the last rows, or fewer columns than the tile: a 10-class layer) with
    // masked loads and stores: the operations of the scalar loop below, in vector form.
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i >= mr) break;
      float* crow = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const std::int64_t lanes = std::clamp<std::int64_t>(nr - v * W, 0, W);
        if (lanes == 0) break;
        const __mmask16 keep = first_lanes(lanes);
        batch r = acc[i][v] * va;
        if (!overwrite) r = detail::fma(vb, batch(_mm512_maskz_loadu_ps(keep, crow + v * W)), r);
        _mm512_mask_storeu_ps(crow + v * W, keep, r);
      }
    }
    return;
  }
#endif
  alignas(64) float tile[MR * NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v].store_aligned(tile + i * NR + v * W);
  for (std::int64_t i = 0; i < mr; ++i) {
    float* crow = c + i * ldc;
    for (std::int64_t j = 0; j < nr; ++j) {
      float r = tile[i * NR + j] * alpha;
      if (!overwrite) r = std::fma(beta_eff, crow[j], r);
      crow[j] = r;
    }
  }
}

// C = beta * C (beta == 0 overwrites with zeros, NaNs included).
void scale_c(std::int64_t m, std::int64_t n, float beta, float* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.f)
      std::fill(row, row + n, 0.f);
    else if (beta != 1.f)
      for (std::int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

// Straightforward path for tiny problems: one dot product per element, k in increasing order.
void small_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                float beta, float* c, std::int64_t ldc) {
  const std::int64_t sa_i = trans_a ? 1 : lda, sa_p = trans_a ? lda : 1;
  const std::int64_t sb_p = trans_b ? 1 : ldb, sb_j = trans_b ? ldb : 1;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      float s = 0.f;
      for (std::int64_t p = 0; p < k; ++p)
        s = std::fma(a[i * sa_i + p * sa_p], b[p * sb_p + j * sb_j], s);
      float r = s * alpha;
      if (beta != 0.f) r = std::fma(beta, c[i * ldc + j], r);
      c[i * ldc + j] = r;
    }
  }
}

// Single-threaded blocked product on one rectangle of C. The k slicing depends on k only, so
// an element of C gets the same bits whichever rectangle (thread) computes it.
template <class T>
void blocked_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                  float beta, float* c, std::int64_t ldc) {
  constexpr std::int64_t gemm_mr = T::MR, gemm_nr = T::NR;
  const std::int64_t gemm_mc = std::max(gemm_mr, gemm_mc_rows() / gemm_mr * gemm_mr);
  constexpr std::int64_t gemm_nc = gemm_nr * gemm_nc_panels;
  const std::int64_t kc_max = even_block(k, gemm_kc, 1);
  const std::int64_t nc_max = even_block(n, gemm_nc, gemm_nr);
  const std::int64_t mc_max = even_block(m, gemm_mc, gemm_mr);
  float* bpack = scratch(slot_gemm_pack_b, static_cast<std::size_t>(kc_max * nc_max));
  float* apack = scratch(slot_gemm_pack_a, static_cast<std::size_t>(mc_max * kc_max + simd_width));
  // Full MR-row panels of A feed the micro-kernel in place (no packing) when each A panel is
  // reused by few B panels (n small), unless the row stride is a multiple of 2 KiB: then the
  // MR rows (or the kc rows of a transposed panel) alias in the L1 sets. One-vector tiles (up
  // to 16 columns) read A in place even then: each element of A feeds a single multiply-add
  // there, so packing it cost more than the aliasing (128 x 10 x 512 on Zen 4: 28 -> 44-56
  // GFLOP/s).
  const bool in_place = n <= 512 && (lda % 512 != 0 || T::NV == 1);
  const bool direct = !trans_a && in_place, direct_t = trans_a && in_place;
  // B panels feed the micro-kernel in place when each is used by at most two MR-row panels of
  // A (few rows: a batch of 1-12 through a dense layer): packing would cost more than it saves.
  // The partial panel at the right edge is packed (zero padding).
  const bool b_rows = !trans_b && m <= b_rows_max;
  for (std::int64_t jc = 0; jc < n; jc += nc_max) {
    const std::int64_t nc = std::min(nc_max, n - jc);
    const std::int64_t n_panels = ceil_div(nc, gemm_nr);
    for (std::int64_t pc = 0; pc < k; pc += kc_max) {
      const std::int64_t kc = std::min(kc_max, k - pc);
      const bool first = pc == 0;
      const bool overwrite = first && beta == 0.f;
      const float beta_eff = first ? beta : 1.f;
      for (std::int64_t jp = 0; jp < n_panels; ++jp)
        if (!b_rows || jc + (jp + 1) * gemm_nr > n)
          pack_b_panel<T>(trans_b, b, ldb, n, jc, jp, pc, kc, bpack);
      for (std::int64_t ic = 0; ic < m; ic += mc_max) {
        const std::int64_t mc = std::min(mc_max, m - ic);
        const std::int64_t mc_full = direct || direct_t ? mc / gemm_mr * gemm_mr : 0;
        if (mc_full < mc)  // direct mode packs only the tail panel
          pack_a<T>(trans_a, a, lda, m, ic + mc_full, ceil_div(mc - mc_full, gemm_mr) * gemm_mr, pc,
                    kc, apack);
        for (std::int64_t jp = 0; jp < n_panels; ++jp) {
          const std::int64_t j0 = jc + jp * gemm_nr, ncur = std::min<std::int64_t>(gemm_nr, n - j0);
          const float* bp = bpack + jp * gemm_nr * kc;
          if (b_rows && ncur == gemm_nr) {
            const float* bs = b + pc * ldb + j0;
            for (std::int64_t ir = 0; ir < mc_full; ir += gemm_mr) {
              float* ct = c + (ic + ir) * ldc + j0;
              if (direct)
                micro_kernel<T, AMode::rows, true>(kc, a + (ic + ir) * lda + pc, lda, bs, ct, ldc,
                                                   gemm_mr, ncur, alpha, beta_eff, overwrite,
                                                   nullptr, 0, 0, 0, ldb);
              else
                micro_kernel<T, AMode::cols, true>(kc, a + pc * lda + ic + ir, lda, bs, ct, ldc,
                                                   gemm_mr, ncur, alpha, beta_eff, overwrite,
                                                   nullptr, 0, 0, 0, ldb);
            }
            for (std::int64_t ir = mc_full; ir < mc; ir += gemm_mr)
              micro_kernel<T, AMode::packed, true>(
                  kc, apack + (ir - mc_full) * kc, 0, bs, c + (ic + ir) * ldc + j0, ldc,
                  std::min<std::int64_t>(gemm_mr, mc - ir), ncur, alpha, beta_eff, overwrite,
                  nullptr, 0, 0, 0, ldb);
            continue;
          }
          for (std::int64_t ir = 0; ir < mc_full; ir += gemm_mr) {
            float* ct = c + (ic + ir) * ldc + j0;
            if (direct)
              micro_kernel<T, AMode::rows>(kc, a + (ic + ir) * lda + pc, lda, bp, ct, ldc, gemm_mr,
                                           ncur, alpha, beta_eff, overwrite);
            else
              micro_kernel<T, AMode::cols>(kc, a + pc * lda + ic + ir, lda, bp, ct, ldc, gemm_mr,
                                           ncur, alpha, beta_eff, overwrite);
          }
          for (std::int64_t ir = mc_full; ir < mc; ir += gemm_mr)
            micro_kernel<T, AMode::packed>(
                kc, apack + (ir - mc_full) * kc, 0, bp, c + (ic + ir) * ldc + j0, ldc,
                std::min<std::int64_t>(gemm_mr, mc - ir), ncur, alpha, beta_eff, overwrite);
        }
      }
    }
  }
}

// Splits C into a tm x tn grid of rectangles (in whole micro-tiles), one per thread, each
// computed independently (own packed copies, no barriers: robust when a core is busy).
template <class T>
void parallel_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                   float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                   float beta, float* c, std::int64_t ldc, int threads) {
  constexpr std::int64_t gemm_mr = T::MR, gemm_nr = T::NR;
  const std::int64_t m_tiles = ceil_div(m, gemm_mr), n_tiles = ceil_div(n, gemm_nr);
  // Pick the grid with the smallest per-thread cost: its tiles (MR*NR multiply-adds per k)
  // plus the rows of A and columns of B it packs (a copied element costs about as much as 8
  // multiply-add lanes). Every thread reads all of the operand that is not split.
  int best_tm = threads;
  std::int64_t best_cost = -1;
  for (int tm = threads; tm >= 1; --tm) {
    if (threads % tm != 0) continue;
    const int tn = threads / tm;
    const std::int64_t rows = ceil_div(m_tiles, tm), cols = ceil_div(n_tiles, tn);
    const std::int64_t cost =
        rows * cols * gemm_mr * gemm_nr + 8 * (rows * gemm_mr + cols * gemm_nr);
    if (best_cost < 0 || cost < best_cost) best_cost = cost, best_tm = tm;
  }
  const int tm = best_tm, tn = threads / best_tm;
  RegionErrors errors;
#pragma omp parallel num_threads(threads)
  errors.run([&] {
    const int t = omp_get_thread_num();
    const int ti = t / tn, tj = t % tn;
    const std::int64_t r0 = std::min(m, m_tiles * ti / tm * gemm_mr);
    const std::int64_t r1 = std::min(m, m_tiles * (ti + 1) / tm * gemm_mr);
    const std::int64_t c0 = std::min(n, n_tiles * tj / tn * gemm_nr);
    const std::int64_t c1 = std::min(n, n_tiles * (tj + 1) / tn * gemm_nr);
    if (r1 > r0 && c1 > c0) {
      const float* as = trans_a ? a + r0 : a + r0 * lda;
      const float* bs = trans_b ? b + c0 * ldb : b + c0;
      blocked_gemm<T>(trans_a, trans_b, r1 - r0, c1 - c0, k, alpha, as, lda, bs, ldb, beta,
                      c + r0 * ldc + c0, ldc);
    }
  });
  errors.rethrow();
}

}  // namespace detail

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.f) {
    detail::scale_c(m, n, beta, c, ldc);
    return;
  }
  std::int64_t work;  // multiply-adds, saturated (only compared against thresholds)
  if (__builtin_mul_overflow(m, n, &work) || __builtin_mul_overflow(work, k, &work))
    work = std::numeric_limits<std::int64_t>::max();
  if (work < detail::small_gemm_work) {
    detail::small_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const int threads = detail::gemm_team(m, n, k);
  auto run = [&]<class T>(T) {
    if (threads > 1)
      detail::parallel_gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                               threads);
    else
      detail::blocked_gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  };
  // Tile<m, NV12> for 1-2 rows, Tile<m, NV34> for 3-4 (m <= 4).
  auto run_few_rows = [&]<int NV12, int NV34>() {
    switch (m) {
      case 1:
        return run(detail::Tile<1, NV12>{});
      case 2:
        return run(detail::Tile<2, NV12>{});
      case 3:
        return run(detail::Tile<3, NV34>{});
      default:
        return run(detail::Tile<4, NV34>{});
    }
  };
  // With AVX-512, up to 16 columns (a 10-class output layer, its kernel gradient) take tiles
  // one vector wide: the 32- and 64-column tiles would compute 2-6 times the columns there are.
  if (detail::simd_width >= 16 && n <= detail::simd_width) {
    if (m <= 4) return run_few_rows.template operator()<1, 1>();
    // 16 rows where they divide m (batches of 32 or 128, 512 or 1600 inputs of a kernel
    // gradient): no padding rows; otherwise 14.
    if (m % 16 == 0) return run(detail::Tile<16, 1>{});
    return run(detail::Tile<detail::NarrowTile::MR, 1>{});
  }
  // A batch of 1-4 rows (inference through a dense layer) takes a tile of exactly its rows:
  // the standard tiles would multiply 14 or 6 rows, most of them zero padding. Four vector
  // columns (two with AVX2 from 3 rows, to stay within 16 registers) keep enough independent
  // multiply-add chains in flight.
  if (m <= 4) return run_few_rows.template operator()<4, (detail::simd_width >= 16 ? 4 : 2)>();
  // The wide tile where it fills: n a multiple of its 4 vectors (64 columns with AVX-512).
  // Otherwise the columns it fills take it and the rest the narrow tile (columns of C are
  // independent, so the split changes no result while both pieces stay on the blocked path).
  constexpr std::int64_t wide = detail::WideTile::NR;
  if (detail::simd_width >= 16 && n % wide == 0) return run(detail::WideTile{});
  if (detail::simd_width >= 16 && n > 2 * wide) {
    const std::int64_t n_wide = n / wide * wide;
    sgemm(trans_a, trans_b, m, n_wide, k, alpha, a, lda, b, ldb, beta, c, ldc);
    sgemm(trans_a, trans_b, m, n - n_wide, k, alpha, a, lda,
          trans_b ? b + n_wide * ldb : b + n_wide, ldb, beta, c + n_wide, ldc);
    return;
  }
  run(detail::NarrowTile{});
}

SgemmBlocking sgemm_blocking() {
  return {detail::gemm_mc_rows(), detail::gemm_kc, detail::gemm_nc_panels, detail::l2_bytes()};
}

std::int64_t sgemm_k_slice(std::int64_t k) { return detail::even_block(k, detail::gemm_kc, 1); }

SgemmTile sgemm_tile_for(std::int64_t n) {
  if (detail::simd_width >= 16 && n % detail::WideTile::NR == 0)
    return {detail::WideTile::MR, detail::WideTile::NR};
  return {detail::NarrowTile::MR, detail::NarrowTile::NR};
}

namespace detail {

// The short tiles of sgemm_tile_for_rows (AVX-512 only): the wide tile's columns on 4 rows
// (16 accumulators) and the narrow tile's on 8 (16).
using WideFewRows = Tile<4, WideTile::NV>;
using NarrowFewRows = Tile<8, NarrowTile::NV>;

}  // namespace detail

SgemmTile sgemm_tile_for_rows(std::int64_t rows, std::int64_t n, std::int64_t k) {
  const SgemmTile tile = sgemm_tile_for(n);
  if constexpr (detail::simd_width >= 16) {
    using detail::NarrowFewRows, detail::NarrowTile, detail::WideFewRows, detail::WideTile;
    // Each row tile reads the whole k x cols panel of B: the wide one only while that panel
    // takes at most half the L1 (the rest for A and C). On Zen 4's 32 KiB, a kernel
    // gradient's 72 x 64 panel (18 KiB) does not, and 8 x 32 tiles ran its products 10-30%
    // faster than 4 x 64 ones; on a 48 KiB L1 it does.
    const bool wide_panel_fits =
        k * WideTile::NR * static_cast<std::int64_t>(sizeof(float)) <= detail::l1d_bytes() / 2;
    if (tile.cols == WideTile::NR && !wide_panel_fits && rows % NarrowFewRows::MR == 0 &&
        n % NarrowTile::NR == 0)
      return {NarrowFewRows::MR, NarrowFewRows::NR};
    if (rows % tile.rows == 0) return tile;
    if (tile.cols == WideTile::NR && rows % WideFewRows::MR == 0)
      return {WideFewRows::MR, WideFewRows::NR};
    if (tile.cols == NarrowTile::NR && rows % NarrowFewRows::MR == 0)
      return {NarrowFewRows::MR, NarrowFewRows::NR};
  }
  return tile;
}

void sgemm_tile_product(SgemmTile tile, std::int64_t k, const float* a, std::int64_t lda,
                        bool trans_a, const float* b, float* c, std::int64_t ldc, std::int64_t mr,
                        bool accumulate) {
  using detail::AMode;
  using detail::micro_kernel;
  const float beta = accumulate ? 1.f : 0.f;
  auto run = [&]<class T>(T) {
    if (trans_a)
      micro_kernel<T, AMode::cols>(k, a, lda, b, c, ldc, mr, T::NR, 1.f, beta, !accumulate);
    else
      micro_kernel<T, AMode::rows>(k, a, lda, b, c, ldc, mr, T::NR, 1.f, beta, !accumulate);
  };
  auto is = [&]<class T>(T) { return tile.rows == T::MR && tile.cols == T::NR; };
  if constexpr (detail::simd_width >= 16) {
    if (is(detail::WideTile{})) return run(detail::WideTile{});
    if (is(detail::WideFewRows{})) return run(detail::WideFewRows{});
    if (is(detail::NarrowFewRows{})) return run(detail::NarrowFewRows{});
  }
  run(detail::NarrowTile{});
}

namespace detail {

// The loop nest of blocked_gemm<T> with A read in place through `tile(pc, kc, ir, bp,
// c_tile, beta_eff, overwrite)`, which runs the micro-kernel for rows [ir, ir + MR) of k slice
// [pc, pc + kc) against packed B panel bp. Same k slices, so the same bits as blocked_gemm.
template <class T, class TileFn>
void gathered_gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* b,
                   std::int64_t ldb, float beta, float* c, std::int64_t ldc, const TileFn& tile) {
  if (k <= 0 || alpha == 0.f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const std::int64_t kc_max = even_block(k, gemm_kc, 1);
  const std::int64_t n_panels = ceil_div(n, T::NR);
  float* bpack = scratch(slot_gemm_pack_b, static_cast<std::size_t>(kc_max * n));
  for (std::int64_t pc = 0; pc < k; pc += kc_max) {
    const std::int64_t kc = std::min(kc_max, k - pc);
    const bool overwrite = pc == 0 && beta == 0.f;
    const float beta_eff = pc == 0 ? beta : 1.f;
    for (std::int64_t jp = 0; jp < n_panels; ++jp)
      pack_b_panel<T>(false, b, ldb, n, 0, jp, pc, kc, bpack);
    for (std::int64_t jp = 0; jp < n_panels; ++jp)
      for (std::int64_t ir = 0; ir < m; ir += T::MR)
        tile(pc, kc, ir, bpack + jp * T::NR * kc, c + ir * ldc + jp * T::NR, beta_eff, overwrite);
  }
}

// Whether tile T covers n in whole panels on the blocked path (the products sgemm computes
// with the same k slices).
template <class T>
bool gathered_fits(std::int64_t m, std::int64_t n, std::int64_t k) {
  return m > 0 && n > 0 && k > 0 && m * n * k >= small_gemm_work && n % T::NR == 0 &&
         n <= T::NR * gemm_nc_panels;
}

bool gathered_supported(std::int64_t m, std::int64_t n, std::int64_t k) {
  return gathered_fits<GatherTile>(m, n, k);
}

// The gathered-rows product takes the wide tile where n is a multiple of its columns and,
// with AVX-512, the narrow one (14 x 32) where n is a multiple of 32 only (a first layer of
// 32 filters): any tile gives the same bits.
template <class Run>
void with_gather_rows_tile(std::int64_t n, const Run& run) {
  if constexpr (simd_width >= 16)
    if (n % WideTile::NR != 0) return run(NarrowTile{});
  run(GatherTile{});
}

}  // namespace detail

bool sgemm_gathered_rows_supported(std::int64_t m, std::int64_t n, std::int64_t k) {
  return detail::gathered_fits<detail::GatherTile>(m, n, k) ||
         (detail::simd_width >= 16 && detail::gathered_fits<detail::NarrowTile>(m, n, k));
}

void sgemm_gathered_rows(std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                         const float* const* rows, std::int64_t run, std::int64_t pitch,
                         const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  // Untransposed A: a short last panel repeats its last row (computed, not stored), as the
  // packed tail's zero rows are.
  detail::with_gather_rows_tile(n, [&]<class T>(T) {
    detail::gathered_gemm<T>(m, n, k, alpha, b, ldb, beta, c, ldc,
                             [&](std::int64_t pc, std::int64_t kc, std::int64_t ir, const float* bp,
                                 float* ct, float beta_eff, bool overwrite) {
                               const std::int64_t mr = std::min<std::int64_t>(T::MR, m - ir);
                               const float* panel[T::MR];
                               for (std::int64_t i = 0; i < T::MR; ++i)
                                 panel[i] = rows[ir + std::min(i, mr - 1)];
                               const std::int64_t off = (pc / run) * pitch + pc % run,
                                                  left = run - pc % run;
                               detail::micro_kernel<T, detail::AMode::gathered_rows>(
                                   kc, nullptr, off, bp, ct, ldc, mr, T::NR, alpha, beta_eff,
                                   overwrite, panel, run, pitch - run, left);
                             });
  });
}

bool sgemm_gathered_supported(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t run) {
  return detail::gathered_supported(m, n, k) && m % detail::GatherTile::MR == 0 &&
         run % detail::GatherTile::MR == 0;
}

void sgemm_gathered_at(std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                       const float* const* columns, std::int64_t run, std::int64_t pitch,
                       const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  // Transposed A: every MR-row panel of op(A) lies within one kernel row, so it is MR
  // contiguous floats of each column.
  using T = detail::GatherTile;
  detail::gathered_gemm<T>(m, n, k, alpha, b, ldb, beta, c, ldc,
                           [&](std::int64_t pc, std::int64_t kc, std::int64_t ir, const float* bp,
                               float* ct, float beta_eff, bool overwrite) {
                             const std::int64_t offset = (ir / run) * pitch + ir % run;
                             detail::micro_kernel<T, detail::AMode::gathered>(
                                 kc, nullptr, offset, bp, ct, ldc, T::MR, T::NR, alpha, beta_eff,
                                 overwrite, columns + pc);
                           });
}

}  // namespace xtape::kernels
