// conv2d and conv1d (NHWC / NWC, TensorFlow semantics) and their backward rules. The arithmetic
// lives in kernels/conv.cpp (grouped convolutions: kernels/grouped_conv.cpp); this file checks
// shapes, records the tape and routes gradients.
#include "kernels/conv.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "autodiff/ops/conv_internal.hpp"
#include "autodiff/ops/helpers.hpp"
#include "kernels/grouped_conv.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

Padding parse_padding(const std::string& name, const char* who) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "valid") return Padding::valid;
  if (lower == "same") return Padding::same;
  throw std::invalid_argument(std::string(who) + ": unknown padding '" + name +
                              "' (expected 'valid' or 'same')");
}

namespace detail {

/// A range of kernel taps along one axis: [first, first + count).
struct TapRange {
  std::int64_t first = 0, count = 0;
};

/// Output extent and leading pad of one spatial axis (TensorFlow's rules). Throws
/// std::length_error naming `op` when the extent or the dilated window reaches 2^62 (every
/// coordinate the kernels compute then fits a signed 64-bit integer).
std::pair<std::size_t, std::size_t> conv_axis(std::size_t in, std::size_t window,
                                              std::size_t stride, std::size_t dilation,
                                              Padding padding, const char* op) {
  constexpr std::size_t limit = std::size_t{1} << 62;
  std::size_t span;  // dilation * (window - 1): the dilated window's extent minus one
  if (window == 0 || __builtin_mul_overflow(dilation, window - 1, &span) || span >= limit)
    throw std::length_error(std::string(op) + ": a window of " + std::to_string(window) +
                            " taps with dilation " + std::to_string(dilation) +
                            " spans 2^62 positions or more");
  if (in >= limit)
    throw std::length_error(std::string(op) + ": a spatial extent of " + std::to_string(in) +
                            " is 2^62 or more");
  const std::size_t eff = span + 1;
  if (padding == Padding::causal)  // all the padding before: output t sees inputs <= t * stride
    return {in == 0 ? 0 : (in - 1) / stride + 1, span};
  if (padding == Padding::valid) {
    if (in < eff) return {0, 0};
    return {(in - eff) / stride + 1, 0};
  }
  const std::size_t out = in / stride + (in % stride != 0);
  if (out == 0) return {0, 0};
  const std::size_t needed = (out - 1) * stride + eff;
  const std::size_t pad_total = needed > in ? needed - in : 0;
  return {out, pad_total / 2};
}

/// The taps of one kernel axis that read the input for at least one output position: tap t
/// reads coordinates t * dil - pad + o * stride for o < out, live when they meet [0, in).
TapRange live_taps(std::int64_t in, std::int64_t out, std::int64_t window, std::int64_t stride,
                   std::int64_t dil, std::int64_t pad) {
  if (in == 0 || out == 0) return {0, 0};
  const std::int64_t low = pad - (out - 1) * stride;  // live taps have t * dil >= low
  const std::int64_t high = pad + in - 1;             // and t * dil <= high
  const std::int64_t first = low <= 0 ? 0 : (low + dil - 1) / dil;
  const std::int64_t last = high < 0 ? -1 : std::min(window - 1, high / dil);
  return {first, std::max<std::int64_t>(0, last - first + 1)};
}

/// kernel[rows, cols, :, :] (a copy, no tape) of a (kh, kw, cin, cout) kernel.
Tensor kernel_block(const Tensor& kernel, const TapRange& rows, const TapRange& cols) {
  const Shape& ks = kernel.shape();
  const std::size_t tap = ks[2] * ks[3], row = ks[1] * tap;
  const std::size_t run = static_cast<std::size_t>(cols.count) * tap,
                    skip = static_cast<std::size_t>(cols.first) * tap;
  Tensor block = Tensor::empty(
      {static_cast<std::size_t>(rows.count), static_cast<std::size_t>(cols.count), ks[2], ks[3]});
  const float* src = kernel.data();
  for (std::int64_t r = 0; r < rows.count; ++r)
    std::copy_n(src + static_cast<std::size_t>(rows.first + r) * row + skip, run,
                block.data() + r * run);
  return block;
}

/// The (kh, kw, cin, cout) tensor of shape `ks` that is `block` at [rows, cols] and 0 elsewhere.
Tensor embed_kernel_block(const Tensor& block, const Shape& ks, const TapRange& rows,
                          const TapRange& cols) {
  Tensor full(ks, 0.f);
  const std::size_t tap = ks[2] * ks[3], row = ks[1] * tap;
  const std::size_t run = static_cast<std::size_t>(cols.count) * tap,
                    skip = static_cast<std::size_t>(cols.first) * tap;
  for (std::int64_t r = 0; r < rows.count; ++r)
    std::copy_n(block.data() + r * run, run,
                full.data() + static_cast<std::size_t>(rows.first + r) * row + skip);
  return full;
}

namespace {

// A conv2d forward not yet run, with the epilogue ops fused into it so far. conv2d returns
// its result deferred; `+ bias` and relu on a result nobody has read extend the epilogue
// instead of making a pass over memory each, and the first read runs the whole chain once.
// Each fused op still records its own tape entry, so backward is unchanged; an intermediate
// result that is read after all computes on its own from the same inputs.
struct PendingConv final : Producer {
  kernels::Conv2DGeometry g;
  Tensor input, kernel, bias, scale, shift;  // detached handles: values only
  bool relu = false;
  kernels::ConvEpilogue epilogue() const {
    return {bias.defined() ? bias.data() : nullptr, relu, scale.defined() ? scale.data() : nullptr,
            shift.defined() ? shift.data() : nullptr};
  }
  void run(float* out) const override {
    kernels::conv2d_forward(g, input.data(), kernel.data(), out, epilogue());
  }
  std::size_t out_size() const {
    return static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout);
  }
};

std::shared_ptr<const PendingConv> pending_conv(const Tensor& t) {
  auto p = std::dynamic_pointer_cast<const PendingConv>(pending_producer(t));
  return p && t.size() == p->out_size() && !t.shape().empty() &&
                 t.shape().back() == static_cast<std::size_t>(p->g.cout)
             ? p
             : nullptr;
}

Tensor defer(const Shape& shape, std::shared_ptr<PendingConv> p) {
  std::vector<Tensor> reads{p->input, p->kernel, p->bias, p->scale, p->shift};
  return make_deferred(shape, std::move(p), reads);
}

}  // namespace

