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
/// "lecun_normal", "zeros", "ones", "constant" (0), "random_uniform" (±0.05), "random_normal"
/// (stddev 0.05), "truncated_normal" (stddev 0.05), "variance_scaling" (scale 1, fan_in,
/// truncated normal), "orthogonal" (gain 1), "identity" (gain 1, 2-d weights).
/// Throws std::invalid_argument naming the unknown initializer.
Initializer get_initializer(const std::string& name);

/// Keras's VarianceScaling: mode "fan_in" / "fan_out" / "fan_avg", distribution
/// "truncated_normal" (stddev sqrt(scale / fan) / 0.8796, cut at 2 sd), "untruncated_normal"
/// or "uniform" (limit sqrt(3 scale / fan)).
Initializer variance_scaling(double scale, const std::string& mode, const std::string& distribution);
/// Normal(mean, stddev) with values beyond two standard deviations redrawn.
Initializer truncated_normal(double mean, double stddev);
/// An orthogonal matrix (rows = product of all axes but the last), times `gain`; rank >= 2.
Initializer orthogonal(double gain = 1.0);
/// gain * the identity matrix; 2-d weights only.
Initializer identity(double gain = 1.0);
/// Every element `value` (Keras's Constant).
Initializer constant_value(float value);

/// (fan_in, fan_out) of a weight shape as Keras computes them: for rank >= 3 the receptive
/// field (all leading axes) multiplies the last two axes.
std::pair<double, double> compute_fans(const Shape& shape);

}  // namespace xtape::layers
