#pragma once
/// @file reshaping.hpp
/// Reshaping layers (Keras's keras/layers/reshaping): Reshape, Permute, RepeatVector,
/// ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D (nearest and bilinear). Shapes are
/// channels-last and per sample (without the batch axis) as everywhere in layers/.
#include <array>
#include <string>
#include <vector>

#include "layers/layer.hpp"

namespace xtape::layers {

/// Reshapes each sample to `target_shape` (one extent may be -1: inferred).
class Reshape : public Layer {
 public:
  explicit Reshape(std::vector<long> target_shape, std::string name = "");
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;

 private:
  std::vector<long> target_;
};

/// Permutes the sample axes: `dims` is a permutation of 1..rank (1-based, as Keras).
class Permute : public Layer {
 public:
  explicit Permute(std::vector<int> dims, std::string name = "");
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;

 private:
  std::vector<int> dims_;
};

/// (batch, features) -> (batch, n, features).
class RepeatVector : public Layer {
 public:
  explicit RepeatVector(std::size_t n, std::string name = "");
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;

 private:
  std::size_t n_;
};

/// Zeros before and after each spatial axis: padding[i] = {before, after} (Keras's
/// ((top, bottom), (left, right)) for 2D, (left, right) for 1D).
class ZeroPadding : public Layer {
 public:
  ZeroPadding(int rank, std::vector<std::array<std::size_t, 2>> padding, std::string name);
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;

 private:
  int rank_;
  std::vector<std::array<std::size_t, 2>> padding_;
};

class ZeroPadding1D : public ZeroPadding {
 public:
  explicit ZeroPadding1D(std::array<std::size_t, 2> padding = {1, 1}, std::string name = "")
      : ZeroPadding(1, {padding}, std::move(name)) {}
};

class ZeroPadding2D : public ZeroPadding {
 public:
  explicit ZeroPadding2D(std::array<std::array<std::size_t, 2>, 2> padding = {{{1, 1}, {1, 1}}},
                         std::string name = "")
      : ZeroPadding(2, {padding[0], padding[1]}, std::move(name)) {}
};

/// Removes cropping[i] = {before, after} from each spatial axis.
class Cropping : public Layer {
 public:
  Cropping(int rank, std::vector<std::array<std::size_t, 2>> cropping, std::string name);
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape) override;
  nlohmann::json get_config() const override;

 private:
  int rank_;
  std::vector<std::array<std::size_t, 2>> cropping_;
};

class Cropping1D : public Cropping {
 public:
  explicit Cropping1D(std::array<std::size_t, 2> cropping = {1, 1}, std::string name = "")
      : Cropping(1, {cropping}, std::move(name)) {}
};

class Cropping2D : public Cropping {
 public:
  explicit Cropping2D(std::array<std::array<std::size_t, 2>, 2> cropping = {{{0, 0}, {0, 0}}},
                      std::string name = "")
      : Cropping(2, {cropping[0], cropping[1]}, std::move(name)) {}
};

/// Repeats each step `size` times along each spatial axis ("nearest"), or interpolates
/// bilinearly with half-pixel centers (2D "bilinear", as tf.image.resize).
class UpSampling : public Layer {
 public:
  UpSampling(int rank, std::vector<std::size_t> size, std::string interpolation, std::string name);
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;

 private:
  int rank_;
  std::vector<std::size_t> size_;
  std::string interpolation_;
};

class UpSampling1D : public UpSampling {
 public:
  explicit UpSampling1D(std::size_t size = 2, std::string name = "")
      : UpSampling(1, {size}, "nearest", std::move(name)) {}
};

class UpSampling2D : public UpSampling {
 public:
  explicit UpSampling2D(std::array<std::size_t, 2> size = {2, 2},
                        std::string interpolation = "nearest", std::string name = "")
      : UpSampling(2, {size[0], size[1]}, std::move(interpolation), std::move(name)) {}
};

}  // namespace xtape::layers
