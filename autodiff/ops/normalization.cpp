// Statistics and scale-shift in one pass, and layer and group normalization as one kernel each
// way (the normalization layers' primitives). Each backward runs a kernel, or a composition of
// ops when creating a graph.
#include "kernels/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "autodiff/ops_normalization.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

// x viewed as (outer, channels, inner) around the axes [lo, hi) of `shape`.
struct Block {
  std::size_t outer = 1, channels = 1, inner = 1;
};

Block block_of(const Shape& shape, std::size_t lo, std::size_t hi) {
  Block b;
  for (std::size_t i = 0; i < shape.size(); ++i)
    (i < lo ? b.outer : i < hi ? b.channels : b.inner) *= shape[i];
  return b;
}

std::vector<long> as_long(const Shape& s) { return std::vector<long>(s.begin(), s.end()); }

}  // namespace

std::pair<Tensor, Tensor> fused_moments(const Tensor& x, std::vector<int> axes, bool keepdims) {
  const std::vector<int> red = detail::normalize_axes(axes, x.shape(), "fused_moments");
  const Shape& s = x.shape();
  // The kept axes must be one contiguous block [lo, hi).
  std::vector<std::size_t> kept;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (std::find(red.begin(), red.end(), static_cast<int>(i)) == red.end()) kept.push_back(i);
  const bool contiguous = kept.empty() || kept.back() - kept.front() + 1 == kept.size();
  if (!contiguous || x.size() == 0) return moments(x, red, keepdims);
  const std::size_t lo = kept.empty() ? 0 : kept.front();
  const std::size_t hi = kept.empty() ? 0 : kept.back() + 1;
  const Block b = block_of(s, lo, hi);
  const Shape keep_shape = detail::reduced_shape(s, red, true);
  // Row 0 the means, row 1 the variances: one record for both statistics.
  Tensor stats = Tensor::empty({2, b.channels});
  float* st = detail::mutable_data(stats);
  kernels::channel_moments(b.outer, b.channels, b.inner, x.data(), st, st + b.channels);
  const Tensor vx = x;  // with its history, for create_graph (an input: no cycle)
  const double count = static_cast<double>(b.outer) * static_cast<double>(b.inner);
  const Tensor vmean = detail::view_as(slice_rows(stats, 0, 1), keep_shape);
  const std::vector<long> ks = as_long(keep_shape);
  const detail::SavedOutput vstats(stats);
  // d mean/dx = 1/N; d var/dx = 2 (x - mean) / N.
  stats = record(
      "fused_moments", stats, {x},
      [vx, vmean, vstats, ks, count, b](const Tensor& g, Grads& grads) {
        if (!detail::creating_graph()) {
          // dx = x * (2 gv / N) + (gm - 2 gv mean) / N per channel: one pass over x.
          const float* gd = g.data();
          const float* md = vmean.data();
          std::vector<float> c1(b.channels), c2(b.channels);
          for (std::size_t c = 0; c < b.channels; ++c) {
            const double gm = gd[c], gv = gd[b.channels + c];
            c1[c] = static_cast<float>(2.0 * gv / count);
            c2[c] = static_cast<float>((gm - 2.0 * gv * md[c]) / count);
          }
          Tensor dx = Tensor::empty(vx.shape());
          kernels::channel_scale_shift(b.outer, b.channels, b.inner, vx.data(), c1.data(),
                                       c2.data(), detail::mutable_data(dx));
          grads.add(0, dx);
          return;
        }
        const Tensor gm = reshape(slice_rows(g, 0, 1), ks), gv = reshape(slice_rows(g, 1, 2), ks);
        // Creating a graph: the mean with its history (from this record's own output).
        const Tensor m =
            detail::creating_graph() ? reshape(slice_rows(vstats.tensor(), 0, 1), ks) : vmean;
        grads.add(0, (gm + gv * (vx - m) * 2.f) * static_cast<float>(1.0 / count));
      },
      true);
  const Shape out_shape = detail::reduced_shape(s, red, keepdims);
  const std::vector<long> os = as_long(out_shape);
  return {reshape(slice_rows(stats, 0, 1), os), reshape(slice_rows(stats, 1, 2), os)};
}

Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  if (scale.shape() != shift.shape())
    throw std::invalid_argument("scale_shift: scale of shape " + shape_str(scale.shape()) +
                                " and shift of shape " + shape_str(shift.shape()) + " differ");
  if (broadcast_shapes(x.shape(), scale.shape(), "scale_shift") != x.shape())
    throw std::invalid_argument("scale_shift: scale of shape " + shape_str(scale.shape()) +
                                " does not broadcast to the input's shape " + shape_str(x.shape()));
  // Right-align scale's shape on x's and find the block of its extents other than 1.
  const Shape& s = x.shape();
  const std::size_t lead = s.size() - scale.ndim();
  std::optional<std::size_t> lo;
  std::size_t hi = 0;
  for (std::size_t i = 0; i < scale.ndim(); ++i)
    if (scale.shape()[i] != 1) {
      if (!lo) lo = lead + i;
      hi = lead + i + 1;
    }
  bool ok = true;
  if (lo)
    for (std::size_t i = *lo; i < hi; ++i) ok = ok && scale.shape()[i - lead] == s[i];
  if (!ok || x.size() == 0) return x * scale + shift;
  // A conv2d result not read yet takes the scale and shift into its epilogue (a batch
  // normalization in inference costs no pass of its own).
  const Block b = lo ? block_of(s, *lo, hi) : Block{1, 1, x.size()};
  Tensor out = detail::fuse_conv_scale_shift(x, scale, shift);
  if (!out.defined()) {
    out = Tensor::empty(s);
    kernels::channel_scale_shift(b.outer, b.channels, b.inner, x.data(), scale.data(), shift.data(),
                                 detail::mutable_data(out));
  }
  const Tensor vx = x, va = scale;  // with their history, for create_graph (inputs)
  const Shape ss = scale.shape();
  // d/dx = scale, d/dscale = x, d/dshift = 1 (summed over the broadcast axes).
  return record(
      "scale_shift", out, {x, scale, shift},
      [vx, va, ss, b](const Tensor& g, Grads& grads) {
        if (!detail::creating_graph() && (grads.needs(1) || grads.needs(2))) {
          // Both parameter gradients in one pass over g and x.
          Tensor sg = Tensor::empty(ss), sgx = Tensor::empty(ss);
          kernels::channel_grad_sums(b.outer, b.channels, b.inner, g.data(), vx.data(),
                                     detail::mutable_data(sg), detail::mutable_data(sgx));
          if (grads.needs(0)) grads.add(0, g * va);
          if (grads.needs(1)) grads.add(1, sgx);
          if (grads.needs(2)) grads.add(2, sg);
          return;
        }
        if (grads.needs(0)) grads.add(0, g * va);
        if (grads.needs(1)) grads.add(1, sum_to(g * vx, ss));
        if (grads.needs(2)) grads.add(2, sum_to(g, ss));
      },
      true);
}

