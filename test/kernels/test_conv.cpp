// Tests for kernels/conv.hpp: the three conv2d kernels against direct double-precision loops.
#include <omp.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/pool.hpp"
#include "kernels/region_errors.hpp"
#include "kernels/threads.hpp"
#include "kernels/winograd.hpp"
#include "kernels/workspace.hpp"

namespace {

using xtape::kernels::Conv2DGeometry;

std::vector<float> random_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

struct Spec {
  std::int64_t n, h, w, cin, kh, kw, cout, stride, dil;
  bool same;  // TensorFlow 'same' padding (else 'valid')
};

// Output extent and leading pad of one axis, TensorFlow rules.
void axis(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d, bool same,
          std::int64_t& out, std::int64_t& pad) {
  const std::int64_t ek = (k - 1) * d + 1;
  if (same) {
    out = (in + s - 1) / s;
    pad = std::max<std::int64_t>(0, (out - 1) * s + ek - in) / 2;
  } else {
    out = (in - ek) / s + 1;
    pad = 0;
  }
}

Conv2DGeometry geometry(const Spec& s) {
  Conv2DGeometry g;
  g.n = s.n, g.h = s.h, g.w = s.w, g.cin = s.cin, g.kh = s.kh, g.kw = s.kw, g.cout = s.cout;
  g.stride_h = g.stride_w = s.stride;
  g.dil_h = g.dil_w = s.dil;
  axis(s.h, s.kh, s.stride, s.dil, s.same, g.out_h, g.pad_top);
  axis(s.w, s.kw, s.stride, s.dil, s.same, g.out_w, g.pad_left);
  return g;
}

// Visits every (output element, kernel element, input element) triple of the convolution.
template <class F>
void for_each_tap(const Conv2DGeometry& g, F&& f) {
  for (std::int64_t b = 0; b < g.n; ++b)
    for (std::int64_t oy = 0; oy < g.out_h; ++oy)
      for (std::int64_t ox = 0; ox < g.out_w; ++ox)
        for (std::int64_t ky = 0; ky < g.kh; ++ky)
          for (std::int64_t kx = 0; kx < g.kw; ++kx) {
            const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
            const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (std::int64_t ci = 0; ci < g.cin; ++ci)
              for (std::int64_t co = 0; co < g.cout; ++co)
                f(((b * g.out_h + oy) * g.out_w + ox) * g.cout + co,
                  ((ky * g.kw + kx) * g.cin + ci) * g.cout + co,
                  ((b * g.h + iy) * g.w + ix) * g.cin + ci);
          }
}

// Checks got against ref with |got - ref| <= 1e-4 * sqrt(terms) * mag + tiny, where mag is the
// sum of the absolute values of the terms and `terms` the largest number of terms in a sum.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref,
                  const std::vector<double>& mag, std::int64_t terms, const char* what,
                  const Spec& s) {
  const double tol = 1e-4 * std::sqrt(static_cast<double>(std::max<std::int64_t>(terms, 1)));
  std::int64_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - ref[i]) <= tol * mag[i] + 1e-30)) ++bad;
  BOOST_TEST(bad == 0, what << " n=" << s.n << " h=" << s.h << " w=" << s.w << " cin=" << s.cin
                            << " k=" << s.kh << "x" << s.kw << " cout=" << s.cout
                            << " stride=" << s.stride << " dil=" << s.dil << " same=" << s.same
                            << ": " << bad << " of " << got.size() << " elements off");
}

