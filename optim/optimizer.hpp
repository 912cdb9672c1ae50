#pragma once
/// @file optimizer.hpp
/// The base of every optimizer, with the options Keras 3's base optimizer has: a learning rate
/// or schedule, decoupled weight decay, gradient clipping (per variable, global or by value) and
/// an exponential moving average of the weights. State ("slots") is kept per variable *name*, so
/// it is readable and can be saved and restored.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "optim/schedules.hpp"

namespace xtape::optim {

/// A trainable variable: a stable readable name (e.g. "conv2d/kernel") and its leaf tensor.
struct Variable {
  /// Key of the variable's optimizer state; must be unique among the variables of one apply().
  std::string name;
  /// The leaf tensor, updated in place; its grad() is the gradient used.
  Tensor value;
};

/// The options every optimizer takes (Keras's base-optimizer arguments). Every XOptions struct
/// repeats them by name, after its own options, so designated initializers read flat.
struct CommonOptions {
  LearningRate learning_rate = 1e-3f;
  std::optional<float> weight_decay;
  std::optional<float> clipnorm;
  std::optional<float> clipvalue;
  std::optional<float> global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};

namespace detail {
/// The common options of an XOptions struct.
template <class O>
CommonOptions common_options(const O& o) {
  return {o.learning_rate,   o.weight_decay, o.clipnorm,     o.clipvalue,
          o.global_clipnorm, o.use_ema,      o.ema_momentum, o.ema_overwrite_frequency};
}
}  // namespace detail

/// Base of every optimizer: the learning rate or its schedule, gradient clipping, weight decay,
/// the moving average of the weights, the step counter and per-name slot bookkeeping.
/// Subclasses implement the per-element update rule.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One update of every variable from value.grad(), in place on value's data and under NoGrad;
  /// variables whose gradient is undefined are skipped (they create no state). Then
  /// iterations() grows by one. In order, as Keras's base optimizer:
  /// - the learning rate is the schedule's value at iterations() (or the constant);
  /// - the gradient is clipped (never modified in place): with clipnorm c each variable's
  ///   gradient is scaled by c / norm when its L2 norm exceeds c; with global_clipnorm c every
  ///   gradient is scaled by min(1, c / global_norm), where global_norm is the L2 norm of all
  ///   gradients together; with clipvalue c each element is clamped to [-c, c]. A non-finite
  ///   global norm gives a NaN scale, as in Keras;
  /// - with weight_decay wd, w -= w * wd * lr;
  /// - the rule's update;
  /// - with use_ema, the "average" slot becomes m * average + (1 - m) * w, with m = ema_momentum
  ///   (m = 0 on a variable's first step, so the average starts at the weight); with
  ///   ema_overwrite_frequency n, every variable given is overwritten by its average when
  ///   (iterations() + 1) is a multiple of n.
  /// Slots are created on a name's first update (zero-filled unless the rule says otherwise).
  /// Throws std::invalid_argument when a variable is undefined, when a known name arrives with a
  /// new shape (naming the variable and both shapes), when restored slots do not fit or when a
  /// schedule gives a rate that is not finite and >= 0 (then nothing is changed).
  void apply(const std::vector<Variable>& vars);

  /// The learning rate the next apply() uses: the constant, or the schedule at iterations().
  float learning_rate() const { return learning_rate_.at(iterations_); }
  /// Replaces the constant learning rate; throws std::invalid_argument unless it is finite and
  /// >= 0. On an optimizer driven by a schedule it throws std::logic_error, as Keras does,
  /// unless `lr` equals learning_rate() (a no-op, so that restoring a checkpoint, which writes
  /// back the saved rate, works).
  void set_learning_rate(float lr);
  /// Drives the learning rate by `schedule` from now on (Keras allows assigning a schedule at
  /// any time); throws std::invalid_argument for a null schedule.
  void set_learning_rate_schedule(std::shared_ptr<const LearningRateSchedule> schedule);
  /// The schedule driving the learning rate, or null for a constant rate.
  const std::shared_ptr<const LearningRateSchedule>& learning_rate_schedule() const {
    return learning_rate_.schedule();
  }
  /// Number of apply() calls so far (Keras's `iterations`); bias corrections and schedules use
  /// it.
  std::int64_t iterations() const { return iterations_; }
  /// Sets the step counter (e.g. when restoring a checkpoint); throws std::invalid_argument
  /// when negative.
  void set_iterations(std::int64_t n);

