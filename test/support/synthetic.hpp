#pragma once
/// @file synthetic.hpp
/// Small synthetic datasets shared by the layer tests.
#include <utility>

#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"

namespace xtape::testing {

/// Three Gaussian blobs in 2-d (stddev 0.6), one-hot labels (n, 3).
inline std::pair<Tensor, Tensor> blobs(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  Tensor x = Tensor::empty({n, 2}), y(Shape{n, 3}, 0.f);
  const float cx[3] = {-2.f, 2.f, 0.f}, cy[3] = {-1.f, -1.f, 2.f};
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng.below(3);
    x.at({i, 0}) = cx[c] + 0.6f * rng.normal();
    x.at({i, 1}) = cy[c] + 0.6f * rng.normal();
    y.at({i, c}) = 1.f;
  }
  return {x, y};
}

}  // namespace xtape::testing
