#include "layers/activations.hpp"

#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

ActivationFn get_activation(const std::string& name) {
  if (name.empty() || name == "linear") return [](const Tensor& x) { return x; };
  if (name == "relu") return [](const Tensor& x) { return relu(x); };
  if (name == "softmax") return [](const Tensor& x) { return softmax(x, -1); };
  if (name == "log_softmax") return [](const Tensor& x) { return log_softmax(x, -1); };
  if (name == "sigmoid") return [](const Tensor& x) { return sigmoid(x); };
  if (name == "tanh") return [](const Tensor& x) { return tanh(x); };
  if (name == "exp" || name == "exponential") return [](const Tensor& x) { return exp(x); };
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected relu, softmax, log_softmax, sigmoid, tanh, exponential or linear)");
}

}  // namespace xtape::layers
