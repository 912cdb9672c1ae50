// Derived ops: compositions of primitives with no backward code of their own.
#include "autodiff/ops/helpers.hpp"

namespace xtape {

std::pair<Tensor, Tensor> moments(const Tensor& x, std::vector<int> axes, bool keepdims) {
  // A composition of primitives (no backward code): var = mean((x - mean)^2).
  const Tensor m = mean(x, axes, true);
  const Tensor var = mean(square(x - m), axes, keepdims);
  if (keepdims) return {m, var};
  const auto norm = detail::normalize_axes(axes, x.shape(), "moments");
  const Shape s = detail::reduced_shape(x.shape(), norm, false);
  std::vector<long> target(s.begin(), s.end());
  return {reshape(m, target), var};
}

}  // namespace xtape
