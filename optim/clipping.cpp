#include "optim/clipping.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "kernels/elementwise.hpp"
#include "optim/internal.hpp"

namespace xtape::optim {

namespace detail {

void check(bool ok, const char* who, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(who) + ": " + what);
}

std::string num(float v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

void check_learning_rate(float lr, const char* who) {
  check(std::isfinite(lr) && lr >= 0.f, who,
        "learning_rate must be finite and >= 0, got " + num(lr));
}

void check_unit(float x, const char* who, const char* what, bool one_allowed) {
  const bool ok = x >= 0.f && (one_allowed ? x <= 1.f : x < 1.f);
  check(ok, who,
        std::string(what) +
            (one_allowed ? " must be in [0, 1], got " : " must be in [0, 1), got ") + num(x));
}

void check_epsilon(float eps, const char* who) {
  check(std::isfinite(eps) && eps >= 0.f, who, "epsilon must be finite and >= 0, got " + num(eps));
}

void check_clip(float clip, const char* who, const char* what) {
  check(std::isfinite(clip) && clip > 0.f, who,
        std::string(what) + " must be finite and > 0 when set, got " + num(clip));
}

void sqrt_in_place(float* x, std::size_t n) { kernels::unary(kernels::UnaryOp::sqrt, n, x, x); }

namespace {

// Sum of squares of g[0..n), blocked: squares in float, block sums (fixed order) in double.
double sum_of_squares(const float* __restrict g, std::size_t n) {
  double total = 0.0;
  float sq[kBlock];
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t len = std::min(kBlock, n - start);
    const float* gb = g + start;
    for (std::size_t i = 0; i < len; ++i) sq[i] = gb[i] * gb[i];
    total += kernels::sum(len, sq);
  }
  return total;
}

}  // namespace

float global_norm_scale(const std::vector<Variable>& vars, float clip_norm) {
  double sq = 0.0;
  for (const auto& v : vars) {
    const Tensor g = v.value.grad();
    if (g.defined()) sq += sum_of_squares(g.data(), g.size());
  }
  const double norm = std::sqrt(sq), clip = clip_norm;
  // Keras: clip * min(1 / norm, 1 / clip), made NaN by a non-finite norm.
  return !std::isfinite(norm) ? std::numeric_limits<float>::quiet_NaN()
         : norm <= clip       ? 1.f
                              : static_cast<float>(clip / norm);
}

float norm_scale(const float* g, std::size_t n, float clip_norm) {
  const double norm = std::sqrt(sum_of_squares(g, n)), clip = clip_norm;
  // Keras: g * clip / max(norm, clip).
  return std::isnan(norm) ? std::numeric_limits<float>::quiet_NaN()
         : norm <= clip   ? 1.f
                          : static_cast<float>(clip / norm);
}

}  // namespace detail

namespace {

void check_defined(const std::vector<Variable>& vars, const char* who) {
  for (const auto& v : vars)
    detail::check(v.value.defined(), who, "variable '" + v.name + "' is an undefined tensor");
}

// Replaces v's gradient g by f applied to each element.
template <class F>
void replace_grad(Variable& v, const Tensor& g, F f) {
  Tensor out = Tensor::empty(g.shape());
  const float* __restrict src = g.data();
  float* __restrict dst = xtape::detail::mutable_data(out);
  for (std::size_t i = 0, n = g.size(); i < n; ++i) dst[i] = f(src[i]);
  v.value.set_grad(out);
}

}  // namespace

GradientTransform clip_by_global_norm(float clip_norm) {
  detail::check_clip(clip_norm, "clip_by_global_norm", "clip_norm");
  return [clip_norm](std::vector<Variable>& vars) {
    check_defined(vars, "clip_by_global_norm");
    NoGrad no_grad;
    const float s = detail::global_norm_scale(vars, clip_norm);
    for (auto& v : vars) {
      const Tensor g = v.value.grad();
      if (g.defined()) replace_grad(v, g, [s](float x) { return x * s; });
    }
  };
}

GradientTransform clip_by_norm(float clip_norm) {
  detail::check_clip(clip_norm, "clip_by_norm", "clip_norm");
  return [clip_norm](std::vector<Variable>& vars) {
    check_defined(vars, "clip_by_norm");
    NoGrad no_grad;
    for (auto& v : vars) {
      const Tensor g = v.value.grad();
      if (!g.defined()) continue;
      const float s = detail::norm_scale(g.data(), g.size(), clip_norm);
      replace_grad(v, g, [s](float x) { return x * s; });
    }
  };
}

GradientTransform clip_by_value(float clip_value) {
  detail::check_clip(clip_value, "clip_by_value", "clip_value");
  return [clip_value](std::vector<Variable>& vars) {
    check_defined(vars, "clip_by_value");
    NoGrad no_grad;
    const float lo = -clip_value, hi = clip_value;
    for (auto& v : vars) {
      const Tensor g = v.value.grad();
      if (g.defined()) replace_grad(v, g, [lo, hi](float x) { return std::clamp(x, lo, hi); });
    }
  };
}

}  // namespace xtape::optim
