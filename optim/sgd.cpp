// SGD and Lion: momentum rules without a second moment.
#include <cmath>

#include "autodiff/detail.hpp"
#include "optim/internal.hpp"
#include "optim/optimizers.hpp"

namespace xtape::optim {

// ---- SGD ----

SGD::SGD(SGDOptions o) : Optimizer(detail::common_options(o), "SGD"), options_(o) {
  detail::check_unit(o.momentum, "SGD", "momentum", /*one_allowed=*/true);
}

std::vector<std::string> SGD::rule_slot_names() const {
  return options_.momentum > 0.f ? std::vector<std::string>{"momentum"}
                                 : std::vector<std::string>{};
}

void SGD::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                 std::vector<Tensor>& slots) {
  const float lr = step_learning_rate(), mu = options_.momentum;
  if (options_.momentum <= 0.f) {
    detail::for_each_block(n, 3, [&](std::size_t start, std::size_t len) {
      const float* __restrict gb = g + start;
      float* __restrict wb = w + start;
      for (std::size_t i = 0; i < len; ++i) wb[i] -= gb[i] * s * lr;
    });
    return;
  }
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  const bool nesterov = options_.nesterov;
  detail::for_each_block(n, 5, [&](std::size_t start, std::size_t len) {
    const float* __restrict gb = g + start;
    float* __restrict mb = m + start;
    float* __restrict wb = w + start;
    if (nesterov) {
      for (std::size_t i = 0; i < len; ++i) {
        const float gi = gb[i] * s;
        mb[i] = mb[i] * mu - gi * lr;
        wb[i] += mb[i] * mu - gi * lr;
      }
    } else {
      for (std::size_t i = 0; i < len; ++i) {
        mb[i] = mb[i] * mu - gb[i] * s * lr;
        wb[i] += mb[i];
      }
    }
  });
}

// ---- Lion ----

Lion::Lion(LionOptions o) : Optimizer(detail::common_options(o), "Lion"), options_(o) {
  detail::check(
      o.beta_1 > 0.f && o.beta_1 <= 1.f, "Lion",
      "beta_1 must be in (0, 1] (0 would make Lion SignSGD), got " + detail::num(o.beta_1));
  detail::check_unit(o.beta_2, "Lion", "beta_2", /*one_allowed=*/true);
}

void Lion::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                  std::vector<Tensor>& slots) {
  const float lr = step_learning_rate(), b1 = options_.beta_1, b2 = options_.beta_2;
  const float c1 = 1.f - b1, c2 = 1.f - b2;
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  detail::for_each_block(n, 5, [&](std::size_t start, std::size_t len) {
    const float* __restrict gb = g + start;
    float* __restrict mb = m + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      const float c = mb[i] * b1 + gi * c1;
      // sign(c), keeping a NaN a NaN (and 0 as 0).
      const float sign = c > 0.f ? 1.f : c < 0.f ? -1.f : c;
      wb[i] -= lr * sign;
      mb[i] = mb[i] * b2 + gi * c2;
    }
  });
}

}  // namespace xtape::optim
