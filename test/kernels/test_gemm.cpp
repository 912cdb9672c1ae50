// Tests for kernels/gemm.hpp: sgemm against a double-precision reference loop.
#include <omp.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>
#include <xsimd/memory/xsimd_aligned_allocator.hpp>

#include "kernels/gemm.hpp"
#include "kernels/threads.hpp"

namespace {

using xtape::kernels::sgemm;

std::vector<float> random_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

struct Case {
  bool ta, tb;
  std::int64_t m, n, k;
  float alpha, beta;
  std::int64_t pad = 0;  // extra elements per row (lda/ldb/ldc larger than the extent)
};

// Runs sgemm on random data and checks every element against a double reference:
// |c - ref| <= 1e-4 * sqrt(k) * (sum_p |alpha a b| + |beta c0|) + tiny.
void check_case(const Case& t, std::uint32_t seed) {
  const std::int64_t a_rows = t.ta ? t.k : t.m, a_cols = t.ta ? t.m : t.k;
  const std::int64_t b_rows = t.tb ? t.n : t.k, b_cols = t.tb ? t.k : t.n;
  const std::int64_t lda = a_cols + t.pad, ldb = b_cols + t.pad, ldc = t.n + t.pad;
  const auto a = random_vector(static_cast<std::size_t>(a_rows * lda), seed);
  const auto b = random_vector(static_cast<std::size_t>(b_rows * ldb), seed + 1);
  auto c = random_vector(static_cast<std::size_t>(t.m * ldc), seed + 2);
  const auto c0 = c;
  if (t.beta == 0.f)  // beta == 0 must ignore NaNs in C
    for (std::size_t i = 0; i < c.size(); i += 3) c[i] = std::numeric_limits<float>::quiet_NaN();
  sgemm(t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb, t.beta, c.data(), ldc);
  const double tol = 1e-4 * std::sqrt(static_cast<double>(std::max<std::int64_t>(t.k, 1)));
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < t.m; ++i) {
    for (std::int64_t j = 0; j < t.n; ++j) {
      double s = 0, mag = 0;
      for (std::int64_t p = 0; p < t.k; ++p) {
        const double av = t.ta ? a[p * lda + i] : a[i * lda + p];
        const double bv = t.tb ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
        mag += std::abs(av * bv);
      }
      double ref = t.alpha * s, scale = std::abs(t.alpha) * mag;
      if (t.beta != 0.f) {
        ref += t.beta * static_cast<double>(c0[i * ldc + j]);
        scale += std::abs(t.beta * c0[i * ldc + j]);
      }
      const double got = c[i * ldc + j];
      if (!(std::abs(got - ref) <= tol * scale + 1e-30)) ++bad;
    }
  }
  // Padding columns of C are never written.
  for (std::int64_t i = 0; i < t.m; ++i)
    for (std::int64_t j = t.n; j < ldc; ++j)
      if (!(c[i * ldc + j] == c0[i * ldc + j]) && !(std::isnan(c[i * ldc + j]))) ++bad;
  BOOST_TEST(bad == 0, "sgemm ta=" << t.ta << " tb=" << t.tb << " m=" << t.m << " n=" << t.n
                                   << " k=" << t.k << " alpha=" << t.alpha << " beta=" << t.beta
                                   << " pad=" << t.pad << ": " << bad << " bad elements");
}

// C = op(A) op(B_n) (m x n), B_n the first n columns of the k x nmax matrix b (row-major),
// laid out as a matrix of its own (transposed with tb). Column j of C depends on column j of B
// only, so its columns must match those of any wider product on the same b bit for bit.
std::vector<float> product_on_first_columns(bool ta, bool tb, std::int64_t m, std::int64_t n,
                                            std::int64_t k, const std::vector<float>& a,
                                            std::int64_t lda, const std::vector<float>& b,
                                            std::int64_t nmax) {
  std::vector<float> bn(static_cast<std::size_t>(k * n)), c(static_cast<std::size_t>(m * n));
  for (std::int64_t p = 0; p < k; ++p)
    for (std::int64_t j = 0; j < n; ++j)
      bn[static_cast<std::size_t>(tb ? j * k + p : p * n + j)] =
          b[static_cast<std::size_t>(p * nmax + j)];
  sgemm(ta, tb, m, n, k, 1.f, a.data(), lda, bn.data(), tb ? k : n, 0.f, c.data(), n);
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_gemm)

