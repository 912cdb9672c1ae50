// Reductions (sum, mean, max) over axes, and their backward rules.
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "kernels/elementwise.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace detail {

std::vector<int> normalize_axes(std::vector<int> axes, const Shape& shape, const char* op) {
  const int n = static_cast<int>(shape.size());
  if (axes.empty()) {
    for (int i = 0; i < n; ++i) axes.push_back(i);
    return axes;
  }
  for (int& a : axes) {
    const int orig = a;
    if (a < 0) a += n;
    if (a < 0 || a >= n)
      throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(orig) +
                                  " out of range for shape " + shape_str(shape));
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
    throw std::invalid_argument(std::string(op) + ": repeated axis for shape " + shape_str(shape));
  return axes;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims) {
  Shape out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), static_cast<int>(i)) != axes.end();
    if (!reduced)
      out.push_back(shape[i]);
    else if (keepdims)
      out.push_back(1);
  }
  return out;
}

namespace {
// Coalesces adjacent axes with the same reduce flag: returns (extent, reduced) groups.
std::vector<std::pair<std::size_t, bool>> groups_of(const Shape& shape,
                                                    const std::vector<int>& axes) {
  std::vector<std::pair<std::size_t, bool>> g;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    const bool r = std::find(axes.begin(), axes.end(), static_cast<int>(i)) != axes.end();
    if (!g.empty() && g.back().second == r)
      g.back().first *= shape[i];
    else
      g.emplace_back(shape[i], r);
  }
  return g;
}
}  // namespace

Tensor sum_values(const Tensor& x, const std::vector<int>& axes) {
  const Shape kept = reduced_shape(x.shape(), axes, true);
  checked_size(kept, "sum");
  Tensor out(kept, 0.f);
  if (x.size() == 0) return out;  // sums of no elements are 0 (the extents may be huge)
  const auto g = groups_of(x.shape(), axes);
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  if (g.empty()) {
    o[0] = xv[0];
  } else if (g.size() == 1) {
    if (g[0].second)
      o[0] = kernels::sum(x.size(), xv);
    else
      std::copy(xv, xv + x.size(), o);
  } else if (g.size() == 2 && g[0].second) {
    kernels::add_column_sums(g[0].first, g[1].first, xv, o);
  } else if (g.size() == 2) {
    kernels::row_sums(g[0].first, g[1].first, xv, o);
  } else if (g.size() == 3 && !g[0].second) {
    kernels::batched_column_sums(g[0].first, g[1].first, g[2].first, xv, o);
  } else {
    // General case: move the reduced axes last, then sum rows.
    std::vector<int> perm;
    for (int i = 0; i < static_cast<int>(x.ndim()); ++i)
      if (std::find(axes.begin(), axes.end(), i) == axes.end()) perm.push_back(i);
    for (int a : axes) perm.push_back(a);
    Tensor t = Tensor::empty(x.shape());
    permute_copy(xv, x.shape(), perm, detail::mutable_data(t));
    const std::size_t rows = out.size();
    kernels::row_sums(rows, x.size() / rows, detail::mutable_data(t), o);
  }
  return out;
}

}  // namespace detail

Tensor sum(const Tensor& x, std::vector<int> axes, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "sum");
  Tensor kept = detail::sum_values(x, axes);
  Tensor out = detail::view_as(kept, detail::reduced_shape(x.shape(), axes, keepdims));
  const Shape xs = x.shape(), ks = kept.shape();
  // d sum(x)/dx = 1 on every summed element: broadcast g back.
  return record(
      "sum", out, {x},
      [xs, ks](const Tensor& g, Grads& grads) {
        if (detail::creating_graph())  // the same broadcast, recorded
          return grads.add(0,
                           reshape(g, std::vector<long>(ks.begin(), ks.end())) + Tensor::zeros(xs));
        grads.add(0, detail::broadcast_values(detail::view_as(g, ks), xs));
      },
      true);
}

Tensor mean(const Tensor& x, std::vector<int> axes, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "mean");
  // A group of no elements: 0 / 0, NaN (the product of the extents wraps harmlessly then).
  std::size_t count = 1;
  for (int a : axes) count *= x.shape()[static_cast<std::size_t>(a)];
  bool empty = false;
  for (int a : axes) empty = empty || x.shape()[static_cast<std::size_t>(a)] == 0;
  const float scale =
      empty ? std::numeric_limits<float>::quiet_NaN() : 1.f / static_cast<float>(count);
  return sum(x, axes, keepdims) * scale;
}

Tensor max(const Tensor& x, std::vector<int> axes, bool keepdims) {
  axes = detail::normalize_axes(std::move(axes), x.shape(), "max");
  const Shape kept_shape = detail::reduced_shape(x.shape(), axes, true);
  const Shape xs = x.shape();
  if (x.size() == 0) {
    if (shape_size(kept_shape) != 0)
      throw std::invalid_argument("max: reducing an axis of extent 0 of shape " + shape_str(xs) +
                                  " (a maximum of no elements)");
    return record(
        "max", Tensor::empty(detail::reduced_shape(xs, axes, keepdims)), {x},
        [xs](const Tensor&, Grads& grads) { grads.add(0, Tensor::zeros(xs)); }, true);
  }
  // Move reduced axes last; track where each element came from for the backward scatter.
  std::vector<int> perm;
  for (int i = 0; i < static_cast<int>(x.ndim()); ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) perm.push_back(i);
  for (int a : axes) perm.push_back(a);
  const std::size_t n = x.size();
  // src[i]: the offset in x of the i-th element of the permuted view.
  const std::vector<std::size_t> src = detail::permuted_offsets(x.shape(), perm);
  Tensor out = Tensor::empty(detail::reduced_shape(x.shape(), axes, keepdims));
  const std::size_t rows = shape_size(kept_shape), cols = n / rows;
  auto argmax = std::make_shared<std::vector<std::size_t>>(rows);
  const float* xv = x.data();
  float* o = detail::mutable_data(out);
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t best = src[r * cols];
    // NaN is greater than every number (IEEE, PyTorch): the first maximum, or the first NaN.
    for (std::size_t c = 1; c < cols; ++c) {
      const float v = xv[src[r * cols + c]], b = xv[best];
      if (!(v <= b) && b == b) best = src[r * cols + c];
    }
    o[r] = xv[best];
    (*argmax)[r] = best;
  }
  // d max(x)/dx = 1 at the (first) maximal element of each group, or its first NaN, 0 elsewhere.
  return record(
      "max", out, {x},
      [xs, argmax, kept_shape](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {  // g broadcast back, times the one-hot mask of the maxima
          Tensor mask(xs, 0.f);
          for (std::size_t r = 0; r < argmax->size(); ++r)
            detail::mutable_data(mask)[(*argmax)[r]] = 1.f;
          const std::vector<long> ks(kept_shape.begin(), kept_shape.end());
          return grads.add(0, (reshape(g, ks) + Tensor::zeros(xs)) * mask);
        }
        Tensor d(xs, 0.f);
        for (std::size_t r = 0; r < argmax->size(); ++r)
          detail::mutable_data(d)[(*argmax)[r]] += g.data()[r];
        grads.add(0, d);
      },
      true);
}

}  // namespace xtape