void check_spec(const Spec& s, std::uint32_t seed) {
  const Conv2DGeometry g = geometry(s);
  BOOST_REQUIRE(g.out_h > 0 && g.out_w > 0);
  const std::size_t in_size = static_cast<std::size_t>(g.n * g.h * g.w * g.cin);
  const std::size_t k_size = static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout);
  const std::size_t out_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout);
  const auto x = random_vector(in_size, seed), k = random_vector(k_size, seed + 1);
  const auto go = random_vector(out_size, seed + 2);

  std::vector<double> y_ref(out_size, 0.0), y_mag(out_size, 0.0);
  std::vector<double> gx_ref(in_size, 0.0), gx_mag(in_size, 0.0);
  std::vector<double> gk_ref(k_size, 0.0), gk_mag(k_size, 0.0);
  for_each_tap(g, [&](std::int64_t o, std::int64_t kk, std::int64_t i) {
    y_ref[o] += double(x[i]) * k[kk];
    y_mag[o] += std::abs(double(x[i]) * k[kk]);
    gx_ref[i] += double(go[o]) * k[kk];
    gx_mag[i] += std::abs(double(go[o]) * k[kk]);
    gk_ref[kk] += double(go[o]) * x[i];
    gk_mag[kk] += std::abs(double(go[o]) * x[i]);
  });

  // Outputs start as NaN: every kernel must overwrite.
  std::vector<float> y(out_size, NAN), gx(in_size, NAN), gk(k_size, NAN);
  xtape::kernels::conv2d_forward(g, x.data(), k.data(), y.data());
  xtape::kernels::conv2d_backward_input(g, go.data(), k.data(), gx.data());
  xtape::kernels::conv2d_backward_kernel(g, x.data(), go.data(), gk.data());
  expect_close(y, y_ref, y_mag, g.kh * g.kw * g.cin, "forward", s);
  expect_close(gx, gx_ref, gx_mag, g.kh * g.kw * g.cout, "backward_input", s);
  expect_close(gk, gk_ref, gk_mag, g.n * g.out_h * g.out_w, "backward_kernel", s);
}

// The 2x2 / stride-2 max pool over the output of g.
xtape::kernels::Pool2DGeometry pool_2x2(const Conv2DGeometry& g) {
  xtape::kernels::Pool2DGeometry pool;
  pool.n = g.n, pool.h = g.out_h, pool.w = g.out_w, pool.c = g.cout;
  pool.pool_h = pool.pool_w = pool.stride_h = pool.stride_w = 2;
  pool.out_h = g.out_h / 2, pool.out_w = g.out_w / 2;
  return pool;
}

// The fused conv + epilogue + pool against conv2d_forward then max_pool2d_forward: the same
// bits and argmax. Returns the separate path's argmax.
std::vector<std::int32_t> check_fused_forward(const Conv2DGeometry& g,
                                              const xtape::kernels::Pool2DGeometry& pool,
                                              const std::vector<float>& x,
                                              const std::vector<float>& k,
                                              const xtape::kernels::ConvEpilogue& ep, int threads) {
  const std::size_t conv_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout);
  const std::size_t pooled_size =
      static_cast<std::size_t>(pool.n * pool.out_h * pool.out_w * pool.c);
  std::vector<float> y(conv_size), pooled(pooled_size), pooled_fused(pooled_size);
  std::vector<std::int32_t> argmax(pooled_size), argmax_fused(pooled_size);
  xtape::kernels::conv2d_forward(g, x.data(), k.data(), y.data(), ep);
  xtape::kernels::max_pool2d_forward(pool, y.data(), pooled.data(), argmax.data());
  xtape::kernels::conv2d_max_pool2d_forward(g, x.data(), k.data(), ep, pool, pooled_fused.data(),
                                            argmax_fused.data());
  BOOST_TEST(std::memcmp(pooled.data(), pooled_fused.data(), pooled_size * sizeof(float)) == 0,
             "fused forward n=" << g.n << " cin=" << g.cin << " cout=" << g.cout
                                << " relu=" << ep.relu << " threads=" << threads);
  BOOST_TEST(argmax == argmax_fused);
  return argmax;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_conv)

BOOST_AUTO_TEST_CASE(huge_dilations_use_bounded_scratch) {
  // 'same' padding with a dilation far beyond the image: most taps of every pixel lie in the
  // padding. Thin patches (cin = 1) used to gather each border pixel into a zeroed window laid
  // out like the input (1.9 GB for dilation 10^7; for 2^30 the allocation threw inside an
  // OpenMP region, which aborts the process).
  for (std::int64_t dil :
       {std::int64_t{10'000'000}, std::int64_t{1} << 30, std::int64_t{2147483647}})
    for (std::int64_t cin : {1, 3}) {
      xtape::kernels::release_scratch();
      check_spec({2, 5, 5, cin, 3, 3, 16, 1, dil, true}, 77);
      BOOST_TEST(xtape::kernels::scratch_bytes() < (std::size_t{8} << 20),
                 "dilation " << dil << ", cin " << cin);
    }
  // A dilation that keeps the window small enough for the in-place path (border pixels).
  check_spec({1, 9, 40, 1, 3, 3, 16, 1, 6, true}, 78);
  check_spec({2, 12, 10, 1, 2, 5, 20, 2, 3, true}, 79);
}

