#pragma once
/// @file activations.hpp
/// Activation functions by Keras name.
#include <functional>
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::layers {

using ActivationFn = std::function<Tensor(const Tensor&)>;

/// Keras 3's names with their default options: "relu", "relu6", "leaky_relu" (slope 0.2),
/// "elu", "selu", "gelu" (exact), "silu" / "swish", "hard_sigmoid", "hard_silu" /
/// "hard_swish", "mish", "softplus", "softsign", "sigmoid", "tanh", "softmax", "log_softmax"
/// (last axis), "exponential" (or "exp"), "linear" (or "" for none). The functions themselves
/// are in autodiff/ops_activations.hpp. Throws std::invalid_argument naming the unknown
/// activation and the known names.
ActivationFn get_activation(const std::string& name);

}  // namespace xtape::layers
