// Tests for autodiff/ops/normalization.cpp: fused_moments against moments and a double
// reference, on the one-pass paths (channels last, channels inside, trailing axes) and the
// fallback; scale_shift against x * scale + shift; layer_normalization and group_normalization
// against double reference loops and the composition of ops they replace; gradients (first and
// second order) by finite differences; NaN; the same bits on 1 and 2 threads.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "autodiff/ops.hpp"
#include "autodiff/ops_normalization.hpp"
#include "kernels/threads.hpp"
#include "support/gradcheck.hpp"
#include "support/thread_bits.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;
using xtape::testing::random_tensor;

namespace {

// Mean and population variance over `axes` in double, with keepdims.
std::pair<std::vector<double>, std::vector<double>> reference_moments(
    const Tensor& x, const std::vector<int>& axes) {
  const Shape& s = x.shape();
  Shape ks = s;
  for (int a : axes) ks[static_cast<std::size_t>(a)] = 1;
  std::vector<double> sum(shape_size(ks), 0.0), sq(shape_size(ks), 0.0);
  std::vector<std::size_t> idx(s.size(), 0);
  double count = 1;
  for (int a : axes) count *= static_cast<double>(s[static_cast<std::size_t>(a)]);
  for (std::size_t flat = 0; flat < x.size(); ++flat) {
    std::size_t k = 0;
    for (std::size_t d = 0; d < s.size(); ++d) k = k * ks[d] + (ks[d] == 1 ? 0 : idx[d]);
    const double v = x.data()[flat];
    sum[k] += v;
    sq[k] += v * v;
    for (std::size_t d = s.size(); d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  std::vector<double> m(sum.size()), var(sum.size());
  for (std::size_t i = 0; i < sum.size(); ++i) {
    m[i] = sum[i] / count;
    var[i] = sq[i] / count - m[i] * m[i];
  }
  return {m, var};
}

// Normalization of x viewed as (outer, mid, groups, cg), statistics per (outer, group) over mid
// and cg, in double; then times gamma[g * cg + j] plus beta (empty: absent). Layer
// normalization is mid = 1, groups = 1; group normalization channels last is outer = n.
std::vector<double> reference_normalization(const Tensor& x, std::size_t outer, std::size_t mid,
                                            std::size_t groups, std::size_t cg,
                                            const std::vector<float>& gamma,
                                            const std::vector<float>& beta, double epsilon) {
  const float* v = x.data();
  std::vector<double> y(x.size());
  const std::size_t c = groups * cg;
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t g = 0; g < groups; ++g) {
      auto at = [&](std::size_t m, std::size_t j) { return (o * mid + m) * c + g * cg + j; };
      double s = 0.0;
      for (std::size_t m = 0; m < mid; ++m)
        for (std::size_t j = 0; j < cg; ++j) s += v[at(m, j)];
      const double mean = s / static_cast<double>(mid * cg);
      double q = 0.0;
      for (std::size_t m = 0; m < mid; ++m)
        for (std::size_t j = 0; j < cg; ++j) q += (v[at(m, j)] - mean) * (v[at(m, j)] - mean);
      const double rstd = 1.0 / std::sqrt(q / static_cast<double>(mid * cg) + epsilon);
      for (std::size_t m = 0; m < mid; ++m)
        for (std::size_t j = 0; j < cg; ++j) {
          const std::size_t k = g * cg + j;
          double r = (v[at(m, j)] - mean) * rstd;
          if (!gamma.empty()) r *= gamma[k];
          if (!beta.empty()) r += beta[k];
          y[at(m, j)] = r;
        }
    }
  return y;
}

// The composition the normalization layers used before their kernels: fused_moments over
// `axes` of x viewed as `view`, scale_shift by rstd, then gamma and beta (shaped `wview`).
Tensor composed_reference(const Tensor& x, const std::vector<long>& view,
                          const std::vector<int>& axes, const Tensor& gamma, const Tensor& beta,
                          const std::vector<long>& wview, float epsilon) {
  const Tensor xv = reshape(x, view);
  const auto st = fused_moments(xv, axes, true);
  const Tensor inv = 1.f / sqrt(st.second + epsilon);
  Tensor y = scale_shift(xv, inv, -(st.first * inv));
  if (gamma.defined()) y = y * reshape(gamma, wview);
  if (beta.defined()) y = y + reshape(beta, wview);
  return reshape(y, std::vector<long>(x.shape().begin(), x.shape().end()));
}

std::vector<float> values(const Tensor& t) {
  return t.defined() ? t.to_vector() : std::vector<float>{};
}

// Checks that two tensors hold the same values to atol + rtol |b|.
void check_close(const std::string& label, const Tensor& a, const Tensor& b, double rtol,
                 double atol) {
  BOOST_TEST_CONTEXT(label) {
    BOOST_TEST((a.shape() == b.shape()));
    const std::vector<float> av = a.to_vector(), bv = b.to_vector();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < av.size() && i < bv.size(); ++i)
      if (!(std::abs(av[i] - bv[i]) <= atol + rtol * std::abs(bv[i]))) ++bad;
    BOOST_TEST(bad == 0u);
  }
}

using xtape::testing::check_thread_independent;

}  // namespace

