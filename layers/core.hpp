#pragma once
/// @file core.hpp
/// Core layers: Input, Dense, Flatten, Dropout, Activation.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "layers/activations.hpp"
#include "layers/layer.hpp"
#include "layers/regularizers.hpp"

namespace xtape::layers {

/// Declares a model's per-sample input shape (Keras's keras.Input). Identity when called.
class InputLayer : public Layer {
 public:
  explicit InputLayer(Shape shape, std::string name = "");
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  const Shape& shape() const { return shape_; }
  std::string class_name() const override { return "InputLayer"; }
  nlohmann::json get_config() const override;

 private:
  Shape shape_;
};

/// keras.Input(shape=...): a symbolic tensor of a per-sample shape such as {28, 28, 1}, the
/// start of a Functional model; it also converts to its InputLayer as the first entry of a
/// Sequential. `name` empty: "input_layer", "input_layer_1", ...
SymbolicTensor Input(Shape shape, std::string name = "");

/// Options of Dense.
struct DenseOptions {
  std::size_t units = 0;
  std::string activation = "";  ///< "" or "linear" for none
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  std::string name = "";
  Regularizer kernel_regularizer = {};    ///< e.g. l2(1e-4): a penalty added to the loss
  Regularizer bias_regularizer = {};
  Regularizer activity_regularizer = {};  ///< on the output, added at every call
  Constraint kernel_constraint = {};      ///< e.g. get_constraint("max_norm"), after each update
  Constraint bias_constraint = {};
};

/// Fully connected layer on the last axis: activation(inputs @ kernel + bias),
/// kernel (input_dim, units), bias (units).
class Dense : public Layer {
 public:
  using Options = DenseOptions;
  explicit Dense(DenseOptions options);
  nlohmann::json get_config() const override;
  const DenseOptions& options() const { return options_; }
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor kernel() const { return weight("kernel"); }
  Tensor bias() const { return weight("bias"); }
  std::size_t units() const { return options_.units; }

 private:
  DenseOptions options_;
  ActivationFn activation_;
};

/// Flattens every axis but the batch axis.
class Flatten : public Layer {
 public:
  explicit Flatten(std::string name = "") : Layer(std::move(name)) {}
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
};

/// Options of Dropout.
struct DropoutOptions {
  float rate = 0.5f;
  std::optional<std::uint64_t> seed;  ///< default: drawn from the global RNG at construction
  std::string name = "";
};

/// Inverted dropout while training; identity at inference.
class Dropout : public Layer {
 public:
  using Options = DropoutOptions;
  explicit Dropout(DropoutOptions options);
  explicit Dropout(float rate) : Dropout(DropoutOptions{.rate = rate, .seed = std::nullopt}) {}
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;
  /// The RNG state ("rng": four hex words), so a checkpoint resumes the same masks.
  LayerState save_own_state() const override;
  void load_own_state(const LayerState& state) override;
  float rate() const { return options_.rate; }
  Rng& rng() { return rng_; }

 private:
  DropoutOptions options_;
  Rng rng_;
};

/// Applies an activation by name.
class Activation : public Layer {
 public:
  explicit Activation(const std::string& activation, std::string name = "");
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  std::string activation_;
  ActivationFn fn_;
};

}  // namespace xtape::layers
