#include "layers/core.hpp"

#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

InputLayer::InputLayer(Shape shape, std::string name) : Layer(std::move(name)), shape_(std::move(shape)) {
  for (std::size_t d : shape_)
    if (d == 0) throw std::invalid_argument("Input: shape " + shape_str(shape_) + " has a zero extent");
}

Tensor InputLayer::call(const Tensor& inputs, bool) { return inputs; }

std::shared_ptr<InputLayer> Input(Shape shape) { return std::make_shared<InputLayer>(std::move(shape)); }

Dense::Dense(DenseOptions options)
    : Layer(options.name), options_(std::move(options)), activation_(get_activation(options_.activation)) {
  if (options_.units == 0) throw std::invalid_argument("Dense: units must be positive, got 0");
  get_initializer(options_.kernel_initializer);  // validate names now, not at build time
  get_initializer(options_.bias_initializer);
}

void Dense::build(const Shape& input_shape) {
  if (input_shape.empty())
    throw std::invalid_argument("Dense '" + name() + "': expected inputs of rank >= 2, got " +
                                batch_shape_str(input_shape));
  add_weight("kernel", {input_shape.back(), options_.units}, get_initializer(options_.kernel_initializer));
  if (options_.use_bias)
    add_weight("bias", {options_.units}, get_initializer(options_.bias_initializer));
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
  return activation_(y);
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
    throw std::invalid_argument("Dropout: rate must be in [0, 1), got " + std::to_string(options_.rate));
}

Tensor Dropout::call(const Tensor& inputs, bool training) {
  return dropout(inputs, options_.rate, training, rng_);
}

Activation::Activation(const std::string& activation, std::string name)
    : Layer(std::move(name)), fn_(get_activation(activation)) {}

Tensor Activation::call(const Tensor& inputs, bool) { return fn_(inputs); }

}  // namespace xtape::layers
