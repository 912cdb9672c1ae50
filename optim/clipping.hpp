#pragma once
/// @file clipping.hpp
/// Gradient clipping as standalone gradient transforms: callables over the named variables that
/// replace each defined value.grad() (through set_grad, never in place) before an optimizer
/// applies them. Each computes exactly what the optimizer option of the same name computes, so
/// a transform followed by apply() gives the same bits as the option:
///
///     auto clip = optim::clip_by_global_norm(1.f);
///     clip(vars);          // vars: std::vector<optim::Variable>
///     optimizer.apply(vars);
#include <functional>
#include <vector>

#include "optim/optimizer.hpp"

namespace xtape::optim {

/// A transform of the gradients of named variables, run before the optimizer applies them.
using GradientTransform = std::function<void(std::vector<Variable>& vars)>;

/// Scales every gradient by min(1, clip_norm / global_norm), global_norm being the L2 norm of all
/// the gradients together (a non-finite global norm gives NaN gradients, as in Keras); the
/// optimizer option global_clipnorm. Throws std::invalid_argument unless clip_norm is finite and
/// > 0; the transform throws std::invalid_argument for an undefined variable.
GradientTransform clip_by_global_norm(float clip_norm);

/// Scales each variable's gradient by clip_norm / norm when its L2 norm exceeds clip_norm; the
/// optimizer option clipnorm. Throws as clip_by_global_norm.
GradientTransform clip_by_norm(float clip_norm);

/// Clamps every gradient element to [-clip_value, clip_value]; the optimizer option clipvalue.
/// Throws as clip_by_global_norm.
GradientTransform clip_by_value(float clip_value);

}  // namespace xtape::optim
