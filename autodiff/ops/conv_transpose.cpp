// conv2d_transpose and conv1d_transpose (Keras's Conv2DTranspose / Conv1DTranspose): the
// adjoint of a convolution from the output back to the input, as the differentiable
// conv_bp_input primitive (conv.cpp).
#include <stdexcept>
#include <string>

#include "autodiff/ops/conv_internal.hpp"
#include "autodiff/ops/helpers.hpp"

namespace xtape {

std::size_t conv_transpose_length(std::size_t in, std::size_t k, int stride, Padding padding,
                                  int output_padding, int dilation, const char* op) {
  const std::size_t s = static_cast<std::size_t>(stride);
  const std::size_t eff = (k - 1) * static_cast<std::size_t>(dilation) + 1;
  if (output_padding < 0) {  // None
    if (padding == Padding::valid) return in * s + (eff > s ? eff - s : 0);
    return in * s;
  }
  if (output_padding >= stride)
    throw std::invalid_argument(std::string(op) + ": output_padding " +
                                std::to_string(output_padding) +
                                " must be smaller than the stride " + std::to_string(stride));
  const std::size_t pad = padding == Padding::same ? eff / 2 : 0;
  const std::size_t full =
      (in == 0 ? 0 : (in - 1) * s) + eff + static_cast<std::size_t>(output_padding);
  if (full < 2 * pad)
    throw std::invalid_argument(std::string(op) + ": an input extent of " + std::to_string(in) +
                                " gives no output with this kernel, stride and padding");
  return full - 2 * pad;
}

Tensor conv2d_transpose(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides,
                        Padding padding, std::array<int, 2> output_padding,
                        std::array<int, 2> dilation) {
  const char* op = "conv2d_transpose";
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (is.size() != 4)
    throw std::invalid_argument(std::string(op) +
                                ": expected an input of rank 4 (batch, height, width, channels), "
                                "got shape " +
                                shape_str(is));
  if (ks.size() != 4)
    throw std::invalid_argument(std::string(op) +
                                ": expected a kernel of rank 4 (kh, kw, filters, in_channels), "
                                "got shape " +
                                shape_str(ks));
  if (ks[3] != is[3])
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(is) + " has " +
                                std::to_string(is[3]) + " channels but the kernel of shape " +
                                shape_str(ks) + " expects " + std::to_string(ks[3]));
  if (padding == Padding::causal)
    throw std::invalid_argument(std::string(op) + ": expected 'valid' or 'same' padding");
  for (int i = 0; i < 2; ++i)
    if (strides[i] <= 0 || dilation[i] <= 0 || ks[i] == 0)
      throw std::invalid_argument(std::string(op) +
                                  ": strides, dilation and the kernel window must be positive");
  // The forward convolution this transposes maps (n, H, W, filters) to the input's extents.
  const Shape out_shape{
      is[0],
      conv_transpose_length(is[1], ks[0], strides[0], padding, output_padding[0], dilation[0], op),
      conv_transpose_length(is[2], ks[1], strides[1], padding, output_padding[1], dilation[1], op),
      ks[2]};
  const kernels::Conv2DGeometry g =
      detail::conv_geometry(op, out_shape, ks[0], ks[1], is[3], strides, padding, dilation);
  if (static_cast<std::size_t>(g.out_h) != is[1] || static_cast<std::size_t>(g.out_w) != is[2])
    throw std::invalid_argument(std::string(op) + ": the output " + shape_str(out_shape) +
                                " does not convolve back to the input's extents " + shape_str(is) +
                                " with these strides, padding and dilation");
  detail::checked_size(out_shape, op);
  if (input.size() == 0 || kernel.size() == 0 || shape_size(out_shape) == 0) {
    const Shape xs = is;
    return detail::record(
        op, Tensor::zeros(out_shape), {input, kernel},
        [xs, ks = Shape(ks)](const Tensor&, detail::Grads& grads) {
          if (grads.needs(0)) grads.add(0, Tensor::zeros(xs));
          if (grads.needs(1)) grads.add(1, Tensor::zeros(ks));
        },
        true);
  }
  return detail::conv_bp_input(input, kernel, g);
}

Tensor conv1d_transpose(const Tensor& input, const Tensor& kernel, int stride, Padding padding,
                        int output_padding, int dilation) {
  const Shape &is = input.shape(), &ks = kernel.shape();
  if (is.size() != 3)
    throw std::invalid_argument(
        "conv1d_transpose: expected an input of rank 3 (batch, steps, channels), got shape " +
        shape_str(is));
  if (ks.size() != 3)
    throw std::invalid_argument(
        "conv1d_transpose: expected a kernel of rank 3 (k, filters, in_channels), got shape " +
        shape_str(ks));
  const auto l = [](std::size_t v) { return static_cast<long>(v); };
  const Tensor y = conv2d_transpose(reshape(input, {l(is[0]), 1, l(is[1]), l(is[2])}),
                                    reshape(kernel, {1, l(ks[0]), l(ks[1]), l(ks[2])}), {1, stride},
                                    padding, {-1, output_padding}, {1, dilation});
  return reshape(y, {l(is[0]), l(y.shape()[2]), l(ks[1])});
}

}  // namespace xtape
