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

/// The transposed-A product of sgemm(true, false, m, n, k, alpha, A, lda, b, ldb, beta, c, ldc)
/// with A never formed: element (i, p) of op(A) is columns[p][(i / run) * pitch + i % run] (a
/// convolution's patches read in place: p a pixel, i a kernel tap and channel, `run` the
/// contiguous floats of one kernel row, `pitch` the stride between kernel rows). Bitwise the
/// same as sgemm on the gathered matrix. Single-threaded (call it from a parallel loop); only
/// when sgemm_gathered_supported(m, n, k, run) (shapes where sgemm takes its blocked path with
/// a 6-row tile, and every tile's rows lie within one kernel row).
bool sgemm_gathered_supported(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t run);
void sgemm_gathered_at(std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                       const float* const* columns, std::int64_t run, std::int64_t pitch,
                       const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

/// sgemm(false, false, m, n, k, alpha, A, k, b, ldb, beta, c, ldc) with A never formed: element
/// (i, p) of A is rows[i][(p / run) * pitch + p % run] (row i a convolution's patch read in
/// place). Bitwise the same as sgemm on the gathered matrix. Single-threaded; only when
/// sgemm_gathered_rows_supported(m, n, k).
bool sgemm_gathered_rows_supported(std::int64_t m, std::int64_t n, std::int64_t k);
void sgemm_gathered_rows(std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                         const float* const* rows, std::int64_t run, std::int64_t pitch,
                         const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

/// sgemm's cache blocking on this machine: rows of the A block (mc, before rounding to the
/// tile), the k slice (kc), the packed B slice in micro-panels (nc_panels), from the L2 size
/// found at run time (l2_bytes).
struct SgemmBlocking {
  std::int64_t mc = 0, kc = 0, nc_panels = 0, l2_bytes = 0;
};
SgemmBlocking sgemm_blocking();

/// The length of the k slices sgemm's blocked path splits a product of depth k into (the last
/// one shorter): each slice's products are summed from zero in increasing p and then added to
/// C, so a kernel that keeps those slices (and that order) reproduces sgemm's bits.
std::int64_t sgemm_k_slice(std::int64_t k);

/// A register tile of sgemm's micro-kernel: `rows` rows of A against `cols` columns of B.
struct SgemmTile {
  std::int64_t rows = 0, cols = 0;
};

/// The tile sgemm computes a product n columns wide with (when n is a multiple of its cols).
SgemmTile sgemm_tile_for(std::int64_t n);

/// The tile for products of `rows` rows (known in advance, as a kernel gradient's input
/// channels), n columns and depth k, each row tile reading a whole k x cols panel of B:
/// sgemm_tile_for(n), or with AVX-512 a shorter tile that divides `rows` where the standard one
/// does not (32 rows: 4 x 64 rather than 6 x 64, whose last tile computes 6 rows for 2; 8 x 32
/// rather than 14 x 32), and 8 x 32 rather than a 64-column tile when a k x 64 panel would take
/// more than half the L1 data cache found at run time. Its cols divide n when
/// sgemm_tile_for(n)'s do. Same bits whichever it is.
SgemmTile sgemm_tile_for_rows(std::int64_t rows, std::int64_t n, std::int64_t k);

/// One register tile for kernels that lay out their own operands: rows [0, mr) and columns
/// [0, tile.cols) of C = A B (or C += A B with `accumulate`). A holds tile.rows rows: element
/// (i, p) at a[i * lda + p], or at a[p * lda + i] with `trans_a`; rows mr.. are read, computed
/// and dropped, so they must be readable. B is k x tile.cols with row stride tile.cols and
/// 64-byte aligned (the layout of a packed panel). The same operations, in the same order, as
/// sgemm's micro-kernel. `tile` comes from sgemm_tile_for or sgemm_tile_for_rows.
void sgemm_tile_product(SgemmTile tile, std::int64_t k, const float* a, std::int64_t lda,
                        bool trans_a, const float* b, float* c, std::int64_t ldc, std::int64_t mr,
                        bool accumulate = false);

}  // namespace xtape::kernels
