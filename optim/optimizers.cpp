#include "optim/optimizers.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "kernels/elementwise.hpp"

namespace xtape::optim {

namespace {

void check(bool ok, const char* who, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(who) + ": " + what);
}

// Shortest text that reads back as the same float (std::to_string prints 1e-08 as "0.000000").
std::string num(float v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

void check_learning_rate(float lr, const char* who) {
  check(std::isfinite(lr) && lr >= 0.f, who,
        "learning_rate must be finite and >= 0, got " + num(lr));
}

void check_unit(float x, const char* who, const char* what, bool one_allowed) {
  const bool ok = x >= 0.f && (one_allowed ? x <= 1.f : x < 1.f);
  check(ok, who,
        std::string(what) +
            (one_allowed ? " must be in [0, 1], got " : " must be in [0, 1), got ") + num(x));
}

void check_epsilon(float eps, const char* who) {
  check(std::isfinite(eps) && eps >= 0.f, who, "epsilon must be finite and >= 0, got " + num(eps));
}

// The update loops run over blocks of kBlock elements: the square roots of a block go through the
// vectorised kernels::unary, because std::sqrt (errno) keeps GCC from vectorising a loop; the
// other loops are plain and vectorise. A block lives on the stack, so a step never allocates.
constexpr std::size_t kBlock = 512;

void sqrt_in_place(float* x, std::size_t n) { kernels::unary(kernels::UnaryOp::sqrt, n, x, x); }

// Sum of squares of g[0..n), blocked: squares in float, block sums (fixed order) in double.
double sum_of_squares(const float* __restrict g, std::size_t n) {
  double total = 0.0;
  float sq[kBlock];
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t len = std::min(kBlock, n - start);
    const float* gb = g + start;
    for (std::size_t i = 0; i < len; ++i) sq[i] = gb[i] * gb[i];
    total += kernels::sum(len, sq);
  }
  return total;
}

}  // namespace

// ---- Optimizer ----

Optimizer::Optimizer(float learning_rate, std::optional<float> global_clipnorm, const char* who)
    : who_(who), learning_rate_(learning_rate), global_clipnorm_(global_clipnorm) {
  check_learning_rate(learning_rate, who);
  check(!global_clipnorm || *global_clipnorm > 0.f, who,
        "global_clipnorm must be > 0 when set, got " + num(global_clipnorm.value_or(0.f)));
}

void Optimizer::set_learning_rate(float lr) {
  check_learning_rate(lr, who_);
  learning_rate_ = lr;
}

void Optimizer::set_iterations(std::int64_t n) {
  check(n >= 0, who_, "iterations must be >= 0, got " + std::to_string(n));
  iterations_ = n;
}

void Optimizer::apply(const std::vector<Variable>& vars) {
  NoGrad no_grad;
  for (const auto& v : vars)
    check(v.value.defined(), who_, "variable '" + v.name + "' is an undefined tensor");

  float scale = 1.f;
  if (global_clipnorm_) {
    double sq = 0.0;
    for (const auto& v : vars) {
      const Tensor g = v.value.grad();
      if (g.defined()) sq += sum_of_squares(g.data(), g.size());
    }
    const double norm = std::sqrt(sq), clip = *global_clipnorm_;
    // Keras: clip * min(1 / norm, 1 / clip), made NaN by a non-finite norm.
    scale = !std::isfinite(norm) ? std::numeric_limits<float>::quiet_NaN()
            : norm <= clip       ? 1.f
                                 : static_cast<float>(clip / norm);
  }

  for (const auto& v : vars) {
    const Tensor g = v.value.grad();
    if (!g.defined()) continue;
    Tensor w = v.value;
    const Shape& shape = w.shape();
    check(g.shape() == shape, who_,
          "gradient of shape " + shape_str(g.shape()) + " for variable '" + v.name + "' of shape " +
              shape_str(shape));

    auto [known, fresh_name] = shapes_.try_emplace(v.name, shape);
    check(fresh_name || known->second == shape, who_,
          "variable '" + v.name + "' changed shape from " + shape_str(known->second) + " to " +
              shape_str(shape));

    auto [it, fresh_slots] = slots_.try_emplace(v.name);
    std::vector<Tensor>& s = it->second;
    if (fresh_slots) {
      s.reserve(slot_count());
      for (std::size_t k = 0; k < slot_count(); ++k) s.push_back(Tensor::zeros(shape));
    } else {
      // Cheap on every step; catches restored state that does not fit.
      check(s.size() == slot_count(), who_,
            "variable '" + v.name + "' has " + std::to_string(s.size()) +
                " slot tensors, expected " + std::to_string(slot_count()));
      for (std::size_t k = 0; k < s.size(); ++k)
        check(s[k].defined() && s[k].shape() == shape, who_,
              "slot " + slot_names()[k] + " of variable '" + v.name + "' has shape " +
                  (s[k].defined() ? shape_str(s[k].shape()) : std::string("<undefined>")) +
                  ", expected " + shape_str(shape));
    }
    update(xtape::detail::mutable_data(w), g.data(), scale, w.size(), s);
  }
  ++iterations_;
}

// ---- SGD ----

SGD::SGD(SGDOptions o) : Optimizer(o.learning_rate, o.global_clipnorm, "SGD"), options_(o) {
  check_unit(o.momentum, "SGD", "momentum", /*one_allowed=*/true);
}

std::vector<std::string> SGD::slot_names() const {
  return options_.momentum > 0.f ? std::vector<std::string>{"momentum"}
                                 : std::vector<std::string>{};
}