BOOST_AUTO_TEST_CASE(zero_input_channels_give_zeros) {
  // Sums of no terms: every output is 0 (the small-patch path indexed its offsets at -1).
  for (std::int64_t cout : {1, 16, 40})
    for (bool same : {false, true}) {
      check_spec({2, 5, 6, 0, 3, 3, cout, 1, 1, same}, 80);
      check_spec({1, 7, 7, 0, 1, 1, cout, 1, 1, same}, 81);
    }
}

BOOST_AUTO_TEST_CASE(exceptions_in_a_parallel_region_reach_the_caller) {
  // Leaving an OpenMP region by an exception calls std::terminate; RegionErrors carries the
  // first one out.
  xtape::kernels::detail::RegionErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
  for (int i = 0; i < 256; ++i)
    errors.run([&] {
      if (i == 3) throw std::length_error("body 3");
    });
  try {
    errors.rethrow();
    BOOST_ERROR("rethrow() did not throw");
  } catch (const std::length_error& e) {
    BOOST_TEST(std::string(e.what()) == "body 3");
  }
  xtape::kernels::detail::RegionErrors fine;
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 8; ++i) fine.run([] {});
  fine.rethrow();  // nothing to throw
}

BOOST_AUTO_TEST_CASE(valid_padding_stride_1) {
  check_spec({1, 5, 5, 1, 3, 3, 1, 1, 1, false}, 1);
  check_spec({2, 13, 13, 32, 3, 3, 64, 1, 1, false}, 2);  // the founding model's conv2, batch 2
  check_spec({3, 28, 28, 1, 3, 3, 32, 1, 1, false}, 3);   // conv1
  check_spec({2, 9, 7, 5, 2, 4, 3, 1, 1, false}, 4);      // rectangular kernel, odd channels
}

BOOST_AUTO_TEST_CASE(same_padding_and_strides) {
  std::uint32_t seed = 10;
  for (std::int64_t stride : {1, 2})
    for (bool same : {false, true}) {
      check_spec({2, 10, 11, 3, 3, 3, 7, stride, 1, same}, seed++);
      check_spec({1, 8, 8, 17, 5, 5, 33, stride, 1, same}, seed++);
      check_spec({3, 7, 9, 4, 2, 2, 5, stride, 1, same},
                 seed++);  // even kernel: asymmetric SAME pad
    }
}

BOOST_AUTO_TEST_CASE(dilation) {
  check_spec({2, 12, 12, 3, 3, 3, 4, 1, 2, false}, 30);
  check_spec({2, 12, 11, 3, 3, 3, 4, 1, 2, true}, 31);
  check_spec({1, 15, 15, 6, 3, 2, 9, 2, 2, true}, 32);
}

BOOST_AUTO_TEST_CASE(pointwise_and_conv1d_shapes) {
  check_spec({3, 6, 7, 19, 1, 1, 21, 1, 1, false}, 40);  // 1x1 fast path
  check_spec({2, 6, 7, 8, 1, 1, 5, 2, 1, true}, 41);     // 1x1 with stride: im2col path
  check_spec({4, 1, 50, 6, 1, 5, 10, 1, 1, true}, 42);   // conv1d as h == 1
  check_spec({4, 1, 50, 6, 1, 3, 10, 2, 2, false}, 43);
}

BOOST_AUTO_TEST_CASE(thin_input_small_patches) {
  // Patches of at most 14 values take a dedicated backward_kernel path; cover its column
  // blocks (two vectors, one vector, scalar tail) and the largest patch size.
  check_spec({3, 9, 9, 1, 3, 3, 20, 1, 1, true}, 70);
  check_spec({2, 8, 9, 2, 1, 7, 40, 1, 1, true}, 71);
  check_spec({2, 10, 10, 1, 2, 2, 3, 2, 1, false}, 72);
  check_spec({2, 12, 12, 1, 3, 3, 64, 2, 2, true}, 73);
}