Tensor fuse_conv_bias(const Tensor& a, const Tensor& bias) {
  if (Tensor dw = fuse_depthwise_bias(a, bias); dw.defined()) return dw;
  const auto p = pending_conv(a);
  if (!p || p->bias.defined() || p->scale.defined() || p->relu || !bias.defined() ||
      !is_channel_vector(bias.shape(), a.shape().size(), static_cast<std::size_t>(p->g.cout)))
    return Tensor();
  auto fused = std::make_shared<PendingConv>(*p);
  fused->bias = saved(bias);
  return defer(a.shape(), std::move(fused));
}

Tensor fuse_conv_scale_shift(const Tensor& a, const Tensor& scale, const Tensor& shift) {
  const auto p = pending_conv(a);
  const std::size_t rank = a.shape().size(), cout = static_cast<std::size_t>(p ? p->g.cout : 0);
  if (!p || p->scale.defined() || p->relu || !scale.defined() || !shift.defined() ||
      !is_channel_vector(scale.shape(), rank, cout) ||
      !is_channel_vector(shift.shape(), rank, cout))
    return Tensor();
  auto fused = std::make_shared<PendingConv>(*p);
  fused->scale = saved(scale);
  fused->shift = saved(shift);
  return defer(a.shape(), std::move(fused));
}

Tensor fuse_conv_relu(const Tensor& a) {
  const auto p = pending_conv(a);
  if (!p || p->relu) return Tensor();
  auto fused = std::make_shared<PendingConv>(*p);
  fused->relu = true;
  return defer(a.shape(), std::move(fused));
}

