#pragma once
/// @file fma.hpp
/// Fused multiply-adds that are fused on every target that has them. xsimd 8.1 has no AVX-512
/// overloads of fma / fms / fnma: there they fall back to a product and a sum, which the
/// compiler contracts into one FMA or not as it pleases (not where it has already computed the
/// product, as in a * a - h). These call the AVX-512 instructions directly and xsimd's
/// elsewhere, so the same source rounds the same way under AVX2 and AVX-512. Internal to
/// kernels/.
#include <cmath>
#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace xtape::kernels::detail {

/// a * b + c, one rounding where the target has FMA.
template <class A>
inline xsimd::batch<float, A> fma(const xsimd::batch<float, A>& a, const xsimd::batch<float, A>& b,
                                  const xsimd::batch<float, A>& c) {
#if defined(__AVX512F__)
  if constexpr (xsimd::batch<float, A>::size == 16) return _mm512_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

/// a * b - c, one rounding where the target has FMA.
template <class A>
inline xsimd::batch<float, A> fms(const xsimd::batch<float, A>& a, const xsimd::batch<float, A>& b,
                                  const xsimd::batch<float, A>& c) {
#if defined(__AVX512F__)
  if constexpr (xsimd::batch<float, A>::size == 16) return _mm512_fmsub_ps(a, b, c);
#endif
  return xsimd::fms(a, b, c);
}

/// c - a * b, one rounding where the target has FMA.
template <class A>
inline xsimd::batch<float, A> fnma(const xsimd::batch<float, A>& a, const xsimd::batch<float, A>& b,
                                   const xsimd::batch<float, A>& c) {
#if defined(__AVX512F__)
  if constexpr (xsimd::batch<float, A>::size == 16) return _mm512_fnmadd_ps(a, b, c);
#endif
  return xsimd::fnma(a, b, c);
}

/// a * b + c rounded as detail::fma rounds it on this target: fused (one rounding) where the
/// target has FMA, a product and a sum otherwise. Scalar tails and vector bodies that must agree
/// bit for bit use madd and detail::fma, never a plain a * b + c, whose contraction into an FMA
/// depends on the compiler (GCC's C++ default contracts, clang's contracts within a statement).
inline float madd(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

}  // namespace xtape::kernels::detail