BOOST_AUTO_TEST_SUITE(normalization_ops)

BOOST_AUTO_TEST_CASE(fused_moments_values) {
  Rng rng(31);
  // Offset inputs: a mean far from 0 is where a float one-pass variance would lose digits.
  const Tensor x = random_tensor({6, 5, 4, 3}, rng, 9.f, 11.f);
  const std::vector<std::vector<int>> cases = {{0, 1, 2}, {0, 2, 3},    {1, 2, 3}, {3},
                                               {2, 3},    {0, 1, 2, 3}, {0, 2},    {1, 3}};
  for (const auto& axes : cases) {
    std::string label = "fused_moments axes";
    for (int a : axes) label += " " + std::to_string(a);
    const auto [m, v] = fused_moments(x, axes, true);
    const auto [rm, rv] = reference_moments(x, axes);
    Shape ks = x.shape();
    for (int a : axes) ks[static_cast<std::size_t>(a)] = 1;
    check_values(label + " mean", m, ks, rm, 1e-6, 1e-6);
    check_values(label + " variance", v, ks, rv, 1e-4, 1e-6);
  }
  // Without keepdims: the reduced axes drop, as moments().
  const auto [m2, v2] = fused_moments(x, {0, 1, 2});
  BOOST_TEST((m2.shape() == Shape{3}));
  BOOST_TEST((v2.shape() == Shape{3}));
  const auto [m3, v3] = fused_moments(x, {-1});
  BOOST_TEST((m3.shape() == Shape{6, 5, 4}));
  // A large channels-last input (the blocked, multi-threaded path).
  const Tensor big = random_tensor({512, 96}, rng, -2.f, 3.f);
  const auto [mb, vb] = fused_moments(big, {0}, true);
  const auto [rmb, rvb] = reference_moments(big, {0});
  check_values("fused_moments large mean", mb, {1, 96}, rmb, 1e-6, 1e-6);
  check_values("fused_moments large variance", vb, {1, 96}, rvb, 1e-5, 1e-6);
  check_throws<std::invalid_argument>("fused_moments axis", [&] { fused_moments(x, {4}); },
                                      {"fused_moments", "axis 4"});
}

BOOST_AUTO_TEST_CASE(fused_moments_gradients) {
  Rng rng(32);
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{0, 1}, {0, 2}, {2}, {1}}) {
    gradcheck("fused_moments mean+var",
              [axes](const std::vector<Tensor>& in) {
                const auto st = fused_moments(in[0], axes, true);
                return st.first * 3.f + st.second;
              },
              {random_tensor({4, 3, 5}, rng)});
  }
  gradcheck("fused_moments variance only",
            [](const std::vector<Tensor>& in) { return fused_moments(in[0], {0}).second; },
            {random_tensor({7, 4}, rng)});
  gradcheck("fused_moments large",
            [](const std::vector<Tensor>& in) {
              const auto st = fused_moments(in[0], {0, 1}, true);
              return st.first + st.second;
            },
            {random_tensor({16, 10, 8}, rng)});
}

