// Movement ops (slice, split, stack, pad, tile, repeat, broadcast_to, expand_dims, squeeze,
// flip, roll), all built on the per-axis index gather below and its scatter-add adjoint.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "autodiff/ops/index_maps.hpp"
#include "kernels/spatial.hpp"

namespace xtape {

using detail::AxisMaps;
using detail::Grads;
using detail::record;

namespace detail {

std::vector<std::int64_t> identity_map(std::size_t n) {
  std::vector<std::int64_t> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<std::int64_t>(i);
  return m;
}

int normalize_axis(int axis, std::size_t rank, const Shape& shape, const char* op) {
  const int n = static_cast<int>(rank);
  const int a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis) +
                                " out of range for shape " + shape_str(shape) + " (expected " +
                                std::to_string(-n) + " <= axis < " + std::to_string(n) + ")");
  return a;
}

namespace {

// Walks the result of an axis gather row by row (rows of its last axis): calls
// row(out_offset, src_base, valid) where src_base is the source offset of the row's outer
// indices and valid is false when one of them maps to -1.
template <class Row>
void for_each_row(const Shape& xs, const AxisMaps& maps, const Shape& os, Row&& row) {
  const std::size_t n = os.size();
  std::vector<std::size_t> stride(n, 1);
  for (std::size_t k = n; k-- > 1;) stride[k - 1] = stride[k] * xs[k];
  const std::size_t inner = os[n - 1];
  const std::size_t rows = shape_size(os) / inner;
  std::vector<std::size_t> idx(n, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t base = 0;
    bool valid = true;
    for (std::size_t d = 0; d + 1 < n; ++d) {
      const std::int64_t m = maps[d][idx[d]];
      valid = valid && m >= 0;
      base += static_cast<std::size_t>(std::max<std::int64_t>(m, 0)) * stride[d];
    }
    row(r * inner, base, valid);
    for (std::size_t k = n - 1; k-- > 0;) {
      if (++idx[k] < os[k]) break;
      idx[k] = 0;
    }
  }
}

// A last-axis map of the form: `lead` entries -1, then `len` consecutive source indices from
// `first`, then -1s (a plain slice, or one row of constant padding). ok is false otherwise.
struct Run {
  bool ok = false;
  std::size_t lead = 0, len = 0;
  std::int64_t first = 0;
};

Run run_of(const std::vector<std::int64_t>& m) {
  Run r;
  std::size_t i = 0;
  while (i < m.size() && m[i] < 0) ++i;
  r.lead = i;
  if (i == m.size()) {
    r.ok = true;
    return r;
  }
  r.first = m[i];
  std::size_t j = i;
  while (j < m.size() && m[j] == r.first + static_cast<std::int64_t>(j - i)) ++j;
  r.len = j - i;
  for (std::size_t k = j; k < m.size(); ++k)
    if (m[k] >= 0) return r;
  r.ok = true;
  return r;
}

}  // namespace

Tensor axis_gather(const Tensor& x, std::shared_ptr<const AxisMaps> maps, const Shape& os,
                   float fill, const char* op) {
  Tensor out = new_result(os, op);
  if (out.size() != 0) {
    float* o = mutable_data(out);
    const float* xv = x.data();
    if (os.empty()) {
      o[0] = xv[0];
    } else {
      const std::vector<std::int64_t>& last = maps->back();
      const std::size_t inner = os.back();
      const Run run = run_of(last);
      for_each_row(x.shape(), *maps, os, [&](std::size_t out_off, std::size_t base, bool valid) {
        float* d = o + out_off;
        if (!valid) {
          std::fill(d, d + inner, fill);
        } else if (run.ok) {
          std::fill(d, d + run.lead, fill);
          std::memcpy(d + run.lead, xv + base + static_cast<std::size_t>(run.first),
                      run.len * sizeof(float));
          std::fill(d + run.lead + run.len, d + inner, fill);
        } else {
          for (std::size_t j = 0; j < inner; ++j)
            d[j] = last[j] < 0 ? fill : xv[base + static_cast<std::size_t>(last[j])];
        }
      });
    }
  }
  const Shape xs = x.shape();
  // The gradient of a gather adds each result element's gradient where it was read from.
  return record(
      op, out, {x},
      [maps, xs, op](const Tensor& g, Grads& grads) {
        grads.add(0, axis_scatter_add(g, maps, xs, op));
      },
      true);
}