bool fuse_conv_max_pool(const Tensor& x, const kernels::Pool2DGeometry& pool, float* out,
                        std::int32_t* argmax) {
  const auto p = pending_conv(x);
  // Only when no other handle shares the storage (a saved copy for a backward rule, as relu
  // keeps, would read it later and compute the convolution a second time).
  if (!p || x.impl()->storage.use_count() != 1) return false;
  const kernels::Conv2DGeometry& g = p->g;
  if (pool.n != g.n || pool.h != g.out_h || pool.w != g.out_w || pool.c != g.cout) return false;
  kernels::conv2d_max_pool2d_forward(g, p->input.data(), p->kernel.data(), p->epilogue(), pool, out,
                                     argmax);
  return true;
}

}  // namespace detail

namespace detail {

// The convolution and its two gradients as primitives of one geometry (kernel already reduced
// to its live taps), each with a backward rule written through the others, so a gradient of a
// convolution can be differentiated again (create_graph), to any order:
//   y  = conv(x, k)            dy -> dx = bp_input(dy, k),   dk = bp_kernel(x, dy)
//   gx = bp_input(gy, k)       (bilinear) dgx -> dgy = conv(dgx, k),  dk = bp_kernel(dgx, gy)
//   gk = bp_kernel(x, gy)      (bilinear) dgk -> dx = bp_input(gy, dgk), dgy = conv(x, dgk)
Shape conv_out_shape(const kernels::Conv2DGeometry& g) {
  return {static_cast<std::size_t>(g.n), static_cast<std::size_t>(g.out_h),
          static_cast<std::size_t>(g.out_w), static_cast<std::size_t>(g.cout)};
}

Tensor conv_eager(const Tensor& x, const Tensor& k, const kernels::Conv2DGeometry& g) {
  Tensor out = Tensor::empty(conv_out_shape(g));
  kernels::conv2d_forward(g, x.data(), k.data(), detail::mutable_data(out));
  return record(
      "conv2d", out, {x, k},
      [x, k, g](const Tensor& gy, Grads& grads) {
        if (grads.needs(0)) grads.add(0, conv_bp_input(gy, k, g));
        if (grads.needs(1)) grads.add(1, conv_bp_kernel(x, gy, g));
      },
      true);
}

Tensor conv_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g) {
  Tensor out = Tensor::empty({static_cast<std::size_t>(g.n), static_cast<std::size_t>(g.h),
                              static_cast<std::size_t>(g.w), static_cast<std::size_t>(g.cin)});
  kernels::conv2d_backward_input(g, gy.data(), k.data(), detail::mutable_data(out));
  return record(
      "conv2d_backprop_input", out, {gy, k},
      [gy, k, g](const Tensor& ggx, Grads& grads) {
        if (grads.needs(0)) grads.add(0, conv_eager(ggx, k, g));
        if (grads.needs(1)) grads.add(1, conv_bp_kernel(ggx, gy, g));
      },
      true);
}

Tensor conv_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g) {
  Tensor out = Tensor::empty({static_cast<std::size_t>(g.kh), static_cast<std::size_t>(g.kw),
                              static_cast<std::size_t>(g.cin), static_cast<std::size_t>(g.cout)});
  kernels::conv2d_backward_kernel(g, x.data(), gy.data(), detail::mutable_data(out));
  return record(
      "conv2d_backprop_kernel", out, {x, gy},
      [x, gy, g](const Tensor& ggk, Grads& grads) {
        if (grads.needs(0)) grads.add(0, conv_bp_input(gy, ggk, g));
        if (grads.needs(1)) grads.add(1, conv_eager(x, ggk, g));
      },
      true);
}

