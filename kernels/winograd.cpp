// Winograd F(2x2, 3x3) (see winograd.hpp). With d a 4x4 input tile, g a 3x3 kernel and
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1],
// the 2x2 output tile is y = A^T [(G g G^T) .* (B^T d B)] A. Summed over input channels, the
// elementwise product becomes, for each of the 16 positions xi, a GEMM
//   M[xi] (tiles, cout) = V[xi] (tiles, cin) x U[xi] (cin, cout).
// The kernel gradient runs the same algebra backwards: dM = A dY A^T per output-gradient
// tile, dU[xi] = sum over tiles of V[xi]^T dM[xi], and the kernel's gradient is G^T dU G.
// Every transform is vectorised over channels (NHWC: contiguous), so channel counts are
// multiples of the SIMD width. Tiles overhanging the input read zeros; those overhanging the
// output are computed and dropped.
#include "kernels/winograd.hpp"

#include <algorithm>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/compare.hpp"
#include "kernels/gemm.hpp"
#include "kernels/parallel.hpp"
#include "kernels/partials.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels::winograd {

namespace {

using batch = xsimd::batch<float>;
constexpr std::int64_t simd_width = static_cast<std::int64_t>(batch::size);

std::int64_t tiles_h(const Conv2DGeometry& g) { return (g.out_h + 1) / 2; }
std::int64_t tiles_w(const Conv2DGeometry& g) { return (g.out_w + 1) / 2; }

// u from k (3, 3, cin, cout): t = G g (4x3), then t G^T (4x4). Each position's (cin, cout)
// matrix is stored as the GEMM tile's column panels: (cout / NR, cin, NR).
void transform(std::int64_t cin, std::int64_t cout, const float* k, float* u) {
  const batch half(0.5f);
  const std::int64_t plane = cin * cout, nr = sgemm_tile_for(cout).cols;
  for (std::int64_t co = 0; co < cout; co += simd_width)
    for (std::int64_t ci = 0; ci < cin; ++ci) {
      batch g[3][3];
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx)
          g[ky][kx] = batch::load_unaligned(k + (ky * 3 + kx) * plane + ci * cout + co);
      batch t[4][3];
      for (int kx = 0; kx < 3; ++kx) {
        t[0][kx] = g[0][kx];
        t[1][kx] = half * (g[0][kx] + g[1][kx] + g[2][kx]);
        t[2][kx] = half * (g[0][kx] - g[1][kx] + g[2][kx]);
        t[3][kx] = g[2][kx];
      }
      float* dst = u + (co / nr) * cin * nr + ci * nr + co % nr;
      for (int i = 0; i < 4; ++i) {
        t[i][0].store_unaligned(dst + (i * 4 + 0) * plane);
        (half * (t[i][0] + t[i][1] + t[i][2])).store_unaligned(dst + (i * 4 + 1) * plane);
        (half * (t[i][0] - t[i][1] + t[i][2])).store_unaligned(dst + (i * 4 + 2) * plane);
        t[i][2].store_unaligned(dst + (i * 4 + 3) * plane);
      }
    }
}

