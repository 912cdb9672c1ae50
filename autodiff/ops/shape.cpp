// Shape ops (reshape, flatten, transpose, concat, row selection) and their backward rules.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace detail {

std::vector<std::size_t> permuted_offsets(const Shape& shape, const std::vector<int>& perm) {
  const std::size_t n = shape.size(), total = shape_size(shape);
  std::vector<std::size_t> src_stride(n, 1);
  for (std::size_t k = n; k-- > 1;) src_stride[k - 1] = src_stride[k] * shape[k];
  std::vector<std::size_t> ext(n), st(n), idx(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    ext[i] = shape[static_cast<std::size_t>(perm[i])];
    st[i] = src_stride[static_cast<std::size_t>(perm[i])];
  }
  std::vector<std::size_t> out(total);
  std::size_t off = 0;
  for (std::size_t i = 0; i < total; ++i) {
    out[i] = off;
    for (std::size_t k = n; k-- > 0;) {
      ++idx[k];
      off += st[k];
      if (idx[k] < ext[k]) break;
      off -= st[k] * ext[k];
      idx[k] = 0;
    }
  }
  return out;
}

void permute_copy(const float* src, const Shape& shape, const std::vector<int>& perm, float* dst) {
  const std::size_t n = shape.size();
  // The innermost destination axis usually is not the source's last: walk destination rows of
  // the last axis with a strided read.
  if (n == 0) {
    dst[0] = src[0];
    return;
  }
  std::vector<std::size_t> src_stride(n, 1);
  for (std::size_t k = n; k-- > 1;) src_stride[k - 1] = src_stride[k] * shape[k];
  std::vector<std::size_t> ext(n), st(n), idx(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    ext[i] = shape[static_cast<std::size_t>(perm[i])];
    st[i] = src_stride[static_cast<std::size_t>(perm[i])];
  }
  const std::size_t inner = ext[n - 1], inner_st = st[n - 1];
  const std::size_t rows = shape_size(shape) / std::max<std::size_t>(inner, 1);
  std::size_t off = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    float* d = dst + r * inner;
    if (inner_st == 1)
      std::memcpy(d, src + off, inner * sizeof(float));
    else
      for (std::size_t j = 0; j < inner; ++j) d[j] = src[off + j * inner_st];
    for (std::size_t k = n - 1; k-- > 0;) {
      ++idx[k];
      off += st[k];
      if (idx[k] < ext[k]) break;
      off -= st[k] * ext[k];
      idx[k] = 0;
    }
  }
}

Tensor view_as(const Tensor& x, const Shape& shape) {
  if (shape_size(shape) != x.size())
    throw std::invalid_argument("reshape: cannot view shape " + shape_str(x.shape()) + " as " +
                                shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = x.impl()->storage;
  return Tensor(impl);
}

}  // namespace detail

Tensor reshape(const Tensor& x, const std::vector<long>& shape) {
  Shape target;
  long infer = -1;
  std::size_t known = 1;
  bool overflow = false, has_zero = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("reshape: more than one -1 in the target shape");
      infer = static_cast<long>(i);
      target.push_back(1);
    } else if (shape[i] < 0) {
      throw std::invalid_argument("reshape: negative extent " + std::to_string(shape[i]));
    } else {
      target.push_back(static_cast<std::size_t>(shape[i]));
      overflow =
          __builtin_mul_overflow(known, static_cast<std::size_t>(shape[i]), &known) || overflow;
      has_zero = has_zero || shape[i] == 0;
    }
  }
  auto describe = [&] {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
  };
  // A product that wraps could match x's element count by accident.
  if (overflow && !has_zero)
    throw std::length_error("reshape: the extents of the target shape " + describe() +
                            " multiply to more than 2^64 elements (the tensor has shape " +
                            shape_str(x.shape()) + ")");
  if (infer >= 0) {
    if (has_zero || x.size() % known != 0)
      throw std::invalid_argument("reshape: cannot reshape " + shape_str(x.shape()) + " to " +
                                  describe());
    target[static_cast<std::size_t>(infer)] = x.size() / known;
  }
  if (shape_size(target) != x.size())
    throw std::invalid_argument("reshape: cannot reshape " + shape_str(x.shape()) + " (" +
                                std::to_string(x.size()) + " elements) to " + describe());
  const Shape xs = x.shape();
  // Reshape moves no values: the gradient is g viewed in x's shape.
  return record("reshape", detail::view_as(x, target), {x},
                [xs](const Tensor& g, Grads& grads) {
                  if (detail::creating_graph())
                    return grads.add(0, reshape(g, std::vector<long>(xs.begin(), xs.end())));
                  grads.add(0, detail::view_as(g, xs));
                }, true);
}