kernels::Conv2DGeometry conv_geometry(const char* op, const Shape& is, std::size_t kh,
                                      std::size_t kw, std::size_t cout, std::array<int, 2> strides,
                                      Padding padding, std::array<int, 2> dilation) {
  if (is.size() != 4)
    throw std::invalid_argument(std::string(op) +
                                ": expected an input of rank 4 (batch, height, width, channels), "
                                "got shape " +
                                shape_str(is));
  if (padding == Padding::causal)
    throw std::invalid_argument(std::string(op) +
                                ": 'causal' padding is for 1-d convolutions only (expected "
                                "'valid' or 'same')");
  for (int s : strides)
    if (s <= 0)
      throw std::invalid_argument(std::string(op) + ": strides must be positive, got (" +
                                  std::to_string(strides[0]) + ", " + std::to_string(strides[1]) +
                                  ")");
  for (int d : dilation)
    if (d <= 0)
      throw std::invalid_argument(std::string(op) + ": dilation must be positive, got (" +
                                  std::to_string(dilation[0]) + ", " + std::to_string(dilation[1]) +
                                  ")");
  if (kh == 0 || kw == 0)
    throw std::invalid_argument(std::string(op) + ": a kernel window of extent 0");
  const auto [oh, pt] = conv_axis(is[1], kh, static_cast<std::size_t>(strides[0]),
                                  static_cast<std::size_t>(dilation[0]), padding, op);
  const auto [ow, pl] = conv_axis(is[2], kw, static_cast<std::size_t>(strides[1]),
                                  static_cast<std::size_t>(dilation[1]), padding, op);
  if (padding == Padding::valid && (oh == 0 || ow == 0))
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(is) +
                                " is smaller than the (dilated) " + std::to_string(kh) + "x" +
                                std::to_string(kw) + " window with 'valid' padding");
  kernels::Conv2DGeometry g;
  g.n = static_cast<std::int64_t>(is[0]);
  g.h = static_cast<std::int64_t>(is[1]);
  g.w = static_cast<std::int64_t>(is[2]);
  g.cin = static_cast<std::int64_t>(is[3]);
  g.kh = static_cast<std::int64_t>(kh);
  g.kw = static_cast<std::int64_t>(kw);
  g.cout = static_cast<std::int64_t>(cout);
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.pad_top = static_cast<std::int64_t>(pt);
  g.pad_left = static_cast<std::int64_t>(pl);
  g.out_h = static_cast<std::int64_t>(oh);
  g.out_w = static_cast<std::int64_t>(ow);
  checked_size(conv_out_shape(g), op);
  return g;
}

}  // namespace detail

using detail::conv_bp_input;
using detail::conv_bp_kernel;

namespace {
Tensor conv2d_impl(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides,
                   std::array<Padding, 2> paddings, std::array<int, 2> dilation, int groups);
}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides,
              Padding padding, std::array<int, 2> dilation, int groups) {
  if (padding == Padding::causal)
    throw std::invalid_argument(
        "conv2d: 'causal' padding is for 1-d convolutions only (expected 'valid' or 'same')");
  return conv2d_impl(input, kernel, strides, {padding, padding}, dilation, groups);
}

namespace {

// The grouped convolution and its two gradients as primitives of one geometry (g.cin, g.cout
// the totals), each rule written through the others as the ungrouped ones' (conv_eager,
// conv_bp_input, conv_bp_kernel), so gradients differentiate again.
Tensor grouped_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g,
                        std::int64_t groups);
Tensor grouped_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g,
                         std::int64_t groups);

Tensor grouped_forward(const Tensor& x, const Tensor& k, const kernels::Conv2DGeometry& g,
                       std::int64_t groups) {
  Tensor out = Tensor::empty(detail::conv_out_shape(g));
  kernels::grouped_conv2d_forward(g, groups, x.data(), k.data(), detail::mutable_data(out));
  return record(
      "conv2d", out, {x, k},
      [x, k, g, groups](const Tensor& gy, Grads& grads) {
        if (grads.needs(0)) grads.add(0, grouped_bp_input(gy, k, g, groups));
        if (grads.needs(1)) grads.add(1, grouped_bp_kernel(x, gy, g, groups));
      },
      true);
}

