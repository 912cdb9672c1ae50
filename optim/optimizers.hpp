#pragma once
/// @file optimizers.hpp
/// Optimizers with Keras 3's update rules and defaults: SGD (momentum, Nesterov), Adam, AdamW,
/// RMSprop; optional global-norm gradient clipping. State is kept per variable *name*, so it is
/// readable and can be saved.
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
  std::string name;
  Tensor value;
};

/// Base of every optimizer.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One update of every variable from value.grad() (variables without a gradient are skipped),
  /// in place, under NoGrad; then iterations() grows by one. With a global clip norm, every
  /// gradient is first scaled by clipnorm / max(global_norm, clipnorm), as Keras does.
  void apply(const std::vector<Variable>& vars);

  float learning_rate() const { return learning_rate_; }
  void set_learning_rate(float lr);
  std::int64_t iterations() const { return iterations_; }
  void set_iterations(std::int64_t n) { iterations_ = n; }
  /// "sgd", "adam", "adamw", "rmsprop".
  virtual std::string name() const = 0;
  /// Per-variable state tensors keyed by variable name (e.g. Adam's m and v).
  std::map<std::string, std::vector<Tensor>>& slots() { return slots_; }

 protected:
  Optimizer(float learning_rate, std::optional<float> global_clipnorm, const char* who);
  /// Number of state tensors per variable.
  virtual std::size_t slot_count() const = 0;
  /// Updates n values in place from their gradient, with the variable's slots.
  virtual void update(float* value, const float* grad, std::size_t n, std::vector<Tensor>& slots) = 0;

 private:
  float learning_rate_;
  std::optional<float> global_clipnorm_;
  std::int64_t iterations_ = 0;
  std::map<std::string, std::vector<Tensor>> slots_;
};

struct SGDOptions {
  float learning_rate = 0.01f;
  float momentum = 0.f;
  bool nesterov = false;
  std::optional<float> global_clipnorm;
};

/// Stochastic gradient descent: m = momentum m - lr g; w += m (Nesterov: w += momentum m - lr g).
class SGD : public Optimizer {
 public:
  explicit SGD(SGDOptions options = SGDOptions{});
  std::string name() const override { return "sgd"; }

 protected:
  std::size_t slot_count() const override { return options_.momentum > 0.f ? 1 : 0; }
  void update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) override;

 private:
  SGDOptions options_;
};

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  std::optional<float> global_clipnorm;
};

/// Adam (Keras): alpha = lr sqrt(1 - b2^t) / (1 - b1^t); m += (g - m)(1 - b1);
/// v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + epsilon).
class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options = AdamOptions{});
  std::string name() const override { return "adam"; }

 protected:
  Adam(AdamOptions options, const char* who);
  std::size_t slot_count() const override { return options_.amsgrad ? 3 : 2; }
  void update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) override;

 private:
  AdamOptions options_;
};

struct AdamWOptions {
  float learning_rate = 1e-3f;
  float weight_decay = 0.004f;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  std::optional<float> global_clipnorm;
};

/// Adam with decoupled weight decay: w -= w * weight_decay * lr, then the Adam step.
class AdamW : public Adam {
 public:
  explicit AdamW(AdamWOptions options = AdamWOptions{});
  std::string name() const override { return "adamw"; }

 protected:
  void update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) override;

 private:
  float weight_decay_;
};

struct RMSpropOptions {
  float learning_rate = 1e-3f;
  float rho = 0.9f;
  float momentum = 0.f;
  float epsilon = 1e-7f;
  bool centered = false;
  std::optional<float> global_clipnorm;
};

/// RMSprop (Keras): v = rho v + (1 - rho) g^2; step = lr g / sqrt(v (- avg_g^2 if centered)
/// + epsilon); with momentum, m = momentum m + step and w -= m, else w -= step.
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(RMSpropOptions options = RMSpropOptions{});
  std::string name() const override { return "rmsprop"; }

 protected:
  std::size_t slot_count() const override { return 1 + (options_.momentum > 0.f) + options_.centered; }
  void update(float* w, const float* g, std::size_t n, std::vector<Tensor>& slots) override;

 private:
  RMSpropOptions options_;
};

/// "sgd", "adam", "adamw", "rmsprop" with default options. Throws std::invalid_argument naming
/// the unknown name and the valid ones.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name);

}  // namespace xtape::optim
