#include "layers/initializers.hpp"

#include <cmath>
#include <stdexcept>
#include <vector>

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

int fan_mode(const std::string& mode) {
  if (mode == "fan_in") return 0;
  if (mode == "fan_out") return 1;
  if (mode == "fan_avg") return 2;
  throw std::invalid_argument("variance_scaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got '" +
                              mode + "'");
}

}  // namespace

Initializer variance_scaling(double scale, const std::string& mode, const std::string& distribution) {
  if (!(scale > 0))
    throw std::invalid_argument("variance_scaling: scale must be positive, got " + std::to_string(scale));
  const int m = fan_mode(mode);
  if (distribution == "uniform") return uniform_scaled(scale, m);
  if (distribution == "truncated_normal") return truncated_normal_scaled(scale, m);
  if (distribution == "untruncated_normal" || distribution == "normal")
    return [scale, m](Tensor& w, Rng& rng) {
      const auto [fin, fout] = compute_fans(w.shape());
      const double fan = m == 0 ? fin : m == 1 ? fout : (fin + fout) / 2.0;
      const double stddev = std::sqrt(scale / std::max(1.0, fan));
      float* p = xtape::detail::mutable_data(w);
      for (std::size_t i = 0; i < w.size(); ++i) p[i] = static_cast<float>(stddev * rng.normal());
    };
  throw std::invalid_argument("variance_scaling: distribution must be 'truncated_normal', "
                              "'untruncated_normal' or 'uniform', got '" + distribution + "'");
}

Initializer truncated_normal(double mean, double stddev) {
  if (!(stddev >= 0))
    throw std::invalid_argument("truncated_normal: stddev must be >= 0, got " + std::to_string(stddev));
  return [mean, stddev](Tensor& w, Rng& rng) {
    float* p = xtape::detail::mutable_data(w);
    for (std::size_t i = 0; i < w.size(); ++i) {
      float v;
      do v = rng.normal();
      while (std::abs(v) > 2.f);  // redrawn beyond two standard deviations, as Keras
      p[i] = static_cast<float>(mean + v * stddev);
    }
  };
}

Initializer orthogonal(double gain) {
  return [gain](Tensor& w, Rng& rng) {
    if (w.ndim() < 2)
      throw std::invalid_argument("orthogonal: needs a weight of rank >= 2, got shape " +
                                  shape_str(w.shape()));
    const std::size_t cols = w.shape().back(), rows = w.size() / std::max<std::size_t>(cols, 1);
    // Gram-Schmidt (twice, for stability) on the columns of a tall normal matrix, in double;
    // signs as Keras's QR with q * sign(diag(r)): each column keeps its direction.
    const std::size_t tall = std::max(rows, cols), narrow = std::min(rows, cols);
    std::vector<double> q(tall * narrow);  // column-major: column j at q[j * tall]
    for (double& v : q) v = rng.normal();
    for (std::size_t j = 0; j < narrow; ++j) {
      double* cj = q.data() + j * tall;
      for (int pass = 0; pass < 2; ++pass)
        for (std::size_t k = 0; k < j; ++k) {
          const double* ck = q.data() + k * tall;
          double dot = 0;
          for (std::size_t i = 0; i < tall; ++i) dot += cj[i] * ck[i];
          for (std::size_t i = 0; i < tall; ++i) cj[i] -= dot * ck[i];
        }
      double norm = 0;
      for (std::size_t i = 0; i < tall; ++i) norm += cj[i] * cj[i];
      norm = std::sqrt(norm);
      for (std::size_t i = 0; i < tall; ++i) cj[i] /= norm;
    }
    // (rows, cols) row-major: Q when rows >= cols, else Q^T.
    float* p = xtape::detail::mutable_data(w);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c)
        p[r * cols + c] = static_cast<float>(gain * (rows >= cols ? q[c * tall + r] : q[r * tall + c]));
  };
}

Initializer identity(double gain) {
  return [gain](Tensor& w, Rng&) {
    if (w.ndim() != 2)
      throw std::invalid_argument("identity: needs a 2-d weight, got shape " + shape_str(w.shape()));
    const std::size_t cols = w.shape()[1];
    float* p = xtape::detail::mutable_data(w);
    for (std::size_t i = 0; i < w.size(); ++i)
      p[i] = i / cols == i % cols ? static_cast<float>(gain) : 0.f;
  };
}

Initializer constant_value(float value) { return constant(value); }

Initializer get_initializer(const std::string& name) {
  if (name == "orthogonal") return orthogonal(1.0);
  if (name == "identity") return identity(1.0);
  if (name == "variance_scaling") return variance_scaling(1.0, "fan_in", "truncated_normal");
  if (name == "truncated_normal") return truncated_normal(0.0, 0.05);
  if (name == "constant") return constant(0.f);
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
                              "lecun_uniform, lecun_normal, zeros, ones, constant, random_uniform, random_normal, "
                              "truncated_normal, variance_scaling, orthogonal or identity)");
}

}  // namespace xtape::layers