Tensor grouped_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g,
                        std::int64_t groups) {
  Tensor out = Tensor::empty({static_cast<std::size_t>(g.n), static_cast<std::size_t>(g.h),
                              static_cast<std::size_t>(g.w), static_cast<std::size_t>(g.cin)});
  kernels::grouped_conv2d_backward_input(g, groups, gy.data(), k.data(), detail::mutable_data(out));
  return record(
      "conv2d_backprop_input", out, {gy, k},
      [gy, k, g, groups](const Tensor& gg, Grads& grads) {
        if (grads.needs(0)) grads.add(0, grouped_forward(gg, k, g, groups));
        if (grads.needs(1)) grads.add(1, grouped_bp_kernel(gg, gy, g, groups));
      },
      true);
}

Tensor grouped_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g,
                         std::int64_t groups) {
  Tensor out =
      Tensor::empty({static_cast<std::size_t>(g.kh), static_cast<std::size_t>(g.kw),
                     static_cast<std::size_t>(g.cin / groups), static_cast<std::size_t>(g.cout)});
  kernels::grouped_conv2d_backward_kernel(g, groups, x.data(), gy.data(),
                                          detail::mutable_data(out));
  return record(
      "conv2d_backprop_kernel", out, {x, gy},
      [x, gy, g, groups](const Tensor& gg, Grads& grads) {
        if (grads.needs(0)) grads.add(0, grouped_bp_input(gy, gg, g, groups));
        if (grads.needs(1)) grads.add(1, grouped_forward(x, gg, g, groups));
      },
      true);
}

