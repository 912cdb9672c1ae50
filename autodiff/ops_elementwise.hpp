#pragma once
/// @file ops_elementwise.hpp
/// More elementwise primitives (autodiff/ops/elementwise_more.cpp): selection, comparisons and
/// unary functions. Binary and ternary ops broadcast as NumPy, like `+` and `*`; shape errors
/// throw std::invalid_argument naming the op and both shapes. NaN propagates as in IEEE 754
/// (and PyTorch): every function of a NaN is NaN, comparisons with NaN are false (not_equal is
/// true).
#include "autodiff/tensor.hpp"

namespace xtape {

// ---- selection ----

/// Elementwise maximum with broadcasting. NaN wins: a NaN in either input gives NaN (PyTorch's
/// torch.maximum, not std::fmax). Gradient: to the larger input; ties split it in halves
/// (PyTorch); where one input is NaN, the whole gradient goes to the NaN input.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, float b);
Tensor maximum(float a, const Tensor& b);
/// Elementwise minimum; same NaN and gradient rules as maximum (to the smaller input).
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, float b);
Tensor minimum(float a, const Tensor& b);
/// cond != 0 ? a : b elementwise, the three broadcast together (a NaN condition counts as
/// true, as its conversion to bool does). Gradients flow to a where the condition holds and to
/// b elsewhere; the condition gets none.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- comparisons: 0/1 masks with broadcasting, no gradient (the result never requires one) ----

Tensor equal(const Tensor& a, const Tensor& b);
Tensor not_equal(const Tensor& a, const Tensor& b);
Tensor less(const Tensor& a, const Tensor& b);
Tensor less_equal(const Tensor& a, const Tensor& b);
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);
Tensor equal(const Tensor& a, float b);
Tensor not_equal(const Tensor& a, float b);
Tensor less(const Tensor& a, float b);
Tensor less_equal(const Tensor& a, float b);
Tensor greater(const Tensor& a, float b);
Tensor greater_equal(const Tensor& a, float b);

// ---- unary functions ----

Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
/// log(1 + x), accurate for small x.
Tensor log1p(const Tensor& x);
/// exp(x) - 1, accurate for small x.
Tensor expm1(const Tensor& x);
/// The error function; d erf(x)/dx = 2/sqrt(pi) exp(-x^2).
Tensor erf(const Tensor& x);
/// log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)): no overflow for large x, exact
/// for very negative x. Gradient sigmoid(x).
Tensor softplus(const Tensor& x);
/// -1, 0 or 1 (sign(-0) is 0); sign(NaN) is NaN (NumPy, TensorFlow). Zero gradient.
Tensor sign(const Tensor& x);
/// Largest integer not above x. Zero gradient.
Tensor floor(const Tensor& x);
/// Nearest integer, halves to even (NumPy, PyTorch, TensorFlow: round(2.5) is 2). Zero
/// gradient.
Tensor round(const Tensor& x);

}  // namespace xtape