// V = B^T d B for the tile whose top-left input pixel is (iy0, ix0) of image `img`, written to
// dst[xi * stride + c] for every channel c.
void input_tile(const Conv2DGeometry& g, const float* img, std::int64_t iy0, std::int64_t ix0,
                float* dst, std::int64_t stride) {
  const std::int64_t C = g.cin;
  const float* rows[4];
  bool col_ok[4];
  for (int i = 0; i < 4; ++i) {
    const std::int64_t iy = iy0 + i;
    rows[i] = iy >= 0 && iy < g.h ? img + iy * g.w * C : nullptr;
    col_ok[i] = ix0 + i >= 0 && ix0 + i < g.w;
  }
  const batch zero(0.f);
  for (std::int64_t c = 0; c < C; c += simd_width) {
    batch d[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        d[i][j] = rows[i] != nullptr && col_ok[j]
                      ? batch::load_unaligned(rows[i] + (ix0 + j) * C + c)
                      : zero;
    batch e[4][4];  // B^T d
    for (int j = 0; j < 4; ++j) {
      e[0][j] = d[0][j] - d[2][j];
      e[1][j] = d[1][j] + d[2][j];
      e[2][j] = d[2][j] - d[1][j];
      e[3][j] = d[1][j] - d[3][j];
    }
    float* o = dst + c;
    for (int i = 0; i < 4; ++i) {  // (B^T d) B
      (e[i][0] - e[i][2]).store_unaligned(o + (i * 4 + 0) * stride);
      (e[i][1] + e[i][2]).store_unaligned(o + (i * 4 + 1) * stride);
      (e[i][2] - e[i][1]).store_unaligned(o + (i * 4 + 2) * stride);
      (e[i][1] - e[i][3]).store_unaligned(o + (i * 4 + 3) * stride);
    }
  }
}

// y = A^T M A for the tile at output (oy0, ox0) of image `img`, from m[xi * stride + k]; the
// epilogue (+ bias, scale-shift, relu) as conv.cpp applies it; pixels past the output are dropped.
void output_tile(const Conv2DGeometry& g, const float* m, std::int64_t stride, float* img,
                 std::int64_t oy0, std::int64_t ox0, const ConvEpilogue& ep) {
  const std::int64_t K = g.cout;
  const bool row2 = oy0 + 1 < g.out_h, col2 = ox0 + 1 < g.out_w;
  float* o00 = img + (oy0 * g.out_w + ox0) * K;
  float* o10 = o00 + g.out_w * K;
  for (std::int64_t k = 0; k < K; k += simd_width) {
    batch q[16];
    for (int xi = 0; xi < 16; ++xi) q[xi] = batch::load_unaligned(m + xi * stride + k);
    batch s0[4], s1[4];  // A^T M
    for (int j = 0; j < 4; ++j) {
      s0[j] = q[j] + q[4 + j] + q[8 + j];
      s1[j] = q[4 + j] - q[8 + j] - q[12 + j];
    }
    batch y[4] = {s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2],
                  s1[1] - s1[2] - s1[3]};
    if (ep.bias) {
      const batch b = batch::load_unaligned(ep.bias + k);
      for (auto& v : y) v += b;
    }
    if (ep.scale) {
      const batch a = batch::load_unaligned(ep.scale + k), b = batch::load_unaligned(ep.shift + k);
      for (auto& v : y) v = detail::fma(v, a, b);
    }
    if (ep.relu)
      for (auto& v : y) v = detail::relu(v);
    y[0].store_unaligned(o00 + k);
    if (col2) y[1].store_unaligned(o00 + K + k);
    if (row2) y[2].store_unaligned(o10 + k);
    if (row2 && col2) y[3].store_unaligned(o10 + K + k);
  }
}

