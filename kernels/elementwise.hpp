#pragma once
/// @file elementwise.hpp
/// Vectorised (xsimd) and, above a size threshold, OpenMP-parallel elementwise kernels on raw
/// contiguous float buffers. Results do not depend on the thread count.
#include <cstddef>
#include <cstdint>

namespace xtape::kernels {

enum class BinaryOp { add, sub, mul, div };

/// out[i] = a[i * a_step] (op) b[i * b_step] for i < n; each step is 0 (broadcast one value) or 1.
void binary(BinaryOp op, std::size_t n, const float* a, std::size_t a_step, const float* b,
            std::size_t b_step, float* out);

enum class UnaryOp { neg, sqrt, exp, log, abs, square, relu, sigmoid, tanh };

/// out[i] = f(x[i]); out may alias x. relu(NaN) is NaN (kernels/compare.hpp).
void unary(UnaryOp op, std::size_t n, const float* x, float* out);

/// out[i] = x[i] ** p.
void pow_scalar(std::size_t n, const float* x, float p, float* out);

/// out[i] = a * x[i] + b.
void affine(std::size_t n, const float* x, float a, float b, float* out);

/// out[i] = x[i] <= 0 ? 0 : g[i] (the relu derivative applied to g, x being relu's output; it
/// passes where x is NaN, as PyTorch's threshold_backward).
void relu_backward(std::size_t n, const float* x, const float* g, float* out);

/// out[i] = cond[i] != 0 ? g[i] * scale : 0 (dropout and clip masks).
void masked_scale(std::size_t n, const float* mask, const float* g, float scale, float* out);

/// out[i * cols + j] = a[i * a_rs + j * a_cs] (op) b[i * b_rs + j * b_cs] for i < rows, j < cols:
/// a 2-d broadcast (row strides any, column steps 0 or 1) in one call, parallel over fixed row
/// blocks (a bias added to every row of an activation, for instance).
void binary_2d(BinaryOp op, std::size_t rows, std::size_t cols, const float* a, std::size_t a_rs,
               std::size_t a_cs, const float* b, std::size_t b_rs, std::size_t b_cs, float* out);

/// Inverted-dropout mask and output from a counter-based hash keyed by `key` (one draw of the
/// caller's generator): element i is kept when the 24-bit uniform u(key, i) >= rate. Writes
/// mask[i] = scale or 0 and out[i] = x[i] * scale or 0. The counter is 32-bit (the pattern repeats
/// after 2^32 elements). Deterministic for any thread count.
void dropout_forward(std::size_t n, std::uint64_t key, float rate, float scale, const float* x,
                     float* mask, float* out);

/// out[i] = mean + stddev * z_i with z_i standard normals from a counter-based hash keyed by
/// `key` (one draw of the caller's generator), by Box-Muller on pairs of 24-bit uniforms: in
/// each block of 2W elements (W the vector width), elements b + l and b + W + l are the cosine
/// and sine of one pair, whose uniforms hash the element indices b + 2l and b + 2l + 1. |z| is
/// at most sqrt(2 ln 2^24) = 5.77. The counter is 32-bit. Deterministic for any thread count.
void normal_fill(std::size_t n, std::uint64_t key, float mean, float stddev, float* out);

/// Sum of x[0..n) in a fixed order (deterministic, vectorised).
float sum(std::size_t n, const float* x);

/// out[j] += sum over i < rows of x[i * cols + j] (column sums). Rows are summed in fixed
/// blocks whose partial sums are then added in block order: the same bits for any thread count.
void add_column_sums(std::size_t rows, std::size_t cols, const float* x, float* out);

/// add_column_sums on each of `batch` consecutive (rows, cols) blocks of x into the matching
/// cols of out, the blocks in parallel: the bits of the calls one after the other.
void batched_column_sums(std::size_t batch, std::size_t rows, std::size_t cols, const float* x,
                         float* out);

/// out[i] = sum over j < cols of x[i * cols + j] (row sums).
void row_sums(std::size_t rows, std::size_t cols, const float* x, float* out);

}  // namespace xtape::kernels
