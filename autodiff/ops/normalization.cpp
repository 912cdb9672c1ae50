// Statistics and scale-shift in one pass (the normalization layers' primitives), with their
// backward rules as compositions of ops.
#include "kernels/normalization.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "autodiff/ops_normalization.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

// x viewed as (outer, channels, inner) around the axes [lo, hi) of `shape`.
struct Block {
  std::size_t outer = 1, channels = 1, inner = 1;
};

Block block_of(const Shape& shape, std::size_t lo, std::size_t hi) {
  Block b;
  for (std::size_t i = 0; i < shape.size(); ++i)
    (i < lo ? b.outer : i < hi ? b.channels : b.inner) *= shape[i];
  return b;
}

std::vector<long> as_long(const Shape& s) { return std::vector<long>(s.begin(), s.end()); }

}  // namespace

std::pair<Tensor, Tensor> fused_moments(const Tensor& x, std::vector<int> axes, bool keepdims) {
  const std::vector<int> red = detail::normalize_axes(axes, x.shape(), "fused_moments");
  const Shape& s = x.shape();
  // The kept axes must be one contiguous block [lo, hi).
  std::vector<std::size_t> kept;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (std::find(red.begin(), red.end(), static_cast<int>(i)) == red.end()) kept.push_back(i);
  const bool contiguous = kept.empty() || kept.back() - kept.front() + 1 == kept.size();
  if (!contiguous || x.size() == 0) return moments(x, red, keepdims);
  const std::size_t lo = kept.empty() ? 0 : kept.front();
  const std::size_t hi = kept.empty() ? 0 : kept.back() + 1;
  const Block b = block_of(s, lo, hi);
  const Shape keep_shape = detail::reduced_shape(s, red, true);
  // Row 0 the means, row 1 the variances: one record for both statistics.
  Tensor stats = Tensor::empty({2, b.channels});
  float* st = detail::mutable_data(stats);
  kernels::channel_moments(b.outer, b.channels, b.inner, x.data(), st, st + b.channels);
  const Tensor vx = x;  // with its history, for create_graph (an input: no cycle)
  const double count = static_cast<double>(b.outer) * static_cast<double>(b.inner);
  const Tensor vmean = detail::view_as(slice_rows(stats, 0, 1), keep_shape);
  const std::vector<long> ks = as_long(keep_shape);
  const detail::SavedOutput vstats(stats);
  // d mean/dx = 1/N; d var/dx = 2 (x - mean) / N.
  stats = record(
      "fused_moments", stats, {x},
      [vx, vmean, vstats, ks, count, b](const Tensor& g, Grads& grads) {
        if (!detail::creating_graph()) {
          // dx = x * (2 gv / N) + (gm - 2 gv mean) / N per channel: one pass over x.
          const float* gd = g.data();
          const float* md = vmean.data();
          std::vector<float> c1(b.channels), c2(b.channels);
          for (std::size_t c = 0; c < b.channels; ++c) {
            const double gm = gd[c], gv = gd[b.channels + c];
            c1[c] = static_cast<float>(2.0 * gv / count);
            c2[c] = static_cast<float>((gm - 2.0 * gv * md[c]) / count);
          }
          Tensor dx = Tensor::empty(vx.shape());
          kernels::channel_scale_shift(b.outer, b.channels, b.inner, vx.data(), c1.data(),
                                       c2.data(), detail::mutable_data(dx));
          grads.add(0, dx);
          return;
        }
        const Tensor gm = reshape(slice_rows(g, 0, 1), ks), gv = reshape(slice_rows(g, 1, 2), ks);
        // Creating a graph: the mean with its history (from this record's own output).
        const Tensor m =
            detail::creating_graph() ? reshape(slice_rows(vstats.tensor(), 0, 1), ks) : vmean;
        grads.add(0, (gm + gv * (vx - m) * 2.f) * static_cast<float>(1.0 / count));
      },
      true);
  const Shape out_shape = detail::reduced_shape(s, red, keepdims);
  const std::vector<long> os = as_long(out_shape);
  return {reshape(slice_rows(stats, 0, 1), os), reshape(slice_rows(stats, 1, 2), os)};
}

Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  if (scale.shape() != shift.shape())
    throw std::invalid_argument("scale_shift: scale of shape " + shape_str(scale.shape()) +
                                " and shift of shape " + shape_str(shift.shape()) + " differ");
  if (broadcast_shapes(x.shape(), scale.shape(), "scale_shift") != x.shape())
    throw std::invalid_argument("scale_shift: scale of shape " + shape_str(scale.shape()) +
                                " does not broadcast to the input's shape " + shape_str(x.shape()));
  // Right-align scale's shape on x's and find the block of its extents other than 1.
  const Shape& s = x.shape();
  const std::size_t lead = s.size() - scale.ndim();
  std::optional<std::size_t> lo;
  std::size_t hi = 0;
  for (std::size_t i = 0; i < scale.ndim(); ++i)
    if (scale.shape()[i] != 1) {
      if (!lo) lo = lead + i;
      hi = lead + i + 1;
    }
  bool ok = true;
  if (lo)
    for (std::size_t i = *lo; i < hi; ++i) ok = ok && scale.shape()[i - lead] == s[i];
  if (!ok || x.size() == 0) return x * scale + shift;
  // A conv2d result not read yet takes the scale and shift into its epilogue (a batch
  // normalization in inference costs no pass of its own).
  const Block b = lo ? block_of(s, *lo, hi) : Block{1, 1, x.size()};
  Tensor out = detail::fuse_conv_scale_shift(x, scale, shift);
  if (!out.defined()) {
    out = Tensor::empty(s);
    kernels::channel_scale_shift(b.outer, b.channels, b.inner, x.data(), scale.data(), shift.data(),
                                 detail::mutable_data(out));
  }
  const Tensor vx = x, va = scale;  // with their history, for create_graph (inputs)
  const Shape ss = scale.shape();
  // d/dx = scale, d/dscale = x, d/dshift = 1 (summed over the broadcast axes).
  return record(
      "scale_shift", out, {x, scale, shift},
      [vx, va, ss, b](const Tensor& g, Grads& grads) {
        if (!detail::creating_graph() && (grads.needs(1) || grads.needs(2))) {
          // Both parameter gradients in one pass over g and x.
          Tensor sg = Tensor::empty(ss), sgx = Tensor::empty(ss);
          kernels::channel_grad_sums(b.outer, b.channels, b.inner, g.data(), vx.data(),
                                     detail::mutable_data(sg), detail::mutable_data(sgx));
          if (grads.needs(0)) grads.add(0, g * va);
          if (grads.needs(1)) grads.add(1, sgx);
          if (grads.needs(2)) grads.add(2, sg);
          return;
        }
        if (grads.needs(0)) grads.add(0, g * va);
        if (grads.needs(1)) grads.add(1, sum_to(g * vx, ss));
        if (grads.needs(2)) grads.add(2, sum_to(g, ss));
      },
      true);
}

}  // namespace xtape