// dM = A dY A^T for the tile at output (oy0, ox0) of gradient image `img` (pixels past the
// output read as zero): the transpose of output_tile. Value (xi, k) goes to
// dst[xi * stride + (k / nr) * panel + k % nr] (the column panels of a GEMM B operand).
void grad_output_tile(const Conv2DGeometry& g, const float* img, std::int64_t oy0, std::int64_t ox0,
                      float* dst, std::int64_t stride, std::int64_t nr, std::int64_t panel) {
  const std::int64_t K = g.cout;
  const bool row2 = oy0 + 1 < g.out_h, col2 = ox0 + 1 < g.out_w;
  const float* p00 = img + (oy0 * g.out_w + ox0) * K;
  const float* p10 = p00 + g.out_w * K;
  const batch zero(0.f);
  for (std::int64_t k = 0; k < K; k += simd_width) {
    const batch y00 = batch::load_unaligned(p00 + k);
    const batch y01 = col2 ? batch::load_unaligned(p00 + K + k) : zero;
    const batch y10 = row2 ? batch::load_unaligned(p10 + k) : zero;
    const batch y11 = row2 && col2 ? batch::load_unaligned(p10 + K + k) : zero;
    // r = A dY (4x2): rows dY0, dY0 + dY1, dY0 - dY1, -dY1; then r A^T: the same on columns.
    const batch r[4][2] = {
        {y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {zero - y10, zero - y11}};
    float* o = dst + (k / nr) * panel + k % nr;
    for (int i = 0; i < 4; ++i) {
      r[i][0].store_unaligned(o + (i * 4 + 0) * stride);
      (r[i][0] + r[i][1]).store_unaligned(o + (i * 4 + 1) * stride);
      (r[i][0] - r[i][1]).store_unaligned(o + (i * 4 + 2) * stride);
      (zero - r[i][1]).store_unaligned(o + (i * 4 + 3) * stride);
    }
  }
}

// grad_kernel (3, 3, cin, cout) = G^T dU G per channel pair, from du (16, cin, cout).
void transform_kernel_grad(std::int64_t cin, std::int64_t cout, const float* du,
                           float* grad_kernel) {
  const batch half(0.5f);
  const std::int64_t plane = cin * cout;
  for (std::int64_t ci = 0; ci < cin; ++ci)
    for (std::int64_t co = 0; co < cout; co += simd_width) {
      const float* src = du + ci * cout + co;
      batch d[4][4];
      for (int xi = 0; xi < 16; ++xi) d[xi / 4][xi % 4] = batch::load_unaligned(src + xi * plane);
      batch w[3][4];  // G^T dU: rows d0 + (d1 + d2) / 2, (d1 - d2) / 2, (d1 + d2) / 2 + d3
      for (int j = 0; j < 4; ++j) {
        w[0][j] = d[0][j] + half * (d[1][j] + d[2][j]);
        w[1][j] = half * (d[1][j] - d[2][j]);
        w[2][j] = half * (d[1][j] + d[2][j]) + d[3][j];
      }
      for (int ky = 0; ky < 3; ++ky) {  // (G^T dU) G: the same combinations of columns
        float* dst = grad_kernel + ky * 3 * plane + ci * cout + co;
        (w[ky][0] + half * (w[ky][1] + w[ky][2])).store_unaligned(dst);
        (half * (w[ky][1] - w[ky][2])).store_unaligned(dst + plane);
        (half * (w[ky][1] + w[ky][2]) + w[ky][3]).store_unaligned(dst + 2 * plane);
      }
    }
}

}  // namespace

bool supported(const Conv2DGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
         g.dil_w == 1 && g.pad_top >= 0 && g.pad_left >= 0 && g.cin >= 16 && g.cout >= 16 &&
         g.cin % simd_width == 0 && g.cout % sgemm_tile_for(g.cout).cols == 0 && g.out_h >= 2 &&
         g.out_w >= 2 && g.h >= 1 && g.w >= 1;
}

const float* transform_kernel(const Conv2DGeometry& g, const float* kernel) {
  float* u = scratch(slot_winograd_u, static_cast<std::size_t>(16 * g.cin * g.cout));
  transform(g.cin, g.cout, kernel, u);
  return u;
}

const float* transform_kernel_for_input_grad(const Conv2DGeometry& g, const float* kernel) {
  const std::int64_t cin = g.cin, cout = g.cout, plane = cin * cout;
  float* flipped = scratch(slot_winograd_tmp, static_cast<std::size_t>(9 * plane));
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx) {
      const float* src = kernel + ((2 - ky) * 3 + (2 - kx)) * plane;
      float* dst = flipped + (ky * 3 + kx) * plane;
      // In blocks of 16 input channels: each output row gets 16 contiguous values at a time.
      for (std::int64_t c0 = 0; c0 < cin; c0 += 16)
        for (std::int64_t co = 0; co < cout; ++co)
          for (std::int64_t ci = c0; ci < std::min(cin, c0 + 16); ++ci)
            dst[co * cin + ci] = src[ci * cout + co];
    }
  float* u = scratch(slot_winograd_u, static_cast<std::size_t>(16 * plane));
  transform(cout, cin, flipped, u);
  return u;
}

Conv2DGeometry input_grad_geometry(const Conv2DGeometry& g) {
  Conv2DGeometry r = g;
  r.h = g.out_h, r.w = g.out_w, r.cin = g.cout;
  r.out_h = g.h, r.out_w = g.w, r.cout = g.cin;
  r.pad_top = g.kh - 1 - g.pad_top, r.pad_left = g.kw - 1 - g.pad_left;
  return r;
}

