// max_pool2d and avg_pool2d (NHWC, TensorFlow semantics) and their backward rules.
#include "kernels/pool.hpp"

#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "autodiff/ops/helpers.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace detail {
std::pair<std::size_t, std::size_t> conv_axis(std::size_t in, std::size_t window,
                                              std::size_t stride, std::size_t dilation,
                                              Padding padding, const char* op);
}

namespace {

kernels::Pool2DGeometry pool_geometry(const char* op, const Tensor& x, std::array<int, 2>& pool,
                                      std::array<int, 2>& strides, Padding padding) {
  const Shape& s = x.shape();
  if (s.size() != 4)
    throw std::invalid_argument(std::string(op) +
                                ": expected an input of rank 4 (batch, height, width, "
                                "channels), got shape " +
                                shape_str(s));
  if (padding == Padding::causal)
    throw std::invalid_argument(std::string(op) +
                                ": 'causal' padding is for 1-d convolutions only (expected "
                                "'valid' or 'same')");
  if (pool[0] <= 0 || pool[1] <= 0)
    throw std::invalid_argument(std::string(op) + ": pool size must be positive, got (" +
                                std::to_string(pool[0]) + ", " + std::to_string(pool[1]) + ")");
  if (strides[0] == 0 && strides[1] == 0) strides = pool;
  if (strides[0] <= 0 || strides[1] <= 0)
    throw std::invalid_argument(std::string(op) + ": strides must be positive, got (" +
                                std::to_string(strides[0]) + ", " + std::to_string(strides[1]) +
                                ")");
  const auto [oh, pt] = detail::conv_axis(s[1], static_cast<std::size_t>(pool[0]),
                                          static_cast<std::size_t>(strides[0]), 1, padding, op);
  const auto [ow, pl] = detail::conv_axis(s[2], static_cast<std::size_t>(pool[1]),
                                          static_cast<std::size_t>(strides[1]), 1, padding, op);
  if (padding == Padding::valid && (oh == 0 || ow == 0))
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(s) +
                                " is smaller than the pool window (" + std::to_string(pool[0]) +
                                ", " + std::to_string(pool[1]) + ") with 'valid' padding");
  kernels::Pool2DGeometry g;
  g.n = static_cast<std::int64_t>(s[0]);
  g.h = static_cast<std::int64_t>(s[1]);
  g.w = static_cast<std::int64_t>(s[2]);
  g.c = static_cast<std::int64_t>(s[3]);
  g.pool_h = pool[0];
  g.pool_w = pool[1];
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.pad_top = static_cast<std::int64_t>(pt);
  g.pad_left = static_cast<std::int64_t>(pl);
  g.out_h = static_cast<std::int64_t>(oh);
  g.out_w = static_cast<std::int64_t>(ow);
  return g;
}

}  // namespace