Tensor flatten(const Tensor& x, int start_axis) {
  const int n = static_cast<int>(x.ndim());
  const int s = start_axis < 0 ? start_axis + n : start_axis;
  if (s < 0 || (s >= n && !(n == 0 && s == 0)))
    throw std::invalid_argument("flatten: start axis " + std::to_string(start_axis) +
                                " out of range for shape " + shape_str(x.shape()));
  std::vector<long> target;
  std::size_t rest = 1;
  for (int i = 0; i < n; ++i) {
    if (i < s)
      target.push_back(static_cast<long>(x.shape()[static_cast<std::size_t>(i)]));
    else
      rest *= x.shape()[static_cast<std::size_t>(i)];
  }
  target.push_back(static_cast<long>(rest));
  return reshape(x, target);
}

Tensor transpose(const Tensor& x, std::vector<int> perm) {
  const int n = static_cast<int>(x.ndim());
  if (perm.empty())
    for (int i = n - 1; i >= 0; --i) perm.push_back(i);
  std::vector<int> check = perm;
  for (int& p : check) p = p < 0 ? p + n : p;
  std::vector<int> sorted = check;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> iota(static_cast<std::size_t>(n));
  std::iota(iota.begin(), iota.end(), 0);
  if (sorted != iota)
    throw std::invalid_argument("transpose: permutation of " + std::to_string(perm.size()) +
                                " axes is not a permutation of the axes of shape " +
                                shape_str(x.shape()));
  Shape out_shape(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    out_shape[static_cast<std::size_t>(i)] =
        x.shape()[static_cast<std::size_t>(check[static_cast<std::size_t>(i)])];
  Tensor out = Tensor::empty(out_shape);
  detail::permute_copy(x.data(), x.shape(), check, detail::mutable_data(out));
  std::vector<int> inverse(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    inverse[static_cast<std::size_t>(check[static_cast<std::size_t>(i)])] = i;
  // The gradient of a permutation is the inverse permutation of g.
  return record("transpose", out, {x},
                [inverse](const Tensor& g, Grads& grads) { grads.add(0, transpose(g, inverse)); },
                true);
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("concat: no tensors given");
  const Shape& s0 = xs[0].shape();
  const int n = static_cast<int>(s0.size());
  const int a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw std::invalid_argument("concat: axis " + std::to_string(axis) +
                                " out of range for shape " + shape_str(s0));
  Shape out_shape = s0;
  out_shape[static_cast<std::size_t>(a)] = 0;
  for (const Tensor& t : xs) {
    Shape s = t.shape();
    if (s.size() != s0.size())
      throw std::invalid_argument("concat: shapes " + shape_str(s0) + " and " + shape_str(s) +
                                  " differ in rank");
    if (__builtin_add_overflow(out_shape[static_cast<std::size_t>(a)],
                               s[static_cast<std::size_t>(a)],
                               &out_shape[static_cast<std::size_t>(a)]))
      throw std::length_error("concat: the extents along axis " + std::to_string(a) +
                              " add up to more than 2^64");
    s[static_cast<std::size_t>(a)] = s0[static_cast<std::size_t>(a)];
    if (s != s0)
      throw std::invalid_argument("concat: shapes " + shape_str(s0) + " and " +
                                  shape_str(t.shape()) + " differ outside axis " +
                                  std::to_string(a));
  }
  std::size_t outer = 1, inner = 1;
  for (int i = 0; i < a; ++i) outer *= s0[static_cast<std::size_t>(i)];
  for (int i = a + 1; i < n; ++i) inner *= s0[static_cast<std::size_t>(i)];
  Tensor out = detail::new_result(out_shape, "concat");
  const std::size_t out_row = out_shape[static_cast<std::size_t>(a)] * inner;
  if (out.size() == 0) outer = 0;  // nothing to copy (the other extents may be huge)
  std::vector<std::size_t> widths;
  std::size_t col = 0;
  for (const Tensor& t : xs) {
    const std::size_t w = t.shape()[static_cast<std::size_t>(a)] * inner;
    for (std::size_t o = 0; o < outer; ++o)
      std::memcpy(detail::mutable_data(out) + o * out_row + col, t.data() + o * w,
                  w * sizeof(float));
    widths.push_back(w);
    col += w;
  }
  std::vector<Shape> shapes;
  for (const Tensor& t : xs) shapes.push_back(t.shape());
  // Each input's gradient is its slice of g.
  return record("concat", out, xs, [shapes, widths, outer, out_row](const Tensor& g, Grads& grads) {
    if (detail::creating_graph()) {  // each input's columns of g as (outer, row), by ops
      const Tensor cols = transpose(reshape(g, {static_cast<long>(outer), static_cast<long>(out_row)}));
      std::size_t col = 0;
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        if (grads.needs(i)) {
          const Tensor part = transpose(slice_rows(cols, col, col + widths[i]));
          grads.add(i, reshape(part, std::vector<long>(shapes[i].begin(), shapes[i].end())));
        }
        col += widths[i];
      }
      return;
    }
    std::size_t col = 0;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      if (grads.needs(i)) {
        Tensor gi = Tensor::empty(shapes[i]);
        for (std::size_t o = 0; o < outer; ++o)
          std::memcpy(detail::mutable_data(gi) + o * widths[i], g.data() + o * out_row + col,
                      widths[i] * sizeof(float));
        grads.add(i, gi);
      }
      col += widths[i];
    }
  }, true);
}