BOOST_AUTO_TEST_CASE(tiny_shapes_all_transposes) {
  std::uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t m : {1, 2, 3, 7})
        for (std::int64_t n : {1, 5, 17})
          for (std::int64_t k : {1, 4, 9}) check_case({ta, tb, m, n, k, 1.f, 0.f}, seed++);
}

BOOST_AUTO_TEST_CASE(tails_and_odd_sizes) {
  // Sizes around the micro-tile (14 or 6 rows, 32 or 16 columns) and the k slice (256).
  std::uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t m : {13, 29, 67})
        for (std::int64_t n : {31, 33, 65})
          for (std::int64_t k : {37, 257, 300}) check_case({ta, tb, m, n, k, 1.f, 0.f}, seed++);
}

BOOST_AUTO_TEST_CASE(alpha_beta_and_leading_dimensions) {
  std::uint32_t seed = 300;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float alpha : {1.f, -0.5f, 2.f})
        for (float beta : {0.f, 1.f, -1.5f}) {
          check_case({ta, tb, 45, 70, 130, alpha, beta, 3}, seed++);
          check_case({ta, tb, 5, 6, 7, alpha, beta, 1}, seed++);  // small path
        }
}

BOOST_AUTO_TEST_CASE(large_shapes) {
  // Multi-block in every dimension (several MC, NC and KC blocks) and the conv shapes.
  check_case({false, false, 500, 2100, 530, 1.f, 0.f}, 501);
  check_case({false, false, 1549, 64, 288, 1.f, 0.f}, 502);
  check_case({true, false, 288, 64, 1549, 1.f, 0.f}, 503);
  check_case({false, true, 1549, 288, 64, 1.f, 0.f}, 504);
  check_case({true, true, 333, 99, 611, 0.75f, 0.25f}, 505);
}

BOOST_AUTO_TEST_CASE(packed_and_in_place_a_paths) {
  // Wide C (n > 512) and row strides that are multiples of 512 floats pack A; narrow C reads
  // full panels of A in place. Cover both for plain and transposed A, with row tails.
  std::uint32_t seed = 600;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_case({ta, tb, 45, 600, 70, 1.f, 0.5f}, seed++);
      check_case({ta, tb, 31, 40, 512, 1.f, 0.f}, seed++);       // lda = 512 when !ta
      check_case({ta, tb, 512, 20, 31, 1.f, 0.f}, seed++);       // lda = 512 when ta
      check_case({ta, tb, 43, 20, 31, -1.f, 2.f, 481}, seed++);  // lda = 512 via padding
    }
}

BOOST_AUTO_TEST_CASE(wide_tile_shapes) {
  // n a multiple of 64 takes the 6 x 64 tile (AVX-512): tails in m, packed and in-place A,
  // both transposes, a k split into several slices.
  std::uint32_t seed = 700;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_case({ta, tb, 29, 128, 300, 1.f, 0.f}, seed++);
      check_case({ta, tb, 100, 640, 70, 1.f, 0.5f}, seed++);  // n > 512: A packed
      check_case({ta, tb, 67, 576, 37, -0.5f, 1.f}, seed++);
      check_case({ta, tb, 13, 64, 800, 1.f, 0.f}, seed++);
    }
}

