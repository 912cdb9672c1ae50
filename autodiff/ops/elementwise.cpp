// Elementwise primitives with NumPy broadcasting, and their backward rules.
#include "kernels/elementwise.hpp"

#include <cmath>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "kernels/activations.hpp"

namespace xtape {

using detail::Grads;
using detail::record;
using detail::saved;
using kernels::BinaryOp;
using kernels::UnaryOp;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    // NumPy: an extent of 1 stretches to the other (0 included); otherwise they must agree.
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " +
                                  shape_str(b) + " cannot be broadcast together (axis " +
                                  std::to_string(i) + ": " + std::to_string(da) + " vs " +
                                  std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Evaluates out = a (op) b with broadcasting. Dimensions are coalesced so the innermost loop is
// one contiguous kernel call whose operands each step by 0 or 1.
Tensor broadcast_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = detail::new_result(out_shape, name);
  if (out.size() == 0) return out;
  const std::size_t n = out_shape.size();
  if (a.shape() == b.shape()) {
    kernels::binary(op, out.size(), a.data(), 1, b.data(), 1, detail::mutable_data(out));
    return out;
  }
  if (b.size() == 1) {
    kernels::binary(op, out.size(), a.data(), 1, b.data(), 0, detail::mutable_data(out));
    return out;
  }
  if (a.size() == 1) {
    kernels::binary(op, out.size(), a.data(), 0, b.data(), 1, detail::mutable_data(out));
    return out;
  }
  // Element strides of a and b in the output's index space (0 on broadcast axes).
  auto strides_of = [&](const Shape& s) {
    std::vector<std::size_t> st(n, 0);
    std::size_t acc = 1;
    for (std::size_t k = s.size(); k-- > 0;) {
      const std::size_t axis = k + (n - s.size());
      st[axis] = s[k] == 1 ? 0 : acc;
      acc *= s[k];
    }
    return st;
  };
  std::vector<std::size_t> sa = strides_of(a.shape()), sb = strides_of(b.shape());
  // Coalesce axis i into i+1 when both operands stay linear across the pair.
  std::vector<std::size_t> ext, csa, csb;
  for (std::size_t i = 0; i < n; ++i) {
    if (out_shape[i] == 1) continue;
    if (!ext.empty() && csa.back() == sa[i] * out_shape[i] && csb.back() == sb[i] * out_shape[i]) {
      ext.back() *= out_shape[i];
      csa.back() = sa[i];
      csb.back() = sb[i];
    } else {
      ext.push_back(out_shape[i]);
      csa.push_back(sa[i]);
      csb.push_back(sb[i]);
    }
  }
  if (ext.empty()) {  // every extent is 1
    kernels::binary(op, 1, a.data(), 0, b.data(), 0, detail::mutable_data(out));
    return out;
  }
  const std::size_t inner = ext.back(), m = ext.size();
  if (m == 2) {  // e.g. a bias over the last axis: one 2-d kernel call (parallel over rows)
    kernels::binary_2d(op, ext[0], inner, a.data(), csa[0], csa[1], b.data(), csb[0], csb[1],
                       detail::mutable_data(out));
    return out;
  }
  if (m == 3) {  // e.g. per-image values over the pixels: one 2-d call per outer index
    for (std::size_t i = 0; i < ext[0]; ++i)
      kernels::binary_2d(op, ext[1], inner, a.data() + i * csa[0], csa[1], csa[2],
                         b.data() + i * csb[0], csb[1], csb[2],
                         detail::mutable_data(out) + i * ext[1] * inner);
    return out;
  }
  // Inner steps are 0 or 1 unless the innermost axis has a stride > 1 (cannot happen for the
  // last axis of a contiguous tensor, which always has stride 1 or 0).
  const std::size_t ia = csa.back(), ib = csb.back();
  const std::size_t outer = out.size() / inner;
  std::vector<std::size_t> idx(m, 0);
  std::size_t off_a = 0, off_b = 0;
  float* o = detail::mutable_data(out);
  for (std::size_t r = 0; r < outer; ++r) {
    kernels::binary(op, inner, a.data() + off_a, ia, b.data() + off_b, ib, o + r * inner);
    for (std::size_t k = m - 1; k-- > 0;) {  // odometer over the outer axes
      ++idx[k];
      off_a += csa[k];
      off_b += csb[k];
      if (idx[k] < ext[k]) break;
      off_a -= csa[k] * ext[k];
      off_b -= csb[k] * ext[k];
      idx[k] = 0;
    }
  }
  return out;
}