BOOST_AUTO_TEST_CASE(scale_shift_values_and_gradients) {
  Rng rng(33);
  const Tensor x = random_tensor({4, 3, 5}, rng);
  const std::vector<Shape> shapes = {
      {5},    {1, 1, 5}, {3, 1},    {1, 3, 1}, {4, 1, 1},
      {3, 5}, {},        {4, 3, 5}, {4, 1, 5}};  // the last one takes the composition
  for (const Shape& s : shapes) {
    const Tensor a = random_tensor(s, rng), b = random_tensor(s, rng);
    const Tensor expected = x * a + b;
    std::vector<double> ref(expected.size());
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = expected.data()[i];
    check_values("scale_shift " + shape_str(s), scale_shift(x, a, b), x.shape(), ref, 1e-6, 1e-6);
    gradcheck("scale_shift " + shape_str(s),
              [](const std::vector<Tensor>& in) { return scale_shift(in[0], in[1], in[2]); },
              {x, a, b});
  }
  check_throws<std::invalid_argument>("scale_shift shapes differ",
                                      [&] {
                                        scale_shift(x, Tensor({5}, 1.f), Tensor({1, 5}, 1.f));
                                      },
                                      {"scale_shift", "(5,)", "(1, 5)"});
  check_throws<std::invalid_argument>(
      "scale_shift broadcast",
      [&] {
        scale_shift(x, Tensor({2, 4, 3, 5}, 1.f), Tensor({2, 4, 3, 5}, 1.f));
      },
      {"scale_shift"});
}

BOOST_AUTO_TEST_CASE(layer_normalization_values) {
  Rng rng(41);
  // Offset inputs (mean far from 0), trailing blocks of one and two axes, rows of lengths that
  // exercise the vector body, the tail and several float chunks.
  struct Case {
    Shape shape;
    int axis;
  };
  for (const Case& c : std::vector<Case>{{{6, 5, 7}, -1},
                                         {{6, 5, 7}, 1},
                                         {{3, 64}, -1},
                                         {{2, 1500}, 1},
                                         {{4, 3, 2, 8}, 2},
                                         {{5, 1}, 1}}) {
    const Tensor x = random_tensor(c.shape, rng, 9.f, 11.f);
    const int a = c.axis < 0 ? c.axis + static_cast<int>(c.shape.size()) : c.axis;
    const Shape ws(c.shape.begin() + a, c.shape.end());
    const std::size_t f = shape_size(ws), rows = x.size() / f;
    const Tensor gamma = random_tensor(ws, rng, 0.5f, 1.5f), beta = random_tensor(ws, rng);
    const std::string label =
        "layer_normalization " + shape_str(c.shape) + " axis " + std::to_string(c.axis);
    for (int w = 0; w < 4; ++w) {
      const Tensor g = w & 1 ? gamma : Tensor(), b = w & 2 ? beta : Tensor();
      const Tensor y = layer_normalization(x, c.axis, g, b, 1e-3f);
      check_values(label + " weights " + std::to_string(w), y, c.shape,
                   reference_normalization(x, rows, 1, 1, f, values(g), values(b), 1e-3), 2e-5,
                   2e-5);
    }
  }
  check_throws<std::invalid_argument>(
      "layer_normalization axis",
      [] {
        layer_normalization(Tensor({2, 3}, 1.f), 2, Tensor(), Tensor(), 1e-3f);
      },
      {"layer_normalization", "axis 2", "(2, 3)"});
  check_throws<std::invalid_argument>(
      "layer_normalization gamma",
      [] {
        layer_normalization(Tensor({2, 3}, 1.f), 1, Tensor({2}, 1.f), Tensor(), 1e-3f);
      },
      {"layer_normalization", "gamma", "(2,)", "(3,)"});
  check_throws<std::invalid_argument>(
      "layer_normalization epsilon",
      [] {
        layer_normalization(Tensor({2, 3}, 1.f), 1, Tensor(), Tensor(), -1.f);
      },
      {"layer_normalization", "epsilon"});
}

