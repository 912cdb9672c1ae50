#include "layers/initializers.hpp"

#include <cmath>
#include <stdexcept>

#include "autodiff/detail.hpp"

namespace xtape::layers {

std::pair<double, double> compute_fans(const Shape& shape) {
  if (shape.empty()) return {1.0, 1.0};
  if (shape.size() == 1) return {double(shape[0]), double(shape[0])};
  if (shape.size() == 2) return {double(shape[0]), double(shape[1])};
  double receptive = 1.0;
  for (std::size_t i = 0; i + 2 < shape.size(); ++i) receptive *= double(shape[i]);
  return {shape[shape.size() - 2] * receptive, shape.back() * receptive};
}

namespace {

Initializer uniform_scaled(double scale, int mode) {  // mode 0: fan_in, 1: fan_out, 2: fan_avg
  return [scale, mode](Tensor& w, Rng& rng) {
    const auto [fin, fout] = compute_fans(w.shape());
    const double fan = mode == 0 ? fin : mode == 1 ? fout : (fin + fout) / 2.0;
    const float limit = static_cast<float>(std::sqrt(3.0 * scale / std::max(1.0, fan)));
    float* p = xtape::detail::mutable_data(w);  // a library write: does not expose the weight
    for (std::size_t i = 0; i < w.size(); ++i) p[i] = rng.uniform(-limit, limit);
  };
}

Initializer truncated_normal_scaled(double scale, int mode) {
  return [scale, mode](Tensor& w, Rng& rng) {
    const auto [fin, fout] = compute_fans(w.shape());
    const double fan = mode == 0 ? fin : mode == 1 ? fout : (fin + fout) / 2.0;
    // Keras: stddev of the truncated (±2 sd) normal corrected by 0.8796...
    const double stddev = std::sqrt(scale / std::max(1.0, fan)) / 0.87962566103423978;
    float* p = xtape::detail::mutable_data(w);
    for (std::size_t i = 0; i < w.size(); ++i) {
      float v;
      do v = rng.normal();
      while (std::abs(v) > 2.f);
      p[i] = static_cast<float>(v * stddev);
    }
  };
}

Initializer constant(float c) {
  return [c](Tensor& w, Rng&) {
    float* p = xtape::detail::mutable_data(w);
    for (std::size_t i = 0; i < w.size(); ++i) p[i] = c;
  };
}

}  // namespace

Initializer get_initializer(const std::string& name) {
  if (name == "glorot_uniform") return uniform_scaled(1.0, 2);
  if (name == "glorot_normal") return truncated_normal_scaled(1.0, 2);
  if (name == "he_uniform") return uniform_scaled(2.0, 0);
  if (name == "he_normal") return truncated_normal_scaled(2.0, 0);
  if (name == "lecun_uniform") return uniform_scaled(1.0, 0);
  if (name == "lecun_normal") return truncated_normal_scaled(1.0, 0);
  if (name == "zeros") return constant(0.f);
  if (name == "ones") return constant(1.f);
  if (name == "random_uniform")
    return [](Tensor& w, Rng& rng) {
      float* p = xtape::detail::mutable_data(w);
      for (std::size_t i = 0; i < w.size(); ++i) p[i] = rng.uniform(-0.05f, 0.05f);
    };
  if (name == "random_normal")
    return [](Tensor& w, Rng& rng) {
      float* p = xtape::detail::mutable_data(w);
      for (std::size_t i = 0; i < w.size(); ++i) p[i] = 0.05f * rng.normal();
    };
  throw std::invalid_argument("unknown initializer '" + name +
                              "' (expected glorot_uniform, glorot_normal, he_uniform, he_normal, "
                              "lecun_uniform, lecun_normal, zeros, ones, random_uniform or random_normal)");
}

}  // namespace xtape::layers
