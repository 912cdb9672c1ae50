// Tests for kernels/pool.hpp: max and average pooling against direct loops.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/pool.hpp"

namespace {

using xtape::kernels::Pool2DGeometry;

struct Spec {
  std::int64_t n, h, w, c, pool, stride;
  bool same;
};

Pool2DGeometry geometry(const Spec& s) {
  Pool2DGeometry g;
  g.n = s.n, g.h = s.h, g.w = s.w, g.c = s.c;
  g.pool_h = g.pool_w = s.pool;
  g.stride_h = g.stride_w = s.stride;
  auto axis = [&](std::int64_t in, std::int64_t& out, std::int64_t& pad) {
    if (s.same) {
      out = (in + s.stride - 1) / s.stride;
      pad = std::max<std::int64_t>(0, (out - 1) * s.stride + s.pool - in) / 2;
    } else {
      out = (in - s.pool) / s.stride + 1;
      pad = 0;
    }
  };
  axis(s.h, g.out_h, g.pad_top);
  axis(s.w, g.out_w, g.pad_left);
  return g;
}

// Distinct values (a shuffled ramp) so the max is unique, plus deliberate ties in image 0,
// channel 0 (all equal) to check that the first maximum in window order wins.
std::vector<float> pool_input(const Pool2DGeometry& g, std::uint32_t seed) {
  const std::size_t size = static_cast<std::size_t>(g.n * g.h * g.w * g.c);
  std::vector<float> v(size);
  for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<float>(i) * 0.01f - 3.f;
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  for (std::int64_t p = 0; p < g.h * g.w; ++p) v[static_cast<std::size_t>(p * g.c)] = 1.5f;
  return v;
}

// Calls f(output index, input index) for every valid (output, window position) pair, in
// row-major window order.
template <class F>
void for_each_window(const Pool2DGeometry& g, F&& f) {
  for (std::int64_t b = 0; b < g.n; ++b)
    for (std::int64_t oy = 0; oy < g.out_h; ++oy)
      for (std::int64_t ox = 0; ox < g.out_w; ++ox)
        for (std::int64_t ch = 0; ch < g.c; ++ch)
          for (std::int64_t py = 0; py < g.pool_h; ++py)
            for (std::int64_t px = 0; px < g.pool_w; ++px) {
              const std::int64_t iy = oy * g.stride_h - g.pad_top + py,
                                 ix = ox * g.stride_w - g.pad_left + px;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              f(((b * g.out_h + oy) * g.out_w + ox) * g.c + ch,
                ((b * g.h + iy) * g.w + ix) * g.c + ch);
            }
}

std::string describe(const Spec& s) {
  return "n=" + std::to_string(s.n) + " h=" + std::to_string(s.h) + " w=" + std::to_string(s.w) +
         " c=" + std::to_string(s.c) + " pool=" + std::to_string(s.pool) +
         " stride=" + std::to_string(s.stride) + (s.same ? " same" : " valid");
}

void check_max(const Spec& s, std::uint32_t seed) {
  const Pool2DGeometry g = geometry(s);
  const auto x = pool_input(g, seed);
  const std::size_t out_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.c);
  std::vector<float> ref(out_size, -INFINITY);
  std::vector<std::int32_t> ref_arg(out_size, -1);
  for_each_window(g, [&](std::int64_t o, std::int64_t i) {
    if (x[i] > ref[o]) ref[o] = x[i], ref_arg[o] = static_cast<std::int32_t>(i);
  });
  std::vector<float> y(out_size, NAN);
  std::vector<std::int32_t> arg(out_size, -7);
  xtape::kernels::max_pool2d_forward(g, x.data(), y.data(), arg.data());
  BOOST_TEST(y == ref, "max_pool2d_forward values " << describe(s));
  BOOST_TEST(arg == ref_arg, "max_pool2d_forward argmax " << describe(s));
  std::vector<float> y2(out_size, NAN);
  xtape::kernels::max_pool2d_forward(g, x.data(), y2.data(), nullptr);  // argmax optional
  BOOST_TEST(y2 == ref, "max_pool2d_forward without argmax " << describe(s));

  // Backward: scatter-add of the output gradient at the argmax (exact: few small integers).
  std::vector<float> go(out_size);
  for (std::size_t i = 0; i < out_size; ++i) go[i] = static_cast<float>(i % 7) - 3.f;
  std::vector<float> gx_ref(x.size(), 0.f), gx(x.size(), NAN);
  for (std::size_t o = 0; o < out_size; ++o) gx_ref[static_cast<std::size_t>(ref_arg[o])] += go[o];
  xtape::kernels::max_pool2d_backward(g, go.data(), arg.data(), gx.data());
  BOOST_TEST(gx == gx_ref, "max_pool2d_backward " << describe(s));
}

