#pragma once
/// @file regularizers.hpp
/// Weight regularizers (a penalty added to the loss) and constraints (a projection applied to a
/// weight after each optimizer update), with Keras's formulas, names and configs.
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape::layers {

/// l1 * sum(|w|) + l2 * sum(w^2) (Keras's L1, L2, L1L2). All zero: no regularizer.
struct Regularizer {
  float l1 = 0.f;
  float l2 = 0.f;
  bool defined() const { return l1 != 0.f || l2 != 0.f; }
  /// The penalty of w, recorded on the tape (so it trains).
  Tensor operator()(const Tensor& w) const;
  /// Keras's serialized form: null, {"class_name": "L2", "config": {"l2": ...}}, ...
  nlohmann::json config() const;
};
/// Keras's names with their defaults: "" (none), "l1" (0.01), "l2" (0.01), "l1_l2" (0.01, 0.01).
/// Throws std::invalid_argument naming the unknown regularizer.
Regularizer get_regularizer(const std::string& name);
inline Regularizer l1(float v = 0.01f) { return {v, 0.f}; }
inline Regularizer l2(float v = 0.01f) { return {0.f, v}; }
inline Regularizer l1_l2(float a = 0.01f, float b = 0.01f) { return {a, b}; }
/// Reads Keras's serialized form (null, a name, or {"class_name", "config"}).
Regularizer regularizer_from_config(const nlohmann::json& c);

/// Keras's constraints: "max_norm" (norms along `axis` clipped to max_value), "non_neg",
/// "unit_norm", "min_max_norm" (norms moved by `rate` towards [min_value, max_value]); norms
/// are taken over `axis` (Keras's default 0: per output unit of a Dense kernel).
struct Constraint {
  std::string kind;  ///< "" for none
  float max_value = 2.f;
  float min_value = 0.f;
  float rate = 1.f;
  std::vector<int> axis = {0};
  bool defined() const { return !kind.empty(); }
  /// The projected weight (values only).
  Tensor operator()(const Tensor& w) const;
  nlohmann::json config() const;
};
/// "" (none), "max_norm", "non_neg", "unit_norm", "min_max_norm" with Keras's defaults.
Constraint get_constraint(const std::string& name);
Constraint constraint_from_config(const nlohmann::json& c);

/// As a Weight's regularizer / constraint: empty when not defined.
inline std::function<Tensor(const Tensor&)> as_penalty(const Regularizer& r) {
  if (!r.defined()) return {};
  return r;
}
inline std::function<Tensor(const Tensor&)> as_projection(const Constraint& c) {
  if (!c.defined()) return {};
  return c;
}

}  // namespace xtape::layers
