#pragma once
/// @file schedules.hpp
/// Learning-rate schedules with Keras 3's formulas (keras.optimizers.schedules): the learning rate
/// as a function of the optimizer step (the number of updates already applied). Every optimizer
/// accepts one wherever it takes a learning rate:
///
///     Adam opt({.learning_rate = CosineDecay({.initial_learning_rate = 0.0, .decay_steps = 1000,
///                                             .warmup_target = 1e-3, .warmup_steps = 100})});
///
/// Parameters are doubles, as Keras's Python floats; a schedule computes in double and rounds
/// its result once to float (Keras computes in float32, so values differ by rounding only).
/// Required parameters are std::optional: leaving one out is reported by the constructor.
#include <concepts>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace xtape::optim {

/// Base of every schedule (Keras's LearningRateSchedule). A user schedule overrides
/// operator(); class_name() and get_config() are optional (get_config() throws by default).
/// Schedules are immutable once made, so one may be shared by several optimizers.
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  /// The learning rate at optimizer step `step` (>= 0). Built-in schedules throw
  /// std::invalid_argument for a negative step.
  virtual float operator()(std::int64_t step) const = 0;
  /// Keras's class name, e.g. "ExponentialDecay" (a user schedule: "LearningRateSchedule").
  virtual std::string class_name() const { return "LearningRateSchedule"; }
  /// Keras's get_config(): the constructor arguments by their Keras names, e.g.
  /// {"initial_learning_rate": 0.1, "decay_steps": 1000, "decay_rate": 0.96, "staircase": false,
  /// "name": "ExponentialDecay"}. Throws std::logic_error unless overridden.
  virtual nlohmann::json get_config() const;
};

/// Options of ExponentialDecay (Keras's arguments).
struct ExponentialDecayOptions {
  /// Required; finite and >= 0.
  std::optional<double> initial_learning_rate;
  /// Required; finite and > 0.
  std::optional<double> decay_steps;
  /// Required; finite and >= 0.
  std::optional<double> decay_rate;
  /// When true, step / decay_steps is rounded down (the rate changes every decay_steps steps).
  bool staircase = false;
  std::string name = "ExponentialDecay";
};

/// initial_learning_rate * decay_rate ^ (step / decay_steps) (Keras's ExponentialDecay).
class ExponentialDecay : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when a required option is missing or out of range.
  explicit ExponentialDecay(ExponentialDecayOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "ExponentialDecay"; }
  nlohmann::json get_config() const override;
  const ExponentialDecayOptions& options() const { return options_; }

 private:
  ExponentialDecayOptions options_;
};

/// Options of PiecewiseConstantDecay (Keras's arguments).
struct PiecewiseConstantDecayOptions {
  /// Strictly increasing steps.
  std::vector<std::int64_t> boundaries;
  /// One more than boundaries; each finite and >= 0.
  std::vector<double> values;
  std::string name = "PiecewiseConstant";
};

/// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <=
/// boundaries[i], values.back() after boundaries.back() (Keras's PiecewiseConstantDecay).
class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when values.size() != boundaries.size() + 1, when the
  /// boundaries are not strictly increasing or a value is negative or not finite.
  explicit PiecewiseConstantDecay(PiecewiseConstantDecayOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  nlohmann::json get_config() const override;
  const PiecewiseConstantDecayOptions& options() const { return options_; }

 private:
  PiecewiseConstantDecayOptions options_;
};

/// Options of PolynomialDecay (Keras's arguments and defaults).
struct PolynomialDecayOptions {
  /// Required; finite and >= 0.
  std::optional<double> initial_learning_rate;
  /// Required; finite and > 0.
  std::optional<double> decay_steps;
  /// Finite and >= 0.
  double end_learning_rate = 0.0001;
  /// Finite.
  double power = 1.0;
  /// Restart the decay every decay_steps steps (with a decay over ceil(step / decay_steps)
  /// times decay_steps), instead of holding end_learning_rate after decay_steps.
  bool cycle = false;
  std::string name = "PolynomialDecay";
};

/// (initial - end) * (1 - min(step, decay_steps) / decay_steps) ^ power + end; with cycle,
/// decay_steps is first multiplied by ceil(step / decay_steps) (1 at step 0) and step is not
/// capped (Keras's PolynomialDecay).
class PolynomialDecay : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when a required option is missing or out of range.
  explicit PolynomialDecay(PolynomialDecayOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "PolynomialDecay"; }
  nlohmann::json get_config() const override;
  const PolynomialDecayOptions& options() const { return options_; }

 private:
  PolynomialDecayOptions options_;
};

/// Options of InverseTimeDecay (Keras's arguments).
struct InverseTimeDecayOptions {
  /// Required; finite and >= 0.
  std::optional<double> initial_learning_rate;
  /// Required; finite and > 0.
  std::optional<double> decay_steps;
  /// Required; finite and >= 0.
  std::optional<double> decay_rate;
  /// When true, step / decay_steps is rounded down.
  bool staircase = false;
  std::string name = "InverseTimeDecay";
};

/// initial_learning_rate / (1 + decay_rate * step / decay_steps) (Keras's InverseTimeDecay).
class InverseTimeDecay : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when a required option is missing or out of range.
  explicit InverseTimeDecay(InverseTimeDecayOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "InverseTimeDecay"; }
  nlohmann::json get_config() const override;
  const InverseTimeDecayOptions& options() const { return options_; }

 private:
  InverseTimeDecayOptions options_;
};

