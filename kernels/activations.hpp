#pragma once
/// @file activations.hpp
/// One-pass activation functions and their derivatives on raw contiguous float buffers
/// (xsimd vector math; OpenMP above the grain size). Each forward reads x once and writes y;
/// each backward reads x and the output gradient g once and writes dx = g * f'(x). NaN in
/// gives NaN out. Results do not depend on the thread count.
#include <cstddef>

namespace xtape::kernels {

/// The activations with a kernel of their own. `param` below is elu's alpha or leaky_relu's
/// negative slope (ignored by the others).
enum class Activation {
  gelu,          ///< x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  gelu_tanh,     ///< x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): 0.5 x (1 + tanh u)
  silu,          ///< x sigmoid(x)
  mish,          ///< x tanh(softplus(x))
  elu,           ///< x > 0 ? x : param (exp(x) - 1)
  selu,          ///< scale * elu(x, alpha) with SELU's constants
  leaky_relu,    ///< x > 0 ? x : param x
  softplus,      ///< max(x, 0) + log1p(exp(-|x|))
  hard_sigmoid,  ///< clip(x / 6 + 0.5, 0, 1)
  hard_silu,     ///< x hard_sigmoid(x)
  softsign,      ///< x / (|x| + 1)
};

/// y[i] = f(x[i]) for i < n; y may alias x.
void activation_forward(Activation f, float param, std::size_t n, const float* x, float* y);

/// dx[i] = g[i] * f'(x[i]) for i < n; dx may alias g. `y` is f's output for the same x and
/// param, read by gelu only (others ignore it: it may be null there). At the kinks: elu and
/// selu take the left derivative at 0 (param * g), leaky_relu too (param * g, also for NaN x,
/// as PyTorch), hard_sigmoid and hard_silu the inside one at +-3.
void activation_backward(Activation f, float param, std::size_t n, const float* x, const float* y,
                         const float* g, float* dx);

/// dx[i] = g[i] * y[i] * (1 - y[i]): sigmoid's derivative from its output y.
void sigmoid_backward(std::size_t n, const float* y, const float* g, float* dx);

/// dx[i] = g[i] * (1 - y[i]^2): tanh's derivative from its output y.
void tanh_backward(std::size_t n, const float* y, const float* g, float* dx);

}  // namespace xtape::kernels