BOOST_AUTO_TEST_CASE(layer_normalization_against_the_composition) {
  // Values and every gradient against the composition of fused_moments and scale_shift that
  // LayerNormalization ran before (to 1e-6-ish: different roundings, same function).
  Rng rng(42);
  const Tensor x0 = random_tensor({8, 6, 40}, rng, -3.f, 5.f);
  const Tensor g0 = random_tensor({6, 40}, rng, 0.5f, 1.5f), b0 = random_tensor({6, 40}, rng);
  const Tensor w = random_tensor({8, 6, 40}, rng);
  auto run = [&](bool kernel) {
    Tensor x = x0.clone().set_requires_grad(true), g = g0.clone().set_requires_grad(true),
           b = b0.clone().set_requires_grad(true);
    const Tensor y = kernel ? layer_normalization(x, 1, g, b, 1e-3f)
                            : composed_reference(x, {8, 240}, {1}, g, b, {240}, 1e-3f);
    sum(y * w).backward();
    return std::vector<Tensor>{y, x.grad(), g.grad(), b.grad()};
  };
  const auto k = run(true), r = run(false);
  const char* names[] = {"y", "dx", "dgamma", "dbeta"};
  for (std::size_t i = 0; i < k.size(); ++i)
    check_close(std::string("layer_normalization vs composition ") + names[i], k[i], r[i], 1e-5,
                2e-6);
}

BOOST_AUTO_TEST_CASE(layer_normalization_gradients) {
  Rng rng(43);
  const Tensor x = random_tensor({3, 4, 5}, rng, -2.f, 2.f);
  const Tensor g = random_tensor({5}, rng, 0.5f, 1.5f), b = random_tensor({5}, rng);
  gradcheck("layer_normalization x, gamma, beta",
            [](const std::vector<Tensor>& in) {
              return layer_normalization(in[0], -1, in[1], in[2], 1e-3f);
            },
            {x, g, b});
  gradcheck("layer_normalization two axes, no weights",
            [](const std::vector<Tensor>& in) {
              return layer_normalization(in[0], 1, Tensor(), Tensor(), 1e-3f);
            },
            {x});
  gradcheck("layer_normalization gamma only",
            [](const std::vector<Tensor>& in) {
              return layer_normalization(in[0], 2, in[1], Tensor(), 1e-3f);
            },
            {x, g});
  gradgradcheck("layer_normalization x, gamma, beta",
                [](const std::vector<Tensor>& in) {
                  return layer_normalization(in[0], -1, in[1], in[2], 1e-3f);
                },
                {x, g, b});
  gradgradcheck("layer_normalization beta only",
                [](const std::vector<Tensor>& in) {
                  return layer_normalization(in[0], 1, Tensor(), in[1], 1e-3f);
                },
                {x, random_tensor({4, 5}, rng)});
}

BOOST_AUTO_TEST_CASE(layer_normalization_nan_and_threads) {
  // NaN in a row makes that row's outputs and input gradients NaN, and no other row's.
  Rng rng(44);
  std::vector<float> v = random_tensor({4, 37}, rng).to_vector();
  v[2 * 37 + 5] = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor({4, 37}, v).set_requires_grad(true);
  const Tensor gamma = random_tensor({37}, rng), beta = random_tensor({37}, rng);
  const Tensor y = layer_normalization(x, 1, gamma, beta, 1e-3f);
  sum(y * random_tensor({4, 37}, rng)).backward();
  const std::vector<float> yv = y.to_vector(), dx = x.grad().to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) {
    const bool nan_row = i / 37 == 2;
    BOOST_TEST(std::isnan(yv[i]) == nan_row);
    BOOST_TEST(std::isnan(dx[i]) == nan_row);
  }
  // Large enough for a parallel region on 2 threads.
  const Tensor bx = random_tensor({512, 300}, rng, -1.f, 3.f), bw = random_tensor({512, 300}, rng);
  const Tensor bg = random_tensor({300}, rng), bb = random_tensor({300}, rng);
  check_thread_independent("layer_normalization", [&] {
    Tensor xx = bx.clone().set_requires_grad(true), g = bg.clone().set_requires_grad(true),
           b = bb.clone().set_requires_grad(true);
    const Tensor out = layer_normalization(xx, 1, g, b, 1e-3f);
    sum(out * bw).backward();
    return std::vector<Tensor>{out, xx.grad(), g.grad(), b.grad()};
  });
}