Tensor axis_scatter_add(const Tensor& g, std::shared_ptr<const AxisMaps> maps, const Shape& x_shape,
                        const char* op) {
  checked_size(x_shape, op);
  Tensor out(x_shape, 0.f);
  const Shape os = g.shape();
  if (g.size() != 0 && out.size() != 0) {
    float* o = mutable_data(out);
    const float* gv = g.data();
    if (os.empty()) {
      o[0] += gv[0];
    } else {
      const std::vector<std::int64_t>& last = maps->back();
      const std::size_t inner = os.back();
      const Run run = run_of(last);
      for_each_row(x_shape, *maps, os, [&](std::size_t g_off, std::size_t base, bool valid) {
        if (!valid) return;
        const float* s = gv + g_off;
        if (run.ok) {
          float* d = o + base + static_cast<std::size_t>(run.first);
          const float* src = s + run.lead;
          for (std::size_t j = 0; j < run.len; ++j) d[j] += src[j];
          return;
        }
        for (std::size_t j = 0; j < inner; ++j)
          if (last[j] >= 0) o[base + static_cast<std::size_t>(last[j])] += s[j];
      });
    }
  }
  // Adjoint of the adjoint: gather the gradient back (padding positions get nothing).
  return record(
      op, out, {g},
      [maps, os, op](const Tensor& gg, Grads& grads) {
        grads.add(0, axis_gather(gg, maps, os, 0.f, op));
      },
      true);
}

Tensor flat_gather(const Tensor& x, std::shared_ptr<const std::vector<std::size_t>> offsets,
                   const Shape& out_shape, const char* op) {
  Tensor out = new_result(out_shape, op);
  float* o = mutable_data(out);
  const float* xv = x.data();
  for (std::size_t i = 0; i < offsets->size(); ++i) o[i] = xv[(*offsets)[i]];
  const Shape xs = x.shape();
  return record(
      op, out, {x},
      [offsets, xs, op](const Tensor& g, Grads& grads) {
        grads.add(0, flat_scatter_add(g, offsets, xs, op));
      },
      true);
}

Tensor flat_scatter_add(const Tensor& g, std::shared_ptr<const std::vector<std::size_t>> offsets,
                        const Shape& x_shape, const char* op) {
  checked_size(x_shape, op);
  Tensor out(x_shape, 0.f);
  float* o = mutable_data(out);
  const float* gv = g.data();
  for (std::size_t i = 0; i < offsets->size(); ++i) o[(*offsets)[i]] += gv[i];
  const Shape gs = g.shape();
  return record(
      op, out, {g},
      [offsets, gs, op](const Tensor& gg, Grads& grads) {
        grads.add(0, flat_gather(gg, offsets, gs, op));
      },
      true);
}

}  // namespace detail