BOOST_AUTO_TEST_CASE(tile_shape_never_changes_a_result) {
  // Column j of C depends on column j of B only. n = 64 takes the wide tile, n = 100 the narrow
  // one, n = 300 both (256 wide columns, 44 narrow): the columns they share must be bitwise
  // equal, at any k slicing. (k >= 17 keeps every piece on the blocked path: the tiny-problem
  // path is a plain loop whose roundings need not match, e.g. with clang.)
  std::uint32_t seed = 800;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t k : {17, 300, 900}) {
        const std::int64_t m = 45, nmax = 300;
        const auto a = random_vector(static_cast<std::size_t>(m * k), seed++);
        const auto b = random_vector(static_cast<std::size_t>(k * nmax), seed++);
        const std::int64_t lda = ta ? m : k;
        auto product = [&](std::int64_t n) {
          return product_on_first_columns(ta, tb, m, n, k, a, lda, b, nmax);
        };
        const auto c64 = product(64), c100 = product(100), c300 = product(300);
        bool same = true;
        for (std::int64_t i = 0; i < m; ++i) {
          same = same &&
                 std::memcmp(c64.data() + i * 64, c100.data() + i * 100, 64 * sizeof(float)) == 0;
          same = same && std::memcmp(c100.data() + i * 100, c300.data() + i * 300,
                                     100 * sizeof(float)) == 0;
        }
        BOOST_TEST(same, "ta=" << ta << " tb=" << tb << " k=" << k);
      }
}

BOOST_AUTO_TEST_CASE(gathered_a_matches_sgemm_on_the_gathered_matrix_bitwise) {
  // A convolution's patches read in place (kernel rows of `run` floats, `pitch` apart) against
  // sgemm(true, false, ...) on the same patches copied into a matrix, as im2col would.
  struct Shape3 {
    std::int64_t m, n, k, run, pitch;
  };
  std::uint32_t seed = 1000;
  for (const Shape3& t : {Shape3{288, 64, 224, 96, 13 * 32}, Shape3{288, 64, 500, 96, 13 * 32},
                          Shape3{48, 128, 100, 24, 50}, Shape3{36, 64, 1000, 12, 40}}) {
    BOOST_TEST_REQUIRE(xtape::kernels::sgemm_gathered_supported(t.m, t.n, t.k, t.run));
    const std::int64_t rows = t.m / t.run;  // kernel rows
    const auto image =
        random_vector(static_cast<std::size_t>(t.k * 7 + rows * t.pitch + t.run), seed++);
    const auto b = random_vector(static_cast<std::size_t>(t.k * t.n), seed++);
    std::vector<const float*> columns(static_cast<std::size_t>(t.k));
    std::vector<float> a(
        static_cast<std::size_t>(t.k * t.m));  // op(A)^T: row p is column p's patch
    for (std::int64_t p = 0; p < t.k; ++p) {
      columns[static_cast<std::size_t>(p)] = image.data() + p * 7;
      for (std::int64_t i = 0; i < t.m; ++i)
        a[static_cast<std::size_t>(p * t.m + i)] =
            columns[static_cast<std::size_t>(p)][(i / t.run) * t.pitch + i % t.run];
    }
    for (float beta : {0.f, 1.f}) {
      auto c1 = random_vector(static_cast<std::size_t>(t.m * t.n), seed), c2 = c1;
      xtape::kernels::sgemm_gathered_at(t.m, t.n, t.k, 1.f, columns.data(), t.run, t.pitch,
                                        b.data(), t.n, beta, c1.data(), t.n);
      sgemm(true, false, t.m, t.n, t.k, 1.f, a.data(), t.m, b.data(), t.n, beta, c2.data(), t.n);
      BOOST_TEST(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0,
                 "m=" << t.m << " n=" << t.n << " k=" << t.k << " beta=" << beta);
    }
  }
}