Tensor gather_rows(const Tensor& x, const std::vector<std::size_t>& rows) {
  if (x.ndim() == 0) throw std::invalid_argument("gather_rows: a scalar has no rows");
  const std::size_t n = x.shape()[0], row = x.size() / std::max<std::size_t>(n, 1);
  Shape out_shape = x.shape();
  out_shape[0] = rows.size();
  Tensor out = detail::new_result(out_shape, "gather_rows");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] >= n)
      throw std::out_of_range("gather_rows: row " + std::to_string(rows[i]) +
                              " out of range for shape " + shape_str(x.shape()));
    std::memcpy(detail::mutable_data(out) + i * row, x.data() + rows[i] * row, row * sizeof(float));
  }
  const Shape xs = x.shape();
  // Scatter-add g's rows back to where they came from.
  return record("gather_rows", out, {x}, [xs, rows, row](const Tensor& g, Grads& grads) {
    if (detail::creating_graph()) {  // the scatter as S^T g, S the (rows, n) one-hot selection
      const std::size_t n = xs.empty() ? 1 : xs[0];
      Tensor sel(Shape{n, rows.size()}, 0.f);
      for (std::size_t i = 0; i < rows.size(); ++i)
        detail::mutable_data(sel)[rows[i] * rows.size() + i] = 1.f;
      const Tensor g2 = reshape(g, {static_cast<long>(rows.size()), static_cast<long>(row)});
      return grads.add(0, reshape(matmul(sel, g2), std::vector<long>(xs.begin(), xs.end())));
    }
    Tensor d(xs, 0.f);
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::size_t j = 0; j < row; ++j)
        detail::mutable_data(d)[rows[i] * row + j] += g.data()[i * row + j];
    grads.add(0, d);
  }, true);
}

Tensor slice_rows(const Tensor& x, std::size_t start, std::size_t stop) {
  if (x.ndim() == 0 || start > stop || stop > x.shape()[0])
    throw std::out_of_range("slice_rows: rows [" + std::to_string(start) + ", " +
                            std::to_string(stop) + ") out of range for shape " +
                            shape_str(x.shape()));
  std::vector<std::size_t> rows(stop - start);
  std::iota(rows.begin(), rows.end(), start);
  return gather_rows(x, rows);
}

}  // namespace xtape
