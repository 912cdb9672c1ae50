#include "optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "optim/internal.hpp"

namespace xtape::optim {

using detail::check;
using detail::num;

Optimizer::Optimizer(const CommonOptions& o, const char* who)
    : who_(who),
      learning_rate_(o.learning_rate),
      weight_decay_(o.weight_decay),
      clipnorm_(o.clipnorm),
      clipvalue_(o.clipvalue),
      global_clipnorm_(o.global_clipnorm),
      use_ema_(o.use_ema),
      ema_momentum_(o.ema_momentum),
      ema_overwrite_frequency_(o.ema_overwrite_frequency) {
  if (learning_rate_.is_schedule())
    check(learning_rate_.schedule() != nullptr, who, "learning_rate is a null schedule");
  else
    detail::check_learning_rate(learning_rate_.value(), who);
  if (weight_decay_)
    check(std::isfinite(*weight_decay_) && *weight_decay_ >= 0.f, who,
          "weight_decay must be finite and >= 0, got " + num(*weight_decay_));
  if (clipnorm_) detail::check_clip(*clipnorm_, who, "clipnorm");
  if (clipvalue_) detail::check_clip(*clipvalue_, who, "clipvalue");
  if (global_clipnorm_) detail::check_clip(*global_clipnorm_, who, "global_clipnorm");
  const int clips =
      int(clipnorm_.has_value()) + int(clipvalue_.has_value()) + int(global_clipnorm_.has_value());
  auto shown = [](const std::optional<float>& x) { return x ? num(*x) : std::string("unset"); };
  check(clips <= 1, who,
        "only one of clipnorm, clipvalue and global_clipnorm can be set, got clipnorm " +
            shown(clipnorm_) + ", clipvalue " + shown(clipvalue_) + ", global_clipnorm " +
            shown(global_clipnorm_));
  check(ema_momentum_ >= 0.f && ema_momentum_ <= 1.f, who,
        "ema_momentum must be in [0, 1], got " + num(ema_momentum_));
  if (ema_overwrite_frequency_)
    check(*ema_overwrite_frequency_ >= 1, who,
          "ema_overwrite_frequency must be >= 1 when set, got " +
              std::to_string(*ema_overwrite_frequency_));
}

void Optimizer::set_learning_rate(float lr) {
  if (learning_rate_.is_schedule()) {
    if (lr == learning_rate()) return;
    throw std::logic_error(std::string(who_) + ": the learning rate is driven by the schedule " +
                           learning_rate_.schedule()->class_name() + " and cannot be set (to " +
                           num(lr) +
                           "); construct the optimizer with a constant learning_rate to set it, "
                           "or call set_learning_rate_schedule");
  }
  detail::check_learning_rate(lr, who_);
  learning_rate_ = lr;
}

void Optimizer::set_learning_rate_schedule(std::shared_ptr<const LearningRateSchedule> schedule) {
  check(schedule != nullptr, who_, "set_learning_rate_schedule: null schedule");
  learning_rate_ = std::shared_ptr<const LearningRateSchedule>(std::move(schedule));
}

void Optimizer::set_iterations(std::int64_t n) {
  check(n >= 0, who_, "iterations must be >= 0, got " + std::to_string(n));
  iterations_ = n;
}

std::vector<std::string> Optimizer::slot_names() const {
  std::vector<std::string> names = rule_slot_names();
  if (use_ema_) names.emplace_back("average");
  return names;
}

std::vector<Tensor>& Optimizer::slots_for(const Variable& v, const Shape& shape, bool& fresh) {
  auto [known, fresh_name] = shapes_.try_emplace(v.name, shape);
  check(fresh_name || known->second == shape, who_,
        "variable '" + v.name + "' changed shape from " + shape_str(known->second) + " to " +
            shape_str(shape));

  auto [it, fresh_slots] = slots_.try_emplace(v.name);
  std::vector<Tensor>& s = it->second;
  fresh = fresh_slots;
  const std::size_t count = slot_count();
  if (fresh_slots) {
    s.reserve(count);
    for (std::size_t k = 0; k < rule_slot_count(); ++k) {
      const float init = rule_slot_initial_value(k);
      s.push_back(init == 0.f ? Tensor::zeros(shape) : Tensor::full(shape, init));
    }
    if (use_ema_) s.push_back(Tensor::zeros(shape));
    return s;
  }
  // Cheap on every step; catches restored state that does not fit.
  check(s.size() == count, who_,
        "variable '" + v.name + "' has " + std::to_string(s.size()) + " slot tensors, expected " +
            std::to_string(count));
  for (std::size_t k = 0; k < s.size(); ++k)
    check(s[k].defined() && s[k].shape() == shape, who_,
          "slot " + slot_names()[k] + " of variable '" + v.name + "' has shape " +
              (s[k].defined() ? shape_str(s[k].shape()) : std::string("<undefined>")) +
              ", expected " + shape_str(shape));
  return s;
}

void Optimizer::apply(const std::vector<Variable>& vars) {
  NoGrad no_grad;
  for (const auto& v : vars)
    check(v.value.defined(), who_, "variable '" + v.name + "' is an undefined tensor");

  step_learning_rate_ = learning_rate();
  if (learning_rate_.is_schedule())
    check(std::isfinite(step_learning_rate_) && step_learning_rate_ >= 0.f, who_,
          "the learning-rate schedule " + learning_rate_.schedule()->class_name() + " gave " +
              num(step_learning_rate_) + " at step " + std::to_string(iterations_) +
              ", expected a finite rate >= 0");

  const float scale = global_clipnorm_ ? detail::global_norm_scale(vars, *global_clipnorm_) : 1.f;
  const std::size_t ema_slot = rule_slot_count();

  for (const auto& v : vars) {
    const Tensor g = v.value.grad();
    if (!g.defined()) continue;
    Tensor w = v.value;
    const Shape& shape = w.shape();
    check(g.shape() == shape, who_,
          "gradient of shape " + shape_str(g.shape()) + " for variable '" + v.name + "' of shape " +
              shape_str(shape));
    bool fresh = false;
    std::vector<Tensor>& s = slots_for(v, shape, fresh);

    const std::size_t n = w.size();
    const float* grad = g.data();
    float grad_scale = scale;
    if (clipnorm_) {
      grad_scale = detail::norm_scale(grad, n, *clipnorm_);
    } else if (clipvalue_) {
      if (clipped_.size() < n) clipped_.resize(n);
      const float lo = -*clipvalue_, hi = *clipvalue_;
      for (std::size_t i = 0; i < n; ++i) clipped_[i] = std::clamp(grad[i], lo, hi);
      grad = clipped_.data();
    }
    float* __restrict value = xtape::detail::mutable_data(w);
    if (weight_decay_) {
      // Decoupled decay (Keras base optimizer): w = w - w * weight_decay * lr, before the step.
      const float wd = *weight_decay_, lr = step_learning_rate_;
      for (std::size_t i = 0; i < n; ++i) value[i] -= value[i] * wd * lr;
    }
    update(value, grad, grad_scale, n, s);
    if (use_ema_) {
      const float m = iterations_ == 0 || fresh ? 0.f : ema_momentum_, c = 1.f - m;
      float* __restrict avg = xtape::detail::mutable_data(s[ema_slot]);
      for (std::size_t i = 0; i < n; ++i) avg[i] = m * avg[i] + c * value[i];
    }
  }
  if (use_ema_ && ema_overwrite_frequency_ && (iterations_ + 1) % *ema_overwrite_frequency_ == 0)
    for (const auto& v : vars)
      if (const Tensor* avg = average_of(v, "apply"))
        std::copy_n(avg->data(), avg->size(), xtape::detail::mutable_data(v.value));
  ++iterations_;
}

Tensor* Optimizer::average_of(const Variable& v, const char* caller) {
  check(v.value.defined(), who_,
        std::string(caller) + ": variable '" + v.name + "' is an undefined tensor");
  const auto it = slots_.find(v.name);
  if (!use_ema_ || it == slots_.end() || it->second.size() != slot_count()) return nullptr;
  Tensor& avg = it->second[rule_slot_count()];
  check(avg.defined() && avg.shape() == v.value.shape(), who_,
        std::string(caller) + ": the average of variable '" + v.name + "' has shape " +
            (avg.defined() ? shape_str(avg.shape()) : std::string("<undefined>")) +
            ", the variable " + shape_str(v.value.shape()));
  return &avg;
}

void Optimizer::finalize_variable_values(const std::vector<Variable>& vars) {
  if (!use_ema_) return;
  NoGrad no_grad;
  for (const auto& v : vars)
    if (const Tensor* avg = average_of(v, "finalize_variable_values"))
      std::copy_n(avg->data(), avg->size(), xtape::detail::mutable_data(v.value));
}

void Optimizer::swap_moving_averages(const std::vector<Variable>& vars) {
  if (!use_ema_) return;
  NoGrad no_grad;
  for (const auto& v : vars)
    if (Tensor* avg = average_of(v, "swap_moving_averages")) {
      float* w = xtape::detail::mutable_data(v.value);
      std::swap_ranges(w, w + avg->size(), xtape::detail::mutable_data(*avg));
    }
}

}  // namespace xtape::optim