namespace {

std::string int_list(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

// Identity maps for every axis of `s`, empty when the result (`out`) has no elements.
std::shared_ptr<AxisMaps> identity_maps(const Shape& s, const Shape& out, const char* op) {
  auto maps = std::make_shared<AxisMaps>(s.size());
  if (detail::checked_size(out, op) == 0) return maps;
  for (std::size_t d = 0; d < s.size(); ++d) (*maps)[d] = detail::identity_map(s[d]);
  return maps;
}

// Python's slice.indices(n): the first index and the count of the slice on an axis of extent n.
std::pair<std::int64_t, std::int64_t> slice_range(const Slice& s, std::int64_t n, const char* op) {
  if (s.step == 0) throw std::invalid_argument(std::string(op) + ": slice step cannot be 0");
  std::int64_t start, stop;
  if (s.step > 0) {
    start = s.start ? *s.start : 0;
    stop = s.stop ? *s.stop : n;
    if (start < 0) start = std::max<std::int64_t>(start + n, 0);
    if (stop < 0) stop = std::max<std::int64_t>(stop + n, 0);
    start = std::min(start, n);
    stop = std::min(stop, n);
    const std::int64_t count = stop > start ? (stop - start - 1) / s.step + 1 : 0;
    return {start, count};
  }
  start = s.start ? *s.start : n - 1;
  stop = s.stop ? *s.stop : -1;
  if (s.start && start < 0) start = std::max<std::int64_t>(start + n, -1);
  if (s.stop && stop < 0) stop = std::max<std::int64_t>(stop + n, -1);
  start = std::min(start, n - 1);
  stop = std::min(stop, n - 1);
  // -step in 128 bits: the step may be INT64_MIN.
  const std::int64_t count =
      start > stop
          ? static_cast<std::int64_t>(
                (static_cast<__int128>(start) - stop - 1) / -static_cast<__int128>(s.step) + 1)
          : 0;
  return {start, count};
}

Tensor reshape_to(const Tensor& x, const Shape& s) {
  return reshape(x, std::vector<long>(s.begin(), s.end()));
}

}  // namespace

Tensor slice(const Tensor& x, const std::vector<Slice>& slices) {
  const Shape& xs = x.shape();
  if (slices.size() > xs.size())
    throw std::invalid_argument("slice: " + std::to_string(slices.size()) + " slices for shape " +
                                shape_str(xs) + " (at most " + std::to_string(xs.size()) + ")");
  Shape os = xs;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges(slices.size());
  for (std::size_t d = 0; d < slices.size(); ++d) {
    ranges[d] = slice_range(slices[d], static_cast<std::int64_t>(xs[d]), "slice");
    os[d] = static_cast<std::size_t>(ranges[d].second);
  }
  auto maps = identity_maps(xs, os, "slice");
  if (shape_size(os) != 0)
    for (std::size_t d = 0; d < slices.size(); ++d) {
      auto& m = (*maps)[d];
      m.resize(os[d]);
      for (std::size_t i = 0; i < os[d]; ++i)
        m[i] = ranges[d].first + static_cast<std::int64_t>(i) * slices[d].step;
    }
  return detail::axis_gather(x, maps, os, 0.f, "slice");
}

Tensor slice(const Tensor& x, int axis, std::optional<std::int64_t> start,
             std::optional<std::int64_t> stop, std::int64_t step) {
  const int a = detail::normalize_axis(axis, x.ndim(), x.shape(), "slice");
  std::vector<Slice> s(static_cast<std::size_t>(a) + 1);
  s.back() = Slice{start, stop, step};
  return slice(x, s);
}

std::vector<Tensor> split_at(const Tensor& x, const std::vector<std::int64_t>& indices, int axis) {
  const int a = detail::normalize_axis(axis, x.ndim(), x.shape(), "split");
  std::vector<Tensor> parts;
  std::optional<std::int64_t> begin = std::nullopt;
  for (std::size_t i = 0; i <= indices.size(); ++i) {
    const std::optional<std::int64_t> end =
        i < indices.size() ? std::optional<std::int64_t>(indices[i]) : std::nullopt;
    parts.push_back(slice(x, a, begin, end, 1));
    begin = end;
  }
  return parts;
}

std::vector<Tensor> split(const Tensor& x, std::int64_t sections, int axis) {
  const int a = detail::normalize_axis(axis, x.ndim(), x.shape(), "split");
  const auto n = static_cast<std::int64_t>(x.shape()[static_cast<std::size_t>(a)]);
  if (sections < 1)
    throw std::invalid_argument("split: expected at least 1 section, got " +
                                std::to_string(sections));
  if (n % sections != 0)
    throw std::invalid_argument("split: axis " + std::to_string(axis) + " of shape " +
                                shape_str(x.shape()) + " (extent " + std::to_string(n) +
                                ") does not split into " + std::to_string(sections) +
                                " equal sections");
  std::vector<std::int64_t> at;
  for (std::int64_t i = 1; i < sections; ++i) at.push_back(i * (n / sections));
  return split_at(x, at, a);
}

Tensor expand_dims(const Tensor& x, const std::vector<int>& axes) {
  const std::size_t rank = x.ndim() + axes.size();
  std::vector<bool> inserted(rank, false);
  for (int ax : axes) {
    const int a = ax < 0 ? ax + static_cast<int>(rank) : ax;
    if (a < 0 || a >= static_cast<int>(rank))
      throw std::invalid_argument("expand_dims: axis " + std::to_string(ax) +
                                  " out of range for shape " + shape_str(x.shape()) +
                                  " (expected " + std::to_string(-static_cast<int>(rank)) +
                                  " <= axis < " + std::to_string(rank) + ")");
    if (inserted[static_cast<std::size_t>(a)])
      throw std::invalid_argument("expand_dims: repeated axis " + std::to_string(ax) +
                                  " for shape " + shape_str(x.shape()));
    inserted[static_cast<std::size_t>(a)] = true;
  }
  Shape s;
  std::size_t k = 0;
  for (std::size_t i = 0; i < rank; ++i) s.push_back(inserted[i] ? 1 : x.shape()[k++]);
  return reshape_to(x, s);
}

Tensor expand_dims(const Tensor& x, int axis) { return expand_dims(x, std::vector<int>{axis}); }

Tensor squeeze(const Tensor& x, const std::vector<int>& axes) {
  const Shape& xs = x.shape();
  std::vector<bool> drop(xs.size(), false);
  if (axes.empty()) {
    for (std::size_t i = 0; i < xs.size(); ++i) drop[i] = xs[i] == 1;
  } else {
    for (int ax : axes) {
      const int a = detail::normalize_axis(ax, xs.size(), xs, "squeeze");
      if (xs[static_cast<std::size_t>(a)] != 1)
        throw std::invalid_argument(
            "squeeze: axis " + std::to_string(ax) + " of shape " + shape_str(xs) + " has extent " +
            std::to_string(xs[static_cast<std::size_t>(a)]) + ", expected 1");
      drop[static_cast<std::size_t>(a)] = true;
    }
  }
  Shape s;
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (!drop[i]) s.push_back(xs[i]);
  return reshape_to(x, s);
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("stack: no tensors given");
  const Shape& s0 = xs[0].shape();
  for (std::size_t i = 1; i < xs.size(); ++i)
    if (xs[i].shape() != s0)
      throw std::invalid_argument("stack: tensor " + std::to_string(i) + " has shape " +
                                  shape_str(xs[i].shape()) + ", expected " + shape_str(s0) +
                                  " (that of tensor 0)");
  const int rank = static_cast<int>(s0.size()) + 1;
  if (axis < -rank || axis >= rank)
    throw std::invalid_argument("stack: axis " + std::to_string(axis) + " out of range for " +
                                std::to_string(xs.size()) + " tensors of shape " + shape_str(s0) +
                                " (expected " + std::to_string(-rank) + " <= axis < " +
                                std::to_string(rank) + ")");
  const int a = axis < 0 ? axis + rank : axis;
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (const Tensor& t : xs) expanded.push_back(expand_dims(t, a));
  return concat(expanded, a);
}

std::vector<Tensor> unstack(const Tensor& x, int axis) {
  const int a = detail::normalize_axis(axis, x.ndim(), x.shape(), "unstack");
  const std::size_t n = x.shape()[static_cast<std::size_t>(a)];
  std::vector<Tensor> parts;
  parts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::int64_t>(i);
    parts.push_back(squeeze(slice(x, a, k, k + 1, 1), {a}));
  }
  return parts;
}

