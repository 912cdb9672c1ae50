// Upsampling of channels-last images (UpSampling1D/2D's primitive): nearest and bilinear, each
// a kernel whose backward is its adjoint, itself a recorded op whose backward is the
// upsampling again (both are linear), so they are differentiable any number of times.
#include <stdexcept>

#include "autodiff/ops/helpers.hpp"
#include "kernels/spatial.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

struct Geometry {
  std::size_t n, h, w, c, sh, sw;
  bool bilinear;
  Shape in() const { return {n, h, w, c}; }
  Shape out() const { return {n, h * sh, w * sw, c}; }
};

Tensor upsample_adjoint(const Tensor& g, const Geometry& geo);

Tensor upsample(const Tensor& x, const Geometry& geo) {
  Tensor out = detail::new_result(geo.out(), "upsample2d");
  (geo.bilinear ? kernels::upsample_bilinear : kernels::upsample_nearest)(
      geo.n, geo.h, geo.w, geo.c, geo.sh, geo.sw, x.data(), detail::mutable_data(out));
  // d/dx: the adjoint (nearest: the sum over each block; bilinear: the transposed weights).
  return record(
      "upsample2d", out, {x},
      [geo](const Tensor& g, Grads& grads) { grads.add(0, upsample_adjoint(g, geo)); }, true);
}

Tensor upsample_adjoint(const Tensor& g, const Geometry& geo) {
  Tensor out = Tensor::empty(geo.in());
  (geo.bilinear ? kernels::upsample_bilinear_adjoint : kernels::upsample_nearest_adjoint)(
      geo.n, geo.h, geo.w, geo.c, geo.sh, geo.sw, g.data(), detail::mutable_data(out));
  // The adjoint of the adjoint: the upsampling.
  return record(
      "upsample2d_adjoint", out, {g},
      [geo](const Tensor& gg, Grads& grads) { grads.add(0, upsample(gg, geo)); }, true);
}

}  // namespace

Tensor upsample2d(const Tensor& x, std::array<std::size_t, 2> size,
                  const std::string& interpolation) {
  if (x.ndim() != 4)
    throw std::invalid_argument("upsample2d: expected inputs of rank 4 (n, h, w, c), got shape " +
                                shape_str(x.shape()));
  if (size[0] == 0 || size[1] == 0)
    throw std::invalid_argument("upsample2d: size must be positive, got (" +
                                std::to_string(size[0]) + ", " + std::to_string(size[1]) + ")");
  if (interpolation != "nearest" && interpolation != "bilinear")
    throw std::invalid_argument("upsample2d: interpolation must be 'nearest' or 'bilinear', got '" +
                                interpolation + "'");
  const Shape& s = x.shape();
  const Geometry geo{s[0], s[1], s[2], s[3], size[0], size[1], interpolation == "bilinear"};
  return upsample(x, geo);
}

}  // namespace xtape
