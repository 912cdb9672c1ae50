#pragma once
/// @file optimizers.hpp
/// Optimizers with Keras 3's update rules, defaults and slot names: SGD (momentum, Nesterov),
/// Adam (AMSGrad), AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam and Lion, and
/// make_optimizer() by name. Each takes an options struct filled with designated initializers:
///
///     Adam({.learning_rate = 1e-3f});
///     SGD({.learning_rate = ExponentialDecay({.initial_learning_rate = 0.1, .decay_steps = 1000,
///                                             .decay_rate = 0.96}),
///          .momentum = 0.9f, .weight_decay = 1e-4f, .global_clipnorm = 1.f, .use_ema = true});
///
/// `learning_rate` is a LearningRate: a float or any schedule (optim/schedules.hpp). Every
/// options struct ends with the options all optimizers share (Keras's base optimizer):
/// weight_decay, clipnorm, clipvalue, global_clipnorm (at most one clip option), use_ema,
/// ema_momentum and ema_overwrite_frequency; Optimizer::apply says what they do. Every
/// constructor throws std::invalid_argument on an option out of range, naming it and its value.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/clipping.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedules.hpp"

namespace xtape::optim {

/// Options of SGD (Keras defaults).
struct SGDOptions {
  LearningRate learning_rate = 0.01f;
  /// In [0, 1]; 0 disables momentum (and its slot).
  float momentum = 0.f;
  bool nesterov = false;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Stochastic gradient descent (Keras): w -= lr g; with momentum, m = momentum m - lr g and
/// w += m (Nesterov: w += momentum m - lr g). Slot: "momentum" (only when momentum > 0).
class SGD : public Optimizer {
 public:
  /// Throws std::invalid_argument on momentum outside [0, 1] and as Optimizer.
  explicit SGD(SGDOptions options = SGDOptions{});
  /// "sgd".
  std::string name() const override { return "sgd"; }
  /// The options given at construction.
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override;
  std::size_t rule_slot_count() const override { return options_.momentum > 0.f ? 1 : 0; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  SGDOptions options_;
};

/// Options of Adam (Keras defaults).
struct AdamOptions {
  LearningRate learning_rate = 1e-3f;
  /// In [0, 1).
  float beta_1 = 0.9f;
  /// In [0, 1).
  float beta_2 = 0.999f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Use the running maximum of v (AMSGrad).
  bool amsgrad = false;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Adam (Keras): t = iterations + 1; alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t);
/// m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); w -= alpha m / (sqrt(v) + epsilon)
/// (AMSGrad: v_hat = max(v_hat, v) replaces v in the last step).
/// Slots: "momentum" (m), "velocity" (v) and, with amsgrad, "velocity_hat".
class Adam : public Optimizer {
 public:
  /// Throws std::invalid_argument on a beta outside [0, 1), a negative epsilon and as
  /// Optimizer.
  explicit Adam(AdamOptions options = AdamOptions{});
  /// "adam".
  std::string name() const override { return "adam"; }
  /// The Adam options given at construction (for AdamW: all but weight_decay).
  const AdamOptions& adam_options() const { return options_; }