Tensor conv2d_impl(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides,
                   std::array<Padding, 2> paddings, std::array<int, 2> dilation, int groups) {
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (is.size() != 4)
    throw std::invalid_argument(
        "conv2d: expected an input of rank 4 (batch, height, width, channels), "
        "got shape " +
        shape_str(is));
  if (ks.size() != 4)
    throw std::invalid_argument(
        "conv2d: expected a kernel of rank 4 (kh, kw, in_channels, filters), "
        "got shape " +
        shape_str(ks));
  if (groups <= 0)
    throw std::invalid_argument("conv2d: groups must be positive, got " + std::to_string(groups));
  const auto ng = static_cast<std::size_t>(groups);
  if (is[3] != ks[2] * ng)
    throw std::invalid_argument("conv2d: input of shape " + shape_str(is) + " has " +
                                std::to_string(is[3]) + " channels but the kernel of shape " +
                                shape_str(ks) + " expects " + std::to_string(ks[2]) +
                                (groups > 1 ? " x " + std::to_string(groups) + " groups" : ""));
  if (ks[3] % ng != 0)
    throw std::invalid_argument("conv2d: the kernel of shape " + shape_str(ks) + " has " +
                                std::to_string(ks[3]) + " filters, not divisible by " +
                                std::to_string(groups) + " groups");
  if (strides[0] <= 0 || strides[1] <= 0)
    throw std::invalid_argument("conv2d: strides must be positive, got (" +
                                std::to_string(strides[0]) + ", " + std::to_string(strides[1]) +
                                ")");
  if (dilation[0] <= 0 || dilation[1] <= 0)
    throw std::invalid_argument("conv2d: dilation must be positive, got (" +
                                std::to_string(dilation[0]) + ", " + std::to_string(dilation[1]) +
                                ")");
  if (ks[0] == 0 || ks[1] == 0)
    throw std::invalid_argument("conv2d: a kernel window of extent 0 (kernel of shape " +
                                shape_str(ks) + ")");
  const auto [oh, pt] =
      detail::conv_axis(is[1], ks[0], static_cast<std::size_t>(strides[0]),
                        static_cast<std::size_t>(dilation[0]), paddings[0], "conv2d");
  const auto [ow, pl] =
      detail::conv_axis(is[2], ks[1], static_cast<std::size_t>(strides[1]),
                        static_cast<std::size_t>(dilation[1]), paddings[1], "conv2d");
  if ((paddings[0] == Padding::valid && oh == 0) || (paddings[1] == Padding::valid && ow == 0))
    throw std::invalid_argument("conv2d: input of shape " + shape_str(is) +
                                " is smaller than the " + "(dilated) kernel of shape " +
                                shape_str(ks) + " with 'valid' padding");
  const Shape out_shape{is[0], oh, ow, ks[3]};
  detail::checked_size(out_shape, "conv2d");
  kernels::Conv2DGeometry g;
  g.n = static_cast<std::int64_t>(is[0]);
  g.h = static_cast<std::int64_t>(is[1]);
  g.w = static_cast<std::int64_t>(is[2]);
  g.cin = static_cast<std::int64_t>(is[3]);
  g.kh = static_cast<std::int64_t>(ks[0]);
  g.kw = static_cast<std::int64_t>(ks[1]);
  g.cout = static_cast<std::int64_t>(ks[3]);
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.pad_top = static_cast<std::int64_t>(pt);
  g.pad_left = static_cast<std::int64_t>(pl);
  g.out_h = static_cast<std::int64_t>(oh);
  g.out_w = static_cast<std::int64_t>(ow);
  // Taps that read only padding (a dilated window wider than the padded input) are dropped:
  // the kernels see the live block of the kernel, and the gradient is 0 elsewhere.
  const detail::TapRange rows =
      detail::live_taps(g.h, g.out_h, g.kh, g.stride_h, g.dil_h, g.pad_top);
  const detail::TapRange cols =
      detail::live_taps(g.w, g.out_w, g.kw, g.stride_w, g.dil_w, g.pad_left);
  const Shape kshape = ks;
  if (input.size() == 0 || kernel.size() == 0 || shape_size(out_shape) == 0 || rows.count == 0 ||
      cols.count == 0) {
    // Nothing to compute: an empty result, or sums of no terms (0 input channels, every tap in
    // the padding): zeros, and zero gradients.
    const Shape xs = is;
    return record(
        "conv2d", Tensor::zeros(out_shape), {input, kernel},
        [xs, kshape](const Tensor&, Grads& grads) {
          if (grads.needs(0)) grads.add(0, Tensor::zeros(xs));
          if (grads.needs(1)) grads.add(1, Tensor::zeros(kshape));
        },
        true);
  }
  if (groups > 1) return grouped_forward(input, kernel, g, groups);
  const bool pruned = rows.count != g.kh || cols.count != g.kw;
  const Tensor vi = detail::saved(input);
  const Tensor vk = pruned ? detail::kernel_block(kernel, rows, cols) : detail::saved(kernel);
  if (pruned) {
    g.kh = rows.count;
    g.kw = cols.count;
    g.pad_top -= rows.first * g.dil_h;
    g.pad_left -= cols.first * g.dil_w;
  }
  auto pending = std::make_shared<detail::PendingConv>();
  pending->g = g;
  pending->input = vi;
  pending->kernel = vk;
  Tensor out = detail::defer(out_shape, std::move(pending));
  // d/d input: transposed convolution of g with the kernel; d/d kernel: correlation of the
  // input with g (both in kernels/conv.cpp).
  // For create_graph: the operands with their history (inputs of the record: no cycle).
  const Tensor hi = input, hk = kernel;
  return record(
      "conv2d", out, {input, kernel},
      [vi, vk, hi, hk, g, pruned, rows, cols, kshape](const Tensor& go, Grads& grads) {
        if (detail::creating_graph()) {  // through the differentiable primitives
          // A pruned kernel: its live block, sliced and padded back with recorded
          // ops, so the taps that read only padding get a zero gradient.
          const auto r0 = static_cast<std::int64_t>(rows.first), r1 = r0 + rows.count;
          const auto c0 = static_cast<std::int64_t>(cols.first), c1 = c0 + cols.count;
          const Tensor kb = pruned ? slice(slice(hk, 0, r0, r1), 1, c0, c1) : hk;
          if (grads.needs(0)) grads.add(0, conv_bp_input(go, kb, g));
          if (grads.needs(1)) {
            Tensor gk = conv_bp_kernel(hi, go, g);
            if (pruned)
              gk = pad(gk, {{r0, static_cast<std::int64_t>(kshape[0]) - r1},
                            {c0, static_cast<std::int64_t>(kshape[1]) - c1},
                            {0, 0},
                            {0, 0}});
            grads.add(1, gk);
          }
          return;
        }
        // Under a max pool, a thin layer's kernel gradient reads the output gradient in
        // pooled form (never written out).
        kernels::Pool2DGeometry pool;
        const float* pooled = nullptr;
        const std::int32_t* argmax = nullptr;
        const auto keep =
            grads.needs(1) ? detail::pending_pool_grad(go, pool, pooled, argmax) : nullptr;
        const bool pooled_kernel_grad =
            keep && kernels::conv2d_backward_kernel_pooled_supported(g, pool);
        Tensor gi, gk;
        if (grads.needs(0)) gi = Tensor::empty(vi.shape());
        if (grads.needs(1)) gk = Tensor::empty(vk.shape());
        if (gi.defined() && gk.defined() && !pooled_kernel_grad) {  // both in one pass
          kernels::conv2d_backward(g, vi.data(), go.data(), vk.data(), detail::mutable_data(gi),
                                   detail::mutable_data(gk));
        } else {
          if (gi.defined())
            kernels::conv2d_backward_input(g, go.data(), vk.data(), detail::mutable_data(gi));
          if (gk.defined() && pooled_kernel_grad)
            kernels::conv2d_backward_kernel_pooled(g, vi.data(), pool, pooled, argmax,
                                                   detail::mutable_data(gk));
          else if (gk.defined())
            kernels::conv2d_backward_kernel(g, vi.data(), go.data(), detail::mutable_data(gk));
        }
        if (gi.defined()) grads.add(0, gi);
        if (gk.defined())
          grads.add(1, pruned ? detail::embed_kernel_block(gk, kshape, rows, cols) : gk);
      },
      true);
}

}  // namespace

