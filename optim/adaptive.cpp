// Per-element adaptive rates from accumulated squares: RMSprop, Adagrad, Adadelta.
#include <algorithm>
#include <cmath>

#include "autodiff/detail.hpp"
#include "optim/internal.hpp"
#include "optim/optimizers.hpp"

namespace xtape::optim {

using detail::kBlock;

// ---- RMSprop ----

RMSprop::RMSprop(RMSpropOptions o) : Optimizer(detail::common_options(o), "RMSprop"), options_(o) {
  detail::check_unit(o.rho, "RMSprop", "rho", /*one_allowed=*/false);
  detail::check_unit(o.momentum, "RMSprop", "momentum", /*one_allowed=*/true);
  detail::check_epsilon(o.epsilon, "RMSprop");
}

std::vector<std::string> RMSprop::rule_slot_names() const {
  std::vector<std::string> names{"velocity"};
  if (options_.momentum > 0.f) names.push_back("momentum");
  if (options_.centered) names.push_back("average_gradient");
  return names;
}

void RMSprop::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                     std::vector<Tensor>& slots) {
  const float lr = step_learning_rate(), rho = options_.rho, c = 1.f - rho;
  const float eps = options_.epsilon, mu = options_.momentum;
  float* __restrict vel = xtape::detail::mutable_data(slots[0]);
  float* __restrict mom = mu > 0.f ? xtape::detail::mutable_data(slots[1]) : nullptr;
  float* __restrict avg =
      options_.centered ? xtape::detail::mutable_data(slots[mu > 0.f ? 2 : 1]) : nullptr;
  const int floats = 5 + (mom ? 2 : 0) + (avg ? 2 : 0);
  detail::for_each_block(n, floats, [&](std::size_t start, std::size_t len) {
    float den[kBlock];
    const float* __restrict gb = g + start;
    float* __restrict vb = vel + start;
    float* __restrict wb = w + start;
    if (avg) {
      float* ab = avg + start;
      for (std::size_t i = 0; i < len; ++i) {
        const float gi = gb[i] * s;
        vb[i] = rho * vb[i] + c * (gi * gi);
        ab[i] = rho * ab[i] + c * gi;
        den[i] = (vb[i] - ab[i] * ab[i]) + eps;
      }
    } else {
      for (std::size_t i = 0; i < len; ++i) {
        const float gi = gb[i] * s;
        vb[i] = rho * vb[i] + c * (gi * gi);
        den[i] = vb[i] + eps;
      }
    }
    detail::sqrt_in_place(den, len);
    if (mom) {
      float* mb = mom + start;
      for (std::size_t i = 0; i < len; ++i) {
        mb[i] = mu * mb[i] + lr * (gb[i] * s) / den[i];
        wb[i] -= mb[i];
      }
    } else {
      for (std::size_t i = 0; i < len; ++i) wb[i] -= lr * (gb[i] * s) / den[i];
    }
  });
}

// ---- Adagrad ----

Adagrad::Adagrad(AdagradOptions o) : Optimizer(detail::common_options(o), "Adagrad"), options_(o) {
  detail::check(std::isfinite(o.initial_accumulator_value) && o.initial_accumulator_value >= 0.f,
                "Adagrad",
                "initial_accumulator_value must be finite and >= 0, got " +
                    detail::num(o.initial_accumulator_value));
  detail::check_epsilon(o.epsilon, "Adagrad");
}

void Adagrad::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                     std::vector<Tensor>& slots) {
  const float lr = step_learning_rate(), eps = options_.epsilon;
  float* __restrict acc = xtape::detail::mutable_data(slots[0]);
  detail::for_each_block(n, 5, [&](std::size_t start, std::size_t len) {
    float den[kBlock];
    const float* __restrict gb = g + start;
    float* __restrict ab = acc + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      ab[i] += gi * gi;
      den[i] = ab[i] + eps;
    }
    detail::sqrt_in_place(den, len);
    for (std::size_t i = 0; i < len; ++i) wb[i] -= lr * (gb[i] * s) / den[i];
  });
}

// ---- Adadelta ----

Adadelta::Adadelta(AdadeltaOptions o)
    : Optimizer(detail::common_options(o), "Adadelta"), options_(o) {
  detail::check_unit(o.rho, "Adadelta", "rho", /*one_allowed=*/false);
  detail::check_epsilon(o.epsilon, "Adadelta");
}

void Adadelta::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                      std::vector<Tensor>& slots) {
  const float lr = step_learning_rate(), rho = options_.rho, c = 1.f - rho;
  const float eps = options_.epsilon;
  float* __restrict ag = xtape::detail::mutable_data(slots[0]);
  float* __restrict ad = xtape::detail::mutable_data(slots[1]);
  // rms[0..len): sqrt(accumulated_grad + eps); rms[kBlock..): sqrt(accumulated_delta_var + eps).
  detail::for_each_block(n, 7, [&](std::size_t start, std::size_t len) {
    float rms[2 * kBlock];
    const float* __restrict gb = g + start;
    float* __restrict agb = ag + start;
    float* __restrict adb = ad + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      agb[i] = rho * agb[i] + c * (gi * gi);
      rms[i] = agb[i] + eps;
      rms[kBlock + i] = adb[i] + eps;
    }
    detail::sqrt_in_place(rms, len);
    detail::sqrt_in_place(rms + kBlock, len);
    for (std::size_t i = 0; i < len; ++i) {
      const float delta = -(rms[kBlock + i] * (gb[i] * s)) / rms[i];
      adb[i] = rho * adb[i] + c * (delta * delta);
      wb[i] += lr * delta;
    }
  });
}

}  // namespace xtape::optim
