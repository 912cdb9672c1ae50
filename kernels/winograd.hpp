#pragma once
/// @file winograd.hpp
/// Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2015) for conv.cpp: a 3x3, unit-stride convolution computed on 2x2 output tiles
/// with 16 multiplies per tile and channel pair instead of 36 (2.25x fewer; 1.9x on an 11x11
/// output, whose tiles overhang it). Each of the 16 tile positions is one GEMM over channels.
/// Internal to kernels/: the convolution entry points of conv.hpp choose it.
#include <cstdint>

#include "kernels/conv.hpp"

namespace xtape::kernels::winograd {

/// True when `g` can take the Winograd path: 3x3 kernel, unit stride and dilation, input
/// channels a multiple of the SIMD width and output channels of the GEMM register tile's
/// width (sgemm_tile_for(cout).cols: 32 or 64 with AVX-512).
bool supported(const Conv2DGeometry& g);

/// u = G k G^T per channel pair, from k (3, 3, cin, cout): 16 (cin, cout) matrices, each stored
/// as the GEMM register tile's column panels, in the calling thread's scratch (valid until its
/// next transform; other threads may read it meanwhile).
const float* transform_kernel(const Conv2DGeometry& g, const float* kernel);

/// The transformed kernel of the input-gradient convolution: that of k'(ky, kx, co, ci) =
/// k(2 - ky, 2 - kx, ci, co) (flipped and with its channel axes swapped): 16 (cout, cin),
/// in the same scratch as transform_kernel.
const float* transform_kernel_for_input_grad(const Conv2DGeometry& g, const float* kernel);

/// output images [b0, b1) of conv(input, kernel) + epilogue, u from transform_kernel. Runs on
/// the calling thread. Each output value is computed the same way whatever b0 and b1.
void forward_images(const Conv2DGeometry& g, const float* input, const float* u, std::int64_t b0,
                    std::int64_t b1, float* output, const ConvEpilogue& ep);

/// grad_kernel (3, 3, cin, cout) of conv(input, kernel) given grad_output: per position, the
/// transformed input tiles times the transformed output-gradient tiles, summed over tiles in
/// a fixed order (the same bits for any thread count), then G^T dU G. Overwrites grad_kernel.
/// Parallel over ranges of about 16 images (at most 32 ranges).
void backward_kernel(const Conv2DGeometry& g, const float* input, const float* grad_output,
                     float* grad_kernel);

/// Images per task of the input gradient (forward_images of input_grad_geometry(g)).
inline constexpr std::int64_t input_grad_group = 2;

/// Both gradients of conv(input, kernel) given grad_output, with the bits of backward_kernel
/// and of the input gradient computed as input_grad_group-image forward_images calls, in one
/// parallel region: the kernel gradient's parts first, then the input gradient's image groups,
/// handed out one at a time (a thread that starts late takes fewer; no join in between).
/// Needs supported(g) and supported(input_grad_geometry(g)). Overwrites both outputs.
void backward(const Conv2DGeometry& g, const float* input, const float* grad_output,
              const float* kernel, float* grad_input, float* grad_kernel);

/// The geometry of the input gradient as a forward convolution of grad_output: a 3x3 unit-
/// stride convolution of (n, out_h, out_w, cout) into (n, h, w, cin) with padding 2 - pad.
Conv2DGeometry input_grad_geometry(const Conv2DGeometry& g);

}  // namespace xtape::kernels::winograd