 protected:
  /// For AdamW: the Adam part, the common options (with AdamW's weight decay) and `who`.
  Adam(const AdamOptions& options, const CommonOptions& common, const char* who);
  std::vector<std::string> rule_slot_names() const override;
  std::size_t rule_slot_count() const override { return options_.amsgrad ? 3 : 2; }
  /// velocity and velocity_hat.
  bool rule_slot_nonnegative(std::size_t k) const override { return k >= 1; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  AdamOptions options_;
};

/// Options of AdamW (Keras defaults).
struct AdamWOptions {
  LearningRate learning_rate = 1e-3f;
  /// Finite and >= 0.
  float weight_decay = 0.004f;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Adam with decoupled weight decay (Keras: Adam whose weight_decay is required):
/// w -= w * weight_decay * lr, then the Adam step. Only variables with a gradient are decayed.
/// Slots as Adam.
class AdamW : public Adam {
 public:
  /// Throws std::invalid_argument as Adam, and on a negative or non-finite weight_decay.
  explicit AdamW(AdamWOptions options = AdamWOptions{});
  /// "adamw".
  std::string name() const override { return "adamw"; }
};

/// Options of RMSprop (Keras defaults).
struct RMSpropOptions {
  LearningRate learning_rate = 1e-3f;
  /// In [0, 1).
  float rho = 0.9f;
  /// In [0, 1]; 0 disables momentum (and its slot).
  float momentum = 0.f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Divide by an estimate of the gradient's variance instead of its second moment.
  bool centered = false;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// RMSprop (Keras): v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g and
/// denominator = v - a^2 + epsilon, else v + epsilon; increment = lr g / sqrt(denominator);
/// with momentum, m = momentum m + increment and w -= m, else w -= increment.
/// Slots: "velocity", then "momentum" (momentum > 0), then "average_gradient" (centered).
class RMSprop : public Optimizer {
 public:
  /// Throws std::invalid_argument on rho outside [0, 1), momentum outside [0, 1], a negative
  /// epsilon and as Optimizer.
  explicit RMSprop(RMSpropOptions options = RMSpropOptions{});
  /// "rmsprop".
  std::string name() const override { return "rmsprop"; }
  /// The options given at construction.
  const RMSpropOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override;
  std::size_t rule_slot_count() const override {
    return 1 + (options_.momentum > 0.f ? 1 : 0) + (options_.centered ? 1 : 0);
  }
  /// velocity (the mean square).
  bool rule_slot_nonnegative(std::size_t k) const override { return k == 0; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  RMSpropOptions options_;
};

/// Options of Adagrad (Keras defaults).
struct AdagradOptions {
  LearningRate learning_rate = 1e-3f;
  /// The accumulator's starting value; finite and >= 0.
  float initial_accumulator_value = 0.1f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Adagrad (Keras): a += g^2; w -= lr g / sqrt(a + epsilon). Slot: "accumulator", starting at
/// initial_accumulator_value.
class Adagrad : public Optimizer {
 public:
  /// Throws std::invalid_argument on a negative or non-finite initial_accumulator_value, a
  /// negative epsilon and as Optimizer.
  explicit Adagrad(AdagradOptions options = AdagradOptions{});
  /// "adagrad".
  std::string name() const override { return "adagrad"; }
  /// The options given at construction.
  const AdagradOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override { return {"accumulator"}; }
  std::size_t rule_slot_count() const override { return 1; }
  bool rule_slot_nonnegative(std::size_t) const override { return true; }
  float rule_slot_initial_value(std::size_t) const override {
    return options_.initial_accumulator_value;
  }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  AdagradOptions options_;
};

/// Options of Adadelta (Keras defaults).
struct AdadeltaOptions {
  LearningRate learning_rate = 1e-3f;
  /// In [0, 1).
  float rho = 0.95f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Adadelta (Keras): a = rho a + (1 - rho) g^2;
/// d = -sqrt(b + epsilon) g / sqrt(a + epsilon); b = rho b + (1 - rho) d^2; w += lr d.
/// Slots: "accumulated_grad" (a), "accumulated_delta_var" (b).
class Adadelta : public Optimizer {
 public:
  /// Throws std::invalid_argument on rho outside [0, 1), a negative epsilon and as Optimizer.
  explicit Adadelta(AdadeltaOptions options = AdadeltaOptions{});
  /// "adadelta".
  std::string name() const override { return "adadelta"; }
  /// The options given at construction.
  const AdadeltaOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override {
    return {"accumulated_grad", "accumulated_delta_var"};
  }
  std::size_t rule_slot_count() const override { return 2; }
  bool rule_slot_nonnegative(std::size_t) const override { return true; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  AdadeltaOptions options_;
};

/// Options of Adamax (Keras defaults).
struct AdamaxOptions {
  LearningRate learning_rate = 1e-3f;
  /// In [0, 1).
  float beta_1 = 0.9f;
  /// In [0, 1).
  float beta_2 = 0.999f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Adamax (Keras): t = iterations + 1; m += (g - m)(1 - beta_1); u = max(beta_2 u, |g|);
/// w -= lr m / ((1 - beta_1^t)(u + epsilon)). Slots: "momentum" (m), "norm" (u).
class Adamax : public Optimizer {
 public:
  /// Throws std::invalid_argument on a beta outside [0, 1), a negative epsilon and as
  /// Optimizer.
  explicit Adamax(AdamaxOptions options = AdamaxOptions{});
  /// "adamax".
  std::string name() const override { return "adamax"; }
  /// The options given at construction.
  const AdamaxOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override { return {"momentum", "norm"}; }
  std::size_t rule_slot_count() const override { return 2; }
  /// norm.
  bool rule_slot_nonnegative(std::size_t k) const override { return k == 1; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  AdamaxOptions options_;
};

/// Options of Nadam (Keras defaults).
struct NadamOptions {
  LearningRate learning_rate = 1e-3f;
  /// In [0, 1).
  float beta_1 = 0.9f;
  /// In [0, 1).
  float beta_2 = 0.999f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Nadam (Keras 3): t = iterations + 1; u_t = beta_1 (1 - 0.5 * 0.96^t); P_t = u_1 ... u_t;
/// m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
/// m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t); v_hat = v / (1 - beta_2^t);
/// w -= lr m_hat / (sqrt(v_hat) + epsilon). P_t is a function of the step, so iterations()
/// carries it through checkpoints. Slots: "momentum" (m), "velocity" (v).
class Nadam : public Optimizer {
 public:
  /// Throws std::invalid_argument on a beta outside [0, 1), a negative epsilon and as
  /// Optimizer.
  explicit Nadam(NadamOptions options = NadamOptions{});
  /// "nadam".
  std::string name() const override { return "nadam"; }
  /// The options given at construction.
  const NadamOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override { return {"momentum", "velocity"}; }
  std::size_t rule_slot_count() const override { return 2; }
  /// velocity.
  bool rule_slot_nonnegative(std::size_t k) const override { return k == 1; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  // P_t (in double) for t = u_product_step_, cached across the variables of one step.
  double u_product(std::int64_t t);
  NadamOptions options_;
  std::int64_t u_product_step_ = 0;
  double u_product_ = 1.0;
};

/// Options of Lion (Keras defaults).
struct LionOptions {
  LearningRate learning_rate = 1e-3f;
  /// In (0, 1] (0 would make Lion SignSGD).
  float beta_1 = 0.9f;
  /// In [0, 1].
  float beta_2 = 0.99f;
  /// Options of every optimizer (Keras's base optimizer); see Optimizer::apply.
  std::optional<float> weight_decay = std::nullopt;
  std::optional<float> clipnorm = std::nullopt;
  std::optional<float> clipvalue = std::nullopt;
  std::optional<float> global_clipnorm = std::nullopt;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency = std::nullopt;
};

/// Lion (Keras): w -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g.
/// Slot: "momentum".
class Lion : public Optimizer {
 public:
  /// Throws std::invalid_argument on beta_1 outside (0, 1], beta_2 outside [0, 1] and as
  /// Optimizer.
  explicit Lion(LionOptions options = LionOptions{});
  /// "lion".
  std::string name() const override { return "lion"; }
  /// The options given at construction.
  const LionOptions& options() const { return options_; }

 protected:
  std::vector<std::string> rule_slot_names() const override { return {"momentum"}; }
  std::size_t rule_slot_count() const override { return 1; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  LionOptions options_;
};

/// An optimizer by name with default options: "sgd", "adam", "adamw", "rmsprop", "adagrad",
/// "adadelta", "adamax", "nadam" or "lion" (ASCII case ignored, so Keras's class names "Adam",
/// "RMSprop" work too). Throws std::invalid_argument naming the unknown name and the valid ones.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name);

}  // namespace xtape::optim