namespace {

// x normalized over `axes` of its view `view` (statistics with keepdims), times gamma (viewed
// as `wview`, undefined: absent) plus beta, as a composition of ops: the forward of zero-size
// inputs and the reference of the kernels.
Tensor composed_normalization(const Tensor& x, const std::vector<long>& view,
                              const std::vector<int>& axes, const Tensor& gamma, const Tensor& beta,
                              const std::vector<long>& wview, float epsilon) {
  const Tensor xv = reshape(x, view);
  const auto [m, v] = moments(xv, axes, true);
  Tensor y = (xv - m) * (1.f / sqrt(v + epsilon));
  if (gamma.defined()) y = y * reshape(gamma, wview);
  if (beta.defined()) y = y + reshape(beta, wview);
  return reshape(y, as_long(x.shape()));
}

// The weights' positions among a record's inputs (-1: absent) and their shape.
struct NormSlots {
  int gamma = -1, beta = -1;
  Shape weight;
};

// A normalization record's inputs: x, then gamma and beta when defined.
std::vector<Tensor> norm_inputs(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                const Shape& weight, NormSlots& slots) {
  std::vector<Tensor> list{x};
  slots.weight = weight;
  if (gamma.defined()) {
    slots.gamma = static_cast<int>(list.size());
    list.push_back(gamma);
  }
  if (beta.defined()) {
    slots.beta = static_cast<int>(list.size());
    list.push_back(beta);
  }
  return list;
}

bool wants(const Grads& grads, int i) { return i >= 0 && grads.needs(static_cast<std::size_t>(i)); }

// The gradients of composed_normalization as recorded ops (create_graph): with xhat and
// d = g * gamma over the statistics' axes, dx = rstd (d - mean(d) - xhat mean(d xhat)),
// dgamma = sum(g xhat), dbeta = sum(g) over the broadcast axes.
void composed_normalization_grads(const Tensor& x, const Tensor& gamma, const Tensor& g,
                                  const std::vector<long>& view, const std::vector<int>& axes,
                                  const std::vector<long>& wview, float epsilon, NormSlots in,
                                  Grads& grads) {
  const Tensor xv = reshape(x, view), gv = reshape(g, view);
  const auto [m, v] = moments(xv, axes, true);
  const Tensor r = 1.f / sqrt(v + epsilon);
  const Tensor xh = (xv - m) * r;
  const Shape ws(wview.begin(), wview.end());
  if (grads.needs(0)) {
    const Tensor d = gamma.defined() ? gv * reshape(gamma, wview) : gv;
    const Tensor dx = r * (d - mean(d, axes, true) - xh * mean(d * xh, axes, true));
    grads.add(0, reshape(dx, as_long(x.shape())));
  }
  if (wants(grads, in.gamma))
    grads.add(static_cast<std::size_t>(in.gamma),
              reshape(sum_to(gv * xh, ws), as_long(gamma.shape())));
  if (wants(grads, in.beta))
    grads.add(static_cast<std::size_t>(in.beta), reshape(sum_to(gv, ws), as_long(in.weight)));
}

void check_weight(const Tensor& w, const Shape& expected, const char* which, const char* op,
                  const Shape& xs) {
  if (w.defined() && w.shape() != expected)
    throw std::invalid_argument(std::string(op) + ": " + which + " of shape " +
                                shape_str(w.shape()) + " for inputs of shape " + shape_str(xs) +
                                ", expected " + shape_str(expected));
}

// axis (negative: from the end) as an index into s, or std::invalid_argument naming op.
int checked_axis(int axis, const Shape& s, const char* op) {
  const int rank = static_cast<int>(s.size());
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis) +
                                " out of range for inputs of shape " + shape_str(s) +
                                " (expected " + std::to_string(-rank) + " <= axis < " +
                                std::to_string(rank) + ")");
  return a;
}

