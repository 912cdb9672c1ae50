#pragma once
/// @file softmax.hpp
/// Softmax over the rows of a row-major (rows, cols) float buffer, forward and backward, in
/// float with vector exponentials, parallel over fixed blocks of rows (rows are independent, so
/// the bits do not depend on the thread count). A NaN anywhere in a row makes the whole row NaN,
/// as in PyTorch.
#include <cstddef>

namespace xtape::kernels {

/// y[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)). y may alias x.
void softmax_rows(std::size_t rows, std::size_t cols, const float* x, float* y);

/// dx[r, :] = y[r, :] * (g[r, :] - sum(g[r, :] * y[r, :])), y being softmax's output, with the
/// roundings of those elementwise passes and kernels::sum's summation order. dx must not alias
/// y or g.
void softmax_backward_rows(std::size_t rows, std::size_t cols, const float* y, const float* g,
                           float* dx);

}  // namespace xtape::kernels