BOOST_AUTO_TEST_CASE(gathered_rows_match_sgemm_on_the_gathered_matrix_bitwise) {
  // Patches read in place as the rows of A (a convolution's forward) against sgemm on the same
  // patches copied into a matrix: tails in m, k split into slices that start inside a run.
  struct Shape3 {
    std::int64_t m, n, k, run, pitch;
  };
  std::uint32_t seed = 1100;
  for (const Shape3& t : {Shape3{224, 64, 288, 96, 13 * 32}, Shape3{121, 64, 288, 96, 13 * 32},
                          Shape3{37, 128, 576, 192, 15 * 64}, Shape3{50, 64, 900, 96, 130},
                          // A first layer (3 channels, 32 filters: the narrow tile with
                          // AVX-512) and 96 filters (a multiple of 32, not of 64).
                          Shape3{300, 32, 27, 9, 34 * 3}, Shape3{61, 32, 288, 96, 13 * 32},
                          Shape3{45, 96, 300, 96, 13 * 32}}) {
    BOOST_TEST_REQUIRE(xtape::kernels::sgemm_gathered_rows_supported(t.m, t.n, t.k));
    const std::int64_t kernel_rows = (t.k + t.run - 1) / t.run;
    const auto image =
        random_vector(static_cast<std::size_t>(t.m * 5 + kernel_rows * t.pitch + t.run), seed++);
    const auto b = random_vector(static_cast<std::size_t>(t.k * t.n), seed++);
    std::vector<const float*> rows(static_cast<std::size_t>(t.m));
    std::vector<float> a(static_cast<std::size_t>(t.m * t.k));
    for (std::int64_t i = 0; i < t.m; ++i) {
      rows[static_cast<std::size_t>(i)] = image.data() + i * 5;
      for (std::int64_t p = 0; p < t.k; ++p)
        a[static_cast<std::size_t>(i * t.k + p)] =
            rows[static_cast<std::size_t>(i)][(p / t.run) * t.pitch + p % t.run];
    }
    for (float beta : {0.f, 1.f}) {
      auto c1 = random_vector(static_cast<std::size_t>(t.m * t.n), seed), c2 = c1;
      xtape::kernels::sgemm_gathered_rows(t.m, t.n, t.k, 1.f, rows.data(), t.run, t.pitch, b.data(),
                                          t.n, beta, c1.data(), t.n);
      sgemm(false, false, t.m, t.n, t.k, 1.f, a.data(), t.k, b.data(), t.n, beta, c2.data(), t.n);
      BOOST_TEST(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0,
                 "m=" << t.m << " n=" << t.n << " k=" << t.k << " beta=" << beta);
    }
  }
}

BOOST_AUTO_TEST_CASE(few_rows_read_b_in_place) {
  // Up to 12 rows of A, B is read in place instead of packed (its partial right-edge panel is
  // still packed). Against the double reference: edge panels, several k slices, alpha and beta,
  // padded leading dimensions, both layouts of A; and bitwise against the same rows computed
  // as part of a 40-row product (which packs B).
  std::uint32_t seed = 1200;
  for (bool ta : {false, true})
    for (std::int64_t m : {1, 2, 5, 6, 7, 12})
      for (std::int64_t n : {16, 45, 600}) {
        check_case({ta, false, m, n, 700, 1.f, 0.f}, seed++);
        check_case({ta, false, m, n, 90, -0.5f, 1.5f, 3}, seed++);
      }
  // (k >= 500 keeps even one row off the tiny-problem path, whose roundings need not match.)
  for (const std::int64_t k : {500, 1600}) {
    const std::int64_t n = 77, big = 40;
    const auto a = random_vector(static_cast<std::size_t>(big * k), seed++);
    const auto b = random_vector(static_cast<std::size_t>(k * n), seed++);
    std::vector<float> all(static_cast<std::size_t>(big * n));
    sgemm(false, false, big, n, k, 1.f, a.data(), k, b.data(), n, 0.f, all.data(), n);
    for (const std::int64_t m : {1, 3, 8, 12}) {
      std::vector<float> few(static_cast<std::size_t>(m * n));
      sgemm(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, few.data(), n);
      BOOST_TEST(std::memcmp(few.data(), all.data(), few.size() * sizeof(float)) == 0,
                 "m=" << m << " k=" << k);
    }
  }
}

