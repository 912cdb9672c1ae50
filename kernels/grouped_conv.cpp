// Grouped convolution (see grouped_conv.hpp). The im2col matrix has one row per output pixel
// and its columns group-major, (group, ky, kx, c) with c < cin / groups, so group i's patch
// matrix is the column block [i * Kg, (i + 1) * Kg) (Kg = kh * kw * cin / groups) read with row
// stride groups * Kg, its filters the column block [i * fg, (i + 1) * fg) of the (Kg, cout)
// kernel and of the output (row stride cout). Rows are processed in chunks whose size depends
// on the geometry only; the kernel gradient sums fixed row ranges into partials added in order.
#include "kernels/grouped_conv.hpp"

#include <algorithm>
#include <cstring>

#include "kernels/gemm.hpp"
#include "kernels/parallel.hpp"
#include "kernels/partials.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels {

namespace {

struct Groups {
  std::int64_t count, cg, fg, kg;  // groups, channels and filters per group, patch per group
};

Groups groups_of(const Conv2DGeometry& g, std::int64_t groups) {
  const std::int64_t cg = g.cin / groups;
  return {groups, cg, g.cout / groups, g.kh * g.kw * cg};
}

std::int64_t total_rows(const Conv2DGeometry& g) { return g.n * g.out_h * g.out_w; }

double conv_ns(const Conv2DGeometry& g, const Groups& gr) {
  return detail::flop_ns(2.0 * static_cast<double>(total_rows(g)) *
                         static_cast<double>(gr.kg * gr.count) * static_cast<double>(gr.fg));
}

bool is_pointwise(const Conv2DGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
         g.pad_left == 0 && g.out_h == g.h && g.out_w == g.w;
}

// Rows per chunk: about 64K floats of im2col (half an L2), at least 64 rows, at most 4M floats.
std::int64_t chunk_rows(const Conv2DGeometry& g) {
  const std::int64_t K = std::max<std::int64_t>(1, g.kh * g.kw * g.cin);
  const std::int64_t rows = std::clamp<std::int64_t>(65536 / K, 64, 8192) / 16 * 16;
  return std::max<std::int64_t>(1, std::min(rows, (std::int64_t{1} << 22) / K));
}

// col[r - r0] = the group-major patch of output pixel r, for r in [r0, r1).
void im2col_grouped(const Conv2DGeometry& g, const Groups& gr, const float* input, std::int64_t r0,
                    std::int64_t r1, float* col) {
  const std::int64_t K = gr.kg * gr.count, pix = g.out_h * g.out_w, cg = gr.cg;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t b = r / pix, oy = (r % pix) / g.out_w, ox = r % g.out_w;
    float* dst = col + (r - r0) * K;
    for (std::int64_t ky = 0; ky < g.kh; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
      for (std::int64_t kx = 0; kx < g.kw; ++kx) {
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
        const std::int64_t tap = (ky * g.kw + kx) * cg;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          for (std::int64_t q = 0; q < gr.count; ++q) std::fill_n(dst + q * gr.kg + tap, cg, 0.f);
          continue;
        }
        const float* src = input + ((b * g.h + iy) * g.w + ix) * g.cin;
        for (std::int64_t q = 0; q < gr.count; ++q)
          std::copy_n(src + q * cg, cg, dst + q * gr.kg + tap);
      }
    }
  }
}

// grad_input += the scatter of dcol rows [r0, r1) (the adjoint of im2col_grouped); the
// contributions to one element are added in increasing (row, ky, kx) order.
void col2im_grouped_add(const Conv2DGeometry& g, const Groups& gr, const float* dcol,
                        std::int64_t r0, std::int64_t r1, float* grad_input) {
  const std::int64_t K = gr.kg * gr.count, pix = g.out_h * g.out_w, cg = gr.cg;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t b = r / pix, oy = (r % pix) / g.out_w, ox = r % g.out_w;
    const float* src = dcol + (r - r0) * K;
    for (std::int64_t ky = 0; ky < g.kh; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
      if (iy < 0 || iy >= g.h) continue;
      for (std::int64_t kx = 0; kx < g.kw; ++kx) {
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
        if (ix < 0 || ix >= g.w) continue;
        const std::int64_t tap = (ky * g.kw + kx) * cg;
        float* dst = grad_input + ((b * g.h + iy) * g.w + ix) * g.cin;
        for (std::int64_t q = 0; q < gr.count; ++q) {
          const float* s = src + q * gr.kg + tap;
          float* d = dst + q * cg;
          for (std::int64_t c = 0; c < cg; ++c) d[c] += s[c];
        }
      }
    }
  }
}

}  // namespace

void grouped_conv2d_forward(const Conv2DGeometry& g, std::int64_t groups, const float* input,
                            const float* kernel, float* output) {
  const Groups gr = groups_of(g, groups);
  const std::int64_t M = total_rows(g), N = g.cout;
  if (M == 0 || N == 0) return;
  if (is_pointwise(g)) {
    for (std::int64_t q = 0; q < gr.count; ++q)
      sgemm(false, false, M, gr.fg, gr.cg, 1.f, input + q * gr.cg, g.cin, kernel + q * gr.fg, N,
            0.f, output + q * gr.fg, N);
    return;
  }
  const std::int64_t K = gr.kg * gr.count, R = chunk_rows(g), chunks = (M + R - 1) / R;
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g, gr), chunks);
  detail::parallel_for(team, chunks, [&](std::int64_t ch) {
    errors.run([&] {
      const std::int64_t r0 = ch * R, r1 = std::min(M, r0 + R);
      float* col = scratch(slot_conv_col, static_cast<std::size_t>((r1 - r0) * K));
      im2col_grouped(g, gr, input, r0, r1, col);
      for (std::int64_t q = 0; q < gr.count; ++q)
        sgemm(false, false, r1 - r0, gr.fg, gr.kg, 1.f, col + q * gr.kg, K, kernel + q * gr.fg, N,
              0.f, output + r0 * N + q * gr.fg, N);
    });
  });
  errors.rethrow();
}