void check_epsilon(float epsilon, const char* op) {
  if (!(epsilon >= 0.f))
    throw std::invalid_argument(std::string(op) + ": epsilon must be non-negative, got " +
                                std::to_string(epsilon));
}

}  // namespace

Tensor batch_normalization(const Tensor& x, int axis, const Tensor& gamma, const Tensor& beta,
                           float epsilon, Tensor* batch_mean, Tensor* batch_var) {
  const char* op = "batch_normalization";
  const Shape& s = x.shape();
  const int a = checked_axis(axis, s, op);
  check_epsilon(epsilon, op);
  const std::size_t c = s[static_cast<std::size_t>(a)];
  check_weight(gamma, {c}, "gamma", op, s);
  check_weight(beta, {c}, "beta", op, s);
  const Block b = block_of(s, static_cast<std::size_t>(a), static_cast<std::size_t>(a) + 1);
  // The view (outer, channels, inner) with statistics over axes 0 and 2; weights (channels, 1).
  const std::vector<long> view{static_cast<long>(b.outer), static_cast<long>(c),
                               static_cast<long>(b.inner)};
  const std::vector<long> wview{static_cast<long>(c), 1};
  if (x.size() == 0) {
    if (batch_mean != nullptr || batch_var != nullptr) {
      NoGrad guard;
      const auto [m, v] = moments(reshape(x, view), {0, 2});
      if (batch_mean != nullptr) *batch_mean = m;
      if (batch_var != nullptr) *batch_var = v;
    }
    return composed_normalization(x, view, {0, 2}, gamma, beta, wview, epsilon);
  }
  Tensor mean = Tensor::empty({c}), var = Tensor::empty({c});
  kernels::channel_moments(b.outer, c, b.inner, x.data(), detail::mutable_data(mean),
                           detail::mutable_data(var));
  // y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale (double).
  std::vector<float> scale(c), shift(c);
  const float* mv = mean.data();
  const float* vv = var.data();
  for (std::size_t k = 0; k < c; ++k) {
    const double inv = 1.0 / std::sqrt(static_cast<double>(vv[k]) + epsilon);
    const double sc = gamma.defined() ? inv * gamma.data()[k] : inv;
    scale[k] = static_cast<float>(sc);
    shift[k] = static_cast<float>(
        std::fma(-static_cast<double>(mv[k]), sc, beta.defined() ? beta.data()[k] : 0.0));
  }
  Tensor out = Tensor::empty(s);
  kernels::channel_scale_shift(b.outer, c, b.inner, x.data(), scale.data(), shift.data(),
                               detail::mutable_data(out));
  if (batch_mean != nullptr) *batch_mean = mean;
  if (batch_var != nullptr) *batch_var = var;
  NormSlots in;
  const std::vector<Tensor> inputs = norm_inputs(x, gamma, beta, Shape{c}, in);
  const Tensor vx = x, vg = gamma;  // with their history, for create_graph (inputs)
  return record(
      op, out, inputs,
      [vx, vg, mean, var, b, c, view, wview, epsilon, in](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {
          composed_normalization_grads(vx, vg, g, view, {0, 2}, wview, epsilon, in, grads);
          return;
        }
        // One pass for sum(g) and sum(g (x - mean)) per channel, one for
        // dx = A g + B (x - mean) + C.
        std::vector<float> sg(c), sgx(c);
        kernels::channel_grad_sums(b.outer, c, b.inner, g.data(), vx.data(), sg.data(), sgx.data(),
                                   mean.data());
        const double n = static_cast<double>(b.outer) * static_cast<double>(b.inner);
        std::vector<float> ca(c), cb(c), cc(c);
        Tensor dgamma, dbeta;
        if (wants(grads, in.gamma)) dgamma = Tensor::empty({c});
        if (wants(grads, in.beta)) dbeta = Tensor::empty({c});
        for (std::size_t k = 0; k < c; ++k) {
          const double inv = 1.0 / std::sqrt(static_cast<double>(var.data()[k]) + epsilon);
          const double gam = vg.defined() ? vg.data()[k] : 1.0;
          if (dgamma.defined()) detail::mutable_data(dgamma)[k] = static_cast<float>(sgx[k] * inv);
          if (dbeta.defined()) detail::mutable_data(dbeta)[k] = sg[k];
          const double bk = -gam * inv * inv * inv * sgx[k] / n;
          ca[k] = static_cast<float>(gam * inv);
          cb[k] = static_cast<float>(bk);
          cc[k] = static_cast<float>(-gam * inv * sg[k] / n);
        }
        if (grads.needs(0)) {
          Tensor dx = Tensor::empty(vx.shape());
          kernels::channel_norm_dx(b.outer, c, b.inner, g.data(), vx.data(), mean.data(), ca.data(),
                                   cb.data(), cc.data(), detail::mutable_data(dx));
          grads.add(0, dx);
        }
        if (dgamma.defined()) grads.add(static_cast<std::size_t>(in.gamma), dgamma);
        if (dbeta.defined()) grads.add(static_cast<std::size_t>(in.beta), dbeta);
      },
      true);
}

