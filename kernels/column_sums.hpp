#pragma once
/// @file column_sums.hpp
/// The blocked, thread-count-independent column sum behind add_column_sums, over any source of
/// rows (row_cursors.hpp), so that a gradient read in pooled form sums to exactly the bits
/// add_column_sums gives on the written-out gradient. Internal to kernels/ (OpenMP, xsimd).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/parallel.hpp"
#include "kernels/workspace.hpp"

namespace xtape::kernels::detail {

/// out[j] += sum over rows of column j, the rows read through copies of the cursor `rows`
/// (row_cursors.hpp), one per block. Rows go in blocks of 256 (fixed: never depends on the
/// thread count); each block is summed in row order into a zeroed partial and the partials are
/// added to out in block order (a single block goes straight into out).
template <class Rows>
void blocked_column_sums(std::size_t rows, std::size_t cols, const Rows& cursor, float* out) {
  using batch = xsimd::batch<float>;
  constexpr std::size_t W = batch::size, row_block = 256;
  // Narrow rows (up to 4 vectors, the usual bias width) keep the running sums in registers:
  // the same additions in the same order as through memory.
  auto start = [&](std::size_t r0) {
    Rows cur = cursor;
    cur.seek(static_cast<std::int64_t>(r0));
    return cur;
  };
  auto add_rows_reg = [&]<std::size_t NV>(std::size_t r0, std::size_t r1, float* dst) {
    batch acc[NV];
    for (std::size_t k = 0; k < NV; ++k) acc[k] = batch::load_unaligned(dst + k * W);
    Rows cur = start(r0);
    for (std::size_t i = r0; i < r1; ++i, cur.advance())
      for (std::size_t k = 0; k < NV; ++k) acc[k] += cur.load(static_cast<std::int64_t>(k * W));
    for (std::size_t k = 0; k < NV; ++k) acc[k].store_unaligned(dst + k * W);
  };
  auto add_rows = [&](std::size_t r0, std::size_t r1, float* dst) {
    if (cols % W == 0) switch (cols / W) {
        case 1:
          return add_rows_reg.template operator()<1>(r0, r1, dst);
        case 2:
          return add_rows_reg.template operator()<2>(r0, r1, dst);
        case 3:
          return add_rows_reg.template operator()<3>(r0, r1, dst);
        case 4:
          return add_rows_reg.template operator()<4>(r0, r1, dst);
        default:
          break;
      }
    Rows cur = start(r0);
    for (std::size_t i = r0; i < r1; ++i, cur.advance()) {
      std::size_t j = 0;
      for (; j + W <= cols; j += W)
        (batch::load_unaligned(dst + j) + cur.load(static_cast<std::int64_t>(j)))
            .store_unaligned(dst + j);
      for (; j < cols; ++j) dst[j] += cur.at(static_cast<std::int64_t>(j));
    }
  };
  auto add_into = [](float* dst, const float* part, std::size_t j0, std::size_t j1) {
    std::size_t j = j0;
    for (; j + W <= j1; j += W)
      (batch::load_unaligned(dst + j) + batch::load_unaligned(part + j)).store_unaligned(dst + j);
    for (; j < j1; ++j) dst[j] += part[j];
  };
  const std::size_t blocks = (rows + row_block - 1) / row_block;
  if (blocks <= 1) return add_rows(0, rows, out);
  const int team = parallel_team(byte_ns(4.0 * static_cast<double>(rows * cols)),
                                 static_cast<std::int64_t>(blocks));
  if (team == 1) {  // the same blocked order, serially
    float* part = scratch(slot_reduce, cols);
    for (std::size_t blk = 0; blk < blocks; ++blk) {
      std::fill(part, part + cols, 0.f);
      add_rows(blk * row_block, std::min(rows, (blk + 1) * row_block), part);
      add_into(out, part, 0, cols);
    }
    return;
  }
  float* partial = scratch(slot_reduce, blocks * cols);
  parallel_for_static(team, blocks, [&](std::size_t blk) {
    float* part = partial + blk * cols;
    std::fill(part, part + cols, 0.f);
    add_rows(blk * row_block, std::min(rows, (blk + 1) * row_block), part);
  });
  // Fixed-order sum of the partials, parallel over column blocks.
  constexpr std::size_t col_block = 256;
  const std::size_t col_blocks = (cols + col_block - 1) / col_block;
  auto combine = [&](std::size_t cb) {
    const std::size_t j0 = cb * col_block, j1 = std::min(cols, j0 + col_block);
    for (std::size_t blk = 0; blk < blocks; ++blk) add_into(out, partial + blk * cols, j0, j1);
  };
  const int combine_team = parallel_team(byte_ns(4.0 * static_cast<double>(blocks * cols)),
                                         static_cast<std::int64_t>(col_blocks));
  parallel_for_static(combine_team, col_blocks, [&](std::size_t cb) { combine(cb); });
}

}  // namespace xtape::kernels::detail
