#include "autodiff/xtensor_interop.hpp"

#include <algorithm>
#include <xtensor/xadapt.hpp>

#include "autodiff/detail.hpp"

namespace xtape {

xt::xarray<float> to_xarray(const Tensor& t) {
  std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<float> out = xt::adapt(t.data(), t.size(), xt::no_ownership(), shape);
  return out;
}

Tensor from_xarray(const xt::xarray<float>& a) {
  Shape shape(a.shape().begin(), a.shape().end());
  Tensor out = Tensor::empty(shape);
  std::copy(a.begin(), a.end(), detail::mutable_data(out));  // row-major iteration
  return out;
}

}  // namespace xtape
