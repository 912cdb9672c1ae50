#pragma once
/// @file gemm.hpp
/// Single-precision matrix multiply on raw row-major buffers (OpenMP + xsimd).
#include <cstdint>

namespace xtape::kernels {

/// C = alpha * op(A) * op(B) + beta * C, all row-major.
/// op(A) is m x k (A is k x m when trans_a), op(B) is k x n (B is n x k when trans_b).
/// lda/ldb/ldc are row strides in elements. beta == 0 ignores the prior contents of C
/// (NaNs included). The reduction over k runs in a fixed order whatever the thread count,
/// so results are bitwise identical for 1 or N threads.
void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc);

}  // namespace xtape::kernels
