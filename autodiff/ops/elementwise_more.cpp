// Selection, comparisons and more unary functions (autodiff/ops_elementwise.hpp), with their
// backward rules written as compositions of ops.
#include <cmath>
#include <limits>
#include <utility>

#include "autodiff/ops/helpers.hpp"
#include "autodiff/ops_elementwise.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

// Values of x broadcast to `shape` (x itself when the shapes agree); no tape.
Tensor expanded(const Tensor& x, const Shape& shape) { return detail::broadcast_values(x, shape); }

// out[i] = f(a[i], b[i]) over the broadcast shape, the shape error naming `op`.
template <class F>
Tensor map_binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = detail::new_result(shape, op);
  if (out.size() == 0) return out;
  const Tensor ea = expanded(a, shape), eb = expanded(b, shape);
  const float* av = std::as_const(ea).data();
  const float* bv = std::as_const(eb).data();
  float* o = detail::mutable_data(out);
  for (std::size_t i = 0, count = out.size(); i < count; ++i) o[i] = f(av[i], bv[i]);
  return out;
}

template <class F>
Tensor map_unary(const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape());
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  for (std::size_t i = 0, count = x.size(); i < count; ++i) o[i] = f(xv[i]);
  return out;
}

// maximum / minimum: `first(a, b)` is true where a is the selected input. The gradient
// weights of a and b are computed with the values (only when a gradient is needed).
template <class Pick>
Tensor select_binary(const Tensor& a, const Tensor& b, const char* op, Pick first) {
  Tensor out = map_binary(a, b, op, [first](float x, float y) {
    if (std::isnan(x)) return x;
    if (std::isnan(y)) return y;
    return first(x, y) ? x : y;
  });
  if (!detail::any_requires_grad({a, b})) return out;
  // Weight of a: 1 where a is selected or NaN (and b is not NaN), 1/2 on ties, 0 elsewhere;
  // the weight of b mirrors it (both NaN: both get the gradient).
  Tensor wa = map_binary(a, b, op, [first](float x, float y) {
    if (std::isnan(x)) return 1.f;
    if (std::isnan(y)) return 0.f;
    return x == y ? 0.5f : (first(x, y) ? 1.f : 0.f);
  });
  Tensor wb = map_binary(a, b, op, [first](float x, float y) {
    if (std::isnan(y)) return 1.f;
    if (std::isnan(x)) return 0.f;
    return x == y ? 0.5f : (first(x, y) ? 0.f : 1.f);
  });
  const Shape sa = a.shape(), sb = b.shape();
  // d max(a, b)/da = [a selected] (1/2 on ties), d/db likewise.
  return record(
      op, out, {a, b},
      [wa, wb, sa, sb](const Tensor& g, Grads& grads) {
        if (grads.needs(0)) grads.add(0, sum_to(g * wa, sa));
        if (grads.needs(1)) grads.add(1, sum_to(g * wb, sb));
      },
      true);
}

template <class Cmp>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, Cmp cmp) {
  return map_binary(a, b, op, [cmp](float x, float y) { return cmp(x, y) ? 1.f : 0.f; });
}

// A function whose derivative is zero wherever it exists (sign, floor, round).
Tensor zero_gradient(const char* op, Tensor out, const Tensor& x) {
  const Shape s = x.shape();
  // d f(x)/dx = 0.
  return record(
      op, std::move(out), {x}, [s](const Tensor&, Grads& grads) { grads.add(0, Tensor::zeros(s)); },
      true);
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return select_binary(a, b, "maximum", [](float x, float y) { return x > y; });
}
Tensor maximum(const Tensor& a, float b) { return maximum(a, Tensor::scalar(b)); }
Tensor maximum(float a, const Tensor& b) { return maximum(Tensor::scalar(a), b); }

