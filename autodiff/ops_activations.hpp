#pragma once
/// @file ops_activations.hpp
/// Activation functions with Keras 3's formulas and defaults (keras.activations). leaky_relu,
/// elu, selu, softsign, silu, gelu, hard_sigmoid, hard_silu and mish are primitives with
/// one-pass kernels forward and backward (autodiff/ops/activations.cpp); relu with options and
/// relu6 are compositions. Every one keeps the input's shape and propagates NaN (f(NaN) is
/// NaN); all are differentiable twice (create_graph). relu, sigmoid, tanh, softmax,
/// log_softmax, softplus and exp are in autodiff/ops.hpp.
#include <optional>

#include "autodiff/tensor.hpp"

namespace xtape {

/// keras.activations.relu with its options: x above `threshold` (0 at and below it), clipped
/// to `max_value` when given, minus negative_slope * relu(threshold - x). relu(x) itself is the
/// primitive. Throws std::invalid_argument for a negative max_value.
Tensor relu(const Tensor& x, float negative_slope, std::optional<float> max_value = std::nullopt,
            float threshold = 0.f);
/// min(max(x, 0), 6).
Tensor relu6(const Tensor& x);
/// x for x > 0, negative_slope * x otherwise (Keras 3's default slope 0.2).
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.2f);
/// x for x > 0, alpha * (exp(x) - 1) otherwise.
Tensor elu(const Tensor& x, float alpha = 1.f);
/// scale * elu(x, alpha) with alpha = 1.67326324, scale = 1.05070098 (Klambauer et al.).
Tensor selu(const Tensor& x);
/// x / (|x| + 1).
Tensor softsign(const Tensor& x);
/// x * sigmoid(x) (also called swish).
Tensor silu(const Tensor& x);
/// The Gaussian error linear unit: 0.5 x (1 + erf(x / sqrt(2))), or with `approximate` the
/// tanh form 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
Tensor gelu(const Tensor& x, bool approximate = false);
/// clip(x / 6 + 0.5, 0, 1).
Tensor hard_sigmoid(const Tensor& x);
/// x * hard_sigmoid(x) (also called hard_swish).
Tensor hard_silu(const Tensor& x);
/// x * tanh(softplus(x)).
Tensor mish(const Tensor& x);

}  // namespace xtape
