#pragma once
// Helpers shared by the optimizer sources (not installed): option checks, the blocked loops'
// block length and square root, and the clipping arithmetic shared by the optimizer options and
// the standalone transforms, so both compute the same bits.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/parallel.hpp"
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

/// Runs body(start, len) for the kBlock-element blocks of [0, n), on the library's threads once
/// the update moves about 50 us of memory (`floats` read or written per element): a large
/// dense kernel, not a convolution's. Each block is computed as on one thread, so the bits do
/// not depend on the thread count.
template <class Body>
void for_each_block(std::size_t n, int floats, const Body& body) {
  const std::size_t blocks = (n + kBlock - 1) / kBlock;
  const double bytes = static_cast<double>(n) * sizeof(float) * floats;
  const int team = kernels::detail::parallel_team(kernels::detail::byte_ns(bytes),
                                                  static_cast<std::int64_t>(blocks));
  kernels::detail::parallel_for_static(team, blocks, [&](std::size_t block) {
    const std::size_t start = block * kBlock;
    body(start, std::min(kBlock, n - start));
  });
}

/// The factor global-norm clipping multiplies every gradient by: 1 when the L2 norm of all the
/// defined gradients of `vars` is <= clip, clip / norm above, NaN when the norm is not finite.
float global_norm_scale(const std::vector<Variable>& vars, float clip);
/// The factor per-variable norm clipping multiplies g[0..n) by: 1 when its L2 norm is <= clip,
/// clip / norm above (0 for an infinite norm), NaN for a NaN norm.
float norm_scale(const float* g, std::size_t n, float clip);

}  // namespace xtape::optim::detail
