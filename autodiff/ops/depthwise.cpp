// depthwise_conv2d / depthwise_conv1d (Keras's DepthwiseConv2D / DepthwiseConv1D): each input
// channel convolved with its own `multiplier` filters. Three primitives of one geometry, each
// rule written through the others (as the convolution's), so gradients differentiate again.
#include "kernels/depthwise.hpp"

#include <stdexcept>
#include <string>

#include "autodiff/ops/conv_internal.hpp"
#include "autodiff/ops/helpers.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

Tensor dw_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g,
                   std::int64_t mult);
Tensor dw_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g,
                    std::int64_t mult);

// A depthwise forward not yet run (as conv2d's PendingConv): `+ bias` on a result nobody has
// read folds into it (detail::fuse_depthwise_bias), so the bias costs no pass over memory.
struct PendingDepthwise final : detail::Producer {
  kernels::Conv2DGeometry g;
  std::int64_t mult = 1;
  Tensor input, kernel, bias;  // detached handles: values only
  void run(float* out) const override {
    kernels::depthwise_conv2d_forward(g, mult, input.data(), kernel.data(), out,
                                      bias.defined() ? bias.data() : nullptr);
  }
};

Tensor defer(const Shape& shape, std::shared_ptr<PendingDepthwise> p) {
  std::vector<Tensor> reads{p->input, p->kernel, p->bias};
  return detail::make_deferred(shape, std::move(p), reads);
}

Tensor dw_forward(const Tensor& x, const Tensor& k, const kernels::Conv2DGeometry& g,
                  std::int64_t mult) {
  auto pending = std::make_shared<PendingDepthwise>();
  pending->g = g;
  pending->mult = mult;
  pending->input = detail::saved(x);
  pending->kernel = detail::saved(k);
  Tensor out = defer(detail::conv_out_shape(g), std::move(pending));
  return record(
      "depthwise_conv2d", out, {x, k},
      [x, k, g, mult](const Tensor& gy, Grads& grads) {
        if (grads.needs(0)) grads.add(0, dw_bp_input(gy, k, g, mult));
        if (grads.needs(1)) grads.add(1, dw_bp_kernel(x, gy, g, mult));
      },
      true);
}

Tensor dw_bp_input(const Tensor& gy, const Tensor& k, const kernels::Conv2DGeometry& g,
                   std::int64_t mult) {
  Tensor out = Tensor::empty({static_cast<std::size_t>(g.n), static_cast<std::size_t>(g.h),
                              static_cast<std::size_t>(g.w), static_cast<std::size_t>(g.cin)});
  kernels::depthwise_conv2d_backward_input(g, mult, gy.data(), k.data(), detail::mutable_data(out));
  return record(
      "depthwise_conv2d_backprop_input", out, {gy, k},
      [gy, k, g, mult](const Tensor& gg, Grads& grads) {
        if (grads.needs(0)) grads.add(0, dw_forward(gg, k, g, mult));
        if (grads.needs(1)) grads.add(1, dw_bp_kernel(gg, gy, g, mult));
      },
      true);
}

Tensor dw_bp_kernel(const Tensor& x, const Tensor& gy, const kernels::Conv2DGeometry& g,
                    std::int64_t mult) {
  Tensor out = Tensor::empty({static_cast<std::size_t>(g.kh), static_cast<std::size_t>(g.kw),
                              static_cast<std::size_t>(g.cin), static_cast<std::size_t>(mult)});
  kernels::depthwise_conv2d_backward_kernel(g, mult, x.data(), gy.data(),
                                            detail::mutable_data(out));
  return record(
      "depthwise_conv2d_backprop_kernel", out, {x, gy},
      [x, gy, g, mult](const Tensor& gg, Grads& grads) {
        if (grads.needs(0)) grads.add(0, dw_bp_input(gy, gg, g, mult));
        if (grads.needs(1)) grads.add(1, dw_forward(x, gg, g, mult));
      },
      true);
}

}  // namespace

Tensor detail::fuse_depthwise_bias(const Tensor& a, const Tensor& bias) {
  const auto p = std::dynamic_pointer_cast<const PendingDepthwise>(pending_producer(a));
  if (!p || p->bias.defined() || !bias.defined() || a.shape().empty() ||
      a.size() != static_cast<std::size_t>(p->g.n * p->g.out_h * p->g.out_w * p->g.cin * p->mult) ||
      !is_channel_vector(bias.shape(), a.shape().size(), a.shape().back()) ||
      a.shape().back() != static_cast<std::size_t>(p->g.cin * p->mult))
    return Tensor();
  auto fused = std::make_shared<PendingDepthwise>(*p);
  fused->bias = saved(bias);
  return defer(a.shape(), std::move(fused));
}

Tensor depthwise_conv2d(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides,
                        Padding padding, std::array<int, 2> dilation) {
  const char* op = "depthwise_conv2d";
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (ks.size() != 4)
    throw std::invalid_argument(std::string(op) +
                                ": expected a kernel of rank 4 (kh, kw, in_channels, "
                                "depth_multiplier), got shape " +
                                shape_str(ks));
  if (is.size() == 4 && is[3] != ks[2])
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(is) + " has " +
                                std::to_string(is[3]) + " channels but the kernel of shape " +
                                shape_str(ks) + " expects " + std::to_string(ks[2]));
  std::size_t cout = 0;
  if (__builtin_mul_overflow(ks[2], ks[3], &cout))
    throw std::length_error(std::string(op) + ": kernel of shape " + shape_str(ks) +
                            " has too many output channels");
  const kernels::Conv2DGeometry g =
      detail::conv_geometry(op, is, ks[0], ks[1], cout, strides, padding, dilation);
  const Shape out_shape = detail::conv_out_shape(g);
  if (input.size() == 0 || kernel.size() == 0 || shape_size(out_shape) == 0) {
    const Shape xs = is, kshape = ks;
    return record(
        op, Tensor::zeros(out_shape), {input, kernel},
        [xs, kshape](const Tensor&, Grads& grads) {
          if (grads.needs(0)) grads.add(0, Tensor::zeros(xs));
          if (grads.needs(1)) grads.add(1, Tensor::zeros(kshape));
        },
        true);
  }
  return dw_forward(input, kernel, g, static_cast<std::int64_t>(ks[3]));
}

Tensor depthwise_conv1d(const Tensor& input, const Tensor& kernel, int stride, Padding padding,
                        int dilation) {
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (is.size() != 3)
    throw std::invalid_argument(
        "depthwise_conv1d: expected an input of rank 3 (batch, steps, channels), got shape " +
        shape_str(is));
  if (ks.size() != 3)
    throw std::invalid_argument(
        "depthwise_conv1d: expected a kernel of rank 3 (k, in_channels, depth_multiplier), got "
        "shape " +
        shape_str(ks));
  const auto l = [](std::size_t v) { return static_cast<long>(v); };
  const Tensor y = depthwise_conv2d(reshape(input, {l(is[0]), 1, l(is[1]), l(is[2])}),
                                    reshape(kernel, {1, l(ks[0]), l(ks[1]), l(ks[2])}), {1, stride},
                                    padding, {1, dilation});
  return reshape(y, {l(is[0]), l(y.shape()[2]), l(y.shape()[3])});
}

}  // namespace xtape
