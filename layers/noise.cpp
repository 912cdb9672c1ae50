#include "layers/noise.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "layers/regularizers.hpp"
#include "layers/state_text.hpp"

namespace xtape::layers {

NoiseLayer::NoiseLayer(const char* cls, NoiseOptions options, bool uses_rate)
    : Layer(options.name),
      options_(options),
      rng_(options.seed ? *options.seed : global_rng().next_u64()),
      uses_rate_(uses_rate) {
  if (uses_rate && !(options_.rate >= 0.f && options_.rate < 1.f))
    throw std::invalid_argument(std::string(cls) + ": rate must be in [0, 1), got " +
                                std::to_string(options_.rate));
  if (!uses_rate && !(options_.stddev >= 0.f && std::isfinite(options_.stddev)))
    throw std::invalid_argument(std::string(cls) + ": stddev must be finite and >= 0, got " +
                                std::to_string(options_.stddev));
}

nlohmann::json NoiseLayer::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (uses_rate_)
    c["rate"] = options_.rate;
  else
    c["stddev"] = options_.stddev;
  c["seed"] = options_.seed ? nlohmann::json(*options_.seed) : nlohmann::json(nullptr);
  return c;
}

LayerState NoiseLayer::save_own_state() const { return {{"rng", rng_state_text(rng_.state())}}; }

void NoiseLayer::load_own_state(const LayerState& state) {
  const auto it = state.find("rng");
  if (it == state.end() || state.size() != 1)
    throw std::invalid_argument(class_name() + " '" + name() +
                                "': expected the one state entry 'rng'");
  const auto st = parse_rng_state(it->second);
  if (!st)
    throw std::invalid_argument(class_name() + " '" + name() + "': state 'rng' '" + it->second +
                                "' is not four 16-digit hex words, not all zero");
  rng_.set_state(*st);
}

namespace {
// A constant tensor of `shape` filled by f() in row-major order.
template <class F>
Tensor draw(const Shape& shape, F f) {
  std::vector<float> v(shape_size(shape));
  for (float& e : v) e = f();
  return Tensor(shape, v);
}
}  // namespace

Tensor GaussianNoise::call(const Tensor& x, bool training) {
  if (!training || options_.stddev == 0.f) return x;
  return x + random_normal(x.shape(), 0.f, options_.stddev, rng_);
}

Tensor GaussianDropout::call(const Tensor& x, bool training) {
  if (!training || options_.rate == 0.f) return x;
  const float sd = std::sqrt(options_.rate / (1.f - options_.rate));
  return x * random_normal(x.shape(), 1.f, sd, rng_);
}

Tensor SpatialDropout::call(const Tensor& x, bool training) {
  if (static_cast<int>(x.ndim()) != rank_ + 2)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + ", got shape " + shape_str(x.shape()));
  if (!training || options_.rate == 0.f) return x;
  Shape mask_shape(x.ndim(), 1);
  mask_shape.front() = x.shape().front();
  mask_shape.back() = x.shape().back();
  const float keep = 1.f - options_.rate, scale = 1.f / keep;
  return x * draw(mask_shape, [&] { return rng_.uniform() < keep ? scale : 0.f; });
}

Tensor AlphaDropout::call(const Tensor& x, bool training) {
  if (!training || options_.rate == 0.f) return x;
  // SELU's constants: dropped units take alpha' = -scale * alpha, its negative saturation.
  const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  const double alpha_p = -alpha * scale, p = options_.rate;
  const double a = 1.0 / std::sqrt((1 - p) * (1 + p * alpha_p * alpha_p));
  const double b = -a * alpha_p * p;
  const float keep_p = static_cast<float>(1 - p);
  const Tensor keep = draw(x.shape(), [&] { return rng_.uniform() < keep_p ? 1.f : 0.f; });
  // a * (x * keep + alpha' * (1 - keep)) + b
  return (x * keep + (1.f - keep) * static_cast<float>(alpha_p)) * static_cast<float>(a) +
         static_cast<float>(b);
}

ActivityRegularization::ActivityRegularization(float l1, float l2, std::string name)
    : Layer(std::move(name)), l1_(l1), l2_(l2) {
  if (!(l1 >= 0.f && l2 >= 0.f && std::isfinite(l1) && std::isfinite(l2)))
    throw std::invalid_argument("ActivityRegularization: l1 and l2 must be finite and >= 0, got " +
                                std::to_string(l1) + " and " + std::to_string(l2));
}

Tensor ActivityRegularization::call(const Tensor& x, bool) {
  const Regularizer r{l1_, l2_};
  if (r.defined()) add_loss(r(x));
  return x;
}

nlohmann::json ActivityRegularization::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["l1"] = l1_;
  c["l2"] = l2_;
  return c;
}

Lambda::Lambda(Function fn, std::string name) : Layer(std::move(name)), fn_(std::move(fn)) {
  if (!fn_) throw std::invalid_argument("Lambda: an empty function");
}

}  // namespace xtape::layers
