#pragma once
/// @file xtensor_interop.hpp
/// Conversions between xtape::Tensor and xt::xarray<float>. Include only where needed: it pulls
/// in xtensor's templates.
///
/// Both are inline, compiled with the caller's xtensor configuration: the type of
/// xt::xarray<float> depends on it (its allocator is xsimd's aligned one, whose alignment
/// follows the instruction set, under XTENSOR_USE_XSIMD; std::allocator otherwise), so a
/// function compiled into the library would take a different type from the one a program built
/// with other flags passes (a portable build's x86-64-v4 library against a program compiled
/// for the baseline failed to load with an undefined symbol).
#include <algorithm>
#include <vector>
#include <xtensor/xarray.hpp>

#include "autodiff/tensor.hpp"

namespace xtape {

/// A copy of t as an xarray (same shape, row-major).
inline xt::xarray<float> to_xarray(const Tensor& t) {
  const std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<float> out = xt::xarray<float>::from_shape(shape);
  std::copy(t.data(), t.data() + t.size(), out.data());
  return out;
}

/// A new leaf tensor holding a copy of a (evaluated row-major).
inline Tensor from_xarray(const xt::xarray<float>& a) {
  const Shape shape(a.shape().begin(), a.shape().end());
  return Tensor(shape, std::vector<float>(a.begin(), a.end()));  // row-major iteration
}

}  // namespace xtape
