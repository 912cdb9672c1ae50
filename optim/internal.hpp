#pragma once
// Helpers shared by the optimizer sources (not installed): option checks, the blocked loops'
// block length and square root, and the clipping arithmetic shared by the optimizer options and
// the standalone transforms, so both compute the same bits.
#include <cstddef>
#include <string>
#include <vector>

#include "optim/optimizer.hpp"

namespace xtape::optim::detail {

/// Throws std::invalid_argument("<who>: <what>") unless ok.
void check(bool ok, const char* who, const std::string& what);
/// Shortest text that reads back as the same float (std::to_string prints 1e-08 as "0.000000").
std::string num(float v);
/// learning_rate finite and >= 0.
void check_learning_rate(float lr, const char* who);
/// x in [0, 1] (one_allowed) or [0, 1).
void check_unit(float x, const char* who, const char* what, bool one_allowed);
/// epsilon finite and >= 0.
void check_epsilon(float eps, const char* who);
/// A clip option finite and > 0.
void check_clip(float clip, const char* who, const char* what);

// The update loops run over blocks of kBlock elements: the square roots of a block go through the
// vectorised kernels::unary, because std::sqrt (errno) keeps GCC from vectorising a loop; the
// other loops are plain and vectorise. A block lives on the stack, so a step never allocates.
constexpr std::size_t kBlock = 512;

/// x[i] = sqrt(x[i]) for i < n, vectorised.
void sqrt_in_place(float* x, std::size_t n);

/// The factor global-norm clipping multiplies every gradient by: 1 when the L2 norm of all the
/// defined gradients of `vars` is <= clip, clip / norm above, NaN when the norm is not finite.
float global_norm_scale(const std::vector<Variable>& vars, float clip);
/// The factor per-variable norm clipping multiplies g[0..n) by: 1 when its L2 norm is <= clip,
/// clip / norm above (0 for an infinite norm), NaN for a NaN norm.
float norm_scale(const float* g, std::size_t n, float clip);

}  // namespace xtape::optim::detail
