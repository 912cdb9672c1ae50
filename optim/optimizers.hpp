#pragma once
/// @file optimizers.hpp
/// Optimizers with Keras 3's update rules and defaults: SGD (momentum, Nesterov), Adam, AdamW,
/// RMSprop, with optional global-norm gradient clipping. State ("slots") is kept per variable
/// *name*, so it is readable and can be saved and restored.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape::optim {

/// A trainable variable: a stable readable name (e.g. "conv2d/kernel") and its leaf tensor.
struct Variable {
  /// Key of the variable's optimizer state; must be unique among the variables of one apply().
  std::string name;
  /// The leaf tensor, updated in place; its grad() is the gradient used.
  Tensor value;
};

/// Base of every optimizer: gradient clipping, the step counter and per-name slot bookkeeping.
/// Subclasses implement the per-element update rule.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One update of every variable from value.grad(), in place on value's data and under NoGrad;
  /// variables whose gradient is undefined are skipped (they create no state). Then
  /// iterations() grows by one. With a global clip norm c, every gradient is first scaled by
  /// min(1, c / global_norm), where global_norm is the L2 norm of all gradients together; a
  /// non-finite global norm gives a NaN scale, as in Keras. The stored gradients are not
  /// modified. Slots are created (zero-filled) on a name's first update.
  /// Throws std::invalid_argument when a variable is undefined, when a known name arrives with a
  /// new shape (naming the variable and both shapes) or when restored slots do not fit.
  void apply(const std::vector<Variable>& vars);

  /// Current learning rate.
  float learning_rate() const { return learning_rate_; }
  /// Replaces the learning rate; throws std::invalid_argument unless it is finite and >= 0.
  void set_learning_rate(float lr);
  /// Number of apply() calls so far (Keras's `iterations`); Adam's bias correction uses it.
  std::int64_t iterations() const { return iterations_; }
  /// Sets the step counter (e.g. when restoring a checkpoint); throws std::invalid_argument
  /// when negative.
  void set_iterations(std::int64_t n);
  /// The global clip norm, if any.
  std::optional<float> global_clipnorm() const { return global_clipnorm_; }

  /// "sgd", "adam", "adamw", "rmsprop".
  virtual std::string name() const = 0;
  /// Names of the per-variable state tensors, in the order of slots()[name] (Keras's names,
  /// e.g. {"momentum", "velocity"} for Adam).
  virtual std::vector<std::string> slot_names() const = 0;
  /// True when slot `k` can only hold values >= 0 (second-moment estimates); checkpoints
  /// refuse negative values there.
  virtual bool slot_nonnegative(std::size_t /*k*/) const { return false; }

  /// Per-variable state tensors keyed by variable name (e.g. Adam's m and v), for checkpoints.
  /// Entries may be filled before the first apply() to restore state; they must then hold
  /// slot_names().size() tensors of the variable's shape.
  std::map<std::string, std::vector<Tensor>>& slots() { return slots_; }
  /// Read-only view of slots().
  const std::map<std::string, std::vector<Tensor>>& slots() const { return slots_; }

 protected:
  /// Validates and stores the options every optimizer shares; `who` ("Adam") prefixes errors.
  Optimizer(float learning_rate, std::optional<float> global_clipnorm, const char* who);

  /// Number of state tensors per variable (slot_names().size(), without allocating).
  virtual std::size_t slot_count() const = 0;
  /// Updates value[0..n) in place. The gradient to use is grad[i] * grad_scale (grad_scale is 1
  /// without clipping). `slots` holds slot_count() tensors of n elements each.
  virtual void update(float* value, const float* grad, float grad_scale, std::size_t n,
                      std::vector<Tensor>& slots) = 0;

  /// "Adam", "SGD", ...: the prefix of error messages.
  const char* who() const { return who_; }

 private:
  const char* who_;
  float learning_rate_;
  std::optional<float> global_clipnorm_;
  std::int64_t iterations_ = 0;
  std::map<std::string, std::vector<Tensor>> slots_;
  std::map<std::string, Shape> shapes_;  // shape of every name seen, also for slot-less rules
};

/// Options of SGD (Keras defaults).
struct SGDOptions {
  float learning_rate = 0.01f;
  /// In [0, 1]; 0 disables momentum (and its slot).
  float momentum = 0.f;
  bool nesterov = false;
  /// When set (> 0), gradients are clipped by their global norm first.
  std::optional<float> global_clipnorm = std::nullopt;
};

/// Stochastic gradient descent (Keras): w -= lr g; with momentum, m = momentum m - lr g and
/// w += m (Nesterov: w += momentum m - lr g). Slot: "momentum" (only when momentum > 0).
class SGD : public Optimizer {
 public:
  /// Throws std::invalid_argument on a negative learning rate, momentum outside [0, 1] or a
  /// non-positive global_clipnorm.
  explicit SGD(SGDOptions options = SGDOptions{});
  /// "sgd".
  std::string name() const override { return "sgd"; }
  /// {"momentum"} with momentum, else {}.
  std::vector<std::string> slot_names() const override;
  /// The options given at construction (learning_rate as constructed).
  const SGDOptions& options() const { return options_; }

