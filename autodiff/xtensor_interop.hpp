#pragma once
/// @file xtensor_interop.hpp
/// Conversions between xtape::Tensor and xt::xarray<float>. Include only where needed: it pulls
/// in xtensor's templates.
#include <xtensor/xarray.hpp>

#include "autodiff/tensor.hpp"

namespace xtape {

/// A copy of t as an xarray (same shape, row-major).
xt::xarray<float> to_xarray(const Tensor& t);

/// A new leaf tensor holding a copy of a (evaluated row-major).
Tensor from_xarray(const xt::xarray<float>& a);

}  // namespace xtape
