// More reductions: prod, min, argmax/argmin, logsumexp, cumsum, var/std, norm. min, logsumexp
// and var/std are compositions; prod, cumsum and norm are primitives with their backward rules.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

// The elements of x grouped by reduction: group r holds x.flat[src[r * cols + c]], c < cols.
struct Groups {
  Shape kept;  // keepdims shape
  std::size_t rows = 0, cols = 0;
  std::vector<std::size_t> src;
};

Groups groups_of(const Tensor& x, const std::vector<int>& axes) {
  Groups g;
  g.kept = detail::reduced_shape(x.shape(), axes, true);
  g.rows = shape_size(g.kept);
  if (x.size() == 0) return g;
  g.cols = x.size() / g.rows;
  std::vector<int> perm;
  for (int i = 0; i < static_cast<int>(x.ndim()); ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) perm.push_back(i);
  for (int a : axes) perm.push_back(a);
  g.src = detail::permuted_offsets(x.shape(), perm);
  return g;
}

Tensor reshape_to(const Tensor& x, const Shape& s) {
  return reshape(x, std::vector<long>(s.begin(), s.end()));
}

// True when some group of reducing `axes` of shape s has no element while groups exist.
bool empty_groups(const Shape& s, const std::vector<int>& axes) {
  bool empty_axis = false;
  for (int a : axes) empty_axis = empty_axis || s[static_cast<std::size_t>(a)] == 0;
  return empty_axis && shape_size(detail::reduced_shape(s, axes, true)) != 0;
}

// prod's gradient with recorded ops, for create_graph: the reduced axes moved last and
// flattened to n, the product of the others of x_i as the product of x rolled by 1..n-1 (no
// division, so zeros need no case), times g. O(n^2) work: groups of at most 4096 elements.
Tensor prod_others_recorded(const Tensor& x, const Tensor& g, const std::vector<int>& axes) {
  if (x.size() == 0) return Tensor::zeros(x.shape());
  const int nd = static_cast<int>(x.ndim());
  std::vector<int> perm;
  for (int i = 0; i < nd; ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) perm.push_back(i);
  for (int a : axes) perm.push_back(a);
  std::vector<int> inv(static_cast<std::size_t>(nd));
  for (int i = 0; i < nd; ++i) inv[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = i;
  const Tensor t = transpose(x, perm);
  std::size_t n = 1;
  for (int a : axes) n *= x.shape()[static_cast<std::size_t>(a)];
  if (n > 4096)
    throw std::logic_error("prod: backward with create_graph over groups of " + std::to_string(n) +
                           " elements (more than 4096) is not supported");
  const long rows = static_cast<long>(x.size() / n);
  const Tensor flat = reshape(t, {rows, static_cast<long>(n)});
  Tensor others = Tensor::ones({static_cast<std::size_t>(rows), n});
  for (std::size_t k = 1; k < n; ++k) others = others * roll(flat, static_cast<std::int64_t>(k), 1);
  const Tensor d = others * reshape(g, {rows, 1});
  return transpose(reshape_to(d, t.shape()), inv);
}

}  // namespace

Tensor prod(const Tensor& x, std::vector<int> axes, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "prod");
  const Groups grp = groups_of(x, axes);
  detail::checked_size(grp.kept, "prod");
  Tensor out(detail::reduced_shape(x.shape(), axes, keepdims), 1.f);  // empty products are 1
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  for (std::size_t r = 0; r < grp.rows && grp.cols != 0; ++r) {
    double p = 1.0;
    for (std::size_t c = 0; c < grp.cols; ++c) p *= xv[grp.src[r * grp.cols + c]];
    o[r] = static_cast<float>(p);
  }
  const Tensor vx = x;  // with its history, for create_graph (an input: no cycle)
  // d prod / d x_i = product of the other elements of the group: prefix times suffix
  // products, so zeros in the group need no special case (no division).
  return record(
      "prod", out, {x},
      [vx, axes](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) return grads.add(0, prod_others_recorded(vx, g, axes));
        const Groups gr = groups_of(vx, axes);
        Tensor d(vx.shape(), 0.f);
        float* dv = detail::mutable_data(d);
        const float* xv = vx.data();
        std::vector<double> suffix(gr.cols + 1);
        for (std::size_t r = 0; r < gr.rows && gr.cols != 0; ++r) {
          const std::size_t* s = gr.src.data() + r * gr.cols;
          suffix[gr.cols] = 1.0;
          for (std::size_t c = gr.cols; c-- > 0;) suffix[c] = suffix[c + 1] * xv[s[c]];
          double prefix = 1.0;
          const double gr_r = g.data()[r];
          for (std::size_t c = 0; c < gr.cols; ++c) {
            dv[s[c]] = static_cast<float>(gr_r * prefix * suffix[c + 1]);
            prefix *= xv[s[c]];
          }
        }
        grads.add(0, d);
      },
      true);
}

