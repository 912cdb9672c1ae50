#include "optim/schedules.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>

namespace xtape::optim {

namespace {

// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

void check(bool ok, const std::string& who, const std::string& what) {
  if (!ok) throw std::invalid_argument(who + ": " + what);
}

// The value of a required option, checked finite and >= 0 (> 0 when `positive`).
double required(const std::optional<double>& v, const std::string& who, const char* what,
                bool positive) {
  check(v.has_value(), who, std::string(what) + " is required");
  const double x = *v;
  check(std::isfinite(x) && (positive ? x > 0.0 : x >= 0.0), who,
        std::string(what) +
            (positive ? " must be finite and > 0, got " : " must be finite and >= 0, got ") +
            num(x));
  return x;
}

void check_finite(double x, const std::string& who, const char* what, bool nonnegative) {
  check(std::isfinite(x) && (!nonnegative || x >= 0.0), who,
        std::string(what) +
            (nonnegative ? " must be finite and >= 0, got " : " must be finite, got ") + num(x));
}

// The schedule's value as float; beyond float's range it is +-inf (a plain cast would be
// undefined), which the optimizer then refuses.
float to_float(double x) {
  constexpr double max = std::numeric_limits<float>::max();
  if (x > max) return std::numeric_limits<float>::infinity();
  if (x < -max) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(x);
}

void check_step(std::int64_t step, const char* who) {
  if (step < 0)
    throw std::invalid_argument(std::string(who) + ": step must be >= 0, got " +
                                std::to_string(step));
}

// Keras's cosine decay of `from` over `decay_steps`, at s in [0, decay_steps].
double cosine(double s, double decay_steps, double from, double alpha) {
  const double cosine_decayed = 0.5 * (1.0 + std::cos(std::numbers::pi * (s / decay_steps)));
  return from * ((1.0 - alpha) * cosine_decayed + alpha);
}

}  // namespace

nlohmann::json LearningRateSchedule::get_config() const {
  throw std::logic_error("learning-rate schedule '" + class_name() +
                         "' must override get_config() to be serializable");
}

// ---- ExponentialDecay ----

ExponentialDecay::ExponentialDecay(ExponentialDecayOptions o) : options_(std::move(o)) {
  const std::string who = "ExponentialDecay";
  required(options_.initial_learning_rate, who, "initial_learning_rate", false);
  required(options_.decay_steps, who, "decay_steps", true);
  required(options_.decay_rate, who, "decay_rate", false);
}

float ExponentialDecay::operator()(std::int64_t step) const {
  check_step(step, "ExponentialDecay");
  double p = double(step) / *options_.decay_steps;
  if (options_.staircase) p = std::floor(p);
  return to_float(*options_.initial_learning_rate * std::pow(*options_.decay_rate, p));
}

nlohmann::json ExponentialDecay::get_config() const {
  return {{"initial_learning_rate", *options_.initial_learning_rate},
          {"decay_steps", *options_.decay_steps},
          {"decay_rate", *options_.decay_rate},
          {"staircase", options_.staircase},
          {"name", options_.name}};
}

// ---- PiecewiseConstantDecay ----

PiecewiseConstantDecay::PiecewiseConstantDecay(PiecewiseConstantDecayOptions o)
    : options_(std::move(o)) {
  const std::string who = "PiecewiseConstantDecay";
  const auto& b = options_.boundaries;
  const auto& v = options_.values;
  check(v.size() == b.size() + 1, who,
        "values must have one more element than boundaries, got " + std::to_string(b.size()) +
            " boundaries and " + std::to_string(v.size()) + " values");
  for (std::size_t i = 1; i < b.size(); ++i)
    check(b[i - 1] < b[i], who,
          "boundaries must be strictly increasing, got " + std::to_string(b[i - 1]) + " then " +
              std::to_string(b[i]) + " at index " + std::to_string(i));
  for (std::size_t i = 0; i < v.size(); ++i)
    check(std::isfinite(v[i]) && v[i] >= 0.0, who,
          "values must be finite and >= 0, got " + num(v[i]) + " at index " + std::to_string(i));
}

float PiecewiseConstantDecay::operator()(std::int64_t step) const {
  check_step(step, "PiecewiseConstantDecay");
  const auto& b = options_.boundaries;
  // The first boundary >= step closes the interval step falls in.
  const auto i = std::lower_bound(b.begin(), b.end(), step) - b.begin();
  return to_float(options_.values[static_cast<std::size_t>(i)]);
}

nlohmann::json PiecewiseConstantDecay::get_config() const {
  return {
      {"boundaries", options_.boundaries}, {"values", options_.values}, {"name", options_.name}};
}

// ---- PolynomialDecay ----

PolynomialDecay::PolynomialDecay(PolynomialDecayOptions o) : options_(std::move(o)) {
  const std::string who = "PolynomialDecay";
  required(options_.initial_learning_rate, who, "initial_learning_rate", false);
  required(options_.decay_steps, who, "decay_steps", true);
  check_finite(options_.end_learning_rate, who, "end_learning_rate", true);
  check_finite(options_.power, who, "power", false);
}

float PolynomialDecay::operator()(std::int64_t step) const {
  check_step(step, "PolynomialDecay");
  double s = double(step), decay_steps = *options_.decay_steps;
  if (options_.cycle)
    decay_steps *= step == 0 ? 1.0 : std::ceil(s / decay_steps);
  else
    s = std::min(s, decay_steps);
  const double p = s / decay_steps, end = options_.end_learning_rate;
  return to_float((*options_.initial_learning_rate - end) * std::pow(1.0 - p, options_.power) +
                  end);
}

nlohmann::json PolynomialDecay::get_config() const {
  return {{"initial_learning_rate", *options_.initial_learning_rate},
          {"decay_steps", *options_.decay_steps},
          {"end_learning_rate", options_.end_learning_rate},
          {"power", options_.power},
          {"cycle", options_.cycle},
          {"name", options_.name}};
}

// ---- InverseTimeDecay ----

InverseTimeDecay::InverseTimeDecay(InverseTimeDecayOptions o) : options_(std::move(o)) {
  const std::string who = "InverseTimeDecay";
  required(options_.initial_learning_rate, who, "initial_learning_rate", false);
  required(options_.decay_steps, who, "decay_steps", true);
  required(options_.decay_rate, who, "decay_rate", false);
}

float InverseTimeDecay::operator()(std::int64_t step) const {
  check_step(step, "InverseTimeDecay");
  double p = double(step) / *options_.decay_steps;
  if (options_.staircase) p = std::floor(p);
  return to_float(*options_.initial_learning_rate / (1.0 + *options_.decay_rate * p));
}

nlohmann::json InverseTimeDecay::get_config() const {
  return {{"initial_learning_rate", *options_.initial_learning_rate},
          {"decay_steps", *options_.decay_steps},
          {"decay_rate", *options_.decay_rate},
          {"staircase", options_.staircase},
          {"name", options_.name}};
}

// ---- CosineDecay ----

CosineDecay::CosineDecay(CosineDecayOptions o) : options_(std::move(o)) {
  const std::string who = "CosineDecay";
  required(options_.initial_learning_rate, who, "initial_learning_rate", false);
  required(options_.decay_steps, who, "decay_steps", true);
  check_finite(options_.alpha, who, "alpha", false);
  if (options_.warmup_target) required(options_.warmup_target, who, "warmup_target", false);
  check_finite(options_.warmup_steps, who, "warmup_steps", true);
}

float CosineDecay::operator()(std::int64_t step) const {
  check_step(step, "CosineDecay");
  const double initial = *options_.initial_learning_rate, decay_steps = *options_.decay_steps;
  const double alpha = options_.alpha;
  if (!options_.warmup_target)
    return to_float(cosine(std::min(double(step), decay_steps), decay_steps, initial, alpha));
  const double target = *options_.warmup_target, warmup = options_.warmup_steps;
  const double s = std::min(double(step), decay_steps + warmup);
  if (s < warmup) return to_float((target - initial) * (s / warmup) + initial);
  return to_float(cosine(s - warmup, decay_steps, target, alpha));
}

nlohmann::json CosineDecay::get_config() const {
  nlohmann::json c = {{"initial_learning_rate", *options_.initial_learning_rate},
                      {"decay_steps", *options_.decay_steps},
                      {"alpha", options_.alpha},
                      {"name", options_.name},
                      {"warmup_target", nullptr},
                      {"warmup_steps", options_.warmup_steps}};
  if (options_.warmup_target) c["warmup_target"] = *options_.warmup_target;
  return c;
}

// ---- CosineDecayRestarts ----

CosineDecayRestarts::CosineDecayRestarts(CosineDecayRestartsOptions o) : options_(std::move(o)) {
  const std::string who = "CosineDecayRestarts";
  required(options_.initial_learning_rate, who, "initial_learning_rate", false);
  required(options_.first_decay_steps, who, "first_decay_steps", true);
  check(std::isfinite(options_.t_mul) && options_.t_mul > 0.0, who,
        "t_mul must be finite and > 0, got " + num(options_.t_mul));
  check_finite(options_.m_mul, who, "m_mul", true);
  check_finite(options_.alpha, who, "alpha", false);
}

float CosineDecayRestarts::operator()(std::int64_t step) const {
  check_step(step, "CosineDecayRestarts");
  const double t_mul = options_.t_mul, alpha = options_.alpha;
  double fraction = double(step) / *options_.first_decay_steps, restart = 0.0;
  if (t_mul == 1.0) {
    restart = std::floor(fraction);
    fraction -= restart;
  } else {
    // Period i starts at (1 - t_mul^i) / (1 - t_mul) first periods and lasts t_mul^i of them.
    restart = std::floor(std::log(1.0 - fraction * (1.0 - t_mul)) / std::log(t_mul));
    const double start = (1.0 - std::pow(t_mul, restart)) / (1.0 - t_mul);
    fraction = (fraction - start) / std::pow(t_mul, restart);
  }
  const double cosine_decayed =
      0.5 * std::pow(options_.m_mul, restart) * (1.0 + std::cos(std::numbers::pi * fraction));
  return to_float(*options_.initial_learning_rate * ((1.0 - alpha) * cosine_decayed + alpha));
}

nlohmann::json CosineDecayRestarts::get_config() const {
  return {{"initial_learning_rate", *options_.initial_learning_rate},
          {"first_decay_steps", *options_.first_decay_steps},
          {"t_mul", options_.t_mul},
          {"m_mul", options_.m_mul},
          {"alpha", options_.alpha},
          {"name", options_.name}};
}

// ---- serialization ----

nlohmann::json serialize_schedule(const LearningRateSchedule& schedule) {
  return {{"module", "keras.optimizers.schedules"},
          {"class_name", schedule.class_name()},
          {"config", schedule.get_config()},
          {"registered_name", nullptr}};
}

std::shared_ptr<LearningRateSchedule> deserialize_schedule(const nlohmann::json& j) {
  const char* who = "deserialize_schedule";
  if (!j.is_object() || !j.contains("class_name") || !j.contains("config") ||
      !j.at("class_name").is_string() || !j.at("config").is_object())
    throw std::invalid_argument(std::string(who) +
                                ": expected an object with a string \"class_name\" and an object "
                                "\"config\", got " +
                                j.dump());
  const std::string cls = j.at("class_name").get<std::string>();
  const nlohmann::json& c = j.at("config");
  auto opt = [&](const char* key) -> std::optional<double> {
    if (!c.contains(key) || c.at(key).is_null()) return std::nullopt;
    return c.at(key).get<double>();
  };
  try {
    if (cls == "ExponentialDecay")
      return std::make_shared<ExponentialDecay>(
          ExponentialDecayOptions{.initial_learning_rate = opt("initial_learning_rate"),
                                  .decay_steps = opt("decay_steps"),
                                  .decay_rate = opt("decay_rate"),
                                  .staircase = c.value("staircase", false),
                                  .name = c.value("name", std::string("ExponentialDecay"))});
    if (cls == "PiecewiseConstantDecay")
      return std::make_shared<PiecewiseConstantDecay>(PiecewiseConstantDecayOptions{
          .boundaries = c.at("boundaries").get<std::vector<std::int64_t>>(),
          .values = c.at("values").get<std::vector<double>>(),
          .name = c.value("name", std::string("PiecewiseConstant"))});
    if (cls == "PolynomialDecay")
      return std::make_shared<PolynomialDecay>(
          PolynomialDecayOptions{.initial_learning_rate = opt("initial_learning_rate"),
                                 .decay_steps = opt("decay_steps"),
                                 .end_learning_rate = c.value("end_learning_rate", 0.0001),
                                 .power = c.value("power", 1.0),
                                 .cycle = c.value("cycle", false),
                                 .name = c.value("name", std::string("PolynomialDecay"))});
    if (cls == "InverseTimeDecay")
      return std::make_shared<InverseTimeDecay>(
          InverseTimeDecayOptions{.initial_learning_rate = opt("initial_learning_rate"),
                                  .decay_steps = opt("decay_steps"),
                                  .decay_rate = opt("decay_rate"),
                                  .staircase = c.value("staircase", false),
                                  .name = c.value("name", std::string("InverseTimeDecay"))});
    if (cls == "CosineDecay")
      return std::make_shared<CosineDecay>(
          CosineDecayOptions{.initial_learning_rate = opt("initial_learning_rate"),
                             .decay_steps = opt("decay_steps"),
                             .alpha = c.value("alpha", 0.0),
                             .warmup_target = opt("warmup_target"),
                             .warmup_steps = c.value("warmup_steps", 0.0),
                             .name = c.value("name", std::string("CosineDecay"))});
    if (cls == "CosineDecayRestarts")
      return std::make_shared<CosineDecayRestarts>(
          CosineDecayRestartsOptions{.initial_learning_rate = opt("initial_learning_rate"),
                                     .first_decay_steps = opt("first_decay_steps"),
                                     .t_mul = c.value("t_mul", 2.0),
                                     .m_mul = c.value("m_mul", 1.0),
                                     .alpha = c.value("alpha", 0.0),
                                     .name = c.value("name", std::string("SGDRDecay"))});
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string(who) + ": bad config for " + cls + ": " + e.what());
  }
  throw std::invalid_argument(std::string(who) + ": unknown schedule class '" + cls +
                              "'; expected one of: ExponentialDecay, PiecewiseConstantDecay, "
                              "PolynomialDecay, InverseTimeDecay, CosineDecay, "
                              "CosineDecayRestarts");
}

}  // namespace xtape::optim
