#pragma once
/// @file pooling.hpp
/// Pooling layers (channels-last): MaxPooling1D, MaxPooling2D, AveragePooling2D.
#include <string>
#include <vector>

#include "autodiff/ops.hpp"
#include "layers/layer.hpp"

namespace xtape::layers {

/// Keras options of a pooling layer; empty strides mean strides = pool_size.
struct PoolOptions {
  std::vector<int> pool_size = {2};  ///< one per spatial axis, or one for all
  std::vector<int> strides = {};
  std::string padding = "valid";
  std::string name = "";
};

/// Shared base of the pooling layers.
class Pooling : public Layer {
 public:
  Pooling(int rank, bool max, PoolOptions options);
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape) override;
  /// Keras's keys: pool_size, strides, padding, data_format.
  nlohmann::json get_config() const override;

 private:
  int rank_;
  bool max_;
  std::vector<int> pool_, strides_;
  Padding padding_;
};

class MaxPooling2D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit MaxPooling2D(PoolOptions options = {}) : Pooling(2, true, std::move(options)) {}
};

class AveragePooling2D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit AveragePooling2D(PoolOptions options = {}) : Pooling(2, false, std::move(options)) {}
};

class MaxPooling1D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit MaxPooling1D(PoolOptions options = {}) : Pooling(1, true, std::move(options)) {}
};

}  // namespace xtape::layers
