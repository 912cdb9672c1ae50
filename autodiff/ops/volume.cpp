// conv3d, max_pool3d and avg_pool3d (NDHWC, TensorFlow semantics) as compositions of the 2-d
// primitives: no backward code here, so they differentiate to any order.
#include <stdexcept>
#include <string>

#include "autodiff/ops/conv_internal.hpp"
#include "autodiff/ops/index_maps.hpp"

namespace xtape {

namespace {

std::string triple(std::array<int, 3> v) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "(" + std::to_string(...).
  std::string s = "(";
  for (std::size_t i = 0; i < 3; ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  return s + ")";
}

long as_long(std::size_t v) { return static_cast<long>(v); }

/// Output extent and leading pad of the three spatial axes of a (d, h, w) window over the
/// rank-5 input shape `is`; throws std::invalid_argument naming `op` for a bad geometry.
std::array<std::pair<std::size_t, std::size_t>, 3> volume_axes(
    const char* op, const Shape& is, std::array<std::size_t, 3> window, std::array<int, 3> strides,
    Padding padding, std::array<int, 3> dilation, const char* what) {
  if (is.size() != 5)
    throw std::invalid_argument(std::string(op) +
                                ": expected an input of rank 5 (batch, depth, height, width, "
                                "channels), got shape " +
                                shape_str(is));
  if (padding == Padding::causal)
    throw std::invalid_argument(std::string(op) +
                                ": 'causal' padding is for 1-d convolutions only (expected "
                                "'valid' or 'same')");
  for (int s : strides)
    if (s <= 0)
      throw std::invalid_argument(std::string(op) + ": strides must be positive, got " +
                                  triple(strides));
  for (int d : dilation)
    if (d <= 0)
      throw std::invalid_argument(std::string(op) + ": dilation must be positive, got " +
                                  triple(dilation));
  std::array<std::pair<std::size_t, std::size_t>, 3> axes;
  for (std::size_t i = 0; i < 3; ++i)
    axes[i] = detail::conv_axis(is[i + 1], window[i], static_cast<std::size_t>(strides[i]),
                                static_cast<std::size_t>(dilation[i]), padding, op);
  if (padding == Padding::valid && (axes[0].first == 0 || axes[1].first == 0 || axes[2].first == 0))
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(is) +
                                " is smaller than the " + what + " with 'valid' padding");
  return axes;
}

}  // namespace

Tensor conv3d(const Tensor& input, const Tensor& kernel, std::array<int, 3> strides,
              Padding padding, std::array<int, 3> dilation) {
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (ks.size() != 5)
    throw std::invalid_argument(
        "conv3d: expected a kernel of rank 5 (kd, kh, kw, in_channels, filters), got shape " +
        shape_str(ks));
  if (is.size() == 5 && is[4] != ks[3])
    throw std::invalid_argument("conv3d: input of shape " + shape_str(is) + " has " +
                                std::to_string(is[4]) + " channels but the kernel of shape " +
                                shape_str(ks) + " expects " + std::to_string(ks[3]));
  if (ks[0] == 0 || ks[1] == 0 || ks[2] == 0)
    throw std::invalid_argument("conv3d: a kernel window of extent 0 (kernel of shape " +
                                shape_str(ks) + ")");
  const std::string window = "(dilated) kernel of shape " + shape_str(ks);
  const auto axes =
      volume_axes("conv3d", is, {ks[0], ks[1], ks[2]}, strides, padding, dilation, window.c_str());
  const std::size_t n = is[0], d = is[1], h = is[2], w = is[3], cin = is[4];
  const std::size_t kd = ks[0], cout = ks[4];
  const std::size_t od = axes[0].first, front = axes[0].second;
  detail::checked_size({n, od, axes[1].first, axes[2].first, cout}, "conv3d");
  const auto sd = static_cast<std::int64_t>(strides[0]),
             dd = static_cast<std::int64_t>(dilation[0]);
  // Tap a of the depth axis reads depth o * sd + a * dd - front for output depth o (none when
  // outside the input). Taps that read no depth at all are dropped (their gradient is 0).
  auto source = [&](std::size_t o, std::size_t a) {
    return static_cast<std::int64_t>(o) * sd + static_cast<std::int64_t>(a) * dd -
           static_cast<std::int64_t>(front);
  };
  std::size_t first = kd, last = 0;
  for (std::size_t a = 0; a < kd; ++a)
    for (std::size_t o = 0; o < od; ++o)
      if (source(o, a) >= 0 && source(o, a) < static_cast<std::int64_t>(d)) {
        first = std::min(first, a);
        last = a;
        break;
      }
  if (first == kd) first = last = 0;  // every tap in the padding: one tap of zeros
  // The live taps' depth slices side by side in the channels, (n * od, h, w, taps * cin), against
  // the kernel as (kh, kw, taps * cin, cout): one 2-d convolution does the whole sum.
  std::vector<Tensor> slices;
  for (std::size_t a = first; a <= last; ++a) {
    auto maps = std::make_shared<detail::AxisMaps>();
    const Shape slice_shape{n, od, h, w, cin};
    if (shape_size(slice_shape) != 0) {
      maps->push_back(detail::identity_map(n));
      std::vector<std::int64_t> depth(od);
      for (std::size_t o = 0; o < od; ++o) {
        const std::int64_t s = source(o, a);
        depth[o] = s >= 0 && s < static_cast<std::int64_t>(d) ? s : -1;
      }
      maps->push_back(std::move(depth));
      for (std::size_t e : {h, w, cin}) maps->push_back(detail::identity_map(e));
    }
    slices.push_back(detail::axis_gather(input, maps, slice_shape, 0.f, "conv3d_depth_taps"));
  }
  const std::size_t taps = last - first + 1;
  const Tensor stacked = taps == 1 ? slices[0] : concat(slices, 4);
  const Tensor x4 =
      reshape(stacked, {as_long(n * od), as_long(h), as_long(w), as_long(taps * cin)});
  const Tensor live = taps == kd ? kernel
                                 : slice(kernel, 0, static_cast<std::int64_t>(first),
                                         static_cast<std::int64_t>(last + 1));
  const Tensor k4 = reshape(transpose(live, {1, 2, 0, 3, 4}),
                            {as_long(ks[1]), as_long(ks[2]), as_long(taps * cin), as_long(cout)});
  const Tensor y = conv2d(x4, k4, {strides[1], strides[2]}, padding, {dilation[1], dilation[2]});
  return reshape(
      y, {as_long(n), as_long(od), as_long(y.shape()[1]), as_long(y.shape()[2]), as_long(cout)});
}

