#include "layers/regularizers.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

Tensor Regularizer::operator()(const Tensor& w) const {
  Tensor p = Tensor::scalar(0.f);
  if (l1 != 0.f) p = p + sum(abs(w)) * l1;
  if (l2 != 0.f) p = p + sum(square(w)) * l2;
  return p;
}

nlohmann::json Regularizer::config() const {
  if (!defined()) return nullptr;
  if (l2 == 0.f) return {{"class_name", "L1"}, {"config", {{"l1", l1}}}};
  if (l1 == 0.f) return {{"class_name", "L2"}, {"config", {{"l2", l2}}}};
  return {{"class_name", "L1L2"}, {"config", {{"l1", l1}, {"l2", l2}}}};
}

Regularizer get_regularizer(const std::string& name) {
  if (name.empty()) return {};
  if (name == "l1" || name == "L1") return l1();
  if (name == "l2" || name == "L2") return l2();
  if (name == "l1_l2" || name == "L1L2") return l1_l2();
  throw std::invalid_argument("unknown regularizer '" + name + "' (expected l1, l2 or l1_l2)");
}

namespace {
float number(const nlohmann::json& c, const char* key, float fallback, const char* who) {
  if (!c.contains(key)) return fallback;
  if (!c[key].is_number())
    throw std::invalid_argument(std::string(who) + ": '" + key + "' must be a number, got " + c[key].dump());
  return c[key].get<float>();
}
}  // namespace

Regularizer regularizer_from_config(const nlohmann::json& c) {
  if (c.is_null()) return {};
  if (c.is_string()) return get_regularizer(c.get<std::string>());
  if (!c.is_object() || !c.contains("class_name") || !c["class_name"].is_string())
    throw std::invalid_argument("regularizer: expected null, a name or {\"class_name\", \"config\"}, got " + c.dump());
  const std::string cls = c["class_name"].get<std::string>();
  const nlohmann::json cfg = c.value("config", nlohmann::json::object());
  if (cls == "L1") return {number(cfg, "l1", 0.01f, "L1"), 0.f};
  if (cls == "L2") return {0.f, number(cfg, "l2", 0.01f, "L2")};
  if (cls == "L1L2") return {number(cfg, "l1", 0.f, "L1L2"), number(cfg, "l2", 0.f, "L1L2")};
  throw std::invalid_argument("unknown regularizer class '" + cls + "' (expected L1, L2 or L1L2)");
}

Tensor Constraint::operator()(const Tensor& w) const {
  NoGrad no_grad;
  if (kind == "non_neg") {  // w * [w >= 0]
    std::vector<float> m = w.to_vector();
    for (float& v : m) v = v >= 0.f ? 1.f : 0.f;
    return w * Tensor(w.shape(), m);
  }
  const Tensor norms = sqrt(sum(square(w), axis, true));
  constexpr float eps = 1e-7f;  // Keras's backend epsilon
  if (kind == "unit_norm") return w / (norms + eps);
  if (kind == "max_norm") return w * (clip(norms, 0.f, max_value) / (norms + eps));
  if (kind == "min_max_norm")
    return w * ((clip(norms, min_value, max_value) * rate + norms * (1.f - rate)) / (norms + eps));
  throw std::logic_error("Constraint: unknown kind '" + kind + "'");
}

nlohmann::json Constraint::config() const {
  if (!defined()) return nullptr;
  if (kind == "non_neg") return {{"class_name", "NonNeg"}, {"config", nlohmann::json::object()}};
  if (kind == "unit_norm") return {{"class_name", "UnitNorm"}, {"config", {{"axis", axis}}}};
  if (kind == "max_norm")
    return {{"class_name", "MaxNorm"}, {"config", {{"max_value", max_value}, {"axis", axis}}}};
  return {{"class_name", "MinMaxNorm"},
          {"config", {{"min_value", min_value}, {"max_value", max_value}, {"rate", rate}, {"axis", axis}}}};
}

Constraint get_constraint(const std::string& name) {
  if (name.empty()) return {};
  if (name == "max_norm" || name == "MaxNorm") return {.kind = "max_norm"};
  if (name == "non_neg" || name == "NonNeg") return {.kind = "non_neg"};
  if (name == "unit_norm" || name == "UnitNorm") return {.kind = "unit_norm"};
  if (name == "min_max_norm" || name == "MinMaxNorm") return {.kind = "min_max_norm", .max_value = 1.f};
  throw std::invalid_argument("unknown constraint '" + name +
                              "' (expected max_norm, non_neg, unit_norm or min_max_norm)");
}

Constraint constraint_from_config(const nlohmann::json& c) {
  if (c.is_null()) return {};
  if (c.is_string()) return get_constraint(c.get<std::string>());
  if (!c.is_object() || !c.contains("class_name") || !c["class_name"].is_string())
    throw std::invalid_argument("constraint: expected null, a name or {\"class_name\", \"config\"}, got " + c.dump());
  Constraint k = get_constraint(c["class_name"].get<std::string>());
  const nlohmann::json cfg = c.value("config", nlohmann::json::object());
  k.max_value = number(cfg, "max_value", k.max_value, "constraint");
  k.min_value = number(cfg, "min_value", k.min_value, "constraint");
  k.rate = number(cfg, "rate", k.rate, "constraint");
  if (cfg.contains("axis")) {
    if (cfg["axis"].is_number_integer()) k.axis = {cfg["axis"].get<int>()};
    else if (cfg["axis"].is_array()) k.axis = cfg["axis"].get<std::vector<int>>();
    else throw std::invalid_argument("constraint: 'axis' must be an integer or a list, got " + cfg["axis"].dump());
  }
  return k;
}

}  // namespace xtape::layers