BOOST_AUTO_TEST_CASE(transposed_b_gives_the_bits_of_plain_b) {
  // op(B) = B^T is packed by a register transpose in W x W blocks, the rest element by element:
  // packing is a copy, so every product must equal, bit for bit, the one on B laid out plainly.
  // Shapes: whole blocks, k and n tails of every size class, both tiles, several k slices,
  // few rows (B in place when plain, packed when transposed), 1 and 2 threads.
  const int saved = xtape::kernels::num_threads();
  std::uint32_t seed = 1300;
  const struct {
    std::int64_t m, n, k;
  } shapes[] = {{128, 512, 512}, {45, 128, 300}, {33, 100, 70},  {20, 64, 37}, {3, 200, 50},
                {1, 64, 333},    {4, 130, 300},  {70, 768, 900}, {14, 17, 33}, {9, 48, 16}};
  for (int threads : {1, 2}) {
    xtape::kernels::set_num_threads(threads);
    for (bool ta : {false, true})
      for (const auto& s : shapes) {
        const auto a = random_vector(static_cast<std::size_t>(s.m * s.k), seed++);
        const auto b = random_vector(static_cast<std::size_t>(s.k * s.n), seed++);
        std::vector<float> bt(b.size());
        for (std::int64_t p = 0; p < s.k; ++p)
          for (std::int64_t j = 0; j < s.n; ++j)
            bt[static_cast<std::size_t>(j * s.k + p)] = b[static_cast<std::size_t>(p * s.n + j)];
        std::vector<float> plain(static_cast<std::size_t>(s.m * s.n)), trans(plain.size());
        const std::int64_t lda = ta ? s.m : s.k;
        sgemm(ta, false, s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), s.n, 0.f, plain.data(), s.n);
        sgemm(ta, true, s.m, s.n, s.k, 1.f, a.data(), lda, bt.data(), s.k, 0.f, trans.data(), s.n);
        BOOST_TEST(
            std::memcmp(plain.data(), trans.data(), plain.size() * sizeof(float)) == 0,
            "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " threads=" << threads);
      }
  }
  xtape::kernels::set_num_threads(saved);
}

BOOST_AUTO_TEST_CASE(one_to_four_rows_give_the_bits_of_a_taller_product) {
  // A batch of 1-4 rows takes a tile of exactly that many rows; row i of C depends on row i of
  // A only, so it must match the same row of a 40-row product bit for bit, in every layout.
  std::uint32_t seed = 1400;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const std::int64_t n : {64, 77, 512}) {
        const std::int64_t k = 520, big = 40;
        const auto a = random_vector(static_cast<std::size_t>(big * k), seed++);
        const auto b = random_vector(static_cast<std::size_t>(k * n), seed++);
        const std::int64_t ldb = tb ? k : n;
        std::vector<float> all(static_cast<std::size_t>(big * n));
        // Transposed A: the first m rows of op(A) are the first m columns of a k x big matrix.
        sgemm(ta, tb, big, n, k, 1.f, a.data(), ta ? big : k, b.data(), ldb, 0.f, all.data(), n);
        for (const std::int64_t m : {1, 2, 3, 4}) {
          std::vector<float> few(static_cast<std::size_t>(m * n));
          sgemm(ta, tb, m, n, k, 1.f, a.data(), ta ? big : k, b.data(), ldb, 0.f, few.data(), n);
          BOOST_TEST(std::memcmp(few.data(), all.data(), few.size() * sizeof(float)) == 0,
                     "m=" << m << " n=" << n << " ta=" << ta << " tb=" << tb);
        }
      }
}