void SGD::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                 std::vector<Tensor>& slots) {
  const float lr = learning_rate(), mu = options_.momentum;
  if (slots.empty()) {
    for (std::size_t i = 0; i < n; ++i) w[i] -= g[i] * s * lr;
    return;
  }
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  if (options_.nesterov) {
    for (std::size_t i = 0; i < n; ++i) {
      const float gi = g[i] * s;
      m[i] = m[i] * mu - gi * lr;
      w[i] += m[i] * mu - gi * lr;
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = m[i] * mu - g[i] * s * lr;
      w[i] += m[i];
    }
  }
}

// ---- Adam, AdamW ----

Adam::Adam(AdamOptions o) : Adam(o, "Adam") {}

Adam::Adam(AdamOptions o, const char* who)
    : Optimizer(o.learning_rate, o.global_clipnorm, who), options_(o) {
  check_unit(o.beta_1, who, "beta_1", /*one_allowed=*/false);
  check_unit(o.beta_2, who, "beta_2", /*one_allowed=*/false);
  check_epsilon(o.epsilon, who);
}

std::vector<std::string> Adam::slot_names() const {
  if (options_.amsgrad) return {"momentum", "velocity", "velocity_hat"};
  return {"momentum", "velocity"};
}

void Adam::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                  std::vector<Tensor>& slots) {
  const double t = static_cast<double>(iterations() + 1);
  const float b1 = options_.beta_1, b2 = options_.beta_2, eps = options_.epsilon;
  const float c1 = 1.f - b1, c2 = 1.f - b2;
  // alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), in double then rounded once.
  const float alpha = static_cast<float>(
      learning_rate() * std::sqrt(1.0 - std::pow(double(b2), t)) / (1.0 - std::pow(double(b1), t)));
  float* __restrict m = xtape::detail::mutable_data(slots[0]);
  float* __restrict v = xtape::detail::mutable_data(slots[1]);
  float* __restrict vhat = options_.amsgrad ? xtape::detail::mutable_data(slots[2]) : nullptr;
  float den[kBlock];
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t len = std::min(kBlock, n - start);
    const float* gb = g + start;
    float* mb = m + start;
    float* vb = v + start;
    float* wb = w + start;
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
    sqrt_in_place(den, len);
    for (std::size_t i = 0; i < len; ++i) wb[i] -= mb[i] * alpha / (den[i] + eps);
  }
}

namespace {
AdamOptions adam_part(const AdamWOptions& o) {
  return AdamOptions{.learning_rate = o.learning_rate,
                     .beta_1 = o.beta_1,
                     .beta_2 = o.beta_2,
                     .epsilon = o.epsilon,
                     .amsgrad = o.amsgrad,
                     .global_clipnorm = o.global_clipnorm};
}
}  // namespace

AdamW::AdamW(AdamWOptions o) : Adam(adam_part(o), "AdamW"), weight_decay_(o.weight_decay) {
  check(std::isfinite(o.weight_decay) && o.weight_decay >= 0.f, "AdamW",
        "weight_decay must be finite and >= 0, got " + num(o.weight_decay));
}

void AdamW::update(float* __restrict w, const float* g, float s, std::size_t n,
                   std::vector<Tensor>& slots) {
  // Decoupled decay (Keras base optimizer): w = w - w * weight_decay * lr, before the Adam step.
  const float wd = weight_decay_, lr = learning_rate();
  for (std::size_t i = 0; i < n; ++i) w[i] -= w[i] * wd * lr;
  Adam::update(w, g, s, n, slots);
}

// ---- RMSprop ----

RMSprop::RMSprop(RMSpropOptions o)
    : Optimizer(o.learning_rate, o.global_clipnorm, "RMSprop"), options_(o) {
  check_unit(o.rho, "RMSprop", "rho", /*one_allowed=*/false);
  check_unit(o.momentum, "RMSprop", "momentum", /*one_allowed=*/true);
  check_epsilon(o.epsilon, "RMSprop");
}

std::vector<std::string> RMSprop::slot_names() const {
  std::vector<std::string> names{"velocity"};
  if (options_.momentum > 0.f) names.push_back("momentum");
  if (options_.centered) names.push_back("average_gradient");
  return names;
}

void RMSprop::update(float* __restrict w, const float* __restrict g, float s, std::size_t n,
                     std::vector<Tensor>& slots) {
  const float lr = learning_rate(), rho = options_.rho, c = 1.f - rho, eps = options_.epsilon;
  const float mu = options_.momentum;
  float* __restrict vel = xtape::detail::mutable_data(slots[0]);
  float* __restrict mom = mu > 0.f ? xtape::detail::mutable_data(slots[1]) : nullptr;
  float* __restrict avg = options_.centered ? xtape::detail::mutable_data(slots.back()) : nullptr;
  float den[kBlock];
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t len = std::min(kBlock, n - start);
    const float* gb = g + start;
    float* vb = vel + start;
    float* wb = w + start;
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
    sqrt_in_place(den, len);
    if (mom) {
      float* mb = mom + start;
      for (std::size_t i = 0; i < len; ++i) {
        mb[i] = mu * mb[i] + lr * (gb[i] * s) / den[i];
        wb[i] -= mb[i];
      }
    } else {
      for (std::size_t i = 0; i < len; ++i) wb[i] -= lr * (gb[i] * s) / den[i];
    }
  }
}

// ---- factory ----

std::unique_ptr<Optimizer> make_optimizer(const std::string& name) {
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  if (key == "sgd") return std::make_unique<SGD>();
  if (key == "adam") return std::make_unique<Adam>();
  if (key == "adamw") return std::make_unique<AdamW>();
  if (key == "rmsprop") return std::make_unique<RMSprop>();
  throw std::invalid_argument("make_optimizer: unknown optimizer '" + name +
                              "'; expected one of: sgd, adam, adamw, rmsprop");
}

}  // namespace xtape::optim
