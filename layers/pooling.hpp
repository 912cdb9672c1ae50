#pragma once
/// @file pooling.hpp
/// Pooling layers (channels-last): MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, and the global ones
/// (GlobalAveragePooling1D/2D/3D, GlobalMaxPooling1D/2D/3D).
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

class AveragePooling1D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit AveragePooling1D(PoolOptions options = {}) : Pooling(1, false, std::move(options)) {}
};

/// Max over (pd, ph, pw) windows of (batch, depth, height, width, channels) (Keras's
/// MaxPooling3D: pool_size (2, 2, 2) by default).
class MaxPooling3D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit MaxPooling3D(PoolOptions options = {}) : Pooling(3, true, std::move(options)) {}
};

/// Mean over the in-bounds positions of (pd, ph, pw) windows (Keras's AveragePooling3D).
class AveragePooling3D : public Pooling {
 public:
  using Options = PoolOptions;
  explicit AveragePooling3D(PoolOptions options = {}) : Pooling(3, false, std::move(options)) {}
};

/// Keras options of a global pooling layer.
struct GlobalPoolOptions {
  bool keepdims = false;  ///< keep the spatial axes with extent 1
  std::string name = "";
};

/// Mean or max over every spatial axis of (batch, spatial..., channels): (batch, channels), or
/// (batch, 1..., channels) with keepdims. NaN propagates through the max.
class GlobalPooling : public Layer {
 public:
  GlobalPooling(int rank, bool max, GlobalPoolOptions options);
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape) override;
  /// Keras's keys: data_format, keepdims.
  nlohmann::json get_config() const override;
  bool keepdims() const { return keepdims_; }

 private:
  int rank_;
  bool max_, keepdims_;
};

#define XTAPE_GLOBAL_POOLING(NAME, RANK, MAX)                                               \
  class NAME : public GlobalPooling {                                                      \
   public:                                                                                 \
    using Options = GlobalPoolOptions;                                                     \
    explicit NAME(GlobalPoolOptions options = {}) : GlobalPooling(RANK, MAX, std::move(options)) {} \
  };
XTAPE_GLOBAL_POOLING(GlobalAveragePooling1D, 1, false)
XTAPE_GLOBAL_POOLING(GlobalAveragePooling2D, 2, false)
XTAPE_GLOBAL_POOLING(GlobalAveragePooling3D, 3, false)
XTAPE_GLOBAL_POOLING(GlobalMaxPooling1D, 1, true)
XTAPE_GLOBAL_POOLING(GlobalMaxPooling2D, 2, true)
XTAPE_GLOBAL_POOLING(GlobalMaxPooling3D, 3, true)
#undef XTAPE_GLOBAL_POOLING

}  // namespace xtape::layers
