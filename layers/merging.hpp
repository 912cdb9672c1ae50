#pragma once
/// @file merging.hpp
/// Merge layers (Keras's keras.layers.Add, ...): combine a list of inputs into one. The
/// elementwise ones take at least two inputs of the same rank whose per-sample shapes
/// broadcast (NumPy rules); Subtract takes exactly two; Concatenate joins along an axis.
#include <string>
#include <vector>

#include "layers/layer.hpp"

namespace xtape::layers {

/// Shared base of the elementwise merge layers.
class Merge : public Layer {
 public:
  explicit Merge(std::string name = "") : Layer(std::move(name)) {}
  Tensor call(const std::vector<Tensor>& inputs, bool training) override;
  using Layer::call;
  /// Broadcast per-sample shape; throws std::invalid_argument naming the layer and every
  /// shape when there are fewer than two inputs, the ranks differ or the shapes do not
  /// broadcast.
  Shape compute_output_shape_multi(const std::vector<Shape>& input_shapes) const override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build_multi(const std::vector<Shape>& input_shapes) override;

 protected:
  /// Combines two tensors (the reduction is a left fold over the inputs).
  virtual Tensor merge(const Tensor& a, const Tensor& b) const = 0;
  /// The last step of the fold (Average divides by the count).
  virtual Tensor finish(const Tensor& folded, std::size_t count) const;
  virtual std::size_t min_inputs() const { return 2; }
  virtual std::size_t max_inputs() const { return ~std::size_t{0}; }
};

/// Sum of the inputs.
class Add : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
};

/// inputs[0] - inputs[1] (exactly two inputs).
class Subtract : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
  std::size_t max_inputs() const override { return 2; }
};

/// Elementwise product of the inputs.
class Multiply : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
};

/// Elementwise mean of the inputs.
class Average : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
  Tensor finish(const Tensor& folded, std::size_t count) const override;
};

/// Elementwise maximum of the inputs (the gradient goes to the larger; at ties, to the later).
class Maximum : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
};

/// Elementwise minimum of the inputs (the gradient goes to the smaller; at ties, to the earlier).
class Minimum : public Merge {
 public:
  using Merge::Merge;

 protected:
  Tensor merge(const Tensor& a, const Tensor& b) const override;
};

/// Options of Concatenate.
struct ConcatenateOptions {
  /// Axis of the full (batched) shape; negative counts from the end. The batch axis (0) is
  /// refused.
  int axis = -1;
  std::string name = "";
};

/// Joins at least two inputs along `axis`; every other extent must agree.
class Concatenate : public Layer {
 public:
  using Options = ConcatenateOptions;
  explicit Concatenate(ConcatenateOptions options = {});
  Tensor call(const std::vector<Tensor>& inputs, bool training) override;
  using Layer::call;
  Shape compute_output_shape_multi(const std::vector<Shape>& input_shapes) const override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build_multi(const std::vector<Shape>& input_shapes) override;
  nlohmann::json get_config() const override;
  int axis() const { return options_.axis; }

 private:
  /// The axis within a per-sample shape of rank `rank`; throws when out of range or 0.
  std::size_t sample_axis(std::size_t rank) const;
  ConcatenateOptions options_;
};

}  // namespace xtape::layers