BOOST_AUTO_TEST_CASE(row_tiles_that_divide_the_rows_give_the_same_bits) {
  // sgemm_tile_for_rows picks, with AVX-512, a shorter tile that divides the rows (32 input
  // channels of a kernel gradient: 4 x 64, 8 x 32), and 8 x 32 instead of 64 columns when a
  // k x 64 panel of B would fill the L1 (k = 72 on a 32 KiB L1; k = 16 never). Through
  // sgemm_tile_product, over k and then accumulating a second slice, with B in panels of the
  // tile's columns, every element must equal the standard tile's, whose last panel is partial.
  using xtape::kernels::SgemmTile;
  std::uint32_t seed = 1500;
  for (const std::int64_t k : {72, 16})
    for (const std::int64_t n : {32, 64})
      for (const std::int64_t rows : {8, 32, 40})
        for (bool trans_a : {false, true}) {
          const SgemmTile std_tile = xtape::kernels::sgemm_tile_for(n);
          const SgemmTile row_tile = xtape::kernels::sgemm_tile_for_rows(rows, n, k);
          BOOST_TEST(n % row_tile.cols == 0);
          const std::int64_t padded = rows + 16;  // rows past the last are read and dropped
          const auto a = random_vector(static_cast<std::size_t>(padded * k), seed++);
          const auto b = random_vector(static_cast<std::size_t>(k * n), seed++);
          auto product = [&](SgemmTile tile) {
            // B as panels of tile.cols columns, each k x cols, 64-byte aligned.
            std::vector<float, xsimd::aligned_allocator<float, 64>> bp(b.size());
            for (std::int64_t j0 = 0; j0 < n; j0 += tile.cols)
              for (std::int64_t p = 0; p < k; ++p)
                for (std::int64_t j = 0; j < tile.cols; ++j)
                  bp[static_cast<std::size_t>(j0 * k + p * tile.cols + j)] =
                      b[static_cast<std::size_t>(p * n + j0 + j)];
            std::vector<float> c(static_cast<std::size_t>(rows * n), 0.f);
            for (int slice = 0; slice < 2; ++slice)
              for (std::int64_t i0 = 0; i0 < rows; i0 += tile.rows)
                for (std::int64_t j0 = 0; j0 < n; j0 += tile.cols) {
                  const float* ap = trans_a ? a.data() + i0 : a.data() + i0 * k;
                  xtape::kernels::sgemm_tile_product(tile, k, ap, trans_a ? padded : k, trans_a,
                                                     bp.data() + j0 * k, c.data() + i0 * n + j0, n,
                                                     std::min(tile.rows, rows - i0), slice > 0);
                }
            return c;
          };
          const auto c_std = product(std_tile), c_rows = product(row_tile);
          BOOST_TEST(std::memcmp(c_std.data(), c_rows.data(), c_std.size() * sizeof(float)) == 0,
                     "rows=" << rows << " n=" << n << " k=" << k << " tile " << row_tile.rows << "x"
                             << row_tile.cols << " trans_a=" << trans_a);
        }
  // A B panel far larger than any L1 (k = 4096: 1 MiB at 64 columns) takes 32-column tiles
  // wherever the standard tile is 64 wide; a small one keeps the standard columns.
  if (xtape::kernels::sgemm_tile_for(64).cols == 64) {
    BOOST_TEST(xtape::kernels::sgemm_tile_for_rows(32, 64, 4096).cols == 32);
    BOOST_TEST(xtape::kernels::sgemm_tile_for_rows(32, 64, 4).cols == 64);
  }
}