BOOST_AUTO_TEST_CASE(group_normalization_values) {
  Rng rng(45);
  struct Case {
    Shape shape;
    int groups;
  };
  for (const Case& c : std::vector<Case>{
           {{2, 5, 6, 8}, 4}, {{3, 7, 6}, 1}, {{3, 7, 6}, 6}, {{4, 12}, 3}, {{2, 40, 30, 3}, 3}}) {
    const Tensor x = random_tensor(c.shape, rng, 9.f, 11.f);
    const std::size_t ch = c.shape.back(), n = c.shape[0],
                      groups = static_cast<std::size_t>(c.groups);
    const std::size_t mid = x.size() / (n * ch);
    const Tensor gamma = random_tensor({ch}, rng, 0.5f, 1.5f), beta = random_tensor({ch}, rng);
    const std::string label =
        "group_normalization " + shape_str(c.shape) + " groups " + std::to_string(c.groups);
    for (int w = 0; w < 4; ++w) {
      const Tensor g = w & 1 ? gamma : Tensor(), b = w & 2 ? beta : Tensor();
      const Tensor y = group_normalization(x, c.groups, g, b, 1e-3f);
      check_values(
          label + " weights " + std::to_string(w), y, c.shape,
          reference_normalization(x, n, mid, groups, ch / groups, values(g), values(b), 1e-3), 2e-5,
          2e-5);
    }
  }
  check_throws<std::invalid_argument>(
      "group_normalization groups",
      [] {
        group_normalization(Tensor({2, 3, 6}, 1.f), 4, Tensor(), Tensor(), 1e-3f);
      },
      {"group_normalization", "4 groups", "6 channels", "(2, 3, 6)"});
  check_throws<std::invalid_argument>(
      "group_normalization rank",
      [] { group_normalization(Tensor({6}, 1.f), 2, Tensor(), Tensor(), 1e-3f); },
      {"group_normalization", "rank 2", "(6,)"});
  check_throws<std::invalid_argument>(
      "group_normalization beta",
      [] {
        group_normalization(Tensor({2, 6}, 1.f), 2, Tensor(), Tensor({3}, 0.f), 1e-3f);
      },
      {"group_normalization", "beta", "(3,)", "(6,)"});
}

BOOST_AUTO_TEST_CASE(group_normalization_against_the_composition) {
  // As GroupNormalization computed it before: the groups axis next to the batch axis,
  // fused_moments and scale_shift, transposed back; here through the (n, s, groups, cg) view.
  Rng rng(46);
  const Shape s{4, 9, 7, 12};
  const Tensor x0 = random_tensor(s, rng, -3.f, 5.f), w = random_tensor(s, rng);
  const Tensor g0 = random_tensor({12}, rng, 0.5f, 1.5f), b0 = random_tensor({12}, rng);
  auto run = [&](bool kernel) {
    Tensor x = x0.clone().set_requires_grad(true), g = g0.clone().set_requires_grad(true),
           b = b0.clone().set_requires_grad(true);
    Tensor y;
    if (kernel) {
      y = group_normalization(x, 3, g, b, 1e-3f);
    } else {
      const Tensor t = transpose(reshape(x, {4, 63, 3, 4}), {0, 2, 1, 3});
      const auto st = fused_moments(t, {2, 3}, true);
      const Tensor inv = 1.f / sqrt(st.second + 1e-3f);
      const Tensor yt = transpose(scale_shift(t, inv, -(st.first * inv)), {0, 2, 1, 3});
      y = reshape(yt, {4, 9, 7, 12}) * g + b;
    }
    sum(y * w).backward();
    return std::vector<Tensor>{y, x.grad(), g.grad(), b.grad()};
  };
  const auto k = run(true), r = run(false);
  const char* names[] = {"y", "dx", "dgamma", "dbeta"};
  for (std::size_t i = 0; i < k.size(); ++i)
    check_close(std::string("group_normalization vs composition ") + names[i], k[i], r[i], 1e-5,
                2e-6);
}

