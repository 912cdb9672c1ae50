// Neural-network ops: softmax, log_softmax, dropout and the cross-entropy losses.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/softmax.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

int last_axis_or_transpose(const Tensor& x, int axis, const char* op) {
  const int n = static_cast<int>(x.ndim());
  const int a = axis < 0 ? axis + n : axis;
  if (n == 0 || a < 0 || a >= n)
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis) +
                                " out of range for shape " + shape_str(x.shape()));
  return a;
}

// Runs f (an op over the last axis) on x with `axis` moved last, by composition with transpose.
template <class F>
Tensor along_axis(const Tensor& x, int axis, const char* op, F f) {
  const int a = last_axis_or_transpose(x, axis, op);
  const int n = static_cast<int>(x.ndim());
  if (a == n - 1) return f(x);
  std::vector<int> perm;
  for (int i = 0; i < n; ++i)
    if (i != a) perm.push_back(i);
  perm.push_back(a);
  std::vector<int> inverse(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    inverse[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = i;
  return transpose(f(transpose(x, perm)), inverse);
}

// Row-wise over the last axis: y = x - max - log(sum(exp(x - max))); also returns softmax.
void log_softmax_rows(const Tensor& x, float* logy, float* y) {
  const std::size_t cols = x.shape().back(), rows = x.size() / std::max<std::size_t>(cols, 1);
  const float* xv = x.data();
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = xv + r * cols;
    const float m = *std::max_element(row, row + cols);
    double s = 0.0;
    for (std::size_t c = 0; c < cols; ++c) s += std::exp(static_cast<double>(row[c] - m));
    // (x - m) - log(s): rounding m + log(s) to float first would lose the low bits.
    const float log_s = static_cast<float>(std::log(s));
    for (std::size_t c = 0; c < cols; ++c) {
      const float l = (row[c] - m) - log_s;
      if (logy) logy[r * cols + c] = l;
      if (y) y[r * cols + c] = std::exp(l);
    }
  }
}

// Row sums of a (rows, cols) tensor, shape (rows, 1)-compatible for broadcasting back
// (recorded when a backward creates a graph).
Tensor row_sum_keep(const Tensor& t) {
  const int last = static_cast<int>(t.ndim()) - 1;
  if (detail::creating_graph()) return sum(t, {last}, true);
  return detail::sum_values(t, {last});
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  const bool last = last_axis_or_transpose(x, axis, "softmax") + 1 == static_cast<int>(x.ndim());
  Tensor result = along_axis(x, axis, "softmax", [](const Tensor& v) {
    Tensor out = Tensor::empty(v.shape());
    const std::size_t cols = v.shape().back(), rows = v.size() / std::max<std::size_t>(cols, 1);
    kernels::softmax_rows(rows, cols, v.data(), detail::mutable_data(out));
    const detail::SavedOutput vy(out);
    // dx = y * (g - sum(g * y)) along the axis: one pass per row, or recorded when the
    // backward creates a graph.
    return record(
        "softmax", out, {v},
        [vy, rows, cols](const Tensor& g, Grads& grads) {
          const Tensor y = vy.tensor();
          if (detail::creating_graph()) return grads.add(0, y * (g - row_sum_keep(g * y)));
          Tensor dx = Tensor::empty(g.shape());
          kernels::softmax_backward_rows(rows, cols, y.data(), g.data(), detail::mutable_data(dx));
          grads.add(0, dx);
        },
        true);
  });
  if (last) result.impl()->softmax_logits = x;  // for categorical_crossentropy (see there)
  return result;
}

Tensor log_softmax(const Tensor& x, int axis) {
  return along_axis(x, axis, "log_softmax", [](const Tensor& v) {
    Tensor out = Tensor::empty(v.shape());
    Tensor sm = Tensor::empty(v.shape());
    log_softmax_rows(v, detail::mutable_data(out), detail::mutable_data(sm));
    // dx = g - softmax(x) * sum(g) along the axis.
    const detail::SavedOutput vout(out);
    return record(
        "log_softmax", out, {v},
        [sm, vout](const Tensor& g, Grads& grads) {
          // Creating a graph: softmax = exp(log_softmax), recorded from the output.
          grads.add(0, g - (detail::creating_graph() ? exp(vout.tensor()) : sm) * row_sum_keep(g));
        },
        true);
  });
}

Tensor dropout(const Tensor& x, float rate, bool training, Rng& rng) {
  if (!(rate >= 0.f && rate < 1.f))
    throw std::invalid_argument("dropout: rate must be in [0, 1), got " + std::to_string(rate));
  if (!training || rate == 0.f) return x;
  // One draw of the caller's generator keys a counter-based hash that decides every element
  // (vectorised, and the same mask whatever the thread count). mask holds 1/(1-rate) or 0.
  const float scale = 1.f / (1.f - rate);
  Tensor mask = Tensor::empty(x.shape());
  Tensor out = Tensor::empty(x.shape());
  kernels::dropout_forward(x.size(), rng.next_u64(), rate, scale, x.data(),
                           detail::mutable_data(mask), detail::mutable_data(out));
  // d/dx = mask / (1 - rate).
  return record(
      "dropout", out, {x},
      [mask, scale](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) {  // g times the constant scale-or-zero mask
          Tensor m = Tensor::empty(mask.shape());
          const float* mv = mask.data();
          float* o = detail::mutable_data(m);
          for (std::size_t i = 0, count = mask.size(); i < count; ++i)
            o[i] = mv[i] != 0.f ? scale : 0.f;
          return grads.add(0, g * m);
        }
        Tensor d = Tensor::empty(g.shape());
        kernels::masked_scale(g.size(), mask.data(), g.data(), scale, detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

namespace {
void check_loss_shapes(const char* op, const Tensor& y_true, const Tensor& y_pred) {
  if (y_pred.ndim() < 1 || y_true.shape() != y_pred.shape())
    throw std::invalid_argument(std::string(op) + ": y_true of shape " + shape_str(y_true.shape()) +
                                " does not match y_pred of shape " + shape_str(y_pred.shape()));
}
}  // namespace

Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits) {
  check_loss_shapes("categorical_crossentropy", y_true, y_pred);
  // Compositions of primitives (Keras's formulas); no backward code of their own.
  if (from_logits) return -sum(y_true * log_softmax(y_pred, -1), {-1});
  // Keras (TensorFlow backend): probabilities that came out of a softmax are scored from the
  // softmax's logits instead, exactly and without the clip.
  if (const Tensor& logits = y_pred.impl()->softmax_logits; logits.defined())
    return -sum(y_true * log_softmax(logits, -1), {-1});
  constexpr float eps = 1e-7f;
  const Tensor p = clip(y_pred / sum(y_pred, {-1}, true), eps, 1.f - eps);
  return -sum(y_true * log(p), {-1});
}

Tensor sparse_categorical_crossentropy(const Tensor& labels, const Tensor& y_pred,
                                       bool from_logits) {
  if (y_pred.ndim() < 1 || labels.size() * y_pred.shape().back() != y_pred.size())
    throw std::invalid_argument("sparse_categorical_crossentropy: labels of shape " +
                                shape_str(labels.shape()) + " do not match y_pred of shape " +
                                shape_str(y_pred.shape()));
  const std::size_t k = y_pred.shape().back();
  Tensor one_hot(y_pred.shape(), 0.f);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const float l = labels.data()[i];
    if (!(l >= 0.f && l < static_cast<float>(k)) || l != std::floor(l))
      throw std::invalid_argument("sparse_categorical_crossentropy: label " + std::to_string(l) +
                                  " at position " + std::to_string(i) +
                                  " is not a class index in [0, " + std::to_string(k) + ")");
    detail::mutable_data(one_hot)[i * k + static_cast<std::size_t>(l)] = 1.f;
  }
  return categorical_crossentropy(one_hot, y_pred, from_logits);
}

}  // namespace xtape
