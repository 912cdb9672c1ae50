// This file is compiled for the baseline x86-64 instruction set (-march=x86-64, see
// test/meson.build) and linked against the library as built (native, or the portable
// variants). It is what a user's program compiled without -march flags sees: every inline
// function and type of the public headers in its baseline form, against the library's
// AVX2/AVX-512 code. A header whose types or inline code depend on the instruction set
// (xt::xarray's aligned allocator did, under XTENSOR_USE_XSIMD) fails here to link, to load,
// or to give the library's values.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "autodiff/xtensor_interop.hpp"
#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

BOOST_AUTO_TEST_SUITE(baseline_isa)

BOOST_AUTO_TEST_CASE(xarray_round_trip_through_the_library) {
  xt::xarray<float> a = {{1.f, -2.f, 3.5f}, {4.f, 0.25f, -6.f}};
  const Tensor t = from_xarray(a);
  BOOST_TEST(t.shape() == (Shape{2, 3}));
  const Tensor doubled = t * 2.f;  // computed by the library's kernels
  const xt::xarray<float> back = to_xarray(doubled);
  BOOST_TEST(back.shape().size() == 2u);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) BOOST_TEST(back(i, j) == 2.f * a(i, j));
}

BOOST_AUTO_TEST_CASE(gradients_and_a_matrix_product) {
  // d sum(x * x) / dx = 2x exactly; a product big enough for the blocked sgemm path, checked
  // element by element against a double-precision loop compiled here.
  Tensor x(Shape{3, 2}, std::vector<float>{1.f, -2.f, 0.5f, 3.f, -1.5f, 4.f});
  x.set_requires_grad();
  sum(x * x).backward();
  const auto g = x.grad().to_vector(), v = x.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i) BOOST_TEST(g[i] == 2.f * v[i]);

  const std::size_t m = 40, k = 70, n = 50;
  std::vector<float> av(m * k), bv(k * n);
  for (std::size_t i = 0; i < av.size(); ++i)
    av[i] = static_cast<float>((i * 7) % 13) / 13.f - 0.5f;
  for (std::size_t i = 0; i < bv.size(); ++i)
    bv[i] = static_cast<float>((i * 5) % 11) / 11.f - 0.5f;
  const Tensor c = matmul(Tensor(Shape{m, k}, av), Tensor(Shape{k, n}, bv));
  const auto cv = c.to_vector();
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double want = 0;
      for (std::size_t p = 0; p < k; ++p) want += double(av[i * k + p]) * double(bv[p * n + j]);
      BOOST_TEST(std::abs(cv[i * n + j] - want) <= 1e-5 * (1.0 + std::abs(want)));
    }
}

BOOST_AUTO_TEST_CASE(a_model_trains_saves_and_loads) {
  clear_session();
  Rng rng(3);
  Tensor x = Tensor::empty({128, 4}), y = Tensor::empty({128, 1});
  {
    std::vector<float> xs(x.size()), ys(y.size());
    for (float& e : xs) e = rng.uniform(-1.f, 1.f);
    for (std::size_t i = 0; i < 128; ++i) ys[i] = xs[i * 4] - 2.f * xs[i * 4 + 1] + 0.5f;
    x.assign(Tensor(Shape{128, 4}, xs));
    y.assign(Tensor(Shape{128, 1}, ys));
  }
  Sequential model({Input({4}),
                    std::make_shared<Dense>(DenseOptions{.units = 16, .activation = "relu"}),
                    std::make_shared<Dense>(DenseOptions{.units = 1})});
  model.compile("mse", "adam");
  const double before = model.evaluate(x, y, {.verbose = 0}).at("loss");
  model.fit(x, y, {.batch_size = 16, .epochs = 60, .verbose = 0});
  const double after = model.evaluate(x, y, {.verbose = 0}).at("loss");
  BOOST_TEST(after < 0.5 * before, "loss " << before << " -> " << after);

  const std::string path = (std::filesystem::temp_directory_path() /
                            ("xtape_baseline_" + std::to_string(getpid()) + ".weights.safetensors"))
                               .string();
  model.save_weights(path);
  const Tensor out = model.predict(x, {.verbose = 0});
  Sequential again({Input({4}),
                    std::make_shared<Dense>(DenseOptions{.units = 16, .activation = "relu"}),
                    std::make_shared<Dense>(DenseOptions{.units = 1})});
  again.load_weights(path);
  std::remove(path.c_str());
  BOOST_TEST(again.predict(x, {.verbose = 0}).to_vector() == out.to_vector());
}

BOOST_AUTO_TEST_SUITE_END()