BOOST_AUTO_TEST_CASE(first_layer_patches_read_in_place) {
  // Thin inputs (an RGB image's 3 channels) with padding read their patches from a zero-padded
  // copy of the input, and their kernel gradient takes a kernel of its own (patches of up to 64
  // values, cout a multiple of the vector width): row blocks of 6 and every remainder, column
  // blocks of two vectors and one, strides, dilation, several chunks and partial sums.
  std::uint32_t seed = 80;
  check_spec({2, 16, 16, 3, 3, 3, 32, 1, 1, true}, seed++);   // K = 27
  check_spec({2, 15, 17, 3, 3, 3, 24, 2, 1, true}, seed++);   // pad bottom/right only
  check_spec({2, 14, 13, 4, 3, 3, 8, 1, 1, true}, seed++);    // K = 36
  check_spec({2, 12, 12, 5, 3, 3, 40, 1, 2, true}, seed++);   // K = 45, dilation
  check_spec({2, 11, 12, 2, 5, 5, 16, 1, 1, true}, seed++);   // K = 50
  check_spec({2, 11, 12, 4, 4, 4, 16, 2, 1, true}, seed++);   // K = 64
  check_spec({1, 9, 30, 3, 7, 1, 8, 1, 1, true}, seed++);     // K = 21
  check_spec({20, 32, 32, 3, 3, 3, 32, 1, 1, true}, seed++);  // many chunks and partial sums
}

BOOST_AUTO_TEST_CASE(first_layer_paths_match_sgemm_on_im2col_bitwise) {
  // One chunk of rows and one partial sum: the forward is sgemm(col, kernel) and the kernel
  // gradient sgemm(col^T, grad_output) on the im2col matrix (zeros where patches leave the
  // image), whose bits the in-place paths must give.
  for (const Spec& s :
       {Spec{1, 28, 28, 3, 3, 3, 32, 1, 1, true}, Spec{1, 30, 31, 3, 5, 5, 16, 2, 1, true},
        Spec{1, 20, 20, 2, 3, 3, 24, 1, 2, true}}) {
    const Conv2DGeometry g = geometry(s);
    const std::int64_t M = g.n * g.out_h * g.out_w, K = g.kh * g.kw * g.cin, N = g.cout;
    BOOST_TEST_REQUIRE(M <= 1024);
    const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), 90);
    const auto k = random_vector(static_cast<std::size_t>(K * N), 91);
    const auto go = random_vector(static_cast<std::size_t>(M * N), 92);
    std::vector<float> col(static_cast<std::size_t>(M * K), 0.f);
    for_each_tap(g, [&](std::int64_t o, std::int64_t kk, std::int64_t i) {
      // o = output element (row * N + channel), kk = kernel element (tap * N + channel),
      // i = input element: one (row, tap) pair per output channel; take channel 0's.
      if (o % N == 0 && kk % N == 0) col[static_cast<std::size_t>(o / N * K + kk / N)] = x[i];
    });
    std::vector<float> y_ref(static_cast<std::size_t>(M * N)), gk_ref(k.size());
    xtape::kernels::sgemm(false, false, M, N, K, 1.f, col.data(), K, k.data(), N, 0.f, y_ref.data(),
                          N);
    xtape::kernels::sgemm(true, false, K, N, M, 1.f, col.data(), K, go.data(), N, 0.f,
                          gk_ref.data(), N);
    std::vector<float> y(y_ref.size()), gk(gk_ref.size());
    xtape::kernels::conv2d_forward(g, x.data(), k.data(), y.data());
    xtape::kernels::conv2d_backward_kernel(g, x.data(), go.data(), gk.data());
    BOOST_TEST(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0,
               "forward, cin=" << s.cin << " k=" << s.kh);
    BOOST_TEST(std::memcmp(gk.data(), gk_ref.data(), gk.size() * sizeof(float)) == 0,
               "backward_kernel, cin=" << s.cin << " k=" << s.kh);
  }
  // The fused conv + bias + relu + pool pads each image on its own: the same bits.
  const Conv2DGeometry g = geometry({3, 16, 18, 3, 3, 3, 32, 1, 1, true});
  const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), 93);
  const auto k = random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout), 94);
  const auto bias = random_vector(static_cast<std::size_t>(g.cout), 95);
  check_fused_forward(g, pool_2x2(g), x, k, {bias.data(), true}, xtape::kernels::num_threads());
}

