#pragma once
/// @file index_maps.hpp
/// The two index primitives behind the indexing and movement ops (not part of the public API).
/// Slicing, flipping, rolling, tiling, repeating, padding and take all pick, per axis, which
/// source index each result index reads: `axis_gather` with one map per axis. take_along_axis
/// picks by flat offset: `flat_gather`. Each gather's gradient is the matching scatter-add, and
/// the scatter-add's gradient is the gather again, so both are differentiable any number of times.
#include <cstdint>
#include <memory>
#include <vector>

#include "autodiff/ops/helpers.hpp"

namespace xtape::detail {

/// maps[d][o] is the index along axis d of x read by result index o on axis d, or -1 for
/// "no element" (the result holds `fill` there: constant padding).
using AxisMaps = std::vector<std::vector<std::int64_t>>;

/// out[o_0, ..., o_{n-1}] = x[maps[0][o_0], ..., maps[n-1][o_{n-1}]] (fill where an entry is
/// -1); maps[d] has out_shape[d] entries (the maps may be left empty when out_shape has no
/// elements). Records `op`; the gradient scatter-adds.
Tensor axis_gather(const Tensor& x, std::shared_ptr<const AxisMaps> maps, const Shape& out_shape,
                   float fill, const char* op);
/// The adjoint of axis_gather: a zero tensor of x_shape with g[o] added at each mapped position.
Tensor axis_scatter_add(const Tensor& g, std::shared_ptr<const AxisMaps> maps, const Shape& x_shape,
                        const char* op);

/// out (shape out_shape) [i] = x.flat[offsets[i]]. Records `op`; the gradient scatter-adds.
Tensor flat_gather(const Tensor& x, std::shared_ptr<const std::vector<std::size_t>> offsets,
                   const Shape& out_shape, const char* op);
/// The adjoint of flat_gather.
Tensor flat_scatter_add(const Tensor& g, std::shared_ptr<const std::vector<std::size_t>> offsets,
                        const Shape& x_shape, const char* op);

/// The identity map 0, 1, ..., n-1.
std::vector<std::int64_t> identity_map(std::size_t n);

/// `axis` (negative counts from the end) checked against rank `rank`; throws
/// std::invalid_argument naming `op` and `shape` otherwise.
int normalize_axis(int axis, std::size_t rank, const Shape& shape, const char* op);

}  // namespace xtape::detail