Tensor conv1d(const Tensor& input, const Tensor& kernel, int stride, Padding padding, int dilation,
              int groups) {
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (is.size() != 3)
    throw std::invalid_argument(
        "conv1d: expected an input of rank 3 (batch, steps, channels), got shape " + shape_str(is));
  if (ks.size() != 3)
    throw std::invalid_argument(
        "conv1d: expected a kernel of rank 3 (k, in_channels, filters), got shape " +
        shape_str(ks));
  if (groups <= 0)
    throw std::invalid_argument("conv1d: groups must be positive, got " + std::to_string(groups));
  if (is[2] != ks[1] * static_cast<std::size_t>(groups))
    throw std::invalid_argument("conv1d: input of shape " + shape_str(is) + " has " +
                                std::to_string(is[2]) + " channels but the kernel of shape " +
                                shape_str(ks) + " expects " + std::to_string(ks[1]) +
                                (groups > 1 ? " x " + std::to_string(groups) + " groups" : ""));
  if (stride <= 0)
    throw std::invalid_argument("conv1d: stride must be positive, got " + std::to_string(stride));
  if (dilation <= 0)
    throw std::invalid_argument("conv1d: dilation must be positive, got " +
                                std::to_string(dilation));
  // A 1-d convolution is a 2-d one over a height of 1 (a composition: no backward code here).
  const auto l = [](std::size_t v) { return static_cast<long>(v); };
  Tensor x4 = reshape(input, {l(is[0]), 1, l(is[1]), l(is[2])});
  Tensor k4 = reshape(kernel, {1, l(ks[0]), l(ks[1]), l(ks[2])});
  // 'causal' pads the steps axis only, all before (the height of 1 takes 'valid').
  const Padding height = padding == Padding::causal ? Padding::valid : padding;
  Tensor y = conv2d_impl(x4, k4, {1, stride}, {height, padding}, {1, dilation}, groups);
  return reshape(y, {l(is[0]), l(y.shape()[2]), l(ks[2])});
}

}  // namespace xtape
