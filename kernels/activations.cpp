#include "kernels/activations.hpp"

#include <limits>
#include <xsimd/xsimd.hpp>

#include "kernels/fma.hpp"
#include "kernels/simd_map.hpp"

namespace xtape::kernels {
namespace {

using B = detail::fbatch;

constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kSeluAlpha = 1.6732632423543772f, kSeluScale = 1.0507009873554805f;

// Single-thread nanoseconds per element: the streams (bytes at the conservative rate of
// parallel.hpp) plus a share for each vector exp, log or erf.
constexpr double cost(double bytes, double transcendentals) {
  return bytes / detail::bytes_per_ns + 0.4 * transcendentals;
}

// v as computed: the compiler cannot contract the operation that produced it into an FMA
// with the one that uses it.
B rounded(B v) {
#if defined(__x86_64__) || defined(__i386__)
  auto r = v.data;
  __asm__("" : "+v"(r));
  return B(r);
#else
  return v;
#endif
}

// a^2 = h + l exactly (h the rounded square): by an FMA where the target has one, else by
// Dekker's split of a into 12-bit halves (no FMA to contract it into).
void exact_square(B a, B& h, B& l) {
  h = a * a;
#if defined(__FMA__)
  l = detail::fms(a, a, h);
#else
  const B c = a * B(4097.f);
  const B hi = c - (c - a), lo = a - hi;
  l = ((hi * hi - h) + B(2.f) * hi * lo) + lo * lo;
#endif
}

// c0 + c1 x + c2 x^2 + ... by Horner's rule (coefficients from the constant term up).
B horner(B, float c) { return B(c); }
template <class... C>
B horner(B x, float c0, C... c) {
  return detail::fma(horner(x, c...), x, B(c0));
}

B sigmoid(B x) { return B(1.f) / (B(1.f) + xsimd::exp(-x)); }

// The standard normal's cdf Phi(x) and e = exp(-x^2 / 2) (so phi(x) = e / sqrt(2 pi)), from one
// exp: the upper tail Q(a) = Phi(-a), a = |x|, is e(a) S(w) / (a + c) with w = a / (a + c),
// c = 2.5, and S a degree-10 polynomial fitted to S = Q(a) exp(a^2 / 2) (a + c) on [0, 14]
// (relative error 5e-9, by tools/fit_normal_tail.py in double; S varies between 1.25
// and 0.4, so Horner's rule in float stays within a few ulp). No cancellation for negative x
// (Phi = Q there); beyond |x| = 14, Q is below the smallest float and taken as 0. a^2 is split
// into h + l exactly, e = exp(-h / 2) (1 - l / 2), so that e does not inherit the rounding of
// a^2.
struct CdfExp {
  B cdf, e;
};
CdfExp normal_cdf(B x) {
  const B ax = xsimd::abs(x);
  const auto inside = ax < B(14.f);  // false for NaN
  const B a = xsimd::select(inside, ax, B(0.f));
  const B r = B(1.f) / (a + B(2.5f));
  const B w = a * r;
  const B p = horner(w, 1.250000007e+00f, -1.243390769e+00f, 1.695305662e-01f, 2.931248088e-01f,
                     4.609589035e-02f, -1.055146300e-01f, 1.921929758e-02f, -1.167763609e-01f,
                     8.352062279e-02f, 2.852249623e-02f, -2.540768882e-02f);
  B h, l;
  exact_square(a, h, l);
  const B e =
      xsimd::select(inside, xsimd::exp(B(-0.5f) * h) * detail::fnma(B(0.5f), l, B(1.f)), B(0.f));
  const B q = e * (p * r);
  return {xsimd::select(x < B(0.f), q, B(1.f) - q), e};
}

// gelu = x Phi(x) (NaN for x = -inf, as 0.5 x (1 + erf(x / sqrt 2))).
B gelu(B x) { return x * normal_cdf(x).cdf; }
// d/dx = Phi(x) + x phi(x), Phi(x) read back from the output as y / x (within an ulp of the
// cdf y was made of; 0.5 at x = 0): only an exp remains. e = exp(-x^2 / 2) as in normal_cdf
// (0 beyond |x| = 14: x phi(x) is 0 for finite x there, NaN for infinite x as in the
// composition).
B gelu_grad(B x, B y, B g) {
  const B ax = xsimd::abs(x);
  const auto inside = ax < B(14.f);
  const B cdf = xsimd::select(ax >= B(1e-30f), y / x, B(0.5f));
  const B a = xsimd::select(inside, ax, B(0.f));
  B h, l;
  exact_square(a, h, l);
  const B e =
      xsimd::select(inside, xsimd::exp(B(-0.5f) * h) * detail::fnma(B(0.5f), l, B(1.f)), B(0.f));
  return g * detail::fma(x, B(kInvSqrt2Pi) * e, cdf);
}

// 2u with u = sqrt(2/pi) (x + 0.044715 x^3); 0.5 (1 + tanh u) = sigmoid(2u) (no cancellation
// for negative x, and one exp instead of a tanh).
B gelu_tanh_2u(B x) {
  return B(2.f * kSqrt2OverPi) * x * detail::fma(B(kGeluCubic) * x, x, B(1.f));
}
B gelu_tanh(B x) { return x / (B(1.f) + xsimd::exp(-gelu_tanh_2u(x))); }
// d/dx x s(2u) = s + x * 2 s (1 - s) u', u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2). x^2 is capped
// so that a saturated s (s (1 - s) = 0) gives 0 for every finite x (NaN for infinite x, as
// the composition 0.5 x (1 + tanh u) differentiates there).
B gelu_tanh_grad(B x, B g) {
  const B s = sigmoid(gelu_tanh_2u(x));
  const B x2 = xsimd::min(x * x, B(1e30f));
  const B du2 = B(2.f * kSqrt2OverPi) * detail::fma(B(3.f * kGeluCubic), x2, B(1.f));
  return g * detail::fma(x * (s * (B(1.f) - s)), du2, s);
}

B silu(B x) { return x * sigmoid(x); }
// d/dx x s(x) = s (1 + x (1 - s)).
B silu_grad(B x, B g) {
  const B s = sigmoid(x);
  return g * (s * detail::fma(x, B(1.f) - s, B(1.f)));
}

// mish: with n = e^x, tanh(log(1 + n)) = w / (w + 2), w = n (n + 2): one exp and one division.
// Beyond x = 20 the ratio is 1 in float; x is capped there so that n^2 stays finite.
B mish(B x) {
  const B n = xsimd::exp(xsimd::min(x, B(20.f)));
  const B w = n * (n + B(2.f));
  return x * (w / (w + B(2.f)));
}
// d/dx = t + x sigmoid(x) (1 - t^2) = (w + 4 x n (n + 1) / (w + 2)) / (w + 2); the second term
// vanishes above x = 20 (0 times x: NaN only for x = inf, as the composition).
B mish_grad(B x, B g) {
  const B n = xsimd::exp(xsimd::min(x, B(20.f)));
  const B w = n * (n + B(2.f));
  const B r = B(1.f) / (w + B(2.f));
  const B q = xsimd::select(x <= B(20.f), B(4.f) * n * (n + B(1.f)) * r, B(0.f));
  return g * (r * detail::fma(x, q, w));
}

// elu: the exp branch is discarded by the select where x > 0 (its overflow never shows).
// xsimd's AVX-512 expm1 shifts with an intrinsic whose unused operand is
// _mm512_undefined_epi32(), which GCC 12 reports as uninitialized (a false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
B elu(B x, float alpha) { return xsimd::select(x > B(0.f), x, B(alpha) * xsimd::expm1(x)); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
B elu_grad(B x, B g, float alpha) {
  return xsimd::select(x > B(0.f), g, g * (B(alpha) * xsimd::exp(x)));
}

// log1p(n) for n in [0, 1] as 2 atanh(s), s = n / (2 + n) in [0, 1/3]: atanh(s) / s is
// 1 + z / 3 + z^2 / 5 + ... in z = s^2 <= 1/9, whose terms beyond z^7 / 15 stay below 2e-9
// (one division, no exponent split: cheaper than a general log1p).
B log1p_unit(B n) {
  const B s = n / (B(2.f) + n);
  const B z = s * s;
  const B p =
      horner(z, 1.f / 3.f, 1.f / 5.f, 1.f / 7.f, 1.f / 9.f, 1.f / 11.f, 1.f / 13.f, 1.f / 15.f);
  const B s2 = s + s;
  return detail::fma(s2 * z, p, s2);
}
B softplus(B x) {
  return xsimd::select(x > B(0.f), x, B(0.f)) + log1p_unit(xsimd::exp(-xsimd::abs(x)));
}
// d/dx = sigmoid(x).
B softplus_grad(B x, B g) { return g * sigmoid(x); }

B leaky_relu(B x, float slope) { return xsimd::select(x > B(0.f), x, x * B(slope)); }
B leaky_relu_grad(B x, B g, float slope) { return xsimd::select(x > B(0.f), g, g * B(slope)); }

// x / 6 + 0.5 (a division, as the composition x / 6 + 0.5), clipped to [0, 1]; NaN stays NaN.
B hard_sigmoid_arg(B x) { return x / B(6.f) + B(0.5f); }
B clip01(B u) { return xsimd::select(u < B(0.f), B(0.f), xsimd::select(u > B(1.f), B(1.f), u)); }
auto hard_sigmoid_inside(B u) { return (u >= B(0.f)) & (u <= B(1.f)); }
B hard_sigmoid(B x) { return clip01(hard_sigmoid_arg(x)); }
B hard_sigmoid_grad(B x, B g) {
  return xsimd::select(hard_sigmoid_inside(hard_sigmoid_arg(x)), g / B(6.f), B(0.f));
}
B hard_silu(B x) { return x * hard_sigmoid(x); }
// d/dx x h(x) = h(x) + x h'(x).
B hard_silu_grad(B x, B g) {
  const B u = hard_sigmoid_arg(x);
  return g * clip01(u) + xsimd::select(hard_sigmoid_inside(u), g * x / B(6.f), B(0.f));
}

B softsign(B x) { return x / (xsimd::abs(x) + B(1.f)); }
// d/dx = 1 / (1 + |x|)^2; NaN for infinite x, where softsign itself is inf / inf.
B softsign_grad(B x, B g) {
  const B a = xsimd::abs(x) + B(1.f);
  const B d = g / (a * a);
  return xsimd::select(xsimd::isinf(x), B(std::numeric_limits<float>::quiet_NaN()), d);
}

}  // namespace

void activation_forward(Activation f, float param, std::size_t n, const float* x, float* y) {
  using detail::map_batches;
  switch (f) {
    case Activation::gelu:
      return map_batches(
          n, cost(8, 1), [](B v) { return gelu(v); }, y, x);
    case Activation::gelu_tanh:
      return map_batches(
          n, cost(8, 1), [](B v) { return gelu_tanh(v); }, y, x);
    case Activation::silu:
      return map_batches(
          n, cost(8, 1), [](B v) { return silu(v); }, y, x);
    case Activation::mish:
      return map_batches(
          n, cost(8, 1), [](B v) { return mish(v); }, y, x);
    case Activation::elu:
      return map_batches(
          n, cost(8, 1), [param](B v) { return elu(v, param); }, y, x);
    case Activation::selu:
      return map_batches(
          n, cost(8, 1), [](B v) { return B(kSeluScale) * elu(v, kSeluAlpha); }, y, x);
    case Activation::leaky_relu:
      return map_batches(
          n, cost(8, 0), [param](B v) { return leaky_relu(v, param); }, y, x);
    case Activation::softplus:
      return map_batches(
          n, cost(8, 2), [](B v) { return softplus(v); }, y, x);
    case Activation::hard_sigmoid:
      return map_batches(
          n, cost(8, 0), [](B v) { return hard_sigmoid(v); }, y, x);
    case Activation::hard_silu:
      return map_batches(
          n, cost(8, 0), [](B v) { return hard_silu(v); }, y, x);
    case Activation::softsign:
      return map_batches(
          n, cost(8, 0), [](B v) { return softsign(v); }, y, x);
  }
}

void activation_backward(Activation f, float param, std::size_t n, const float* x, const float* y,
                         const float* g, float* dx) {
  using detail::map_batches;
  switch (f) {
    case Activation::gelu:
      return map_batches(
          n, cost(16, 1), [](B v, B out, B d) { return gelu_grad(v, out, d); }, dx, x, y, g);
    case Activation::gelu_tanh:
      return map_batches(
          n, cost(12, 1), [](B v, B d) { return gelu_tanh_grad(v, d); }, dx, x, g);
    case Activation::silu:
      return map_batches(
          n, cost(12, 1), [](B v, B d) { return silu_grad(v, d); }, dx, x, g);
    case Activation::mish:
      return map_batches(
          n, cost(12, 1), [](B v, B d) { return mish_grad(v, d); }, dx, x, g);
    case Activation::elu:
      return map_batches(
          n, cost(12, 1), [param](B v, B d) { return elu_grad(v, d, param); }, dx, x, g);
    case Activation::selu:
      return map_batches(
          n, cost(12, 1), [](B v, B d) { return B(kSeluScale) * elu_grad(v, d, kSeluAlpha); }, dx,
          x, g);
    case Activation::leaky_relu:
      return map_batches(
          n, cost(12, 0), [param](B v, B d) { return leaky_relu_grad(v, d, param); }, dx, x, g);
    case Activation::softplus:
      return map_batches(
          n, cost(12, 1), [](B v, B d) { return softplus_grad(v, d); }, dx, x, g);
    case Activation::hard_sigmoid:
      return map_batches(
          n, cost(12, 0), [](B v, B d) { return hard_sigmoid_grad(v, d); }, dx, x, g);
    case Activation::hard_silu:
      return map_batches(
          n, cost(12, 0), [](B v, B d) { return hard_silu_grad(v, d); }, dx, x, g);
    case Activation::softsign:
      return map_batches(
          n, cost(12, 0), [](B v, B d) { return softsign_grad(v, d); }, dx, x, g);
  }
}

void sigmoid_backward(std::size_t n, const float* y, const float* g, float* dx) {
  detail::map_batches(
      n, cost(12, 0), [](B s, B d) { return d * s * (B(1.f) - s); }, dx, y, g);
}

void tanh_backward(std::size_t n, const float* y, const float* g, float* dx) {
  // y^2 rounded on its own (not contracted into an FMA with 1 - y^2): the bits of the
  // composition g * (1 - y * y) that the rule records when creating a graph.
  detail::map_batches(
      n, cost(12, 0), [](B t, B d) { return d * (B(1.f) - rounded(t * t)); }, dx, y, g);
}

}  // namespace xtape::kernels