// [y > 0] as 1/0 (a constant): relu's derivative from its output.
Tensor positive_mask(const Tensor& y) {
  Tensor m = Tensor::empty(y.shape());
  const float* yv = y.data();
  float* o = detail::mutable_data(m);
  for (std::size_t i = 0, count = y.size(); i < count; ++i) o[i] = yv[i] > 0.f ? 1.f : 0.f;
  return m;
}

Tensor unary_values(UnaryOp op, const Tensor& x) {
  Tensor out = Tensor::empty(x.shape());
  kernels::unary(op, x.size(), x.data(), detail::mutable_data(out));
  return out;
}

}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  // A bias gradient from a pooling's deferred input gradient: summed in pooled form.
  if (!x.requires_grad() || !grad_enabled())
    if (Tensor sums = detail::pool_scatter_channel_sums(x, shape); sums.defined()) return sums;
  const Shape& xs = x.shape();
  if (shape.size() > xs.size())
    throw std::invalid_argument("sum_to: cannot reduce shape " + shape_str(xs) + " to " +
                                shape_str(shape));
  const std::size_t lead = xs.size() - shape.size();
  std::vector<int> axes;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<int>(i));
    } else if (shape[i - lead] != xs[i]) {
      if (shape[i - lead] != 1)
        throw std::invalid_argument("sum_to: cannot reduce shape " + shape_str(xs) + " to " +
                                    shape_str(shape));
      axes.push_back(static_cast<int>(i));
    }
  }
  // Through the recorded ops, so sum_to is differentiable like any other op.
  return reshape(sum(x, axes, true), std::vector<long>(shape.begin(), shape.end()));
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  // conv2d(...) + bias fuses into the convolution when its result was not read yet.
  Tensor out = detail::fuse_conv_bias(a, b);
  if (!out.defined()) out = detail::fuse_conv_bias(b, a);
  if (!out.defined()) out = broadcast_binary(BinaryOp::add, a, b, "add");
  const Shape sa = a.shape(), sb = b.shape();
  // d(a+b)/da = 1, d(a+b)/db = 1, summed over broadcast axes.
  return record(
      "add", out, {a, b},
      [sa, sb](const Tensor& g, Grads& grads) {
        if (grads.needs(0)) grads.add(0, sum_to(g, sa));
        if (grads.needs(1)) grads.add(1, sum_to(g, sb));
      },
      true);
}

Tensor operator-(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary(BinaryOp::sub, a, b, "subtract");
  const Shape sa = a.shape(), sb = b.shape();
  // d(a-b)/da = 1, d(a-b)/db = -1.
  return record(
      "subtract", out, {a, b},
      [sa, sb](const Tensor& g, Grads& grads) {
        if (grads.needs(0)) grads.add(0, sum_to(g, sa));
        if (grads.needs(1)) grads.add(1, sum_to(-g, sb));
      },
      true);
}

Tensor operator*(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary(BinaryOp::mul, a, b, "multiply");
  // The operands with their history (for create_graph; no cycle: they are inputs).
  const Tensor va = a, vb = b;
  // d(ab)/da = b, d(ab)/db = a.
  return record(
      "multiply", out, {a, b},
      [va, vb](const Tensor& g, Grads& grads) {
        if (grads.needs(0)) grads.add(0, sum_to(g * vb, va.shape()));
        if (grads.needs(1)) grads.add(1, sum_to(g * va, vb.shape()));
      },
      true);
}