namespace detail {
namespace {

// The int32 view of an argmax tensor (int32 indices stored in a float buffer).
std::int32_t* int_view(const Tensor& t) {
  return reinterpret_cast<std::int32_t*>(const_cast<float*>(t.data()));
}

// The input gradient of max_pool2d, not yet scattered: grad_input = scatter of `go` at argmax.
struct PoolScatter final : Producer {
  kernels::Pool2DGeometry g;
  Tensor go, argmax;
  // The pooling's output and input (when known): relu's backward masks by the pooled values
  // (out[i] == input[argmax[i]]) instead of gathering from its input.
  Tensor pooled;
  std::weak_ptr<const Storage> source;
  void run(float* out) const override {
    kernels::max_pool2d_backward(g, go.data(), int_view(argmax), out);
  }
};

std::shared_ptr<const PoolScatter> pending_scatter(const Tensor& t) {
  auto p = std::dynamic_pointer_cast<const PoolScatter>(pending_producer(t));
  return p && t.shape().size() == 4 ? p : nullptr;
}

// The deferred input gradient of max_pool2d (pool geometry `g`, pooled gradient `go`).
Tensor defer_pool_scatter(const kernels::Pool2DGeometry& g, const Shape& input_shape,
                          const Tensor& go, const Tensor& argmax, const Tensor& pooled = Tensor(),
                          std::weak_ptr<const Storage> source = {}) {
  auto p = std::make_shared<PoolScatter>();
  p->g = g;
  p->go = saved(go);
  p->argmax = argmax;
  p->pooled = pooled;
  p->source = std::move(source);
  std::vector<Tensor> reads{p->go, p->argmax};
  return make_deferred(input_shape, std::move(p), reads);
}

}  // namespace

Tensor mask_pool_scatter(const Tensor& g, const Tensor& values) {
  const auto p = pending_scatter(g);
  if (!p || !values.defined() || values.shape() != g.shape()) return Tensor();
  Tensor masked = Tensor::empty(p->go.shape());
  const auto count = static_cast<std::int64_t>(masked.size());
  if (p->pooled.defined() &&
      p->source.lock() == values.impl()->storage)  // the pooled values are relu's
    kernels::max_pool2d_mask_positive_pooled(count, p->go.data(), p->pooled.data(),
                                             detail::mutable_data(masked));
  else
    kernels::max_pool2d_mask_positive(count, p->go.data(), int_view(p->argmax), values.data(),
                                      detail::mutable_data(masked));
  return defer_pool_scatter(p->g, g.shape(), masked, p->argmax);
}

std::shared_ptr<const Producer> pending_pool_grad(const Tensor& t, kernels::Pool2DGeometry& pool,
                                                  const float*& grad_pooled,
                                                  const std::int32_t*& argmax) {
  auto p = pending_scatter(t);
  if (!p) return nullptr;
  pool = p->g;
  grad_pooled = p->go.data();
  argmax = int_view(p->argmax);
  return p;
}

Tensor pool_scatter_channel_sums(const Tensor& x, const Shape& shape) {
  const auto p = pending_scatter(x);
  if (!p || !kernels::pooled_grad_rows_supported(p->g) ||
      !is_channel_vector(shape, 4, x.shape()[3]))
    return Tensor();
  Tensor sums = Tensor::zeros(shape);
  kernels::add_column_sums_pooled(p->g, p->go.data(), int_view(p->argmax),
                                  detail::mutable_data(sums));
  return sums;
}

}  // namespace detail