Tensor min(const Tensor& x, std::vector<int> axes, bool keepdims) {
  const std::vector<int> norm = detail::normalize_axes(axes, x.shape(), "min");
  if (x.size() == 0 && shape_size(detail::reduced_shape(x.shape(), norm, true)) != 0)
    throw std::invalid_argument("min: reducing an axis of extent 0 of shape " +
                                shape_str(x.shape()) + " (a minimum of no elements)");
  // -max(-x): NaN stays NaN, and the first minimal element is the first maximal one of -x.
  return -max(-x, norm, keepdims);
}

namespace {

Tensor arg_extremum(const Tensor& x, std::optional<int> axis, bool keepdims, bool largest,
                    const char* op) {
  if (!axis) {
    Tensor flat = arg_extremum(reshape(x.detach(), {-1}), 0, false, largest, op);
    return keepdims ? reshape_to(flat, Shape(x.ndim(), 1)) : flat;
  }
  const int n_ax = static_cast<int>(x.ndim());
  const int a = *axis < 0 ? *axis + n_ax : *axis;
  if (a < 0 || a >= n_ax)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(*axis) +
                                " out of range for shape " + shape_str(x.shape()));
  const Shape& xs = x.shape();
  const std::size_t n = xs[static_cast<std::size_t>(a)];
  std::size_t outer = 1, inner = 1;
  for (int d = 0; d < a; ++d) outer *= xs[static_cast<std::size_t>(d)];
  for (int d = a + 1; d < n_ax; ++d) inner *= xs[static_cast<std::size_t>(d)];
  Shape os = detail::reduced_shape(xs, {a}, keepdims);
  if (n == 0 && shape_size(os) != 0)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(*axis) + " of shape " +
                                shape_str(xs) + " has extent 0 (no element to pick)");
  Tensor out = detail::new_result(os, op);
  float* o = detail::mutable_data(out);
  const float* xv = x.data();
  for (std::size_t p = 0; p < outer && n != 0; ++p)
    for (std::size_t q = 0; q < inner; ++q) {
      const float* base = xv + p * n * inner + q;
      std::size_t best = 0;
      float b = base[0];
      // NaN ranks first (PyTorch): the first NaN wins, otherwise the first extremum.
      for (std::size_t c = 1; c < n && b == b; ++c) {
        const float v = base[c * inner];
        if (v != v || (largest ? v > b : v < b)) {
          best = c;
          b = v;
        }
      }
      o[p * inner + q] = static_cast<float>(best);
    }
  return out;
}

}  // namespace

Tensor argmax(const Tensor& x, std::optional<int> axis, bool keepdims) {
  return arg_extremum(x, axis, keepdims, true, "argmax");
}

Tensor argmin(const Tensor& x, std::optional<int> axis, bool keepdims) {
  return arg_extremum(x, axis, keepdims, false, "argmin");
}

Tensor logsumexp(const Tensor& x, std::vector<int> axes, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "logsumexp");
  const Shape kept = detail::reduced_shape(x.shape(), axes, true);
  // The shift m is the group's maximum, treated as a constant (the result does not depend on
  // it); 0 where that is not finite (a row of -inf, +inf or NaN) and for empty groups.
  Tensor m(kept, 0.f);
  if (x.size() != 0) {
    NoGrad guard;
    m = max(x.detach(), axes, true).clone();
    float* mv = detail::mutable_data(m);
    for (std::size_t i = 0, count = m.size(); i < count; ++i)
      if (!std::isfinite(mv[i])) mv[i] = 0.f;
  }
  Tensor r = log(sum(exp(x - m), axes, true)) + m;
  return keepdims ? r : reshape_to(r, detail::reduced_shape(x.shape(), axes, false));
}

Tensor cumsum(const Tensor& x, int axis, bool exclusive, bool reverse) {
  const int n_ax = static_cast<int>(x.ndim());
  const int a = axis < 0 ? axis + n_ax : axis;
  if (a < 0 || a >= n_ax)
    throw std::invalid_argument("cumsum: axis " + std::to_string(axis) +
                                " out of range for shape " + shape_str(x.shape()));
  const Shape& xs = x.shape();
  const std::size_t n = xs[static_cast<std::size_t>(a)];
  std::size_t outer = 1, inner = 1;
  for (int d = 0; d < a; ++d) outer *= xs[static_cast<std::size_t>(d)];
  for (int d = a + 1; d < n_ax; ++d) inner *= xs[static_cast<std::size_t>(d)];
  Tensor out = detail::new_result(xs, "cumsum");
  float* o = detail::mutable_data(out);
  const float* xv = x.data();
  if (x.size() != 0)
    for (std::size_t p = 0; p < outer; ++p) {
      const float* src = xv + p * n * inner;
      float* dst = o + p * n * inner;
      std::vector<float> acc(inner, 0.f);
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t c = reverse ? n - 1 - k : k;
        for (std::size_t q = 0; q < inner; ++q) {
          const float v = src[c * inner + q];
          if (exclusive) {
            dst[c * inner + q] = acc[q];
            acc[q] += v;
          } else {
            acc[q] += v;
            dst[c * inner + q] = acc[q];
          }
        }
      }
    }
  // Each x_i feeds every later (earlier, with reverse) sum: the gradient is the cumulative sum
  // of g in the opposite direction, with the same exclusivity.
  return record(
      "cumsum", out, {x},
      [a, exclusive, reverse](const Tensor& g, Grads& grads) {
        grads.add(0, cumsum(g, a, exclusive, !reverse));
      },
      true);
}