PadMode parse_pad_mode(const std::string& name, const char* who) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "constant") return PadMode::constant;
  if (s == "reflect") return PadMode::reflect;
  if (s == "symmetric") return PadMode::symmetric;
  throw std::invalid_argument(std::string(who) +
                              ": padding mode must be \"constant\", \"reflect\" or "
                              "\"symmetric\", got \"" +
                              name + "\"");
}

namespace {

// NumPy's reflect/symmetric padding of one axis of extent n, as an index map: NumPy fills the
// pad area chunk by chunk, each chunk a mirror image of what is already filled (the original
// area first, then the earlier chunks), alternating left and right; reproduced here on indices.
std::vector<std::int64_t> reflect_map(std::int64_t n, std::int64_t before, std::int64_t after,
                                      bool symmetric) {
  const std::int64_t total = n + before + after;
  std::vector<std::int64_t> p(static_cast<std::size_t>(total), 0);
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(before + i)] = i;
  if (n == 1) return p;  // a single element is repeated (NumPy's legacy behaviour for reflect)
  const std::int64_t edge = symmetric ? 1 : 0;
  std::int64_t left = before, right = after;
  while (left > 0 || right > 0) {
    const std::int64_t filled = total - left - right - (symmetric ? 0 : 1);
    if (left > 0) {
      const std::int64_t chunk = std::min(filled, left);
      // Reads p[left - edge + chunk], ..., p[left - edge + 1] into p[left - chunk], ..., p[left-1].
      for (std::int64_t j = 0; j < chunk; ++j)
        p[static_cast<std::size_t>(left - chunk + j)] =
            p[static_cast<std::size_t>(left - edge + chunk - j)];
      left -= chunk;
    }
    if (right > 0) {
      const std::int64_t chunk = std::min(filled, right);
      const std::int64_t from = total - right + edge - 2;  // read leftwards from here
      for (std::int64_t j = 0; j < chunk; ++j)
        p[static_cast<std::size_t>(total - right + j)] = p[static_cast<std::size_t>(from - j)];
      right -= chunk;
    }
  }
  return p;
}

}  // namespace

