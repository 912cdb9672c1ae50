// Activation functions (Keras 3's formulas). Most are primitives with one-pass kernels
// (kernels/activations.hpp) forward and backward; while a graph is being created their
// gradient is built from recorded ops instead (the derivative below each forward), so it can
// be differentiated again. The rest are compositions with no backward code.
#include "kernels/activations.hpp"

#include <stdexcept>
#include <string>

#include "autodiff/ops/helpers.hpp"
#include "autodiff/ops_activations.hpp"
#include "autodiff/ops_elementwise.hpp"

namespace xtape {

using detail::Grads;
using detail::record;
using kernels::Activation;

namespace {

constexpr float kSeluAlpha = 1.6732632423543772f, kSeluScale = 1.0507009873554805f;

// f'(x) * g with recorded ops (for create_graph).
using ComposedGrad = Tensor (*)(const Tensor& x, const Tensor& g, float param);

// The primitive `op`: y = f(x) by the forward kernel; dx = g * f'(x) by the backward kernel
// from x (and y), or by `composed` while creating a graph.
Tensor activation(const char* op, Activation f, float param, const Tensor& x,
                  ComposedGrad composed) {
  Tensor out = Tensor::empty(x.shape());
  kernels::activation_forward(f, param, x.size(), x.data(), detail::mutable_data(out));
  const Tensor vx = x;  // with its history, for create_graph (an input: no cycle)
  // The output too where the backward kernel reads it (gelu's Phi(x) = y / x); no history.
  const Tensor vy = f == Activation::gelu ? detail::saved(out) : Tensor();
  return record(
      op, out, {x},
      [vx, vy, f, param, composed](const Tensor& g, Grads& grads) {
        if (detail::creating_graph()) return grads.add(0, composed(vx, g, param));
        Tensor d = Tensor::empty(vx.shape());
        kernels::activation_backward(f, param, vx.size(), vx.data(),
                                     vy.defined() ? vy.data() : nullptr, g.data(),
                                     detail::mutable_data(d));
        grads.add(0, d);
      },
      true);
}

// A constant (no history): where(x > 0, 1, slope).
Tensor positive_or(const Tensor& x, float slope) {
  return where(greater(x, 0.f), Tensor::scalar(1.f), Tensor::scalar(slope));
}

// A constant: [0 <= x / 6 + 0.5 <= 1] / 6, hard_sigmoid's derivative.
Tensor hard_sigmoid_slope(const Tensor& x) {
  const Tensor u = detail::saved(x) / 6.f + 0.5f;
  return greater_equal(u, 0.f) * less_equal(u, 1.f) / 6.f;
}

}  // namespace

Tensor relu(const Tensor& x, float negative_slope, std::optional<float> max_value,
            float threshold) {
  if (max_value && !(*max_value >= 0.f))
    throw std::invalid_argument("relu: max_value must be >= 0, got " + std::to_string(*max_value));
  // As keras.activations.relu: the damped negative part is taken before clipping.
  if (negative_slope != 0.f && !max_value && threshold == 0.f) return leaky_relu(x, negative_slope);
  Tensor y = threshold != 0.f ? x * greater(x, threshold) : relu(x);
  if (max_value) y = clip(y, 0.f, *max_value);
  if (negative_slope != 0.f) y = y - relu(threshold - x) * negative_slope;
  return y;
}

Tensor relu6(const Tensor& x) { return clip(x, 0.f, 6.f); }

Tensor leaky_relu(const Tensor& x, float negative_slope) {
  // d/dx = x > 0 ? 1 : negative_slope (negative_slope for NaN x, as PyTorch).
  return activation(
      "leaky_relu", Activation::leaky_relu, negative_slope, x,
      [](const Tensor& vx, const Tensor& g, float slope) { return g * positive_or(vx, slope); });
}

Tensor elu(const Tensor& x, float alpha) {
  // d/dx = x > 0 ? 1 : alpha exp(x); exp of min(x, 0), so that the unused branch stays finite
  // and its zero gradient zero.
  return activation("elu", Activation::elu, alpha, x,
                    [](const Tensor& vx, const Tensor& g, float a) {
                      return where(greater(vx, 0.f), g, g * exp(minimum(vx, 0.f)) * a);
                    });
}

Tensor selu(const Tensor& x) {
  // d/dx = scale (x > 0 ? 1 : alpha exp(x)).
  return activation("selu", Activation::selu, 0.f, x, [](const Tensor& vx, const Tensor& g, float) {
    return where(greater(vx, 0.f), g, g * exp(minimum(vx, 0.f)) * kSeluAlpha) * kSeluScale;
  });
}

Tensor softsign(const Tensor& x) {
  // d/dx = 1 / (1 + |x|)^2.
  return activation(
      "softsign", Activation::softsign, 0.f, x,
      [](const Tensor& vx, const Tensor& g, float) { return g / square(abs(vx) + 1.f); });
}

Tensor silu(const Tensor& x) {
  // d/dx = s (1 + x (1 - s)), s = sigmoid(x).
  return activation("silu", Activation::silu, 0.f, x, [](const Tensor& vx, const Tensor& g, float) {
    const Tensor s = sigmoid(vx);
    return g * s * (vx * (1.f - s) + 1.f);
  });
}

Tensor gelu(const Tensor& x, bool approximate) {
  if (approximate) {
    // With s = sigmoid(2u) = 0.5 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3):
    // d/dx = s + 2 x s (1 - s) u'.
    return activation("gelu_tanh", Activation::gelu_tanh, 0.f, x,
                      [](const Tensor& vx, const Tensor& g, float) {
                        constexpr float k = 0.7978845608028654f, c = 0.044715f;
                        const Tensor s = sigmoid((vx + vx * vx * vx * c) * (2.f * k));
                        const Tensor du = (square(vx) * (3.f * c) + 1.f) * (2.f * k);
                        return g * (s + vx * s * (1.f - s) * du);
                      });
  }
  // d/dx = Phi(x) + x phi(x).
  return activation("gelu", Activation::gelu, 0.f, x, [](const Tensor& vx, const Tensor& g, float) {
    constexpr float inv_sqrt2 = 0.7071067811865476f, inv_sqrt_2pi = 0.3989422804014327f;
    const Tensor cdf = (erf(vx * inv_sqrt2) + 1.f) * 0.5f;
    return g * (cdf + vx * exp(square(vx) * -0.5f) * inv_sqrt_2pi);
  });
}

Tensor hard_sigmoid(const Tensor& x) {
  // d/dx = [-3 <= x <= 3] / 6 (a constant).
  return activation(
      "hard_sigmoid", Activation::hard_sigmoid, 0.f, x,
      [](const Tensor& vx, const Tensor& g, float) { return g * hard_sigmoid_slope(vx); });
}

Tensor hard_silu(const Tensor& x) {
  // d/dx = hard_sigmoid(x) + x hard_sigmoid'(x).
  return activation("hard_silu", Activation::hard_silu, 0.f, x,
                    [](const Tensor& vx, const Tensor& g, float) {
                      return g * (hard_sigmoid(vx) + vx * hard_sigmoid_slope(vx));
                    });
}

Tensor mish(const Tensor& x) {
  // d/dx = t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x)).
  return activation("mish", Activation::mish, 0.f, x, [](const Tensor& vx, const Tensor& g, float) {
    const Tensor t = tanh(softplus(vx));
    return g * (t + vx * (1.f - square(t)) * sigmoid(vx));
  });
}

Tensor softplus(const Tensor& x) {
  // max(x, 0) + log1p(exp(-|x|)): no overflow for large x, exact for very negative x.
  // d/dx = sigmoid(x).
  return activation("softplus", Activation::softplus, 0.f, x,
                    [](const Tensor& vx, const Tensor& g, float) { return g * sigmoid(vx); });
}

}  // namespace xtape
