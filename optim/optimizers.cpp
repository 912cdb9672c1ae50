#include "optim/optimizers.hpp"

#include <cmath>
#include <stdexcept>

namespace xtape::optim {

namespace {
void check(bool ok, const char* who, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(who) + ": " + what);
}
std::string num(float v) { return std::to_string(v); }
}  // namespace

Optimizer::Optimizer(float learning_rate, std::optional<float> global_clipnorm, const char* who)
    : learning_rate_(learning_rate), global_clipnorm_(global_clipnorm) {
  check(learning_rate >= 0.f && std::isfinite(learning_rate), who,
        "learning_rate must be finite and >= 0, got " + num(learning_rate));
  check(!global_clipnorm || *global_clipnorm > 0.f, who,
        "global_clipnorm must be > 0, got " + num(global_clipnorm.value_or(0.f)));
}

void Optimizer::set_learning_rate(float lr) {
  check(lr >= 0.f && std::isfinite(lr), name().c_str(), "learning_rate must be finite and >= 0, got " + num(lr));
  learning_rate_ = lr;
}

void Optimizer::apply(const std::vector<Variable>& vars) {
  NoGrad no_grad;
  float scale = 1.f;
  if (global_clipnorm_) {
    double sq = 0.0;
    for (const auto& v : vars) {
      const Tensor g = v.value.grad();
      if (!g.defined()) continue;
      for (std::size_t i = 0; i < g.size(); ++i) sq += double(g.data()[i]) * g.data()[i];
    }
    const double norm = std::sqrt(sq);
    scale = static_cast<float>(*global_clipnorm_ / std::max<double>(norm, *global_clipnorm_));
  }
  for (const auto& v : vars) {
    const Tensor g = v.value.grad();
    if (!g.defined()) continue;
    Tensor w = v.value;
    if (g.shape() != w.shape())
      throw std::invalid_argument(name() + ": gradient of shape " + shape_str(g.shape()) + " for variable '" +
                                  v.name + "' of shape " + shape_str(w.shape()));
    auto [it, fresh] = slots_.try_emplace(v.name);
    std::vector<Tensor>& s = it->second;
    if (fresh) {
      for (std::size_t k = 0; k < slot_count(); ++k) s.push_back(Tensor::zeros(w.shape()));
    } else if (!s.empty() && s[0].shape() != w.shape()) {
      throw std::invalid_argument(name() + ": variable '" + v.name + "' changed shape from " +
                                  shape_str(s[0].shape()) + " to " + shape_str(w.shape()));
    }
    if (scale != 1.f) {
      Tensor scaled = g.clone();
      for (std::size_t i = 0; i < scaled.size(); ++i) scaled.data()[i] *= scale;
      update(w.data(), scaled.data(), w.size(), s);
    } else {
      update(w.data(), g.data(), w.size(), s);
    }
  }
  ++iterations_;
}

SGD::SGD(SGDOptions o) : Optimizer(o.learning_rate, o.global_clipnorm, "SGD"), options_(o) {
  check(o.momentum >= 0.f && o.momentum <= 1.f, "SGD", "momentum must be in [0, 1], got " + num(o.momentum));
}

void SGD::update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) {
  const float lr = learning_rate(), mu = options_.momentum;
  if (slots.empty()) {
    for (std::size_t i = 0; i < n; ++i) w[i] -= lr * g[i];
    return;
  }
  float* m = slots[0].data();
  for (std::size_t i = 0; i < n; ++i) {
    m[i] = mu * m[i] - lr * g[i];
    w[i] += options_.nesterov ? mu * m[i] - lr * g[i] : m[i];
  }
}

namespace {
void check_adam(const char* who, float b1, float b2, float eps) {
  check(b1 >= 0.f && b1 < 1.f, who, "beta_1 must be in [0, 1), got " + num(b1));
  check(b2 >= 0.f && b2 < 1.f, who, "beta_2 must be in [0, 1), got " + num(b2));
  check(eps > 0.f, who, "epsilon must be > 0, got " + num(eps));
}
}  // namespace

