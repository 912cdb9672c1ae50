#include "layers/core.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "layers/node.hpp"
#include "layers/state_text.hpp"

namespace xtape::layers {

InputLayer::InputLayer(Shape shape, std::string name)
    : Layer(std::move(name)), shape_(std::move(shape)) {
  for (std::size_t d : shape_)
    if (d == 0)
      throw std::invalid_argument("Input: shape " + shape_str(shape_) + " has a zero extent");
}

Tensor InputLayer::call(const Tensor& inputs, bool) { return inputs; }

nlohmann::json InputLayer::get_config() const {
  nlohmann::json batch_shape = nlohmann::json::array({nullptr});
  for (std::size_t d : shape_) batch_shape.push_back(d);
  return {{"name", name()}, {"batch_shape", batch_shape}, {"dtype", "float32"}, {"sparse", false}};
}

SymbolicTensor Input(Shape shape, std::string name) {
  auto layer = std::make_shared<InputLayer>(shape, std::move(name));
  layer->ensure_built(shape);
  return SymbolicTensor(detail::make_node(layer, {}, {shape}, 0), 0);
}

Dense::Dense(DenseOptions options)
    : Layer(options.name),
      options_(std::move(options)),
      activation_(get_activation(options_.activation)) {
  if (options_.units == 0) throw std::invalid_argument("Dense: units must be positive, got 0");
  get_initializer(options_.kernel_initializer);  // validate names now, not at build time
  get_initializer(options_.bias_initializer);
}

void Dense::build(const Shape& input_shape) {
  if (input_shape.empty())
    throw std::invalid_argument("Dense '" + name() + "': expected inputs of rank >= 2, got " +
                                batch_shape_str(input_shape));
  add_weight("kernel", {input_shape.back(), options_.units},
             get_initializer(options_.kernel_initializer), true,
             as_penalty(options_.kernel_regularizer), as_projection(options_.kernel_constraint));
  if (options_.use_bias)
    add_weight("bias", {options_.units}, get_initializer(options_.bias_initializer), true,
               as_penalty(options_.bias_regularizer), as_projection(options_.bias_constraint));
}

Shape Dense::compute_output_shape(const Shape& input_shape) const {
  Shape out = input_shape;
  if (!out.empty()) out.back() = options_.units;
  return out;
}

Tensor Dense::call(const Tensor& inputs, bool) {
  Tensor y;
  if (inputs.ndim() == 2) {
    y = matmul(inputs, kernel());
  } else {
    // Apply on the last axis: fold the leading axes into rows.
    const auto l = [](std::size_t v) { return static_cast<long>(v); };
    std::vector<long> out_shape;
    for (std::size_t i = 0; i + 1 < inputs.ndim(); ++i) out_shape.push_back(l(inputs.shape()[i]));
    out_shape.push_back(l(options_.units));
    y = reshape(matmul(reshape(inputs, {-1, l(inputs.shape().back())}), kernel()), out_shape);
  }
  if (options_.use_bias) y = y + bias();
  y = activation_(y);
  if (options_.activity_regularizer.defined()) add_loss(options_.activity_regularizer(y));
  return y;
}

nlohmann::json Dense::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["units"] = options_.units;
  c["activation"] = options_.activation.empty() ? "linear" : options_.activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = options_.kernel_initializer;
  c["bias_initializer"] = options_.bias_initializer;
  c["kernel_regularizer"] = options_.kernel_regularizer.config();
  c["bias_regularizer"] = options_.bias_regularizer.config();
  c["activity_regularizer"] = options_.activity_regularizer.config();
  c["kernel_constraint"] = options_.kernel_constraint.config();
  c["bias_constraint"] = options_.bias_constraint.config();
  return c;
}

nlohmann::json Flatten::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["data_format"] = "channels_last";
  return c;
}

Tensor Flatten::call(const Tensor& inputs, bool) { return flatten(inputs, 1); }

Shape Flatten::compute_output_shape(const Shape& input_shape) const {
  return {shape_size(input_shape)};
}

Dropout::Dropout(DropoutOptions options)
    : Layer(options.name),
      options_(options),
      rng_(options.seed ? *options.seed : global_rng().next_u64()) {
  if (!(options_.rate >= 0.f && options_.rate < 1.f))
    throw std::invalid_argument("Dropout: rate must be in [0, 1), got " +
                                std::to_string(options_.rate));
}

Tensor Dropout::call(const Tensor& inputs, bool training) {
  return dropout(inputs, options_.rate, training, rng_);
}

nlohmann::json Dropout::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["rate"] = options_.rate;
  c["seed"] = options_.seed ? nlohmann::json(*options_.seed) : nlohmann::json(nullptr);
  c["noise_shape"] = nullptr;
  return c;
}

LayerState Dropout::save_own_state() const { return {{"rng", rng_state_text(rng_.state())}}; }

void Dropout::load_own_state(const LayerState& state) {
  const auto it = state.find("rng");
  if (it == state.end())
    throw std::invalid_argument("Dropout '" + name() + "': state entry 'rng' is missing");
  for (const auto& [key, _] : state)
    if (key != "rng")
      throw std::invalid_argument("Dropout '" + name() + "': unknown state entry '" + key + "'");
  const auto st = parse_rng_state(it->second);
  if (!st)
    throw std::invalid_argument("Dropout '" + name() + "': state 'rng' '" + it->second +
                                "' is not four 16-digit hex words, not all zero");
  rng_.set_state(*st);
}

Activation::Activation(const std::string& activation, std::string name)
    : Layer(std::move(name)), activation_(activation), fn_(get_activation(activation)) {}

nlohmann::json Activation::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["activation"] = activation_.empty() ? "linear" : activation_;
  return c;
}

Tensor Activation::call(const Tensor& inputs, bool) { return fn_(inputs); }

}  // namespace xtape::layers