BOOST_AUTO_TEST_CASE(large_batch_many_chunks) {
  // Enough rows for several im2col chunks and backward_kernel partial sums.
  check_spec({24, 13, 13, 32, 3, 3, 64, 1, 1, false}, 50);
  check_spec({40, 28, 28, 1, 3, 3, 32, 1, 1, false}, 51);
}

BOOST_AUTO_TEST_CASE(winograd_shapes) {
  // 3x3 unit-stride kernels with channel counts of whole vectors take Winograd F(2x2, 3x3) in
  // forward and backward_input: odd and even outputs (tiles overhanging the output), 'same'
  // padding (tiles overhanging the input), rectangular images, more inputs than outputs.
  std::uint32_t seed = 80;
  for (const Spec& s :
       {Spec{2, 13, 13, 32, 3, 3, 64, 1, 1, false}, Spec{3, 16, 16, 32, 3, 3, 32, 1, 1, true},
        Spec{2, 12, 10, 32, 3, 3, 96, 1, 1, true}, Spec{1, 15, 11, 64, 3, 3, 32, 1, 1, false},
        Spec{2, 13, 13, 32, 3, 3, 32, 1, 1, true}, Spec{7, 5, 6, 32, 3, 3, 64, 1, 1, true},
        Spec{600, 5, 5, 32, 3, 3, 64, 1, 1, false}}) {  // many images: capped partial sums
    const Conv2DGeometry g = geometry(s);
    BOOST_TEST_REQUIRE(xtape::kernels::winograd::supported(g));
    BOOST_TEST_REQUIRE(
        xtape::kernels::winograd::supported(xtape::kernels::winograd::input_grad_geometry(g)));
    check_spec(s, seed++);
  }
  // Forward only: 16 input channels are a whole vector, but not a whole GEMM tile of outputs
  // for the input gradient.
  const Spec forward_only{3, 16, 16, 16, 3, 3, 32, 1, 1, true};
  BOOST_TEST_REQUIRE(xtape::kernels::winograd::supported(geometry(forward_only)));
  check_spec(forward_only, seed++);
  // Not eligible: strided, dilated, or channels that are not whole vectors.
  BOOST_TEST(
      !xtape::kernels::winograd::supported(geometry({2, 13, 13, 32, 3, 3, 64, 2, 1, false})));
  BOOST_TEST(
      !xtape::kernels::winograd::supported(geometry({2, 13, 13, 32, 3, 3, 64, 1, 2, false})));
  BOOST_TEST(
      !xtape::kernels::winograd::supported(geometry({2, 13, 13, 33, 3, 3, 64, 1, 1, false})));
  BOOST_TEST(
      !xtape::kernels::winograd::supported(geometry({2, 13, 13, 32, 5, 5, 64, 1, 1, false})));
  // Output channels must fill whole register tiles (32 or 64 wide with AVX-512, 16 with AVX2).
  const bool whole_tiles = 48 % xtape::kernels::sgemm_tile_for(48).cols == 0;
  BOOST_TEST(xtape::kernels::winograd::supported(
                 geometry({2, 13, 13, 32, 3, 3, 48, 1, 1, false})) == whole_tiles);
}

BOOST_AUTO_TEST_CASE(winograd_fused_pool_matches_separate_kernels_bitwise) {
  // The fused conv + bias + relu + pool computes each image as conv2d_forward does.
  const int saved = xtape::kernels::num_threads();
  for (const Spec& s :
       {Spec{3, 13, 13, 32, 3, 3, 64, 1, 1, false}, Spec{2, 12, 10, 32, 3, 3, 96, 1, 1, true}}) {
    const Conv2DGeometry g = geometry(s);
    BOOST_TEST_REQUIRE(xtape::kernels::winograd::supported(g));
    const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), 90);
    const auto k = random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout), 91);
    const auto bias = random_vector(static_cast<std::size_t>(g.cout), 92);
    for (int threads : {1, 2}) {
      xtape::kernels::set_num_threads(threads);
      check_fused_forward(g, pool_2x2(g), x, k, {bias.data(), true}, threads);
    }
    xtape::kernels::set_num_threads(saved);
  }
}