void forward_images(const Conv2DGeometry& g, const float* input, const float* u, std::int64_t b0,
                    std::int64_t b1, float* output, const ConvEpilogue& ep) {
  const std::int64_t tw = tiles_w(g), per_image = tiles_h(g) * tw, C = g.cin, K = g.cout;
  const std::int64_t in_image = g.h * g.w * C, out_image = g.out_h * g.out_w * K;
  // One GEMM row panel of tiles at a time: its transformed input (16, MR, C) and products
  // (16, MR, K) stay in L1/L2 between the transforms and the register-tile products.
  const SgemmTile tile = sgemm_tile_for(K);
  const std::int64_t MR = tile.rows, NR = tile.cols, panels = K / NR;
  float* v = scratch(slot_winograd_v, static_cast<std::size_t>(16 * MR * C));
  float* m = scratch(slot_winograd_m, static_cast<std::size_t>(16 * MR * K));
  const std::int64_t T = (b1 - b0) * per_image;
  for (std::int64_t t0 = 0; t0 < T; t0 += MR) {
    const std::int64_t mr = std::min(MR, T - t0);
    for (std::int64_t i = 0; i < mr; ++i) {
      const std::int64_t t = t0 + i, b = b0 + t / per_image, ty = t % per_image / tw, tx = t % tw;
      input_tile(g, input + b * in_image, 2 * ty - g.pad_top, 2 * tx - g.pad_left, v + i * C,
                 MR * C);
    }
    if (mr < MR)  // rows past the last tile are computed and dropped: keep them finite
      for (int xi = 0; xi < 16; ++xi) std::fill(v + (xi * MR + mr) * C, v + (xi + 1) * MR * C, 0.f);
    for (int xi = 0; xi < 16; ++xi)
      for (std::int64_t jp = 0; jp < panels; ++jp)
        sgemm_tile_product(tile, C, v + xi * MR * C, C, false, u + (xi * panels + jp) * C * NR,
                           m + xi * MR * K + jp * NR, K, mr);
    for (std::int64_t i = 0; i < mr; ++i) {
      const std::int64_t t = t0 + i, b = b0 + t / per_image, ty = t % per_image / tw, tx = t % tw;
      output_tile(g, m + i * K, MR * K, output + b * out_image, 2 * ty, 2 * tx, ep);
    }
  }
}

namespace {

// The kernel gradient's work split: register tiles of input channels that divide C, their B
// panels (chunk x NR of dM) sized to the L1; dM is laid out in panels of the tile's columns.
// dU[xi] (C, K) = sum over tiles of V[xi]^T dM[xi]: register tiles of MR input channels,
// accumulated over `chunk` tiles at a time (the GEMM's k), in tile order, into `parts` partial
// sums over fixed ranges of images, the partials added in part order: the same bits for any
// thread count. Parts: about 16 images each, at most 32 of them and 4M floats.
struct KernelGradPlan {
  static constexpr std::int64_t chunk = 72;
  SgemmTile tile;
  std::int64_t parts, per_part;
};

KernelGradPlan kernel_grad_plan(const Conv2DGeometry& g) {
  const detail::PartialRanges ranges = detail::partial_ranges(g.n, 16, 16 * g.cin * g.cout);
  return {sgemm_tile_for_rows(g.cin, g.cout, KernelGradPlan::chunk), ranges.count, ranges.size};
}

// About half the flops of the direct convolution g, 2 * (n out_h out_w) * (9 cin) * cout: the
// work of its kernel gradient, or of its forward pass (the input gradient's, with g from
// input_grad_geometry).
double winograd_ns(const Conv2DGeometry& g) {
  return detail::flop_ns(9.0 * static_cast<double>(g.n * g.out_h * g.out_w) *
                         static_cast<double>(g.cin) * static_cast<double>(g.cout));
}

// Partial sum `part` of the plan into du (16, C, K), on the calling thread.
void kernel_grad_part(const Conv2DGeometry& g, const KernelGradPlan& plan, const float* input,
                      const float* grad_output, std::int64_t part, float* du) {
  const std::int64_t tw = tiles_w(g), per_image = tiles_h(g) * tw, C = g.cin, K = g.cout;
  const std::int64_t in_image = g.h * g.w * C, out_image = g.out_h * g.out_w * K, plane = C * K;
  const std::int64_t chunk = KernelGradPlan::chunk, MR = plan.tile.rows, NR = plan.tile.cols;
  const std::int64_t panels = K / NR;
  const std::int64_t first = part * plan.per_part * per_image;
  const std::int64_t last = std::min(g.n, (part + 1) * plan.per_part) * per_image;
  // The last row tile reads up to MR - 1 channels past the end of V: slack kept at zero.
  float* v = scratch(slot_winograd_v, static_cast<std::size_t>(16 * chunk * C + MR));
  float* m = scratch(slot_winograd_m, static_cast<std::size_t>(16 * chunk * K));
  std::fill(v + 16 * chunk * C, v + 16 * chunk * C + MR, 0.f);
  for (std::int64_t t0 = first; t0 < last; t0 += chunk) {
    const std::int64_t T = std::min(chunk, last - t0);
    for (std::int64_t i = 0; i < T; ++i) {
      const std::int64_t t = t0 + i, b = t / per_image, ty = t % per_image / tw, tx = t % tw;
      input_tile(g, input + b * in_image, 2 * ty - g.pad_top, 2 * tx - g.pad_left, v + i * C,
                 chunk * C);
      grad_output_tile(g, grad_output + b * out_image, 2 * ty, 2 * tx, m + i * NR, chunk * K, NR,
                       T * NR);
    }
    for (int xi = 0; xi < 16; ++xi)
      for (std::int64_t i0 = 0; i0 < C; i0 += MR)
        for (std::int64_t jp = 0; jp < panels; ++jp)
          sgemm_tile_product(plan.tile, T, v + xi * chunk * C + i0, C, true,
                             m + xi * chunk * K + jp * T * NR, du + xi * plane + i0 * K + jp * NR,
                             K, std::min(MR, C - i0), t0 != first);
  }
}

// The partials summed in part order (into the first), then G^T dU G into grad_kernel.
void finish_kernel_grad(const Conv2DGeometry& g, const KernelGradPlan& plan, float* partial,
                        float* grad_kernel) {
  detail::sum_partials(plan.parts, 16 * g.cin * g.cout, partial, partial);
  transform_kernel_grad(g.cin, g.cout, partial, grad_kernel);
}

}  // namespace

