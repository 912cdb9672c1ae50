#pragma once
/// @file sequential.hpp
/// Sequential: a Model that is a linear stack of layers (Keras's keras.Sequential).
#include <memory>
#include <string>
#include <vector>

#include "models/model.hpp"

namespace xtape::layers {

/// A linear stack of layers.
class Sequential : public Model {
 public:
  /// `name` empty: "sequential", "sequential_1", ...
  explicit Sequential(std::vector<std::shared_ptr<Layer>> layers = {}, std::string name = "");

  /// Appends a layer. An InputLayer first fixes the input shape and builds every layer.
  /// Throws std::invalid_argument on a null layer or an Input that is not first.
  void add(std::shared_ptr<Layer> layer);
  /// The stack, an InputLayer first when one was given.
  std::vector<std::shared_ptr<Layer>> layers() const override { return sublayers(); }

  /// Builds every layer for a per-sample input shape (shape inference through the stack).
  void build(const Shape& input_shape) override;
  using Model::build;
  /// Runs the layers in order.
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  std::string class_name() const override { return "Sequential"; }
  nlohmann::json get_config() const override;
};

}  // namespace xtape::layers