BOOST_AUTO_TEST_CASE(group_normalization_gradients) {
  Rng rng(47);
  const Tensor x = random_tensor({2, 3, 4, 6}, rng, -2.f, 2.f);
  const Tensor g = random_tensor({6}, rng, 0.5f, 1.5f), b = random_tensor({6}, rng);
  gradcheck("group_normalization x, gamma, beta",
            [](const std::vector<Tensor>& in) {
              return group_normalization(in[0], 3, in[1], in[2], 1e-3f);
            },
            {x, g, b});
  gradcheck("group_normalization rank 2, no weights",
            [](const std::vector<Tensor>& in) {
              return group_normalization(in[0], 2, Tensor(), Tensor(), 1e-3f);
            },
            {random_tensor({5, 6}, rng)});
  gradgradcheck("group_normalization x, gamma, beta",
                [](const std::vector<Tensor>& in) {
                  return group_normalization(in[0], 2, in[1], in[2], 1e-3f);
                },
                {random_tensor({2, 3, 6}, rng, -2.f, 2.f), g, b});
  gradgradcheck("group_normalization gamma only, one group per channel",
                [](const std::vector<Tensor>& in) {
                  return group_normalization(in[0], 6, in[1], Tensor(), 1e-3f);
                },
                {random_tensor({2, 4, 6}, rng, -2.f, 2.f), g});
}

BOOST_AUTO_TEST_CASE(group_normalization_nan_and_threads) {
  // NaN in one (sample, group) makes exactly that group's outputs and input gradients NaN.
  Rng rng(48);
  const Shape s{3, 5, 8};
  std::vector<float> v = random_tensor(s, rng).to_vector();
  v[(1 * 5 + 3) * 8 + 6] = std::numeric_limits<float>::quiet_NaN();  // sample 1, group 1
  Tensor x = Tensor(s, v).set_requires_grad(true);
  const Tensor y =
      group_normalization(x, 2, random_tensor({8}, rng), random_tensor({8}, rng), 1e-3f);
  sum(y * random_tensor(s, rng)).backward();
  const std::vector<float> yv = y.to_vector(), dx = x.grad().to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) {
    const bool nan_group = i / 40 == 1 && i % 8 >= 4;
    BOOST_TEST(std::isnan(yv[i]) == nan_group);
    BOOST_TEST(std::isnan(dx[i]) == nan_group);
  }
  const Shape bs{4, 48, 48, 32};
  const Tensor bx = random_tensor(bs, rng, -1.f, 3.f), bw = random_tensor(bs, rng);
  const Tensor bg = random_tensor({32}, rng), bb = random_tensor({32}, rng);
  check_thread_independent("group_normalization", [&] {
    Tensor xx = bx.clone().set_requires_grad(true), g = bg.clone().set_requires_grad(true),
           b = bb.clone().set_requires_grad(true);
    const Tensor out = group_normalization(xx, 8, g, b, 1e-3f);
    sum(out * bw).backward();
    return std::vector<Tensor>{out, xx.grad(), g.grad(), b.grad()};
  });
}

BOOST_AUTO_TEST_CASE(layer_and_group_normalization_on_empty_batches) {
  using xtape::testing::check_zero_size;
  check_zero_size("layer_normalization batch 0",
                  [](const std::vector<Tensor>& in) {
                    return layer_normalization(in[0], 1, in[1], in[2], 1e-3f);
                  },
                  {Tensor({0, 5}, 0.f), Tensor({5}, 1.f), Tensor({5}, 0.f)}, {0, 5});
  check_zero_size("group_normalization batch 0",
                  [](const std::vector<Tensor>& in) {
                    return group_normalization(in[0], 2, in[1], in[2], 1e-3f);
                  },
                  {Tensor({0, 3, 4}, 0.f), Tensor({4}, 1.f), Tensor({4}, 0.f)}, {0, 3, 4});
}