Tensor layer_normalization(const Tensor& x, int begin_axis, const Tensor& gamma, const Tensor& beta,
                           float epsilon) {
  const char* op = "layer_normalization";
  const Shape& s = x.shape();
  const int a = checked_axis(begin_axis, s, op);
  check_epsilon(epsilon, op);
  const Shape ws(s.begin() + a, s.end());
  check_weight(gamma, ws, "gamma", op, s);
  check_weight(beta, ws, "beta", op, s);
  const Block b = block_of(s, static_cast<std::size_t>(a), s.size());
  const std::size_t rows = b.outer, f = b.channels;
  // The view (rows, features) with statistics over axis 1; weights (features).
  const std::vector<long> view{static_cast<long>(rows), static_cast<long>(f)};
  const std::vector<long> wview{static_cast<long>(f)};
  if (x.size() == 0) return composed_normalization(x, view, {1}, gamma, beta, wview, epsilon);
  Tensor out = Tensor::empty(s);
  Tensor mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
  kernels::layer_norm_forward(rows, f, x.data(), gamma.defined() ? gamma.data() : nullptr,
                              beta.defined() ? beta.data() : nullptr, epsilon,
                              detail::mutable_data(out), detail::mutable_data(mean),
                              detail::mutable_data(rstd));
  NormSlots in;
  const std::vector<Tensor> inputs = norm_inputs(x, gamma, beta, ws, in);
  const Tensor vx = x, vg = gamma;  // with their history, for create_graph (inputs)
  return record(
      op, out, inputs,
      [vx, vg, mean, rstd, rows, f, view, wview, epsilon, in](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {
          composed_normalization_grads(vx, vg, g, view, {1}, wview, epsilon, in, grads);
          return;
        }
        Tensor dx, dgamma, dbeta;
        if (grads.needs(0)) dx = Tensor::empty(vx.shape());
        if (wants(grads, in.gamma)) dgamma = Tensor::empty(in.weight);
        if (wants(grads, in.beta)) dbeta = Tensor::empty(in.weight);
        auto ptr = [](const Tensor& t) { return t.defined() ? detail::mutable_data(t) : nullptr; };
        kernels::layer_norm_backward(rows, f, g.data(), vx.data(), mean.data(), rstd.data(),
                                     vg.defined() ? vg.data() : nullptr, ptr(dx), ptr(dgamma),
                                     ptr(dbeta));
        if (dx.defined()) grads.add(0, dx);
        if (dgamma.defined()) grads.add(static_cast<std::size_t>(in.gamma), dgamma);
        if (dbeta.defined()) grads.add(static_cast<std::size_t>(in.beta), dbeta);
      },
      true);
}

