// Activation functions as compositions of primitives (Keras 3's formulas); no backward code.
#include <stdexcept>
#include <string>

#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"

namespace xtape {

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
  // NaN: the condition is false and negative_slope * NaN is NaN.
  return where(greater(x, 0.f), x, x * negative_slope);
}

Tensor elu(const Tensor& x, float alpha) {
  // expm1 of min(x, 0): the unused branch stays finite, so its zero gradient stays zero (an
  // overflowing exp(x) for large x would turn 0 * inf into NaN).
  return where(greater(x, 0.f), x, expm1(minimum(x, 0.f)) * alpha);
}

Tensor selu(const Tensor& x) {
  constexpr float alpha = 1.6732632423543772f, scale = 1.0507009873554805f;
  return elu(x, alpha) * scale;
}

Tensor softsign(const Tensor& x) { return x / (abs(x) + 1.f); }

Tensor silu(const Tensor& x) { return x * sigmoid(x); }

Tensor gelu(const Tensor& x, bool approximate) {
  if (approximate) {
    constexpr float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return x * 0.5f * (1.f + tanh((x + x * x * x * 0.044715f) * k));
  }
  constexpr float inv_sqrt2 = 0.7071067811865476f;
  return x * 0.5f * (1.f + erf(x * inv_sqrt2));
}

Tensor hard_sigmoid(const Tensor& x) { return clip(x / 6.f + 0.5f, 0.f, 1.f); }

Tensor hard_silu(const Tensor& x) { return x * hard_sigmoid(x); }

Tensor mish(const Tensor& x) { return x * tanh(softplus(x)); }

}  // namespace xtape