void backward_kernel(const Conv2DGeometry& g, const float* input, const float* grad_output,
                     float* grad_kernel) {
  const KernelGradPlan plan = kernel_grad_plan(g);
  const std::int64_t plane = g.cin * g.cout;
  float* partial = scratch(slot_winograd_u, static_cast<std::size_t>(plan.parts * 16 * plane));
  detail::RegionErrors errors;
  const int team = detail::parallel_team(winograd_ns(g), plan.parts);
  detail::parallel_for(team, plan.parts, [&](std::int64_t part) {
    errors.run(
        [&] { kernel_grad_part(g, plan, input, grad_output, part, partial + part * 16 * plane); });
  });
  errors.rethrow();
  finish_kernel_grad(g, plan, partial, grad_kernel);
}

void backward(const Conv2DGeometry& g, const float* input, const float* grad_output,
              const float* kernel, float* grad_input, float* grad_kernel) {
  const Conv2DGeometry gi = input_grad_geometry(g);
  const float* u = transform_kernel_for_input_grad(g, kernel);  // in slot_winograd_u
  const KernelGradPlan plan = kernel_grad_plan(g);
  const std::int64_t plane = g.cin * g.cout;
  // The flipped kernel in slot_winograd_tmp is no longer read: the partials take its place.
  float* partial = scratch(slot_winograd_tmp, static_cast<std::size_t>(plan.parts * 16 * plane));
  // The kernel gradient's parts first (the longest tasks), then the input gradient's groups of
  // input_grad_group images, handed out one at a time.
  const std::int64_t groups = (g.n + input_grad_group - 1) / input_grad_group;
  const std::int64_t tasks = plan.parts + groups;
  detail::RegionErrors errors;
  const int team = detail::parallel_team(winograd_ns(g) + winograd_ns(gi), tasks);
  detail::parallel_for(team, tasks, [&](std::int64_t t) {
    errors.run([&] {
      if (t < plan.parts) {
        kernel_grad_part(g, plan, input, grad_output, t, partial + t * 16 * plane);
      } else {
        const std::int64_t b0 = (t - plan.parts) * input_grad_group;
        forward_images(gi, grad_output, u, b0, std::min(g.n, b0 + input_grad_group), grad_input,
                       {});
      }
    });
  });
  errors.rethrow();
  finish_kernel_grad(g, plan, partial, grad_kernel);
}

}  // namespace xtape::kernels::winograd