 protected:
  std::size_t slot_count() const override { return options_.momentum > 0.f ? 1 : 0; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  SGDOptions options_;
};

/// Options of Adam (Keras defaults).
struct AdamOptions {
  float learning_rate = 1e-3f;
  /// In [0, 1).
  float beta_1 = 0.9f;
  /// In [0, 1).
  float beta_2 = 0.999f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Use the running maximum of v (AMSGrad).
  bool amsgrad = false;
  /// When set (> 0), gradients are clipped by their global norm first.
  std::optional<float> global_clipnorm = std::nullopt;
};

/// Adam (Keras): t = iterations + 1; alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t);
/// m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); w -= alpha m / (sqrt(v) + epsilon)
/// (AMSGrad: v_hat = max(v_hat, v) replaces v in the last step).
/// Slots: "momentum" (m), "velocity" (v) and, with amsgrad, "velocity_hat".
class Adam : public Optimizer {
 public:
  /// Throws std::invalid_argument on a negative learning rate, a beta outside [0, 1), a negative
  /// epsilon or a non-positive global_clipnorm.
  explicit Adam(AdamOptions options = AdamOptions{});
  /// "adam".
  std::string name() const override { return "adam"; }
  /// {"momentum", "velocity"} (+ "velocity_hat" with amsgrad).
  std::vector<std::string> slot_names() const override;
  /// velocity and velocity_hat.
  bool slot_nonnegative(std::size_t k) const override { return k >= 1; }
  /// The options given at construction (learning_rate as constructed).
  const AdamOptions& adam_options() const { return options_; }

 protected:
  /// For AdamW: validates with `who` as the error prefix.
  Adam(AdamOptions options, const char* who);
  std::size_t slot_count() const override { return options_.amsgrad ? 3 : 2; }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  AdamOptions options_;
};

/// Options of AdamW (Keras defaults).
struct AdamWOptions {
  float learning_rate = 1e-3f;
  /// Finite and >= 0.
  float weight_decay = 0.004f;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  /// When set (> 0), gradients are clipped by their global norm first.
  std::optional<float> global_clipnorm = std::nullopt;
};

/// Adam with decoupled weight decay (Keras): w -= w * weight_decay * lr, then the Adam step.
/// Only variables with a gradient are decayed. Slots as Adam.
class AdamW : public Adam {
 public:
  /// Throws std::invalid_argument as Adam, and on a negative or non-finite weight_decay.
  explicit AdamW(AdamWOptions options = AdamWOptions{});
  /// "adamw".
  std::string name() const override { return "adamw"; }
  /// The decoupled weight-decay rate.
  float weight_decay() const { return weight_decay_; }

 protected:
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  float weight_decay_;
};

/// Options of RMSprop (Keras defaults).
struct RMSpropOptions {
  float learning_rate = 1e-3f;
  /// In [0, 1).
  float rho = 0.9f;
  /// In [0, 1]; 0 disables momentum (and its slot).
  float momentum = 0.f;
  /// >= 0.
  float epsilon = 1e-7f;
  /// Divide by an estimate of the gradient's variance instead of its second moment.
  bool centered = false;
  /// When set (> 0), gradients are clipped by their global norm first.
  std::optional<float> global_clipnorm = std::nullopt;
};

/// RMSprop (Keras): v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g and
/// denominator = v - a^2 + epsilon, else v + epsilon; increment = lr g / sqrt(denominator);
/// with momentum, m = momentum m + increment and w -= m, else w -= increment.
/// Slots: "velocity", then "momentum" (momentum > 0), then "average_gradient" (centered).
class RMSprop : public Optimizer {
 public:
  /// Throws std::invalid_argument on a negative learning rate, rho outside [0, 1), momentum
  /// outside [0, 1], a negative epsilon or a non-positive global_clipnorm.
  explicit RMSprop(RMSpropOptions options = RMSpropOptions{});
  /// "rmsprop".
  std::string name() const override { return "rmsprop"; }
  /// {"velocity"} (+ "momentum") (+ "average_gradient").
  std::vector<std::string> slot_names() const override;
  /// velocity (the mean square).
  bool slot_nonnegative(std::size_t k) const override { return k == 0; }
  /// The options given at construction (learning_rate as constructed).
  const RMSpropOptions& options() const { return options_; }

 protected:
  std::size_t slot_count() const override {
    return 1 + (options_.momentum > 0.f ? 1 : 0) + (options_.centered ? 1 : 0);
  }
  void update(float* w, const float* g, float grad_scale, std::size_t n,
              std::vector<Tensor>& slots) override;

 private:
  RMSpropOptions options_;
};

/// An optimizer by name with default options: "sgd", "adam", "adamw" or "rmsprop" (ASCII case
/// ignored, so Keras's class names "Adam", "RMSprop" work too). Throws std::invalid_argument
/// naming the unknown name and the valid ones.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name);

}  // namespace xtape::optim