  /// The decoupled weight-decay rate, if any.
  std::optional<float> weight_decay() const { return weight_decay_; }
  /// The per-variable clip norm, if any.
  std::optional<float> clipnorm() const { return clipnorm_; }
  /// The clip value, if any.
  std::optional<float> clipvalue() const { return clipvalue_; }
  /// The global clip norm, if any.
  std::optional<float> global_clipnorm() const { return global_clipnorm_; }
  /// Whether a moving average of the weights is kept (slot "average").
  bool use_ema() const { return use_ema_; }
  /// The moving average's momentum.
  float ema_momentum() const { return ema_momentum_; }
  /// Every how many steps the weights are overwritten by their average, if at all.
  std::optional<std::int64_t> ema_overwrite_frequency() const { return ema_overwrite_frequency_; }

  /// With use_ema, overwrites every given variable that has an average with it (Keras calls
  /// this at the end of fit()); without, does nothing. Throws std::invalid_argument when a
  /// variable is undefined or its average has another shape.
  void finalize_variable_values(const std::vector<Variable>& vars);
  /// With use_ema, exchanges every given variable's values with its average, so the averaged
  /// weights can be evaluated and a second call restores the trained ones; without, does
  /// nothing. Throws as finalize_variable_values().
  void swap_moving_averages(const std::vector<Variable>& vars);

  /// "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lion".
  virtual std::string name() const = 0;
  /// Names of the per-variable state tensors, in the order of slots()[name]: the rule's (Keras's
  /// names, e.g. {"momentum", "velocity"} for Adam), then "average" with use_ema.
  std::vector<std::string> slot_names() const;
  /// True when slot `k` can only hold values >= 0 (second-moment estimates); checkpoints
  /// refuse negative values there.
  bool slot_nonnegative(std::size_t k) const {
    return k < rule_slot_count() && rule_slot_nonnegative(k);
  }

  /// Per-variable state tensors keyed by variable name (e.g. Adam's m and v), for checkpoints.
  /// Entries may be filled before the first apply() to restore state; they must then hold
  /// slot_names().size() tensors of the variable's shape.
  std::map<std::string, std::vector<Tensor>>& slots() { return slots_; }
  /// Read-only view of slots().
  const std::map<std::string, std::vector<Tensor>>& slots() const { return slots_; }

 protected:
  /// Validates and stores the options every optimizer shares; `who` ("Adam") prefixes errors.
  /// Throws std::invalid_argument on a constant learning rate that is not finite and >= 0, a
  /// null schedule, a weight_decay that is not finite and >= 0, a clip option that is not
  /// finite and > 0, more than one clip option, an ema_momentum outside [0, 1] or an
  /// ema_overwrite_frequency < 1.
  Optimizer(const CommonOptions& options, const char* who);

  /// Names of the update rule's state tensors (without "average").
  virtual std::vector<std::string> rule_slot_names() const = 0;
  /// Number of the rule's state tensors (rule_slot_names().size(), without allocating).
  virtual std::size_t rule_slot_count() const = 0;
  /// True when the rule's slot `k` can only hold values >= 0.
  virtual bool rule_slot_nonnegative(std::size_t /*k*/) const { return false; }
  /// The value the rule's slot `k` starts at (Adagrad's accumulator); 0 by default.
  virtual float rule_slot_initial_value(std::size_t /*k*/) const { return 0.f; }
  /// Updates value[0..n) in place. The gradient to use is grad[i] * grad_scale (grad_scale is 1
  /// without norm clipping) and the learning rate step_learning_rate(); slots[0..
  /// rule_slot_count()) are the rule's state tensors of n elements each.
  virtual void update(float* value, const float* grad, float grad_scale, std::size_t n,
                      std::vector<Tensor>& slots) = 0;

  /// The learning rate of the apply() in progress.
  float step_learning_rate() const { return step_learning_rate_; }
  /// "Adam", "SGD", ...: the prefix of error messages.
  const char* who() const { return who_; }

 private:
  std::size_t slot_count() const { return rule_slot_count() + (use_ema_ ? 1 : 0); }
  // The variable's slots, created on its first step (`fresh` then) or checked.
  std::vector<Tensor>& slots_for(const Variable& v, const Shape& shape, bool& fresh);
  // The variable's average, or null when it has none; checks its shape.
  Tensor* average_of(const Variable& v, const char* caller);

  const char* who_;
  LearningRate learning_rate_;
  std::optional<float> weight_decay_;
  std::optional<float> clipnorm_;
  std::optional<float> clipvalue_;
  std::optional<float> global_clipnorm_;
  bool use_ema_;
  float ema_momentum_;
  std::optional<std::int64_t> ema_overwrite_frequency_;
  float step_learning_rate_ = 0.f;
  std::int64_t iterations_ = 0;
  std::map<std::string, std::vector<Tensor>> slots_;
  std::map<std::string, Shape> shapes_;  // shape of every name seen, also for slot-less rules
  std::vector<float> clipped_;           // clipvalue's clamped gradient (grown, never shrunk)
};

}  // namespace xtape::optim
