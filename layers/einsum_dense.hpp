#pragma once
/// @file einsum_dense.hpp
/// Keras's EinsumDense: y = einsum(equation, x, kernel) (+ bias) (activation), the kernel's
/// shape read from the equation, the input shape and output_shape.
#include <string>
#include <vector>

#include "layers/activations.hpp"
#include "layers/layer.hpp"
#include "layers/regularizers.hpp"

namespace xtape::layers {

struct EinsumDenseOptions {
  /// "ab,bc->ac", "abc,cd->abd", "...b,bc->...c": input, kernel and output subscripts (the
  /// input's leading axis is the batch; with "...", the input's leading axes are elided).
  std::string equation;
  /// The output's extents without the batch axis (with "...": its non-elided letters).
  std::vector<std::size_t> output_shape;
  std::string activation = "";
  /// Output letters that get a bias (its shape: the output from the first of them on).
  std::string bias_axes = "";
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  Regularizer kernel_regularizer = {};
  Regularizer bias_regularizer = {};
  Constraint kernel_constraint = {};
  Constraint bias_constraint = {};
  std::string name = "";
};

class EinsumDense : public Layer {
 public:
  using Options = EinsumDenseOptions;
  /// Parses the equation; throws std::invalid_argument naming EinsumDense and the problem.
  explicit EinsumDense(EinsumDenseOptions options);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs, bool training) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  nlohmann::json get_config() const override;
  Tensor kernel() const { return weight("kernel"); }

 private:
  EinsumDenseOptions options_;
  std::string input_spec_, kernel_spec_, output_spec_;
  bool elided_ = false;
  ActivationFn activation_;
};

}  // namespace xtape::layers