BOOST_AUTO_TEST_CASE(both_gradients_in_one_pass_match_separate_kernels_bitwise) {
  // conv2d_backward (one parallel region on the Winograd path: the kernel gradient's parts,
  // then the input gradient's image groups) gives the bits of conv2d_backward_input and
  // conv2d_backward_kernel, on 1 and 2 threads: the founding model's second layer, an odd
  // batch over three partial sums, 'same' padding, and shapes off the Winograd path.
  const int saved = xtape::kernels::num_threads();
  std::uint32_t seed = 300;
  for (const Spec& s :
       {Spec{32, 13, 13, 32, 3, 3, 64, 1, 1, false}, Spec{37, 9, 11, 32, 3, 3, 32, 1, 1, true},
        Spec{5, 16, 16, 64, 3, 3, 64, 1, 1, true}, Spec{3, 12, 12, 16, 3, 3, 32, 1, 1, true},
        Spec{4, 11, 11, 32, 3, 3, 64, 2, 1, false}, Spec{4, 10, 10, 8, 1, 1, 16, 1, 1, false}}) {
    const Conv2DGeometry g = geometry(s);
    const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), seed++);
    const auto k = random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout), seed++);
    const auto go =
        random_vector(static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout), seed++);
    std::vector<float> xs(x.size()), ks(k.size());
    xtape::kernels::set_num_threads(1);
    xtape::kernels::conv2d_backward_input(g, go.data(), k.data(), xs.data());
    xtape::kernels::conv2d_backward_kernel(g, x.data(), go.data(), ks.data());
    for (int threads : {1, 2}) {
      xtape::kernels::set_num_threads(threads);
      std::vector<float> xb(x.size(), NAN), kb(k.size(), NAN);
      xtape::kernels::conv2d_backward(g, x.data(), go.data(), k.data(), xb.data(), kb.data());
      BOOST_TEST(std::memcmp(xs.data(), xb.data(), xs.size() * sizeof(float)) == 0,
                 "input gradient, n=" << s.n << " cin=" << s.cin << " threads=" << threads);
      BOOST_TEST(std::memcmp(ks.data(), kb.data(), ks.size() * sizeof(float)) == 0,
                 "kernel gradient, n=" << s.n << " cin=" << s.cin << " threads=" << threads);
    }
  }
  xtape::kernels::set_num_threads(saved);
}

BOOST_AUTO_TEST_CASE(bitwise_identical_for_1_and_2_threads) {
  // Required of backward_kernel (a reduction over pixels); forward and backward_input get the
  // same guarantee from fixed chunking, checked here too.
  const int saved = xtape::kernels::num_threads();
  for (const Spec& s :
       {Spec{32, 13, 13, 32, 3, 3, 64, 1, 1, false}, Spec{50, 28, 28, 1, 3, 3, 32, 1, 1, false},
        Spec{3, 17, 17, 8, 3, 3, 16, 2, 1, true}, Spec{1, 40, 40, 16, 3, 3, 24, 1, 1, true},
        Spec{600, 5, 5, 32, 3, 3, 64, 1, 1, false},
        // One chunk of rows with a GEMM big enough for a team: patches read in place on one
        // thread, im2col and a threaded sgemm on two.
        Spec{1, 14, 14, 64, 5, 5, 128, 1, 1, false},
        // The Conv1D classifier's first layer (below the grain size: serial either way).
        Spec{32, 1, 64, 1, 1, 5, 16, 1, 1, true},
        // An RGB first layer: patches from a zero-padded copy, its own kernel gradient.
        Spec{40, 32, 32, 3, 3, 3, 32, 1, 1, true}}) {
    const Conv2DGeometry g = geometry(s);
    const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), 60);
    const auto k = random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout), 62);
    const auto go = random_vector(static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout), 61);
    std::vector<float> k1(k.size()), k2(k.size()), y1(go.size()), y2(go.size()), x1(x.size()),
        x2(x.size());
    xtape::kernels::set_num_threads(1);
    xtape::kernels::conv2d_backward_kernel(g, x.data(), go.data(), k1.data());
    xtape::kernels::conv2d_forward(g, x.data(), k.data(), y1.data());
    xtape::kernels::conv2d_backward_input(g, go.data(), k.data(), x1.data());
    xtape::kernels::set_num_threads(2);
    xtape::kernels::conv2d_backward_kernel(g, x.data(), go.data(), k2.data());
    xtape::kernels::conv2d_forward(g, x.data(), k.data(), y2.data());
    xtape::kernels::conv2d_backward_input(g, go.data(), k.data(), x2.data());
    BOOST_TEST(
        std::memcmp(k1.data(), k2.data(), k1.size() * sizeof(float)) == 0,
        "conv2d_backward_kernel differs between 1 and 2 threads for n=" << s.n << " cin=" << s.cin);
    BOOST_TEST(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0,
               "conv2d_forward differs between 1 and 2 threads for n=" << s.n << " cin=" << s.cin);
    BOOST_TEST(
        std::memcmp(x1.data(), x2.data(), x1.size() * sizeof(float)) == 0,
        "conv2d_backward_input differs between 1 and 2 threads for n=" << s.n << " cin=" << s.cin);
  }
  xtape::kernels::set_num_threads(saved);
}