namespace {

// Constant padding as rows: the axes up to the last padded one, `axis`, index output rows of
// (d + before + after) * inner contiguous values, each a copy of one input row (source >= 0)
// between fills, or all fill (source -1).
struct PadRows {
  Shape x_shape, out_shape;
  std::size_t d = 0, inner = 1, before = 0, after = 0;
  std::vector<long> source;
};

std::shared_ptr<const PadRows> pad_rows_plan(
    const Shape& xs, const Shape& os, const std::vector<std::pair<std::int64_t, std::int64_t>>& w) {
  auto p = std::make_shared<PadRows>();
  p->x_shape = xs;
  p->out_shape = os;
  std::size_t axis = xs.size() - 1;
  for (std::size_t a = 0; a < xs.size(); ++a)
    if (w[a].first != 0 || w[a].second != 0) axis = a;
  p->d = xs[axis];
  p->before = static_cast<std::size_t>(w[axis].first);
  p->after = static_cast<std::size_t>(w[axis].second);
  for (std::size_t a = axis + 1; a < xs.size(); ++a) p->inner *= xs[a];
  std::size_t rows = 1;
  for (std::size_t a = 0; a < axis; ++a) rows *= os[a];
  p->source.assign(rows, -1);
  std::vector<std::size_t> idx(axis, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    long src = 0;
    for (std::size_t a = 0; a < axis && src >= 0; ++a) {
      const auto i = static_cast<std::int64_t>(idx[a]) - w[a].first;
      src = i < 0 || i >= static_cast<std::int64_t>(xs[a])
                ? -1
                : src * static_cast<long>(xs[a]) + static_cast<long>(i);
    }
    p->source[r] = src;
    for (std::size_t a = axis; a-- > 0;) {
      if (++idx[a] < os[a]) break;
      idx[a] = 0;
    }
  }
  return p;
}

Tensor crop_rows(const Tensor& g, std::shared_ptr<const PadRows> p);

Tensor pad_rows(const Tensor& x, std::shared_ptr<const PadRows> p, float fill) {
  Tensor out = detail::new_result(p->out_shape, "pad");
  kernels::pad_rows(p->source.size(), p->source.data(), p->d, p->inner, p->before, p->after,
                    x.data(), fill, detail::mutable_data(out));
  // d/dx: the crop of the gradient to x's region.
  return record(
      "pad", out, {x}, [p](const Tensor& g, Grads& grads) { grads.add(0, crop_rows(g, p)); }, true);
}

Tensor crop_rows(const Tensor& g, std::shared_ptr<const PadRows> p) {
  Tensor out = Tensor::empty(p->x_shape);
  kernels::crop_rows(p->source.size(), p->source.data(), p->d, p->inner, p->before, p->after,
                     g.data(), detail::mutable_data(out));
  // The adjoint of the crop: the padding with zeros.
  return record(
      "pad", out, {g}, [p](const Tensor& gg, Grads& grads) { grads.add(0, pad_rows(gg, p, 0.f)); },
      true);
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width,
           PadMode mode, float constant_value) {
  const Shape& xs = x.shape();
  const std::size_t rank = xs.size();
  if (pad_width.size() != rank && pad_width.size() != 1)
    throw std::invalid_argument("pad: expected " + std::to_string(rank) +
                                " (before, after) pairs (or one for every axis) for shape " +
                                shape_str(xs) + ", got " + std::to_string(pad_width.size()));
  auto width = [&](std::size_t d) { return pad_width.size() == 1 ? pad_width[0] : pad_width[d]; };
  Shape os = xs;
  for (std::size_t d = 0; d < rank; ++d) {
    const auto [before, after] = width(d);
    if (before < 0 || after < 0)
      throw std::invalid_argument("pad: negative width (" + std::to_string(before) + ", " +
                                  std::to_string(after) + ") for axis " + std::to_string(d) +
                                  " of shape " + shape_str(xs));
    if (mode != PadMode::constant && xs[d] == 0 && (before > 0 || after > 0))
      throw std::invalid_argument("pad: cannot extend axis " + std::to_string(d) +
                                  " of extent 0 (shape " + shape_str(xs) +
                                  ") with reflect or symmetric padding; only constant padding can");
    std::size_t e = xs[d];
    if (__builtin_add_overflow(e, static_cast<std::size_t>(before), &e) ||
        __builtin_add_overflow(e, static_cast<std::size_t>(after), &e))
      throw std::length_error("pad: the padded extent of axis " + std::to_string(d) +
                              " exceeds 2^64");
    os[d] = e;
  }
  // Constant padding of a non-empty tensor: whole rows copied between fills.
  if (mode == PadMode::constant && rank > 0 && x.size() != 0 && detail::checked_size(os, "pad")) {
    std::vector<std::pair<std::int64_t, std::int64_t>> w(rank);
    for (std::size_t d = 0; d < rank; ++d) w[d] = width(d);
    return pad_rows(x, pad_rows_plan(xs, os, w), constant_value);
  }
  auto maps = std::make_shared<AxisMaps>(rank);
  if (detail::checked_size(os, "pad") != 0)
    for (std::size_t d = 0; d < rank; ++d) {
      const auto [before, after] = width(d);
      const auto n = static_cast<std::int64_t>(xs[d]);
      if (mode == PadMode::constant) {
        auto& m = (*maps)[d];
        m.assign(os[d], -1);
        for (std::int64_t i = 0; i < n; ++i) m[static_cast<std::size_t>(before + i)] = i;
      } else {
        (*maps)[d] = reflect_map(n, before, after, mode == PadMode::symmetric);
      }
    }
  return detail::axis_gather(x, maps, os, constant_value, "pad");
}

Tensor tile(const Tensor& x, const std::vector<std::int64_t>& reps) {
  for (std::int64_t r : reps)
    if (r < 0)
      throw std::invalid_argument("tile: negative repetitions in " + int_list(reps) +
                                  " for shape " + shape_str(x.shape()));
  const std::size_t rank = std::max(x.ndim(), reps.size());
  Shape xs(rank - x.ndim(), 1);
  xs.insert(xs.end(), x.shape().begin(), x.shape().end());
  std::vector<std::int64_t> r(rank - reps.size(), 1);
  r.insert(r.end(), reps.begin(), reps.end());
  Shape os(rank);
  for (std::size_t d = 0; d < rank; ++d)
    if (__builtin_mul_overflow(xs[d], static_cast<std::size_t>(r[d]), &os[d]))
      throw std::length_error("tile: the tiled extent of axis " + std::to_string(d) +
                              " exceeds 2^64");
  auto maps = std::make_shared<AxisMaps>(rank);
  if (detail::checked_size(os, "tile") != 0)
    for (std::size_t d = 0; d < rank; ++d) {
      auto& m = (*maps)[d];
      m.resize(os[d]);
      for (std::size_t i = 0; i < os[d]; ++i) m[i] = static_cast<std::int64_t>(i % xs[d]);
    }
  return detail::axis_gather(reshape_to(x, xs), maps, os, 0.f, "tile");
}

Tensor repeat(const Tensor& x, const std::vector<std::int64_t>& repeats, std::optional<int> axis) {
  if (!axis) return repeat(flatten(x), repeats, 0);
  const int a = detail::normalize_axis(*axis, x.ndim(), x.shape(), "repeat");
  const std::size_t n = x.shape()[static_cast<std::size_t>(a)];
  if (repeats.size() != n && repeats.size() != 1)
    throw std::invalid_argument("repeat: " + std::to_string(repeats.size()) +
                                " repeat counts for axis " + std::to_string(*axis) + " of shape " +
                                shape_str(x.shape()) + ", expected 1 or " + std::to_string(n));
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t r = repeats.size() == 1 ? repeats[0] : repeats[i];
    if (r < 0)
      throw std::invalid_argument("repeat: negative repeat count " + std::to_string(r) +
                                  " for shape " + shape_str(x.shape()));
    if (__builtin_add_overflow(total, static_cast<std::size_t>(r), &total))
      throw std::length_error("repeat: the repeated extent exceeds 2^64");
  }
  Shape os = x.shape();
  os[static_cast<std::size_t>(a)] = total;
  auto maps = identity_maps(x.shape(), os, "repeat");
  if (shape_size(os) != 0) {
    auto& m = (*maps)[static_cast<std::size_t>(a)];
    m.clear();
    m.reserve(total);
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t r = repeats.size() == 1 ? repeats[0] : repeats[i];
      m.insert(m.end(), static_cast<std::size_t>(r), static_cast<std::int64_t>(i));
    }
  }
  return detail::axis_gather(x, maps, os, 0.f, "repeat");
}

