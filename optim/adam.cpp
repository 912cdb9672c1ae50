// The Adam family: Adam (AMSGrad), AdamW, Adamax, Nadam.
#include <algorithm>
#include <cmath>

#include "autodiff/detail.hpp"
#include "optim/internal.hpp"
#include "optim/optimizers.hpp"

namespace xtape::optim {

using detail::kBlock;

// ---- Adam, AdamW ----

Adam::Adam(AdamOptions o) : Adam(o, detail::common_options(o), "Adam") {}

Adam::Adam(const AdamOptions& o, const CommonOptions& common, const char* who)
    : Optimizer(common, who), options_(o) {
  detail::check_unit(o.beta_1, who, "beta_1", /*one_allowed=*/false);
  detail::check_unit(o.beta_2, who, "beta_2", /*one_allowed=*/false);
  detail::check_epsilon(o.epsilon, who);
}

std::vector<std::string> Adam::rule_slot_names() const {
  if (options_.amsgrad) return {"momentum", "velocity", "velocity_hat"};
  return {"momentum", "velocity"};
}

void Adam::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                  std::vector<Tensor>& slots) {
  const double t = static_cast<double>(iterations() + 1);
  const float b1 = options_.beta_1, b2 = options_.beta_2, eps = options_.epsilon;
  const float c1 = 1.f - b1, c2 = 1.f - b2;
  // alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), in double then rounded once.
  const float alpha =
      static_cast<float>(step_learning_rate() * std::sqrt(1.0 - std::pow(double(b2), t)) /
                         (1.0 - std::pow(double(b1), t)));
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  float* __restrict v = xtape::detail::mutable_data(slots[1]);
  float* __restrict vhat = options_.amsgrad ? xtape::detail::mutable_data(slots[2]) : nullptr;
  detail::for_each_block(n, vhat ? 9 : 7, [&](std::size_t start, std::size_t len) {
    float den[kBlock];
    const float* __restrict gb = g + start;
    float* __restrict mb = m + start;
    float* __restrict vb = v + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      mb[i] += (gi - mb[i]) * c1;
      vb[i] += (gi * gi - vb[i]) * c2;
      den[i] = vb[i];
    }
    if (vhat) {
      float* hb = vhat + start;
      for (std::size_t i = 0; i < len; ++i) {
        hb[i] = std::max(hb[i], vb[i]);
        den[i] = hb[i];
      }
    }
    detail::sqrt_in_place(den, len);
    for (std::size_t i = 0; i < len; ++i) wb[i] -= mb[i] * alpha / (den[i] + eps);
  });
}

namespace {
AdamOptions adam_part(const AdamWOptions& o) {
  return AdamOptions{.learning_rate = o.learning_rate,
                     .beta_1 = o.beta_1,
                     .beta_2 = o.beta_2,
                     .epsilon = o.epsilon,
                     .amsgrad = o.amsgrad,
                     .clipnorm = o.clipnorm,
                     .clipvalue = o.clipvalue,
                     .global_clipnorm = o.global_clipnorm,
                     .use_ema = o.use_ema,
                     .ema_momentum = o.ema_momentum,
                     .ema_overwrite_frequency = o.ema_overwrite_frequency};
}
}  // namespace

// Keras's AdamW is Adam with the base optimizer's weight decay required.
AdamW::AdamW(AdamWOptions o) : Adam(adam_part(o), detail::common_options(o), "AdamW") {}

// ---- Adamax ----

Adamax::Adamax(AdamaxOptions o) : Optimizer(detail::common_options(o), "Adamax"), options_(o) {
  detail::check_unit(o.beta_1, "Adamax", "beta_1", /*one_allowed=*/false);
  detail::check_unit(o.beta_2, "Adamax", "beta_2", /*one_allowed=*/false);
  detail::check_epsilon(o.epsilon, "Adamax");
}

void Adamax::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                    std::vector<Tensor>& slots) {
  const double t = static_cast<double>(iterations() + 1);
  const float b1 = options_.beta_1, b2 = options_.beta_2, eps = options_.epsilon;
  const float c1 = 1.f - b1;
  // alpha = lr / (1 - beta_1^t), in double then rounded once.
  const float alpha = static_cast<float>(step_learning_rate() / (1.0 - std::pow(double(b1), t)));
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  float* __restrict u = xtape::detail::mutable_data(slots[1]);
  detail::for_each_block(n, 7, [&](std::size_t start, std::size_t len) {
    const float* __restrict gb = g + start;
    float* __restrict mb = m + start;
    float* __restrict ub = u + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      mb[i] += (gi - mb[i]) * c1;
      ub[i] = std::max(b2 * ub[i], std::abs(gi));
      wb[i] -= mb[i] * alpha / (ub[i] + eps);
    }
  });
}

// ---- Nadam ----

Nadam::Nadam(NadamOptions o) : Optimizer(detail::common_options(o), "Nadam"), options_(o) {
  detail::check_unit(o.beta_1, "Nadam", "beta_1", /*one_allowed=*/false);
  detail::check_unit(o.beta_2, "Nadam", "beta_2", /*one_allowed=*/false);
  detail::check_epsilon(o.epsilon, "Nadam");
}

double Nadam::u_product(std::int64_t t) {
  if (t == u_product_step_) return u_product_;
  // P_t = beta_1^t prod_{k <= t} (1 - 0.5 * 0.96^k): a function of t alone (so a resumed run
  // gets the same bits). Past k = 1200, 0.5 * 0.96^k < 2^-54 and the factor is exactly 1.
  const double b1 = options_.beta_1;
  double p = 1.0, decay = 1.0;
  for (std::int64_t k = 1; k <= std::min<std::int64_t>(t, 1200); ++k) {
    decay *= 0.96;
    p *= 1.0 - 0.5 * decay;
  }
  u_product_ = std::pow(b1, double(t)) * p;
  u_product_step_ = t;
  return u_product_;
}

void Nadam::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                   std::vector<Tensor>& slots) {
  const std::int64_t step = iterations() + 1;
  const double t = double(step), b1 = options_.beta_1, b2 = options_.beta_2;
  const double u_t = b1 * (1.0 - 0.5 * std::pow(0.96, t));
  const double u_next = b1 * (1.0 - 0.5 * std::pow(0.96, t + 1.0));
  const double p_t = u_product(step), p_next = p_t * u_next;
  // m_hat = cm m + cg g; v_hat = v cv: coefficients in double, rounded once.
  const float cm = static_cast<float>(u_next / (1.0 - p_next));
  const float cg = static_cast<float>((1.0 - u_t) / (1.0 - p_t));
  const float cv = static_cast<float>(1.0 / (1.0 - std::pow(b2, t)));
  const float c1 = 1.f - options_.beta_1, c2 = 1.f - options_.beta_2, eps = options_.epsilon;
  const float lr = step_learning_rate();
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  float* __restrict v = xtape::detail::mutable_data(slots[1]);
  detail::for_each_block(n, 7, [&](std::size_t start, std::size_t len) {
    float den[kBlock];
    const float* __restrict gb = g + start;
    float* __restrict mb = m + start;
    float* __restrict vb = v + start;
    float* __restrict wb = w + start;
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      mb[i] += (gi - mb[i]) * c1;
      vb[i] += (gi * gi - vb[i]) * c2;
      den[i] = vb[i] * cv;
    }
    detail::sqrt_in_place(den, len);
    for (std::size_t i = 0; i < len; ++i) {
      const float gi = gb[i] * s;
      wb[i] -= (cm * mb[i] + cg * gi) * lr / (den[i] + eps);
    }
  });
}

}  // namespace xtape::optim