Adam::Adam(AdamOptions o) : Adam(o, "Adam") {}

Adam::Adam(AdamOptions o, const char* who) : Optimizer(o.learning_rate, o.global_clipnorm, who), options_(o) {
  check_adam(who, o.beta_1, o.beta_2, o.epsilon);
}

void Adam::update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) {
  const double t = double(iterations() + 1);
  const float b1 = options_.beta_1, b2 = options_.beta_2, eps = options_.epsilon;
  const float alpha = static_cast<float>(learning_rate() * std::sqrt(1.0 - std::pow(double(b2), t)) /
                                         (1.0 - std::pow(double(b1), t)));
  float* m = slots[0].data();
  float* v = slots[1].data();
  if (options_.amsgrad) {
    float* vhat = slots[2].data();
    for (std::size_t i = 0; i < n; ++i) {
      m[i] += (g[i] - m[i]) * (1.f - b1);
      v[i] += (g[i] * g[i] - v[i]) * (1.f - b2);
      vhat[i] = std::max(vhat[i], v[i]);
      w[i] -= alpha * m[i] / (std::sqrt(vhat[i]) + eps);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    m[i] += (g[i] - m[i]) * (1.f - b1);
    v[i] += (g[i] * g[i] - v[i]) * (1.f - b2);
    w[i] -= alpha * m[i] / (std::sqrt(v[i]) + eps);
  }
}

AdamW::AdamW(AdamWOptions o)
    : Adam(AdamOptions{o.learning_rate, o.beta_1, o.beta_2, o.epsilon, o.amsgrad, o.global_clipnorm}, "AdamW"),
      weight_decay_(o.weight_decay) {
  check(o.weight_decay >= 0.f, "AdamW", "weight_decay must be >= 0, got " + num(o.weight_decay));
}

void AdamW::update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) {
  const float decay = weight_decay_ * learning_rate();
  for (std::size_t i = 0; i < n; ++i) w[i] -= w[i] * decay;
  Adam::update(w, g, n, slots);
}

RMSprop::RMSprop(RMSpropOptions o) : Optimizer(o.learning_rate, o.global_clipnorm, "RMSprop"), options_(o) {
  check(o.rho >= 0.f && o.rho < 1.f, "RMSprop", "rho must be in [0, 1), got " + num(o.rho));
  check(o.momentum >= 0.f && o.momentum < 1.f, "RMSprop", "momentum must be in [0, 1), got " + num(o.momentum));
  check(o.epsilon > 0.f, "RMSprop", "epsilon must be > 0, got " + num(o.epsilon));
}

void RMSprop::update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) {
  const float lr = learning_rate(), rho = options_.rho, eps = options_.epsilon;
  float* vel = slots[0].data();
  float* mom = options_.momentum > 0.f ? slots[1].data() : nullptr;
  float* avg = options_.centered ? slots.back().data() : nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    vel[i] = rho * vel[i] + (1.f - rho) * g[i] * g[i];
    float denom = vel[i];
    if (avg) {
      avg[i] = rho * avg[i] + (1.f - rho) * g[i];
      denom -= avg[i] * avg[i];
    }
    const float step = lr * g[i] / std::sqrt(denom + eps);
    if (mom) {
      mom[i] = options_.momentum * mom[i] + step;
      w[i] -= mom[i];
    } else {
      w[i] -= step;
    }
  }
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name) {
  if (name == "sgd") return std::make_unique<SGD>();
  if (name == "adam") return std::make_unique<Adam>();
  if (name == "adamw") return std::make_unique<AdamW>();
  if (name == "rmsprop") return std::make_unique<RMSprop>();
  throw std::invalid_argument("unknown optimizer '" + name + "' (expected sgd, adam, adamw or rmsprop)");
}

}  // namespace xtape::optim