namespace {

// max_pool2d's gradient as a scatter of the pooled gradient to the argmax positions and the
// gather that is its adjoint, as primitives whose rules are each other: a gradient through a
// max pooling can be differentiated again (create_graph).
Tensor pool_gather(const Tensor& x, const Tensor& argmax, const kernels::Pool2DGeometry& g,
                   const Shape& pooled_shape);

Tensor pool_scatter(const Tensor& gy, const Tensor& argmax, const kernels::Pool2DGeometry& g,
                    const Shape& input_shape) {
  Tensor out = Tensor::empty(input_shape);
  kernels::max_pool2d_backward(g, gy.data(), detail::int_view(argmax), detail::mutable_data(out));
  const Shape ps = gy.shape();
  return record(
      "max_pool2d_backward", out, {gy},
      [argmax, g, ps](const Tensor& gg, Grads& grads) {
        grads.add(0, pool_gather(gg, argmax, g, ps));
      },
      true);
}

Tensor pool_gather(const Tensor& x, const Tensor& argmax, const kernels::Pool2DGeometry& g,
                   const Shape& pooled_shape) {
  Tensor out = Tensor::empty(pooled_shape);
  const std::int32_t* am = detail::int_view(argmax);
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  for (std::size_t i = 0, count = out.size(); i < count; ++i) o[i] = am[i] >= 0 ? xv[am[i]] : 0.f;
  const Shape xs = x.shape();
  return record(
      "max_pool2d_gather", out, {x},
      [argmax, g, xs](const Tensor& gg, Grads& grads) {
        grads.add(0, pool_scatter(gg, argmax, g, xs));
      },
      true);
}

// avg_pool2d's gradient (linear in the pooled gradient) and its adjoint, avg_pool2d itself.
Tensor avg_pool_forward(const Tensor& x, const kernels::Pool2DGeometry& g);

Tensor avg_pool_backward(const Tensor& gy, const kernels::Pool2DGeometry& g,
                         const Shape& input_shape) {
  Tensor out = Tensor::empty(input_shape);
  kernels::avg_pool2d_backward(g, gy.data(), detail::mutable_data(out));
  return record(
      "avg_pool2d_backward", out, {gy},
      [g](const Tensor& gg, Grads& grads) { grads.add(0, avg_pool_forward(gg, g)); }, true);
}

Tensor avg_pool_forward(const Tensor& x, const kernels::Pool2DGeometry& g) {
  Tensor out = Tensor::empty({x.shape()[0], static_cast<std::size_t>(g.out_h),
                              static_cast<std::size_t>(g.out_w), x.shape()[3]});
  kernels::avg_pool2d_forward(g, x.data(), detail::mutable_data(out));
  const Shape xs = x.shape();
  return record(
      "avg_pool2d", out, {x},
      [g, xs](const Tensor& gg, Grads& grads) { grads.add(0, avg_pool_backward(gg, g, xs)); },
      true);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int, 2> pool_size, std::array<int, 2> strides,
                  Padding padding) {
  const auto g = pool_geometry("max_pool2d", x, pool_size, strides, padding);
  const Shape out_shape{x.shape()[0], static_cast<std::size_t>(g.out_h),
                        static_cast<std::size_t>(g.out_w), x.shape()[3]};
  const Shape xs = x.shape();
  if (x.size() == 0)  // so is the result (no window has a position, or there are none)
    return record(
        "max_pool2d", Tensor::zeros(out_shape), {x},
        [xs](const Tensor&, Grads& grads) { grads.add(0, Tensor::zeros(xs)); }, true);
  Tensor out = Tensor::empty(out_shape);
  const bool track = detail::any_requires_grad({x});
  if (track && x.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::length_error("max_pool2d: an input of shape " + shape_str(xs) +
                            " has more than 2^31 - 1 elements; "
                            "the gradient's argmax indices are 32-bit");
  // The int32 argmax indices live in a tensor-sized buffer from the caching allocator (same
  // byte count as the output), so a training step maps no fresh pages for them.
  static_assert(sizeof(std::int32_t) == sizeof(float));
  const Tensor argmax = track ? Tensor::empty(out.shape()) : Tensor();
  std::int32_t* indices = track ? detail::int_view(argmax) : nullptr;
  // A pending convolution (conv2d [+ bias] [relu]) pools image by image as it is computed.
  if (!detail::fuse_conv_max_pool(x, g, detail::mutable_data(out), indices))
    kernels::max_pool2d_forward(g, x.data(), detail::mutable_data(out), indices);
  // The gradient goes to the (first) maximal element of each window. It is deferred: relu's
  // backward masks it in pooled form, and whatever reads it computes it.
  const Tensor pooled = detail::saved(out);
  std::weak_ptr<const detail::Storage> source = x.impl()->storage;
  return record(
      "max_pool2d", out, {x},
      [g, xs, argmax, pooled, source](const Tensor& go, Grads& grads) {
        if (detail::creating_graph()) return grads.add(0, pool_scatter(go, argmax, g, xs));
        grads.add(0, detail::defer_pool_scatter(g, xs, go, argmax, pooled, source));
      },
      true);
}

Tensor avg_pool2d(const Tensor& x, std::array<int, 2> pool_size, std::array<int, 2> strides,
                  Padding padding) {
  const auto g = pool_geometry("avg_pool2d", x, pool_size, strides, padding);
  const Shape out_shape{x.shape()[0], static_cast<std::size_t>(g.out_h),
                        static_cast<std::size_t>(g.out_w), x.shape()[3]};
  const Shape xs = x.shape();
  if (x.size() == 0)
    return record(
        "avg_pool2d", Tensor::zeros(out_shape), {x},
        [xs](const Tensor&, Grads& grads) { grads.add(0, Tensor::zeros(xs)); }, true);
  Tensor out = Tensor::empty(out_shape);
  kernels::avg_pool2d_forward(g, x.data(), detail::mutable_data(out));
  // Each window's gradient is shared evenly by its in-bounds elements.
  return record(
      "avg_pool2d", out, {x},
      [g, xs](const Tensor& go, Grads& grads) {
        if (detail::creating_graph()) return grads.add(0, avg_pool_backward(go, g, xs));
        Tensor gi = Tensor::empty(xs);
        kernels::avg_pool2d_backward(g, go.data(), detail::mutable_data(gi));
        grads.add(0, gi);
      },
      true);
}

}  // namespace xtape
