#include "layers/activations.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"

namespace xtape::layers {

namespace {

using Entry = std::pair<const char*, Tensor (*)(const Tensor&)>;

// Name -> function with Keras's default options, in the order the error message lists them.
const std::vector<Entry>& table() {
  static const std::vector<Entry> t = {
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"relu6", [](const Tensor& x) { return relu6(x); }},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }},
      {"elu", [](const Tensor& x) { return elu(x); }},
      {"selu", [](const Tensor& x) { return selu(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"swish", [](const Tensor& x) { return silu(x); }},
      {"hard_sigmoid", [](const Tensor& x) { return hard_sigmoid(x); }},
      {"hard_silu", [](const Tensor& x) { return hard_silu(x); }},
      {"hard_swish", [](const Tensor& x) { return hard_silu(x); }},
      {"mish", [](const Tensor& x) { return mish(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"softsign", [](const Tensor& x) { return softsign(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"softmax", [](const Tensor& x) { return softmax(x, -1); }},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x, -1); }},
      {"exponential", [](const Tensor& x) { return exp(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
  };
  return t;
}

}  // namespace

ActivationFn get_activation(const std::string& name) {
  if (name.empty() || name == "linear") return [](const Tensor& x) { return x; };
  for (const auto& [key, fn] : table())
    if (name == key) return fn;
  std::string known;
  for (const auto& entry : table()) known += std::string(entry.first) + ", ";
  throw std::invalid_argument("unknown activation '" + name + "' (expected one of " + known +
                              "linear)");
}

}  // namespace xtape::layers