// The pooled-gradient paths (a thin layer under a 2x2 max pool) and the fused forward with an
// epilogue and a pool give exactly the bits of the separate kernels, for 1 and 2 threads.
BOOST_AUTO_TEST_CASE(pooled_paths_match_separate_kernels_bitwise) {
  const int saved = xtape::kernels::num_threads();
  for (const Spec& s :
       {Spec{50, 28, 28, 1, 3, 3, 32, 1, 1, false}, Spec{3, 9, 11, 1, 3, 3, 16, 1, 1, true},
        Spec{4, 12, 12, 1, 2, 3, 48, 1, 1, false}, Spec{2, 10, 10, 2, 2, 2, 64, 1, 1, false}}) {
    const Conv2DGeometry g = geometry(s);
    const xtape::kernels::Pool2DGeometry pool = pool_2x2(g);
    BOOST_TEST_REQUIRE(xtape::kernels::conv2d_backward_kernel_pooled_supported(g, pool));
    const auto x = random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin), 70);
    const auto k = random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout), 71);
    const auto bias = random_vector(static_cast<std::size_t>(g.cout), 72);
    const std::size_t conv_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout);
    const std::size_t pooled_size =
        static_cast<std::size_t>(pool.n * pool.out_h * pool.out_w * pool.c);
    for (bool relu : {false, true}) {
      const std::vector<std::int32_t> argmax =
          check_fused_forward(g, pool, x, k, {bias.data(), relu}, saved);
      auto go = random_vector(pooled_size, 73);
      for (std::size_t i = 0; i < pooled_size; i += 29) go[i] = -0.f;
      std::vector<float> dense(conv_size), k_dense(k.size()), sums_dense(bias.size(), 0.f);
      xtape::kernels::max_pool2d_backward(pool, go.data(), argmax.data(), dense.data());
      xtape::kernels::conv2d_backward_kernel(g, x.data(), dense.data(), k_dense.data());
      xtape::kernels::add_column_sums(conv_size / bias.size(), bias.size(), dense.data(),
                                      sums_dense.data());
      for (int threads : {1, 2}) {
        xtape::kernels::set_num_threads(threads);
        std::vector<float> k_pooled(k.size()), sums_pooled(bias.size(), 0.f);
        xtape::kernels::conv2d_backward_kernel_pooled(g, x.data(), pool, go.data(), argmax.data(),
                                                      k_pooled.data());
        xtape::kernels::add_column_sums_pooled(pool, go.data(), argmax.data(), sums_pooled.data());
        BOOST_TEST(std::memcmp(k_pooled.data(), k_dense.data(), k.size() * sizeof(float)) == 0,
                   "backward_kernel n=" << s.n << " cout=" << s.cout << " threads=" << threads);
        BOOST_TEST(
            std::memcmp(sums_pooled.data(), sums_dense.data(), bias.size() * sizeof(float)) == 0,
            "column sums n=" << s.n << " cout=" << s.cout << " threads=" << threads);
      }
      xtape::kernels::set_num_threads(saved);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