void check_avg(const Spec& s, std::uint32_t seed) {
  const Pool2DGeometry g = geometry(s);
  const auto x = pool_input(g, seed);
  const std::size_t out_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.c);
  std::vector<double> sum(out_size, 0.0), count(out_size, 0.0);
  for_each_window(g, [&](std::int64_t o, std::int64_t i) { sum[o] += x[i], count[o] += 1; });
  std::vector<float> y(out_size, NAN);
  xtape::kernels::avg_pool2d_forward(g, x.data(), y.data());
  std::int64_t bad = 0;
  for (std::size_t o = 0; o < out_size; ++o)
    if (!(std::abs(y[o] - sum[o] / count[o]) <= 1e-5 * (1 + std::abs(sum[o] / count[o])))) ++bad;
  BOOST_TEST(bad == 0, "avg_pool2d_forward " << describe(s) << ": " << bad << " off");

  std::vector<float> go(out_size);
  for (std::size_t i = 0; i < out_size; ++i) go[i] = static_cast<float>(i % 5) - 2.f;
  std::vector<double> gx_ref(x.size(), 0.0);
  for_each_window(g, [&](std::int64_t o, std::int64_t i) { gx_ref[i] += go[o] / count[o]; });
  std::vector<float> gx(x.size(), NAN);
  xtape::kernels::avg_pool2d_backward(g, go.data(), gx.data());
  bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(gx[i] - gx_ref[i]) <= 1e-5 * (1 + std::abs(gx_ref[i])))) ++bad;
  BOOST_TEST(bad == 0, "avg_pool2d_backward " << describe(s) << ": " << bad << " off");
}

const Spec specs[] = {{1, 4, 4, 1, 2, 2, false},
                      {2, 26, 26, 32, 2, 2, false},  // the founding model's pool
                      {3, 7, 9, 5, 2, 2, false},
                      {2, 7, 9, 5, 2, 2, true},
                      {2, 7, 7, 19, 3, 1, true},
                      {2, 8, 6, 33, 3, 2, true},
                      {1, 5, 5, 16, 3, 3, true},
                      {2, 10, 10, 3, 3, 2, false},
                      {4, 1, 20, 7, 1, 1, false},
                      {2, 11, 11, 17, 5, 3, true},
                      // 2x2 / stride-2 fast path with odd extents (uncovered last row and column),
                      // as the founding model's second pool, and with an odd width only.
                      {2, 11, 11, 64, 2, 2, false},
                      {3, 8, 9, 16, 2, 2, false}};

}  // namespace

BOOST_AUTO_TEST_SUITE(kernels_pool)

BOOST_AUTO_TEST_CASE(max_pool_matches_reference) {
  std::uint32_t seed = 1;
  for (const Spec& s : specs) check_max(s, seed++);
}

BOOST_AUTO_TEST_CASE(avg_pool_matches_reference) {
  std::uint32_t seed = 100;
  for (const Spec& s : specs) check_avg(s, seed++);
}

BOOST_AUTO_TEST_CASE(max_pool_large_batch_parallel) {
  check_max({64, 26, 26, 32, 2, 2, false}, 200);
  check_avg({64, 26, 26, 32, 2, 2, true}, 201);
}

// The pooled relu mask, scattered, gives exactly the bits of relu_backward on the scattered
// gradient, on gradients with signed zeros, and with NaNs among relu's outputs (the max pool
// picks them, and relu passes their gradient).
BOOST_AUTO_TEST_CASE(pooled_relu_mask_matches_relu_backward_bitwise) {
  const Spec mask_specs[] = {
      {64, 26, 26, 32, 2, 2, false},  // parallel
      {2, 11, 11, 64, 2, 2, false},   // odd extents
      {2, 7, 9, 5, 2, 2, false},      // channels not a multiple of the SIMD width
      {2, 7, 7, 19, 3, 1, true}};     // overlapping windows: scatter-add of several gradients
  std::uint32_t seed = 300;
  for (bool nans : {false, true})
    for (const Spec& s : mask_specs) {
      const Pool2DGeometry g = geometry(s);
      auto x = pool_input(g, seed++);
      if (nans)
        for (std::size_t i = 5; i < x.size(); i += 23) x[i] = NAN;
      const std::size_t out_size = static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.c);
      std::vector<float> y(out_size);
      std::vector<std::int32_t> arg(out_size);
      xtape::kernels::max_pool2d_forward(g, x.data(), y.data(), arg.data());
      std::mt19937 gen(seed);
      std::uniform_real_distribution<float> dist(-1.f, 1.f);
      std::vector<float> go(out_size);
      for (float& v : go) v = dist(gen) * 1e-3f;
      for (std::size_t i = 0; i < out_size; i += 37) go[i] = -0.f;
      std::vector<float> gx(x.size(), NAN), relu_ref(x.size()), masked(out_size),
          relu_fused(x.size(), NAN);
      xtape::kernels::max_pool2d_backward(g, go.data(), arg.data(), gx.data());
      // The pool input plays relu's output (about half of it positive).
      xtape::kernels::relu_backward(x.size(), x.data(), gx.data(), relu_ref.data());
      xtape::kernels::max_pool2d_mask_positive(static_cast<std::int64_t>(out_size), go.data(),
                                               arg.data(), x.data(), masked.data());
      xtape::kernels::max_pool2d_backward(g, masked.data(), arg.data(), relu_fused.data());
      BOOST_TEST(std::memcmp(relu_fused.data(), relu_ref.data(), x.size() * sizeof(float)) == 0,
                 "relu " << describe(s) << (nans ? " with NaNs" : ""));
      // The same mask from the pooled values (no gathers from the pool's input).
      std::vector<float> masked_pooled(out_size, NAN), relu_pooled(x.size(), NAN);
      xtape::kernels::max_pool2d_mask_positive_pooled(static_cast<std::int64_t>(out_size),
                                                      go.data(), y.data(), masked_pooled.data());
      xtape::kernels::max_pool2d_backward(g, masked_pooled.data(), arg.data(), relu_pooled.data());
      BOOST_TEST(std::memcmp(relu_pooled.data(), relu_ref.data(), x.size() * sizeof(float)) == 0,
                 "relu from pooled values " << describe(s) << (nans ? " with NaNs" : ""));
    }
}

BOOST_AUTO_TEST_SUITE_END()