Tensor minimum(const Tensor& a, const Tensor& b) {
  return select_binary(a, b, "minimum", [](float x, float y) { return x < y; });
}
Tensor minimum(const Tensor& a, float b) { return minimum(a, Tensor::scalar(b)); }
Tensor minimum(float a, const Tensor& b) { return minimum(Tensor::scalar(a), b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = detail::new_result(shape, "where");
  Tensor mask = detail::new_result(shape, "where");
  if (out.size() != 0) {
    const Tensor ec = expanded(cond, shape), ea = expanded(a, shape), eb = expanded(b, shape);
    const float* c = std::as_const(ec).data();
    const float* av = std::as_const(ea).data();
    const float* bv = std::as_const(eb).data();
    float* o = detail::mutable_data(out);
    float* m = detail::mutable_data(mask);
    for (std::size_t i = 0, count = out.size(); i < count; ++i) {
      const bool take_a = c[i] != 0.f;  // NaN != 0: true
      o[i] = take_a ? av[i] : bv[i];
      m[i] = take_a ? 1.f : 0.f;
    }
  }
  const Shape sa = a.shape(), sb = b.shape();
  // d where(c, a, b)/da = [c], d/db = [!c]; the condition gets no gradient.
  return record(
      "where", out, {Tensor(), a, b},
      [mask, sa, sb](const Tensor& g, Grads& grads) {
        if (grads.needs(1)) grads.add(1, sum_to(g * mask, sa));
        if (grads.needs(2)) grads.add(2, sum_to(g * (1.f - mask), sb));
      },
      true);
}

Tensor equal(const Tensor& a, const Tensor& b) {
  return compare(a, b, "equal", [](float x, float y) { return x == y; });
}
Tensor not_equal(const Tensor& a, const Tensor& b) {
  return compare(a, b, "not_equal", [](float x, float y) { return x != y; });
}
Tensor less(const Tensor& a, const Tensor& b) {
  return compare(a, b, "less", [](float x, float y) { return x < y; });
}
Tensor less_equal(const Tensor& a, const Tensor& b) {
  return compare(a, b, "less_equal", [](float x, float y) { return x <= y; });
}
Tensor greater(const Tensor& a, const Tensor& b) {
  return compare(a, b, "greater", [](float x, float y) { return x > y; });
}
Tensor greater_equal(const Tensor& a, const Tensor& b) {
  return compare(a, b, "greater_equal", [](float x, float y) { return x >= y; });
}
Tensor equal(const Tensor& a, float b) { return equal(a, Tensor::scalar(b)); }
Tensor not_equal(const Tensor& a, float b) { return not_equal(a, Tensor::scalar(b)); }
Tensor less(const Tensor& a, float b) { return less(a, Tensor::scalar(b)); }
Tensor less_equal(const Tensor& a, float b) { return less_equal(a, Tensor::scalar(b)); }
Tensor greater(const Tensor& a, float b) { return greater(a, Tensor::scalar(b)); }
Tensor greater_equal(const Tensor& a, float b) { return greater_equal(a, Tensor::scalar(b)); }

Tensor sin(const Tensor& x) {
  const Tensor vx = x;  // with its history, for create_graph
  // d sin(x)/dx = cos(x).
  return record(
      "sin", map_unary(x, [](float v) { return std::sin(v); }), {x},
      [vx](const Tensor& g, Grads& grads) { grads.add(0, g * cos(vx)); }, true);
}

Tensor cos(const Tensor& x) {
  const Tensor vx = x;  // with its history, for create_graph
  // d cos(x)/dx = -sin(x).
  return record(
      "cos", map_unary(x, [](float v) { return std::cos(v); }), {x},
      [vx](const Tensor& g, Grads& grads) { grads.add(0, -(g * sin(vx))); }, true);
}

Tensor log1p(const Tensor& x) {
  const Tensor vx = x;  // with its history, for create_graph
  // d log(1 + x)/dx = 1 / (1 + x).
  return record(
      "log1p", map_unary(x, [](float v) { return std::log1p(v); }), {x},
      [vx](const Tensor& g, Grads& grads) { grads.add(0, g / (vx + 1.f)); }, true);
}

Tensor expm1(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::expm1(v); });
  const detail::SavedOutput y(out);
  // d (exp(x) - 1)/dx = exp(x) = y + 1.
  return record(
      "expm1", out, {x},
      [y](const Tensor& g, Grads& grads) { grads.add(0, g * (y.tensor() + 1.f)); }, true);
}

Tensor erf(const Tensor& x) {
  const Tensor vx = x;  // with its history, for create_graph
  // d erf(x)/dx = 2/sqrt(pi) exp(-x^2).
  return record(
      "erf", map_unary(x, [](float v) { return std::erf(v); }), {x},
      [vx](const Tensor& g, Grads& grads) {
        grads.add(0, g * exp(-square(vx)) * 1.1283791670955126f);
      },
      true);
}

Tensor sign(const Tensor& x) {
  return zero_gradient("sign",
                       map_unary(x,
                                 [](float v) {
                                   if (std::isnan(v)) return v;
                                   return static_cast<float>((v > 0.f) - (v < 0.f));
                                 }),
                       x);
}

Tensor floor(const Tensor& x) {
  return zero_gradient("floor", map_unary(x, [](float v) { return std::floor(v); }), x);
}

Tensor round(const Tensor& x) {
  // std::nearbyint rounds halves to even in the default rounding mode; std::round would not.
  return zero_gradient("round", map_unary(x, [](float v) { return std::nearbyint(v); }), x);
}

}  // namespace xtape