Tensor group_normalization(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                           float epsilon) {
  const char* op = "group_normalization";
  const Shape& s = x.shape();
  if (s.size() < 2)
    throw std::invalid_argument(std::string(op) +
                                ": expected inputs of rank 2 or more (batch, ..., channels), got "
                                "shape " +
                                shape_str(s));
  const std::size_t c = s.back();
  if (groups < 1 || c % static_cast<std::size_t>(groups) != 0)
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(groups) +
                                " groups do not divide the " + std::to_string(c) +
                                " channels of inputs of shape " + shape_str(s));
  check_epsilon(epsilon, op);
  check_weight(gamma, {c}, "gamma", op, s);
  check_weight(beta, {c}, "beta", op, s);
  const std::size_t n = s[0], gs = static_cast<std::size_t>(groups);
  const std::size_t spatial = n == 0 || c == 0 ? 0 : x.size() / (n * c);
  // The view (n, spatial, groups, channels / groups), statistics over axes 1 and 3.
  const std::vector<long> view{static_cast<long>(n), static_cast<long>(spatial),
                               static_cast<long>(gs), static_cast<long>(c / gs)};
  const std::vector<long> wview{static_cast<long>(gs), static_cast<long>(c / gs)};
  if (x.size() == 0) return composed_normalization(x, view, {1, 3}, gamma, beta, wview, epsilon);
  Tensor out = Tensor::empty(s);
  Tensor mean = Tensor::empty({n * gs}), rstd = Tensor::empty({n * gs});
  kernels::group_norm_forward(n, spatial, c, gs, x.data(), gamma.defined() ? gamma.data() : nullptr,
                              beta.defined() ? beta.data() : nullptr, epsilon,
                              detail::mutable_data(out), detail::mutable_data(mean),
                              detail::mutable_data(rstd));
  NormSlots in;
  const std::vector<Tensor> inputs = norm_inputs(x, gamma, beta, Shape{c}, in);
  const Tensor vx = x, vg = gamma;
  return record(
      op, out, inputs,
      [vx, vg, mean, rstd, n, spatial, c, gs, view, wview, epsilon, in](const Tensor& g,
                                                                        Grads& grads) {
        if (detail::creating_graph()) {
          composed_normalization_grads(vx, vg, g, view, {1, 3}, wview, epsilon, in, grads);
          return;
        }
        Tensor dx, dgamma, dbeta;
        if (grads.needs(0)) dx = Tensor::empty(vx.shape());
        if (wants(grads, in.gamma)) dgamma = Tensor::empty(in.weight);
        if (wants(grads, in.beta)) dbeta = Tensor::empty(in.weight);
        auto ptr = [](const Tensor& t) { return t.defined() ? detail::mutable_data(t) : nullptr; };
        kernels::group_norm_backward(n, spatial, c, gs, g.data(), vx.data(), mean.data(),
                                     rstd.data(), vg.defined() ? vg.data() : nullptr, ptr(dx),
                                     ptr(dgamma), ptr(dbeta));
        if (dx.defined()) grads.add(0, dx);
        if (dgamma.defined()) grads.add(static_cast<std::size_t>(in.gamma), dgamma);
        if (dbeta.defined()) grads.add(static_cast<std::size_t>(in.beta), dbeta);
      },
      true);
}

}  // namespace xtape