/// Options of CosineDecay (Keras's arguments and defaults).
struct CosineDecayOptions {
  /// Required; finite and >= 0.
  std::optional<double> initial_learning_rate;
  /// Required; finite and > 0.
  std::optional<double> decay_steps;
  /// The final rate as a fraction of the decay's starting rate; finite.
  double alpha = 0.0;
  /// When set (finite, >= 0), a linear warmup from initial_learning_rate to warmup_target over
  /// warmup_steps comes first, and the decay starts from warmup_target.
  std::optional<double> warmup_target = std::nullopt;
  /// Finite and >= 0; only used with warmup_target.
  double warmup_steps = 0.0;
  std::string name = "CosineDecay";
};

/// Keras's CosineDecay. Without warmup: s = min(step, decay_steps),
/// initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha). With warmup_target:
/// s = min(step, warmup_steps + decay_steps); while s < warmup_steps,
/// (warmup_target - initial) * s / warmup_steps + initial, then the decay above of
/// s - warmup_steps starting from warmup_target.
class CosineDecay : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when a required option is missing or out of range.
  explicit CosineDecay(CosineDecayOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "CosineDecay"; }
  nlohmann::json get_config() const override;
  const CosineDecayOptions& options() const { return options_; }

 private:
  CosineDecayOptions options_;
};

/// Options of CosineDecayRestarts (Keras's arguments and defaults).
struct CosineDecayRestartsOptions {
  /// Required; finite and >= 0.
  std::optional<double> initial_learning_rate;
  /// Required; finite and > 0: the length of the first period.
  std::optional<double> first_decay_steps;
  /// Each period is t_mul times longer than the one before; finite and > 0.
  double t_mul = 2.0;
  /// Each period starts at m_mul times the start of the one before; finite and >= 0.
  double m_mul = 1.0;
  /// The final rate of a period as a fraction of initial_learning_rate; finite.
  double alpha = 0.0;
  std::string name = "SGDRDecay";
};

/// Keras's CosineDecayRestarts (SGDR): with f = step / first_decay_steps, the period
/// i = floor(log(1 - f (1 - t_mul)) / log(t_mul)) (floor(f) when t_mul == 1) and the fraction
/// done in it r = (f - (1 - t_mul^i) / (1 - t_mul)) / t_mul^i (f - i when t_mul == 1), the rate
/// is initial * ((1 - alpha) * m_mul^i * 0.5 * (1 + cos(pi * r)) + alpha).
class CosineDecayRestarts : public LearningRateSchedule {
 public:
  /// Throws std::invalid_argument when a required option is missing or out of range.
  explicit CosineDecayRestarts(CosineDecayRestartsOptions options);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "CosineDecayRestarts"; }
  nlohmann::json get_config() const override;
  const CosineDecayRestartsOptions& options() const { return options_; }

 private:
  CosineDecayRestartsOptions options_;
};

/// Keras's keras.optimizers.schedules.serialize: {"module": "keras.optimizers.schedules",
/// "class_name": ..., "config": get_config(), "registered_name": null}. Throws as get_config().
nlohmann::json serialize_schedule(const LearningRateSchedule& schedule);

/// A built-in schedule from serialize_schedule's output (only "class_name" and "config" are
/// read). Throws std::invalid_argument naming an unknown class name, a missing or mistyped
/// entry, or options the constructor refuses.
std::shared_ptr<LearningRateSchedule> deserialize_schedule(const nlohmann::json& config);

/// A learning rate as optimizers take it: a constant or a schedule. Converts implicitly from
/// both, so options read as Keras's arguments do:
///
///     SGD({.learning_rate = 0.1f});
///     SGD({.learning_rate = ExponentialDecay({.initial_learning_rate = 0.1, .decay_steps = 100,
///                                             .decay_rate = 0.5})});
///     SGD({.learning_rate = shared_schedule});   // a std::shared_ptr to any schedule
class LearningRate {
 public:
  /// A constant rate (checked by the optimizer: finite and >= 0).
  LearningRate(float value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  /// A schedule, copied into shared ownership.
  template <class S>
  requires std::derived_from<S, LearningRateSchedule> LearningRate(
      S schedule)  // NOLINT(google-explicit-constructor)
      : schedule_(std::make_shared<S>(std::move(schedule))), is_schedule_(true) {}
  /// A schedule held by the caller too (the optimizer refuses a null one).
  template <class S>
  requires std::derived_from<S, LearningRateSchedule> LearningRate(
      std::shared_ptr<S> schedule)  // NOLINT(google-explicit-constructor)
      : schedule_(std::move(schedule)), is_schedule_(true) {}

  /// True when this is a schedule (possibly null, as given).
  bool is_schedule() const { return is_schedule_; }
  /// The constant rate (meaningless for a schedule).
  float value() const { return value_; }
  /// The schedule, or null for a constant.
  const std::shared_ptr<const LearningRateSchedule>& schedule() const { return schedule_; }
  /// The rate at optimizer step `step`: the constant, or the schedule's value.
  float at(std::int64_t step) const { return is_schedule_ ? (*schedule_)(step) : value_; }

 private:
  float value_ = 0.f;
  std::shared_ptr<const LearningRateSchedule> schedule_;
  bool is_schedule_ = false;
};

}  // namespace xtape::optim
