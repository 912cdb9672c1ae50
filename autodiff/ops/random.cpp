// Random tensors from counter-based kernels (no tape: constants).
#include "autodiff/ops/helpers.hpp"
#include "kernels/elementwise.hpp"

namespace xtape {

Tensor random_normal(const Shape& shape, float mean, float stddev, Rng& rng) {
  Tensor out = detail::new_result(shape, "random_normal");
  // One draw keys every element (drawn even for an empty shape: the generator advances alike).
  const std::uint64_t key = rng.next_u64();
  kernels::normal_fill(out.size(), key, mean, stddev, detail::mutable_data(out));
  return out;
}

}  // namespace xtape