namespace {

// A 3-d pooling as two 2-d ones: the (h, w) window over every depth slice, then the depth
// window over rows of (out_h * out_w * c). Max and mean both separate over a box window: the
// max of the per-slice maxima is the max (and its first position in (d, h, w) order is the one
// the gradient takes), and every slice of a window has the same count of in-bounds positions,
// so the mean of the per-slice means is the mean.
template <class Pool2D>
Tensor pool3d(const char* op, const Tensor& x, std::array<int, 3> pool, std::array<int, 3> strides,
              Padding padding, Pool2D pool2d) {
  for (int p : pool)
    if (p <= 0)
      throw std::invalid_argument(std::string(op) + ": pool size must be positive, got " +
                                  triple(pool));
  if (strides[0] == 0 && strides[1] == 0 && strides[2] == 0) strides = pool;
  const std::string window = "pool window " + triple(pool);
  const auto axes =
      volume_axes(op, x.shape(),
                  {static_cast<std::size_t>(pool[0]), static_cast<std::size_t>(pool[1]),
                   static_cast<std::size_t>(pool[2])},
                  strides, padding, {1, 1, 1}, window.c_str());
  const Shape& s = x.shape();
  const std::size_t n = s[0], d = s[1], c = s[4];
  const std::size_t od = axes[0].first, oh = axes[1].first, ow = axes[2].first;
  Tensor y = reshape(x, {as_long(n * d), as_long(s[2]), as_long(s[3]), as_long(c)});
  y = pool2d(y, {pool[1], pool[2]}, {strides[1], strides[2]}, padding);
  y = reshape(y, {as_long(n), as_long(d), 1, as_long(oh * ow * c)});
  y = pool2d(y, {pool[0], 1}, {strides[0], 1}, padding);
  return reshape(y, {as_long(n), as_long(od), as_long(oh), as_long(ow), as_long(c)});
}

}  // namespace

Tensor max_pool3d(const Tensor& x, std::array<int, 3> pool_size, std::array<int, 3> strides,
                  Padding padding) {
  return pool3d("max_pool3d", x, pool_size, strides, padding,
                [](const Tensor& t, std::array<int, 2> p, std::array<int, 2> st, Padding pd) {
                  return max_pool2d(t, p, st, pd);
                });
}

Tensor avg_pool3d(const Tensor& x, std::array<int, 3> pool_size, std::array<int, 3> strides,
                  Padding padding) {
  return pool3d("avg_pool3d", x, pool_size, strides, padding,
                [](const Tensor& t, std::array<int, 2> p, std::array<int, 2> st, Padding pd) {
                  return avg_pool2d(t, p, st, pd);
                });
}

}  // namespace xtape
