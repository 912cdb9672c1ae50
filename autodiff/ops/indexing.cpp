// Indexing ops: take / gather along an axis, take_along_axis, one_hot. Gathers go through the
// index primitives of movement.cpp, so their gradients scatter-add.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autodiff/ops/index_maps.hpp"

namespace xtape {

namespace {

std::string value_str(float v) {
  std::string s = std::to_string(v);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

// "position 3" or "position (1, 2)" of element `flat` of a tensor of shape `s`.
std::string position_str(std::size_t flat, const Shape& s) {
  if (s.size() <= 1) return "position " + std::to_string(flat);
  std::vector<std::size_t> idx(s.size());
  for (std::size_t k = s.size(); k-- > 0;) {
    idx[k] = flat % s[k];
    flat /= s[k];
  }
  return "position " + shape_str(idx);
}

// The integer held by element `i` of `indices` (float), checked integral.
std::int64_t integral_index(const Tensor& indices, std::size_t i, const char* op) {
  const float v = indices.data()[i];
  if (!std::isfinite(v) || std::floor(v) != v || std::abs(v) > 9.2e18f)
    throw std::invalid_argument(std::string(op) + ": index " + value_str(v) + " at " +
                                position_str(i, indices.shape()) + " is not an integer");
  return static_cast<std::int64_t>(v);
}

// Checks idx against an axis of extent n ([-n, n), negative counting from the end) and
// returns it in [0, n).
std::size_t wrapped_index(std::int64_t idx, std::size_t n, std::size_t pos, const Shape& idx_shape,
                          int axis, const Shape& xs, const char* op) {
  const auto sn = static_cast<std::int64_t>(n);
  if (idx < -sn || idx >= sn)
    throw std::out_of_range(std::string(op) + ": index " + std::to_string(idx) + " at " +
                            position_str(pos, idx_shape) + " is out of range for axis " +
                            std::to_string(axis) + " of extent " + std::to_string(n) + " (shape " +
                            shape_str(xs) + "; expected " + std::to_string(-sn) + " <= index < " +
                            std::to_string(sn) + ")");
  return static_cast<std::size_t>(idx < 0 ? idx + sn : idx);
}

Tensor take_impl(const Tensor& x, const std::vector<std::int64_t>& idx, const Shape& idx_shape,
                 std::optional<int> axis, const char* op) {
  if (!axis) return take_impl(flatten(x), idx, idx_shape, 0, op);
  const int a = detail::normalize_axis(*axis, x.ndim(), x.shape(), op);
  const Shape& xs = x.shape();
  const std::size_t n = xs[static_cast<std::size_t>(a)];
  Shape flat_shape = xs;
  flat_shape[static_cast<std::size_t>(a)] = idx.size();
  auto maps = std::make_shared<detail::AxisMaps>(xs.size());
  std::vector<std::int64_t> m(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i)
    m[i] = static_cast<std::int64_t>(wrapped_index(idx[i], n, i, idx_shape, a, xs, op));
  if (detail::checked_size(flat_shape, op) != 0)
    for (std::size_t d = 0; d < xs.size(); ++d)
      (*maps)[d] = d == static_cast<std::size_t>(a) ? m : detail::identity_map(xs[d]);
  Tensor flat = detail::axis_gather(x, maps, flat_shape, 0.f, op);
  Shape out(xs.begin(), xs.begin() + a);
  out.insert(out.end(), idx_shape.begin(), idx_shape.end());
  out.insert(out.end(), xs.begin() + a + 1, xs.end());
  return reshape(flat, std::vector<long>(out.begin(), out.end()));
}

std::vector<std::int64_t> indices_of(const Tensor& indices, const char* op) {
  std::vector<std::int64_t> v(indices.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = integral_index(indices, i, op);
  return v;
}

}  // namespace

Tensor take(const Tensor& x, const Tensor& indices, std::optional<int> axis) {
  return take_impl(x, indices_of(indices, "take"), indices.shape(), axis, "take");
}

Tensor take(const Tensor& x, const std::vector<std::int64_t>& indices, std::optional<int> axis) {
  return take_impl(x, indices, {indices.size()}, axis, "take");
}

Tensor gather(const Tensor& x, const Tensor& indices, int axis) {
  return take_impl(x, indices_of(indices, "gather"), indices.shape(), axis, "gather");
}

Tensor gather(const Tensor& x, const std::vector<std::int64_t>& indices, int axis) {
  return take_impl(x, indices, {indices.size()}, axis, "gather");
}

Tensor take_along_axis(const Tensor& x, const Tensor& indices, int axis) {
  const char* op = "take_along_axis";
  const Shape &xs = x.shape(), &is = indices.shape();
  if (is.size() != xs.size())
    throw std::invalid_argument(std::string(op) + ": indices of shape " + shape_str(is) +
                                " for x of shape " + shape_str(xs) + " (expected the same rank)");
  const int a = detail::normalize_axis(axis, xs.size(), xs, op);
  const std::size_t rank = xs.size();
  Shape os(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    if (d == static_cast<std::size_t>(a)) {
      os[d] = is[d];
    } else if (xs[d] == is[d] || is[d] == 1 || xs[d] == 1) {
      os[d] = is[d] == 1 ? xs[d] : is[d];
    } else {
      throw std::invalid_argument(std::string(op) + ": indices of shape " + shape_str(is) +
                                  " do not broadcast against x of shape " + shape_str(xs) +
                                  " on axis " + std::to_string(d));
    }
  }
  const std::size_t total = detail::checked_size(os, op);
  std::vector<std::size_t> xstride(rank, 1), istride(rank, 1);
  for (std::size_t k = rank; k-- > 1;) {
    xstride[k - 1] = xstride[k] * xs[k];
    istride[k - 1] = istride[k] * is[k];
  }
  auto offsets = std::make_shared<std::vector<std::size_t>>(total);
  std::vector<std::size_t> idx(rank, 0);
  const std::size_t n = xs[static_cast<std::size_t>(a)];
  for (std::size_t i = 0; i < total; ++i) {
    std::size_t ioff = 0, xoff = 0;
    for (std::size_t d = 0; d < rank; ++d) {
      ioff += (is[d] == 1 ? 0 : idx[d]) * istride[d];
      if (d != static_cast<std::size_t>(a)) xoff += (xs[d] == 1 ? 0 : idx[d]) * xstride[d];
    }
    const std::size_t k = wrapped_index(integral_index(indices, ioff, op), n, ioff, is, a, xs, op);
    (*offsets)[i] = xoff + k * xstride[static_cast<std::size_t>(a)];
    for (std::size_t d = rank; d-- > 0;) {
      if (++idx[d] < os[d]) break;
      idx[d] = 0;
    }
  }
  return detail::flat_gather(x, offsets, os, op);
}

Tensor one_hot(const Tensor& indices, std::int64_t depth, int axis, float on_value,
               float off_value) {
  const char* op = "one_hot";
  if (depth < 0)
    throw std::invalid_argument(std::string(op) + ": depth must be >= 0, got " +
                                std::to_string(depth));
  const Shape& is = indices.shape();
  const int rank = static_cast<int>(is.size()) + 1;
  if (axis < -rank || axis >= rank)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis) +
                                " out of range for indices of shape " + shape_str(is) +
                                " (expected " + std::to_string(-rank) + " <= axis < " +
                                std::to_string(rank) + ")");
  const std::size_t a = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
  Shape os = is;
  os.insert(os.begin() + static_cast<std::ptrdiff_t>(a), static_cast<std::size_t>(depth));
  Tensor out = detail::new_result(os, op);
  std::size_t inner = 1;
  for (std::size_t d = a; d < is.size(); ++d) inner *= is[d];
  const auto d_ = static_cast<std::size_t>(depth);
  float* o = detail::mutable_data(out);
  std::fill(o, o + out.size(), off_value);
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const std::int64_t k = integral_index(indices, i, op);
    if (k < 0 || k >= depth)
      throw std::out_of_range(std::string(op) + ": index " + std::to_string(k) + " at " +
                              position_str(i, is) + " is out of range for depth " +
                              std::to_string(depth) + " (expected 0 <= index < " +
                              std::to_string(depth) + ")");
    const std::size_t p = i / inner, q = i % inner;
    o[(p * d_ + static_cast<std::size_t>(k)) * inner + q] = on_value;
  }
  return out;
}

}  // namespace xtape