Tensor operator/(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary(BinaryOp::div, a, b, "divide");
  const Tensor va = a, vb = b;
  const detail::SavedOutput vout(out);
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -(a/b)/b.
  return record(
      "divide", out, {a, b},
      [va, vb, vout](const Tensor& g, Grads& grads) {
        if (grads.needs(0)) grads.add(0, sum_to(g / vb, va.shape()));
        if (grads.needs(1)) grads.add(1, sum_to(-(g * vout.tensor() / vb), vb.shape()));
      },
      true);
}

Tensor operator+(const Tensor& a, float b) { return a + Tensor::scalar(b); }
Tensor operator-(const Tensor& a, float b) { return a - Tensor::scalar(b); }
Tensor operator*(const Tensor& a, float b) { return a * Tensor::scalar(b); }
Tensor operator/(const Tensor& a, float b) { return a / Tensor::scalar(b); }
Tensor operator+(float a, const Tensor& b) { return Tensor::scalar(a) + b; }
Tensor operator-(float a, const Tensor& b) { return Tensor::scalar(a) - b; }
Tensor operator*(float a, const Tensor& b) { return Tensor::scalar(a) * b; }
Tensor operator/(float a, const Tensor& b) { return Tensor::scalar(a) / b; }

Tensor operator-(const Tensor& a) {
  // d(-a)/da = -1.
  return record(
      "negative", unary_values(UnaryOp::neg, a), {a},
      [](const Tensor& g, Grads& grads) { grads.add(0, -g); }, true);
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_values(UnaryOp::sqrt, x);
  const detail::SavedOutput y(out);
  // d sqrt(x)/dx = 1 / (2 sqrt(x)).
  return record(
      "sqrt", out, {x}, [y](const Tensor& g, Grads& grads) { grads.add(0, g * 0.5f / y.tensor()); },
      true);
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_values(UnaryOp::exp, x);
  const detail::SavedOutput y(out);
  // d exp(x)/dx = exp(x).
  return record(
      "exp", out, {x}, [y](const Tensor& g, Grads& grads) { grads.add(0, g * y.tensor()); }, true);
}

Tensor log(const Tensor& x) {
  const Tensor vx = x;
  // d log(x)/dx = 1/x.
  return record(
      "log", unary_values(UnaryOp::log, x), {x},
      [vx](const Tensor& g, Grads& grads) { grads.add(0, g / vx); }, true);
}

Tensor pow(const Tensor& x, float p) {
  Tensor out = Tensor::empty(x.shape());
  kernels::pow_scalar(x.size(), x.data(), p, detail::mutable_data(out));
  const Tensor vx = x;
  // d x^p/dx = p x^(p-1) (pow again: differentiable to any order).
  return record(
      "pow", out, {x},
      [vx, p](const Tensor& g, Grads& grads) { grads.add(0, g * pow(vx, p - 1.f) * p); }, true);
}

Tensor abs(const Tensor& x) {
  const Tensor vx = saved(x);
  // d|x|/dx = sign(x) (0 at 0).
  return record(
      "abs", unary_values(UnaryOp::abs, x), {x},
      [vx](const Tensor& g, Grads& grads) {
        Tensor sign = Tensor::empty(vx.shape());
        const float* xv = vx.data();
        float* s = detail::mutable_data(sign);
        for (std::size_t i = 0, count = vx.size(); i < count; ++i)
          s[i] = static_cast<float>((xv[i] > 0.f) - (xv[i] < 0.f));
        grads.add(0, g * sign);  // the sign is piecewise constant: no history needed
      },
      true);
}

Tensor square(const Tensor& x) {
  const Tensor vx = x;
  // d x^2/dx = 2x.
  return record(
      "square", unary_values(UnaryOp::square, x), {x},
      [vx](const Tensor& g, Grads& grads) { grads.add(0, g * vx * 2.f); }, true);
}