BOOST_AUTO_TEST_CASE(up_to_16_columns_give_the_bits_of_wider_products) {
  // With AVX-512, up to 16 columns (a 10-class output layer) take tiles one vector wide, and a
  // partial B panel is packed with masked vector loads. Column j of C depends on column j of
  // B only: the first n columns must equal those of a 100-column product bit for bit, for
  // every layout, few and many rows, several k slices. With k a multiple of 1024, A (not
  // transposed) has a row stride of a multiple of 4 KiB: read in place by the narrow product,
  // packed by the wide one.
  std::uint32_t seed = 1600;
  for (const bool stride_4k : {false, true})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const std::int64_t m : {1, 3, 5, 32, 45})
          for (const std::int64_t n : {1, 10, 16}) {
            // k large enough to keep the narrow product off the tiny-problem path (a plain loop
            // over all of k, not in sgemm's k slices: other roundings).
            const std::int64_t k_min = 32768 / (m * n) + 1;
            const std::int64_t k =
                stride_4k ? (k_min + 1023) / 1024 * 1024 : std::max<std::int64_t>(700, k_min);
            const std::int64_t wide = 100;
            const auto a = random_vector(static_cast<std::size_t>(m * k), seed++);
            const auto b = random_vector(static_cast<std::size_t>(k * wide), seed++);
            const std::int64_t lda = ta ? m : k;
            auto product = [&](std::int64_t cols) {
              return product_on_first_columns(ta, tb, m, cols, k, a, lda, b, wide);
            };
            const auto few = product(n), all = product(wide);
            bool same = true;
            for (std::int64_t i = 0; i < m; ++i)
              same = same && std::memcmp(few.data() + i * n, all.data() + i * wide,
                                         static_cast<std::size_t>(n) * sizeof(float)) == 0;
            BOOST_TEST(same, "m=" << m << " n=" << n << " ta=" << ta << " tb=" << tb);
          }
  // And against the double reference, with alpha, beta and padded leading dimensions.
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const std::int64_t n : {7, 10, 16}) {
        check_case({ta, tb, 33, n, 300, -0.5f, 1.5f, 3}, seed++);
        check_case({ta, tb, 2, n, 900, 1.f, 0.f}, seed++);
      }
}

BOOST_AUTO_TEST_CASE(degenerate_shapes) {
  std::vector<float> c(12, std::numeric_limits<float>::quiet_NaN());
  const float a = 1.f, b = 1.f;
  sgemm(false, false, 3, 4, 0, 1.f, &a, 1, &b, 4, 0.f, c.data(), 4);  // k == 0, beta == 0: zeros
  for (float x : c) BOOST_TEST(x == 0.f);
  std::vector<float> d(6, 2.f);
  sgemm(false, false, 2, 3, 0, 1.f, &a, 1, &b, 3, 0.5f, d.data(), 3);  // k == 0: C = beta C
  for (float x : d) BOOST_TEST(x == 1.f);
  sgemm(false, false, 0, 3, 5, 1.f, &a, 5, &b, 3, 0.f, d.data(), 3);  // m == 0: nothing
  for (float x : d) BOOST_TEST(x == 1.f);
}

BOOST_AUTO_TEST_CASE(bitwise_identical_for_1_and_2_threads) {
  const int saved = xtape::kernels::num_threads();
  const struct {
    bool ta, tb;
    std::int64_t m, n, k;
  } shapes[] = {{false, false, 1000, 64, 288},
                {true, false, 288, 64, 1200},
                {false, true, 700, 288, 64},
                {true, true, 257, 300, 513},
                // Around the grain size (2 threads from about 1.6M multiply-adds) and the
                // wide/narrow column split.
                {false, false, 100, 128, 128},
                {false, false, 128, 128, 128},
                {false, true, 96, 200, 300}};
  for (const auto& s : shapes) {
    const std::int64_t a_cols = s.ta ? s.m : s.k, b_cols = s.tb ? s.k : s.n;
    const auto a = random_vector(static_cast<std::size_t>(s.m * s.k), 7);
    const auto b = random_vector(static_cast<std::size_t>(s.k * s.n), 8);
    std::vector<float> c1(static_cast<std::size_t>(s.m * s.n)), c2(c1.size());
    xtape::kernels::set_num_threads(1);
    sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), a_cols, b.data(), b_cols, 0.f, c1.data(), s.n);
    xtape::kernels::set_num_threads(2);
    sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), a_cols, b.data(), b_cols, 0.f, c2.data(), s.n);
    BOOST_TEST(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0,
               "sgemm results differ between 1 and 2 threads for m=" << s.m << " n=" << s.n
                                                                     << " k=" << s.k);
  }
  xtape::kernels::set_num_threads(saved);
}

BOOST_AUTO_TEST_SUITE_END()
