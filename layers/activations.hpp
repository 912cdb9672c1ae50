#pragma once
/// @file activations.hpp
/// Activation functions by Keras name.
#include <functional>
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::layers {

using ActivationFn = std::function<Tensor(const Tensor&)>;

/// "relu", "softmax", "sigmoid", "tanh", "linear" (or "" for none), "log_softmax", "exp".
/// Throws std::invalid_argument naming the unknown activation.
ActivationFn get_activation(const std::string& name);

}  // namespace xtape::layers