Tensor relu(const Tensor& x) {
  // A conv2d result not read yet takes the relu into its epilogue.
  Tensor out = detail::fuse_conv_relu(x);
  if (!out.defined()) out = unary_values(UnaryOp::relu, x);
  // d relu(x)/dx = [x > 0] = [relu(x) > 0]: saving the output leaves x unread (and unfused
  // intermediate results never computed).
  const Tensor vy = saved(out);
  return record(
      "relu", out, {x},
      [vy](const Tensor& g, Grads& grads) {
        if (detail::creating_graph())  // g times the mask [y > 0], a constant
          return grads.add(0, g * positive_mask(vy));
        if (Tensor masked = detail::mask_pool_scatter(g, vy); masked.defined())
          return grads.add(0, masked);
        Tensor d = Tensor::empty(vy.shape());
        kernels::relu_backward(vy.size(), vy.data(), g.data(), detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_values(UnaryOp::sigmoid, x);
  const detail::SavedOutput vy(out);
  // d sigmoid(x)/dx = y (1 - y).
  return record(
      "sigmoid", out, {x},
      [vy](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {
          const Tensor y = vy.tensor();
          return grads.add(0, g * y * (1.f - y));
        }
        Tensor d = Tensor::empty(g.shape());
        const Tensor& y = vy.values();
        kernels::sigmoid_backward(y.size(), y.data(), g.data(), detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary_values(UnaryOp::tanh, x);
  const detail::SavedOutput vy(out);
  // d tanh(x)/dx = 1 - y^2.
  return record(
      "tanh", out, {x},
      [vy](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {
          const Tensor y = vy.tensor();
          return grads.add(0, g * (1.f - y * y));
        }
        Tensor d = Tensor::empty(g.shape());
        const Tensor& y = vy.values();
        kernels::tanh_backward(y.size(), y.data(), g.data(), detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

Tensor clip(const Tensor& x, float lo, float hi) {
  if (!(lo <= hi))
    throw std::invalid_argument("clip: lower bound " + std::to_string(lo) + " above upper bound " +
                                std::to_string(hi));
  Tensor out = Tensor::empty(x.shape());
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  for (std::size_t i = 0, count = x.size(); i < count; ++i)
    o[i] = std::min(std::max(xv[i], lo), hi);
  const Tensor vx = saved(x);
  // d clip(x)/dx = [lo <= x <= hi].
  return record(
      "clip", out, {x},
      [vx, lo, hi](const Tensor& g, Grads& grads) {
        Tensor mask = Tensor::empty(vx.shape());
        const float* xv = vx.data();
        float* m = detail::mutable_data(mask);
        for (std::size_t i = 0, count = vx.size(); i < count; ++i)
          m[i] = (xv[i] >= lo && xv[i] <= hi) ? 1.f : 0.f;
        if (detail::creating_graph()) return grads.add(0, g * mask);  // a constant mask
        Tensor d = Tensor::empty(vx.shape());
        kernels::masked_scale(vx.size(), m, g.data(), 1.f, detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

}  // namespace xtape

namespace xtape::detail {

Tensor broadcast_values(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  // x + 0 with broadcasting; the shapes check themselves.
  const Shape out = broadcast_shapes(x.shape(), shape, "broadcast_to");
  if (out != shape)
    throw std::invalid_argument("broadcast_to: shape " + shape_str(x.shape()) +
                                " does not broadcast to " + shape_str(shape));
  // The zeros span only the stretched axes (1 where x has the extent already), so the add reads
  // x and the small zeros once each and writes the result once.
  if (shape_size(shape) == 0) return Tensor::empty(shape);
  Shape zero_shape(shape.size(), 1);
  const std::size_t lead = shape.size() - x.ndim();
  for (std::size_t a = 0; a < shape.size(); ++a)
    if (a < lead || x.shape()[a - lead] != shape[a]) zero_shape[a] = shape[a];
  const Tensor zeros = Tensor::zeros(zero_shape);
  return broadcast_binary(BinaryOp::add, x, zeros, "broadcast_to");
}

}  // namespace xtape::detail
