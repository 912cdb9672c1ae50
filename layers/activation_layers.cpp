#include "layers/activation_layers.hpp"

#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"

namespace xtape::layers {

namespace {

std::string num(float v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Keras: "<option> of a <Layer> layer cannot be None or a negative value".
void require_non_negative(float v, const char* option, const char* layer) {
  if (!(v >= 0.f))
    throw std::invalid_argument(std::string(option) + " of a " + layer +
                                " layer cannot be a negative value. Received: " + option + "=" +
                                num(v));
}

}  // namespace

ReLU::ReLU(ReLUOptions options) : Layer(options.name), options_(std::move(options)) {
  if (options_.max_value) require_non_negative(*options_.max_value, "max_value", "ReLU");
  require_non_negative(options_.negative_slope, "negative_slope", "ReLU");
  require_non_negative(options_.threshold, "threshold", "ReLU");
}

Tensor ReLU::call(const Tensor& inputs, bool) {
  const ReLUOptions& o = options_;
  if (o.negative_slope == 0.f && !o.max_value && o.threshold == 0.f) return relu(inputs);
  return relu(inputs, o.negative_slope, o.max_value, o.threshold);
}

nlohmann::json ReLU::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["max_value"] =
      options_.max_value ? nlohmann::json(*options_.max_value) : nlohmann::json(nullptr);
  c["negative_slope"] = options_.negative_slope;
  c["threshold"] = options_.threshold;
  return c;
}

LeakyReLU::LeakyReLU(LeakyReLUOptions options) : Layer(options.name), options_(std::move(options)) {
  if (!(options_.negative_slope >= 0.f))
    throw std::invalid_argument(
        "The negative_slope value of a Leaky ReLU layer cannot be a negative value. Expected a "
        "float. Received: negative_slope=" +
        num(options_.negative_slope));
}

Tensor LeakyReLU::call(const Tensor& inputs, bool) {
  return leaky_relu(inputs, options_.negative_slope);
}

nlohmann::json LeakyReLU::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["negative_slope"] = options_.negative_slope;
  return c;
}

PReLU::PReLU(PReLUOptions options) : Layer(options.name), options_(std::move(options)) {
  get_initializer(options_.alpha_initializer);  // validate the name now
}

void PReLU::build(const Shape& input_shape) {
  Shape param = input_shape;
  for (int axis : options_.shared_axes) {
    if (axis < 1 || axis > static_cast<int>(input_shape.size()))
      throw std::invalid_argument("PReLU '" + name() + "': shared axis " + std::to_string(axis) +
                                  " out of range for inputs of shape " +
                                  batch_shape_str(input_shape) + " (expected 1.." +
                                  std::to_string(input_shape.size()) + ")");
    param[static_cast<std::size_t>(axis - 1)] = 1;
  }
  add_weight("alpha", param, get_initializer(options_.alpha_initializer));
}

Tensor PReLU::call(const Tensor& inputs, bool) {
  // Keras: relu(x) - alpha * relu(-x).
  return relu(inputs) - alpha() * relu(-inputs);
}

nlohmann::json PReLU::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["alpha_initializer"] = options_.alpha_initializer;
  c["alpha_regularizer"] = nullptr;
  c["alpha_constraint"] = nullptr;
  c["shared_axes"] =
      options_.shared_axes.empty() ? nlohmann::json(nullptr) : nlohmann::json(options_.shared_axes);
  return c;
}

ELU::ELU(ELUOptions options) : Layer(options.name), options_(std::move(options)) {}

Tensor ELU::call(const Tensor& inputs, bool) { return elu(inputs, options_.alpha); }

nlohmann::json ELU::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["alpha"] = options_.alpha;
  return c;
}

Softmax::Softmax(SoftmaxOptions options) : Layer(options.name), options_(std::move(options)) {}

void Softmax::build(const Shape& input_shape) {
  const int rank = static_cast<int>(input_shape.size()) + 1;  // with the batch axis
  const int axis = options_.axis < 0 ? options_.axis + rank : options_.axis;
  if (axis < 0 || axis >= rank)
    throw std::invalid_argument("Softmax '" + name() + "': axis " + std::to_string(options_.axis) +
                                " out of range for inputs of shape " +
                                batch_shape_str(input_shape));
}

Tensor Softmax::call(const Tensor& inputs, bool) { return softmax(inputs, options_.axis); }

nlohmann::json Softmax::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["axis"] = options_.axis;
  return c;
}

}  // namespace xtape::layers