Tensor repeat(const Tensor& x, std::int64_t repeats, std::optional<int> axis) {
  return repeat(x, std::vector<std::int64_t>{repeats}, axis);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const Shape& xs = x.shape();
  bool ok = xs.size() <= shape.size();
  for (std::size_t i = 0; ok && i < xs.size(); ++i) {
    const std::size_t from = xs[xs.size() - 1 - i], to = shape[shape.size() - 1 - i];
    ok = from == to || from == 1;
  }
  if (!ok)
    throw std::invalid_argument("broadcast_to: cannot broadcast shape " + shape_str(xs) + " to " +
                                shape_str(shape));
  // An exact copy (the bits of -0 and NaN kept): a gather reading index 0 on stretched axes.
  Shape padded(shape.size() - xs.size(), 1);
  padded.insert(padded.end(), xs.begin(), xs.end());
  auto maps = std::make_shared<AxisMaps>(shape.size());
  if (detail::checked_size(shape, "broadcast_to") != 0)
    for (std::size_t d = 0; d < shape.size(); ++d)
      (*maps)[d] = padded[d] == shape[d] ? detail::identity_map(shape[d])
                                         : std::vector<std::int64_t>(shape[d], 0);
  Tensor out;
  {
    NoGrad guard;
    out = detail::axis_gather(detail::view_as(x, padded), maps, shape, 0.f, "broadcast_to");
  }
  // The gradient of a broadcast sums over the stretched and added axes.
  return record(
      "broadcast_to", out, {x},
      [xs](const Tensor& g, Grads& grads) { grads.add(0, sum_to(g, xs)); }, true);
}

