#pragma once
/// @file initializers.hpp
/// Weight initializers by name, with Keras's fan computation and formulas.
#include <functional>
#include <string>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"

namespace xtape::layers {

/// Fills a freshly created weight in place, drawing from `rng`. A custom initializer should
/// write with weight.assign(...): writing through weight.data() exposes the weight (see
/// Tensor::data()), and the convolutions reading it are then computed unfused.
using Initializer = std::function<void(Tensor& weight, Rng& rng)>;

/// Keras names: "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
/// "lecun_normal", "zeros", "ones", "random_uniform" (±0.05), "random_normal" (stddev 0.05).
/// Throws std::invalid_argument naming the unknown initializer.
Initializer get_initializer(const std::string& name);

/// (fan_in, fan_out) of a weight shape as Keras computes them: for rank >= 3 the receptive
/// field (all leading axes) multiplies the last two axes.
std::pair<double, double> compute_fans(const Shape& shape);

}  // namespace xtape::layers