void grouped_conv2d_backward_input(const Conv2DGeometry& g, std::int64_t groups,
                                   const float* grad_output, const float* kernel,
                                   float* grad_input) {
  const Groups gr = groups_of(g, groups);
  const std::int64_t M = total_rows(g), N = g.cout, image = g.h * g.w * g.cin;
  if (g.n == 0 || image == 0) return;
  if (M == 0 || N == 0) {
    std::fill(grad_input, grad_input + g.n * image, 0.f);
    return;
  }
  // dcol_q = grad_output_q (M, fg) x kernel_q^T (fg, Kg); grad_input = col2im(dcol).
  if (is_pointwise(g)) {
    for (std::int64_t q = 0; q < gr.count; ++q)
      sgemm(false, true, M, gr.cg, gr.fg, 1.f, grad_output + q * gr.fg, N, kernel + q * gr.fg, N,
            0.f, grad_input + q * gr.cg, g.cin);
    return;
  }
  const std::int64_t K = gr.kg * gr.count, R = chunk_rows(g), pix = g.out_h * g.out_w;
  // Whole images per task (independent scatter targets), their rows in order, R at a time.
  const std::int64_t group = std::max<std::int64_t>(1, 4 * R / std::max<std::int64_t>(1, pix));
  const std::int64_t tasks = (g.n + group - 1) / group;
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g, gr), tasks);
  detail::parallel_for(team, tasks, [&](std::int64_t t) {
    errors.run([&] {
      const std::int64_t b0 = t * group, b1 = std::min(g.n, b0 + group);
      std::fill(grad_input + b0 * image, grad_input + b1 * image, 0.f);
      float* dcol =
          scratch(slot_conv_col, static_cast<std::size_t>(std::min(R, (b1 - b0) * pix) * K));
      for (std::int64_t r0 = b0 * pix; r0 < b1 * pix; r0 += R) {
        const std::int64_t r1 = std::min(b1 * pix, r0 + R);
        for (std::int64_t q = 0; q < gr.count; ++q)
          sgemm(false, true, r1 - r0, gr.kg, gr.fg, 1.f, grad_output + r0 * N + q * gr.fg, N,
                kernel + q * gr.fg, N, 0.f, dcol + q * gr.kg, K);
        col2im_grouped_add(g, gr, dcol, r0, r1, grad_input);
      }
    });
  });
  errors.rethrow();
}

void grouped_conv2d_backward_kernel(const Conv2DGeometry& g, std::int64_t groups,
                                    const float* input, const float* grad_output,
                                    float* grad_kernel) {
  const Groups gr = groups_of(g, groups);
  const std::int64_t M = total_rows(g), N = g.cout, kn = gr.kg * N;
  if (kn == 0) return;
  if (M == 0) {
    std::fill(grad_kernel, grad_kernel + kn, 0.f);
    return;
  }
  // grad_kernel_q = col_q^T (Kg, M) x grad_output_q (M, fg) over fixed row ranges (~1K rows,
  // at most 32), each range's chunks accumulated in order, the ranges' partials added in order.
  const detail::PartialRanges ranges = detail::partial_ranges(M, 1024, kn);
  const std::int64_t parts = ranges.count, range = ranges.size;
  const std::int64_t K = gr.kg * gr.count, R = std::min(chunk_rows(g), range);
  const bool pointwise = is_pointwise(g);
  float* partial =
      parts == 1 ? grad_kernel : scratch(slot_conv_partial, static_cast<std::size_t>(parts * kn));
  detail::RegionErrors errors;
  const int team = detail::parallel_team(conv_ns(g, gr), parts);
  detail::parallel_for(team, parts, [&](std::int64_t part) {
    errors.run([&] {
      const std::int64_t p0 = part * range, p1 = std::min(M, p0 + range);
      float* out = partial + (parts == 1 ? 0 : part * kn);
      float* col = pointwise ? nullptr : scratch(slot_conv_col, static_cast<std::size_t>(R * K));
      for (std::int64_t r0 = p0; r0 < p1; r0 += R) {
        const std::int64_t r1 = std::min(p1, r0 + R);
        const float beta = r0 == p0 ? 0.f : 1.f;
        if (!pointwise) im2col_grouped(g, gr, input, r0, r1, col);
        for (std::int64_t q = 0; q < gr.count; ++q) {
          const float* a = pointwise ? input + r0 * g.cin + q * gr.cg : col + q * gr.kg;
          sgemm(true, false, gr.kg, gr.fg, r1 - r0, 1.f, a, pointwise ? g.cin : K,
                grad_output + r0 * N + q * gr.fg, N, beta, out + q * gr.fg, N);
        }
      }
    });
  });
  errors.rethrow();
  if (parts > 1) detail::sum_partials(parts, kn, partial, grad_kernel);
}

}  // namespace xtape::kernels