Tensor flip(const Tensor& x, const std::vector<int>& axes) {
  const std::vector<int> norm = detail::normalize_axes(axes, x.shape(), "flip");
  auto maps = identity_maps(x.shape(), x.shape(), "flip");
  if (x.size() != 0)
    for (int a : norm) {
      auto& m = (*maps)[static_cast<std::size_t>(a)];
      std::reverse(m.begin(), m.end());
    }
  return detail::axis_gather(x, maps, x.shape(), 0.f, "flip");
}

Tensor roll(const Tensor& x, const std::vector<std::int64_t>& shifts,
            const std::vector<int>& axes) {
  if (shifts.size() != axes.size() && shifts.size() != 1)
    throw std::invalid_argument("roll: " + std::to_string(shifts.size()) + " shifts for " +
                                std::to_string(axes.size()) + " axes (expected as many, or one)");
  auto maps = identity_maps(x.shape(), x.shape(), "roll");
  std::vector<std::int64_t> total(x.ndim(), 0);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const int a = detail::normalize_axis(axes[i], x.ndim(), x.shape(), "roll");
    total[static_cast<std::size_t>(a)] += shifts.size() == 1 ? shifts[0] : shifts[i];
  }
  if (x.size() != 0)
    for (std::size_t d = 0; d < x.ndim(); ++d) {
      const auto n = static_cast<std::int64_t>(x.shape()[d]);
      const std::int64_t s = ((total[d] % n) + n) % n;
      // Element i moves to (i + s) mod n: result index o reads (o - s) mod n.
      for (std::int64_t o = 0; o < n; ++o)
        (*maps)[d][static_cast<std::size_t>(o)] = (o - s + n) % n;
    }
  return detail::axis_gather(x, maps, x.shape(), 0.f, "roll");
}

Tensor roll(const Tensor& x, std::int64_t shift, std::optional<int> axis) {
  if (!axis)
    return reshape_to(roll(flatten(x), std::vector<std::int64_t>{shift}, std::vector<int>{0}),
                      x.shape());
  return roll(x, std::vector<std::int64_t>{shift}, std::vector<int>{*axis});
}

}  // namespace xtape