BOOST_AUTO_TEST_CASE(batch_normalization_values_and_batch_statistics) {
  // Channels last (inner 1) and channels in the middle (axis 1 of a rank-4 input), with and
  // without weights: y against a double loop, the batch statistics against double moments.
  Rng rng(60);
  for (const int axis : {3, 1}) {
    const Shape s{5, 6, 7, 8};
    const Tensor x = random_tensor(s, rng, -2.f, 4.f);
    const std::size_t c = s[static_cast<std::size_t>(axis)];
    const Tensor gamma = random_tensor({c}, rng, 0.5f, 1.5f), beta = random_tensor({c}, rng);
    std::vector<int> axes;
    for (int i = 0; i < 4; ++i)
      if (i != axis) axes.push_back(i);
    const auto [m, v] = reference_moments(x, axes);
    Tensor bm, bv;
    const Tensor y = batch_normalization(x, axis, gamma, beta, 1e-3f, &bm, &bv);
    check_values("batch mean", bm, {c}, m, 1e-5, 1e-6);
    check_values("batch variance", bv, {c}, v, 1e-5, 1e-6);
    std::vector<double> want(x.size());
    std::size_t inner = 1;
    for (std::size_t d = static_cast<std::size_t>(axis) + 1; d < 4; ++d) inner *= s[d];
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t k = i / inner % c;
      want[i] = (x.data()[i] - m[k]) / std::sqrt(v[k] + 1e-3) * gamma.data()[k] + beta.data()[k];
    }
    check_values("batch_normalization axis " + std::to_string(axis), y, s, want, 1e-5, 1e-5);
    const Tensor plain = batch_normalization(x, axis - 4, Tensor(), Tensor(), 1e-3f);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t k = i / inner % c;
      want[i] = (x.data()[i] - m[k]) / std::sqrt(v[k] + 1e-3);
    }
    check_values("batch_normalization, no weights", plain, s, want, 1e-5, 1e-5);
  }
  const Tensor x = Tensor({2, 3}, 0.f);
  check_throws<std::invalid_argument>("batch_normalization axis",
                                      [&] { batch_normalization(x, 2, Tensor(), Tensor(), 1e-3f); },
                                      {"batch_normalization", "axis 2", "(2, 3)"});
  check_throws<std::invalid_argument>(
      "batch_normalization gamma",
      [&] { batch_normalization(x, 1, Tensor({2}, 1.f), Tensor(), 1e-3f); },
      {"batch_normalization", "gamma", "(2,)", "expected (3,)"});
  check_throws<std::invalid_argument>("batch_normalization epsilon",
                                      [&] { batch_normalization(x, 1, Tensor(), Tensor(), -1.f); },
                                      {"batch_normalization", "epsilon"});
}

BOOST_AUTO_TEST_CASE(batch_normalization_against_the_composition) {
  // As BatchNormalization computed it before: fused_moments then scale_shift, its gradients
  // through both records (and the two input-gradient contributions added).
  Rng rng(61);
  const Shape s{6, 5, 4, 16};
  const Tensor x0 = random_tensor(s, rng, -3.f, 5.f), w = random_tensor(s, rng);
  const Tensor g0 = random_tensor({16}, rng, 0.5f, 1.5f), b0 = random_tensor({16}, rng);
  auto run = [&](bool primitive) {
    Tensor x = x0.clone().set_requires_grad(true), g = g0.clone().set_requires_grad(true),
           b = b0.clone().set_requires_grad(true);
    Tensor y;
    if (primitive) {
      y = batch_normalization(x, -1, g, b, 1e-3f);
    } else {
      const auto st = fused_moments(x, {0, 1, 2}, true);
      const Tensor a = 1.f / sqrt(st.second + 1e-3f) * g;
      y = scale_shift(x, a, b - st.first * a);
    }
    sum(y * w).backward();
    return std::vector<Tensor>{y, x.grad(), g.grad(), b.grad()};
  };
  const auto k = run(true), r = run(false);
  const char* names[] = {"y", "dx", "dgamma", "dbeta"};
  for (std::size_t i = 0; i < k.size(); ++i)
    check_close(std::string("batch_normalization vs composition ") + names[i], k[i], r[i], 1e-4,
                2e-5);
}

