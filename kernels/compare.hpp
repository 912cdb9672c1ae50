#pragma once
/// @file compare.hpp
/// The comparisons behind relu, max and max pooling, for xsimd batches and scalars, with NaN
/// propagating as in IEEE 754 / PyTorch: NaN counts as greater than every number, relu(NaN) is
/// NaN, and relu's gradient passes where its output is NaN (PyTorch's threshold_backward:
/// y <= 0 ? 0 : g). Each is one or two compares and a blend (no branches), and gives exactly
/// the bits of the plain comparison for every number. Internal to kernels/ (and the few
/// scalar loops of the ops that compare values).
#include <cmath>
#include <xsimd/xsimd.hpp>

#include "kernels/fma.hpp"

namespace xtape::kernels::detail {

/// relu(x) = x <= 0 ? +0 : x: the bits of max(x, 0) (with -0 -> +0) for numbers, NaN for NaN.
template <class B>
inline B relu(const B& x) {
  return xsimd::select(x <= B(0.f), B(0.f), x);
}
inline float relu(float x) { return x <= 0.f ? 0.f : x; }

/// Where relu passes its gradient given relu's output y: y > 0, or y NaN.
template <class B>
inline auto relu_passes(const B& y) {
  return !(y <= B(0.f));
}
inline bool relu_passes(float y) { return !(y <= 0.f); }

/// Whether v takes the place of `best` in a running maximum scanned in order: v > best, or v
/// NaN while best is not. The first of equal maxima, and the first NaN, is kept.
template <class B>
inline auto replaces_max(const B& v, const B& best) {
  return (!(v <= best)) & (best == best);
}
inline bool replaces_max(float v, float best) { return !(v <= best) && best == best; }

}  // namespace xtape::kernels::detail
