#pragma once
/// @file partials.hpp
/// Fixed-order reductions through partial sums, shared by the convolution kernel gradients
/// (conv.cpp and winograd.cpp): the work is cut into ranges that depend on its size only, each
/// range is reduced into its own partial, and the partials are added in range order, so the
/// result is the same for any thread count. Internal to kernels/ (OpenMP, xsimd).
#include <algorithm>
#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/parallel.hpp"

namespace xtape::kernels::detail {

/// How `total` units are cut into ranges of partial sums: about `per_range` units each, at
/// most 32 ranges, and at most 4M floats (16 MiB) of partials of `partial_floats` each.
struct PartialRanges {
  std::int64_t count = 1, size = 0;  ///< ranges, and units per range (the last may be shorter)
};

inline PartialRanges partial_ranges(std::int64_t total, std::int64_t per_range,
                                    std::int64_t partial_floats) {
  std::int64_t count = std::clamp<std::int64_t>((total + per_range - 1) / per_range, 1, 32);
  count = std::max<std::int64_t>(
      1, std::min(count, (std::int64_t{1} << 22) / std::max<std::int64_t>(1, partial_floats)));
  const std::int64_t size = (total + count - 1) / count;
  return {size > 0 ? (total + size - 1) / size : 1, size};
}

/// out[i] = partial[0][i] + partial[1][i] + ... (the `count` partials of n floats, back to
/// back, added in order), parallel over blocks of elements. out may be partial itself.
inline void sum_partials(std::int64_t count, std::int64_t n, const float* partial, float* out) {
  using batch = xsimd::batch<float>;
  constexpr std::int64_t W = batch::size, block = 1024;
  const std::int64_t blocks = (n + block - 1) / block;
  const int team =
      count > 1 ? parallel_team(byte_ns(4.0 * static_cast<double>(count * n)), blocks) : 1;
  parallel_for_static(team, blocks, [&](std::int64_t blk) {
    const std::int64_t e0 = blk * block, e1 = std::min(n, e0 + block);
    if (out != partial) std::copy(partial + e0, partial + e1, out + e0);
    for (std::int64_t part = 1; part < count; ++part) {
      const float* src = partial + part * n;
      std::int64_t i = e0;
      for (; i + W <= e1; i += W)
        (batch::load_unaligned(out + i) + batch::load_unaligned(src + i)).store_unaligned(out + i);
      for (; i < e1; ++i) out[i] += src[i];
    }
  });
}

}  // namespace xtape::kernels::detail