Tensor var(const Tensor& x, std::vector<int> axes, double ddof, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "var");
  double count = 1.0;
  for (int a : axes) count *= static_cast<double>(x.shape()[static_cast<std::size_t>(a)]);
  // A composition: sum((x - mean)^2) / max(N - ddof, 0), dividing by 0 as NumPy (inf, or NaN).
  const Tensor m = mean(x, axes, true);
  const Tensor s = sum(square(x - m), axes, keepdims);
  return s / static_cast<float>(std::max(count - ddof, 0.0));
}

Tensor std(const Tensor& x, std::vector<int> axes, double ddof, bool keepdims) {
  return sqrt(var(x, std::move(axes), ddof, keepdims));
}

Tensor norm(const Tensor& x, double ord, std::vector<int> axes, bool keepdims) {
  const double inf = std::numeric_limits<double>::infinity();
  if (!(ord == 1 || ord == 2 || ord == inf))
    throw std::invalid_argument("norm: ord must be 1, 2 or infinity, got " + std::to_string(ord));
  axes = detail::normalize_axes(std::move(axes), x.shape(), "norm");
  if (ord == inf && empty_groups(x.shape(), axes))
    throw std::invalid_argument("norm: ord infinity over an axis of extent 0 of shape " +
                                shape_str(x.shape()) + " (a maximum of no elements)");
  const Groups grp = groups_of(x, axes);
  detail::checked_size(grp.kept, "norm");
  Tensor kept(grp.kept, 0.f);  // norms of no elements are 0
  const float* xv = x.data();
  float* k = detail::mutable_data(kept);
  for (std::size_t r = 0; r < grp.rows && grp.cols != 0; ++r) {
    const std::size_t* s = grp.src.data() + r * grp.cols;
    double acc = 0.0;
    for (std::size_t c = 0; c < grp.cols; ++c) {
      const double v = std::abs(static_cast<double>(xv[s[c]]));
      if (ord == 2)
        acc += v * v;
      else if (ord == 1)
        acc += v;
      else if (v != v || acc != acc)
        acc = std::numeric_limits<double>::quiet_NaN();
      else
        acc = std::max(acc, v);
    }
    k[r] = static_cast<float>(ord == 2 ? std::sqrt(acc) : acc);
  }
  const Tensor out = detail::view_as(kept, detail::reduced_shape(x.shape(), axes, keepdims));
  const Tensor vx = x, vk = detail::saved(kept);  // x with its history, for create_graph
  const detail::SavedOutput vout(out);
  const Shape ks = grp.kept;
  return record(
      "norm", out, {x},
      [vx, vk, vout, ks, ord, axes](const Tensor& g, Grads& grads) {
        const Tensor gk = reshape_to(g, ks);
        const float* xv = vx.data();
        const float* nv = vk.data();
        if (ord == 2) {
          // d ||x|| / dx = x / ||x||, and 0 at ||x|| = 0 (PyTorch's choice).
          if (detail::creating_graph()) {  // 1 / ||x|| with its history; 0 where ||x|| = 0
            Tensor zero(ks, 0.f);
            for (std::size_t i = 0, count = zero.size(); i < count; ++i)
              detail::mutable_data(zero)[i] = nv[i] == 0.f ? 1.f : 0.f;
            const Tensor n = reshape_to(vout.tensor(), ks);
            grads.add(0, vx * (gk * ((1.f - zero) / (n + zero))));
            return;
          }
          Tensor inv(ks, 0.f);
          for (std::size_t i = 0, count = inv.size(); i < count; ++i)
            detail::mutable_data(inv)[i] = nv[i] == 0.f ? 0.f : 1.f / nv[i];
          grads.add(0, vx * (gk * inv));
          return;
        }
        // ord 1: sign(x) (0 at 0); ord inf: sign(x) / (number of ties) at the maxima of |x| (NaN
        // at a NaN), 0 elsewhere. Piecewise constant weights times g.
        const Groups gr = groups_of(vx, axes);
        Tensor w(vx.shape(), 0.f);
        float* wv = detail::mutable_data(w);
        for (std::size_t r = 0; r < gr.rows && gr.cols != 0; ++r) {
          const std::size_t* s = gr.src.data() + r * gr.cols;
          std::size_t ties = 0;
          for (std::size_t c = 0; c < gr.cols; ++c) {
            const float v = xv[s[c]];
            const bool hit = ord == 1 || std::abs(v) == nv[r] || v != v;
            ties += hit;
            wv[s[c]] = !hit ? 0.f : v != v ? v : v > 0 ? 1.f : v < 0 ? -1.f : 0.f;
          }
          if (ord != 1 && ties > 1)
            for (std::size_t c = 0; c < gr.cols; ++c) wv[s[c]] /= static_cast<float>(ties);
        }
        grads.add(0, w * gk);
      },
      true);
}

}  // namespace xtape