BOOST_AUTO_TEST_CASE(batch_normalization_gradients) {
  Rng rng(62);
  const Tensor g = random_tensor({4}, rng, 0.5f, 1.5f), b = random_tensor({4}, rng);
  gradcheck("batch_normalization x, gamma, beta",
            [](const std::vector<Tensor>& in) {
              return batch_normalization(in[0], -1, in[1], in[2], 1e-3f);
            },
            {random_tensor({3, 5, 4}, rng, -2.f, 2.f), g, b});
  gradcheck("batch_normalization axis 1, no weights",
            [](const std::vector<Tensor>& in) {
              return batch_normalization(in[0], 1, Tensor(), Tensor(), 1e-3f);
            },
            {random_tensor({3, 4, 5}, rng, -2.f, 2.f)});
  gradgradcheck("batch_normalization x, gamma, beta",
                [](const std::vector<Tensor>& in) {
                  return batch_normalization(in[0], -1, in[1], in[2], 1e-3f);
                },
                {random_tensor({6, 4}, rng, -2.f, 2.f), g, b});
  gradgradcheck("batch_normalization axis 1, gamma only",
                [](const std::vector<Tensor>& in) {
                  return batch_normalization(in[0], 1, in[1], Tensor(), 1e-3f);
                },
                {random_tensor({3, 4, 2}, rng, -2.f, 2.f), g});
}

BOOST_AUTO_TEST_CASE(batch_normalization_nan_and_threads) {
  // NaN in one channel makes exactly that channel's outputs and input gradients NaN.
  Rng rng(63);
  const Shape s{4, 3, 8};
  std::vector<float> v = random_tensor(s, rng).to_vector();
  v[(2 * 3 + 1) * 8 + 5] = std::numeric_limits<float>::quiet_NaN();  // channel 5
  Tensor x = Tensor(s, v).set_requires_grad(true);
  const Tensor y =
      batch_normalization(x, -1, random_tensor({8}, rng), random_tensor({8}, rng), 1e-3f);
  sum(y * random_tensor(s, rng)).backward();
  const std::vector<float> yv = y.to_vector(), dx = x.grad().to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i) {
    BOOST_TEST(std::isnan(yv[i]) == (i % 8 == 5));
    BOOST_TEST(std::isnan(dx[i]) == (i % 8 == 5));
  }
  const Shape bs{32, 28, 28, 32};
  const Tensor bx = random_tensor(bs, rng, -1.f, 3.f), bw = random_tensor(bs, rng);
  const Tensor bg = random_tensor({32}, rng), bb = random_tensor({32}, rng);
  check_thread_independent("batch_normalization", [&] {
    Tensor xx = bx.clone().set_requires_grad(true), g = bg.clone().set_requires_grad(true),
           b = bb.clone().set_requires_grad(true);
    Tensor m, var;
    const Tensor out = batch_normalization(xx, -1, g, b, 1e-3f, &m, &var);
    sum(out * bw).backward();
    return std::vector<Tensor>{out, m, var, xx.grad(), g.grad(), b.grad()};
  });
  using xtape::testing::check_zero_size;
  check_zero_size("batch_normalization batch 0",
                  [](const std::vector<Tensor>& in) {
                    return batch_normalization(in[0], -1, in[1], in[2], 1e-3f);
                  },
                  {Tensor({0, 3, 4}, 0.f), Tensor({4}, 1.f), Tensor({4}, 0.f)}, {0, 3, 4});
}

BOOST_AUTO_TEST_SUITE_END()
