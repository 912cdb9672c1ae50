// Tests of layers/parametrize.hpp: a parametrized weight reads as its parametrization's result
// wherever the layer reads it, gradients reach the stored weight through it, the built-in
// parametrizations compute what their papers define, their state is saved with the model and
// restored, and bad uses throw naming the layer and the weight.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "autodiff/ops.hpp"
#include "autodiff/ops_array.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/parametrize.hpp"
#include "models/sequential.hpp"
#include "saving/model_file.hpp"
#include "saving/registry.hpp"
#include "test/support/founding_model.hpp"
#include "test/support/gradcheck.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;
using xtape::testing::random_tensor;
namespace fs = std::filesystem;

namespace {

struct ScratchDir {
  fs::path path;
  ScratchDir() {
    char tmpl[] = "/tmp/xtape-parametrize-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

// The largest singular value of a (rows, cols) row-major matrix, in double: the square root of
// the largest eigenvalue of A^T A by 2000 power iterations from a fixed start.
double largest_singular_value(const std::vector<float>& a, std::size_t rows, std::size_t cols) {
  std::vector<double> x(cols, 1.0), y(rows), z(cols);
  double lambda = 0;
  for (int it = 0; it < 2000; ++it) {
    for (std::size_t r = 0; r < rows; ++r) {
      y[r] = 0;
      for (std::size_t c = 0; c < cols; ++c) y[r] += a[r * cols + c] * x[c];
    }
    double n = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      z[c] = 0;
      for (std::size_t r = 0; r < rows; ++r) z[c] += a[r * cols + c] * y[r];
      n += z[c] * z[c];
    }
    n = std::sqrt(n);
    lambda = n;  // |A^T A x| with |x| = 1 converges to the top eigenvalue
    for (std::size_t c = 0; c < cols; ++c) x[c] = z[c] / n;
  }
  return std::sqrt(lambda);
}

// Reads its kernel twice per call (as the recipe's call() override does).
class ReadsKernelTwice : public Layer {
 public:
  void build(const Shape& in) override {
    add_weight("kernel", {in.back(), 2}, get_initializer("ones"));
  }
  Tensor call(const Tensor& x, bool) override {
    return matmul(x, weight("kernel")) + matmul(x, weight("kernel"));
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_parametrize)

BOOST_AUTO_TEST_CASE(weight_standardization_in_one_line_is_the_founding_recipe) {
  // Same seed, same initial kernel: the recipe's convolution_op override, the parametrization
  // on a plain Conv2D and the built-in StandardizedConv2D give the same bits, forward and back.
  Rng rng(5);
  const Tensor x = random_tensor({2, 9, 9, 3}, rng);
  auto run = [&](Layer& layer) {
    Tensor xin = x.clone().set_requires_grad(true);
    Tensor y = layer(xin, true);
    sum(y * y).backward();
    return std::vector<Tensor>{y.detach(), xin.grad(), layer.stored_weight("kernel").grad(),
                               layer.stored_weight("bias").grad()};
  };
  set_random_seed(21);
  xtape::testing::StandardizedConv2DWithOverride recipe(
      {.filters = 4, .kernel_size = {3, 3}, .activation = "relu"});
  const auto expected = run(recipe);
  set_random_seed(21);
  Conv2D plain({.filters = 4, .kernel_size = {3, 3}, .activation = "relu"});
  parametrize(plain, "kernel", weight_standardization());
  const auto got = run(plain);
  set_random_seed(21);
  StandardizedConv2D builtin({{.filters = 4, .kernel_size = {3, 3}, .activation = "relu"}});
  const auto got_builtin = run(builtin);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST(same_bits(expected[i], got[i]), "parametrized Conv2D, result " << i);
    BOOST_TEST(same_bits(expected[i], got_builtin[i]), "StandardizedConv2D, result " << i);
  }
  // The layer reads the standardized kernel; the optimizer's variable is the stored one.
  const Tensor k = plain.kernel();
  const auto [m, v] = moments(k, {0, 1, 2});
  for (float mean : m.to_vector()) BOOST_TEST(std::abs(mean) < 1e-6f);
  for (float var : v.to_vector()) BOOST_TEST(std::abs(var - 1.f) < 1e-4f);
  BOOST_TEST(plain.trainable_variables().size() == 2u);
  BOOST_TEST(plain.count_params() == 3u * 3 * 3 * 4 + 4);
}

BOOST_AUTO_TEST_CASE(standardized_conv2d_layer_check_and_config) {
  StandardizedConv2D c(
      {{.filters = 3, .kernel_size = {3, 3}, .padding = "same", .activation = "tanh"}, 1e-5f});
  check_layer("StandardizedConv2D", c,
              {.input = {6, 5, 2},
               .expected_output = {6, 5, 3},
               .expected_params = 57,
               .grad = {.eps = 3e-3},
               .round_trip = true});
  BOOST_TEST(c.get_config()["epsilon"].get<float>() == 1e-5f);
  check_throws<std::invalid_argument>(
      "case 1",
      [] {
        StandardizedConv2D({{.filters = 2, .kernel_size = {3}}, -1.f});
      },
      {"StandardizedConv2D", "epsilon", "-1"});
}

BOOST_AUTO_TEST_CASE(a_parametrized_weight_is_computed_once_per_call) {
  int calls = 0;
  ReadsKernelTwice layer;
  parametrize(layer, "kernel", [&calls](const Tensor& w) {
    ++calls;
    return w * 3.f;
  });
  const Tensor x({1, 2}, {1.f, 2.f});
  const Tensor y = layer(x);
  BOOST_TEST(calls == 1);
  BOOST_TEST(y.to_vector() == (std::vector<float>{18.f, 18.f}));  // 2 * (1 + 2) * 3
  (void)layer(x);
  BOOST_TEST(calls == 2);
  // Outside a call every read computes.
  BOOST_TEST(layer.weight("kernel").to_vector() == (std::vector<float>(4, 3.f)));
  BOOST_TEST(layer.stored_weight("kernel").to_vector() == (std::vector<float>(4, 1.f)));
  BOOST_TEST(calls == 3);
}

BOOST_AUTO_TEST_CASE(parametrizations_compose_in_registration_order) {
  Dense d({.units = 2, .use_bias = false, .kernel_initializer = "ones"});
  parametrize(d, "kernel", [](const Tensor& w) { return w + 1.f; });
  parametrize(d, "kernel", [](const Tensor& w) { return w * 10.f; });
  const Tensor y = d(Tensor({1, 3}, {1.f, 1.f, 1.f}));
  BOOST_TEST(y.to_vector() == (std::vector<float>{60.f, 60.f}));  // (1 + 1) * 10 * 3
  BOOST_TEST(is_parametrized(d, "kernel"));
  remove_parametrizations(d, "kernel");  // leaves the parametrized value stored
  BOOST_TEST(!is_parametrized(d, "kernel"));
  BOOST_TEST(d.stored_weight("kernel").to_vector() == (std::vector<float>(6, 20.f)));
  BOOST_TEST(same_bits(d(Tensor({1, 3}, {1.f, 1.f, 1.f})), y));
}

BOOST_AUTO_TEST_CASE(gradients_reach_the_stored_weights_through_each_builtin) {
  for (int which = 0; which < 3; ++which) {
    clear_session();
    set_random_seed(30 + which);
    Dense d({.units = 3});
    Rng rng(7);
    Tensor x = random_tensor({4, 5}, rng).set_requires_grad(true);
    (void)d(x);
    const char* label[] = {"weight_standardization", "weight_normalization",
                           "spectral_normalization"};
    if (which == 0) parametrize(d, "kernel", weight_standardization());
    if (which == 1) parametrize(d, "kernel", weight_normalization());
    if (which == 2) parametrize(d, "kernel", spectral_normalization());
    std::vector<Tensor> leaves{x};
    for (const auto& v : d.trainable_variables()) leaves.push_back(v.value);
    BOOST_TEST(leaves.size() == (which == 1 ? 4u : 3u), label[which]);
    // Inference calls: spectral normalization's vectors stay put, so the function is fixed.
    xtape::testing::gradcheck_leaves(label[which], [&] { return d(x, false); }, leaves,
                                     {.eps = 1e-3, .rtol = 2e-2, .atol = 2e-3});
  }
}

BOOST_AUTO_TEST_CASE(gradients_of_gradients_pass_through_a_parametrization) {
  set_random_seed(4);
  Dense d({.units = 2, .activation = "tanh"});
  (void)d(Tensor({1, 3}, 0.f));
  parametrize(d, "kernel", weight_normalization());
  Rng rng(2);
  Tensor x = random_tensor({3, 3}, rng).set_requires_grad(true);
  // A gradient penalty: d/dg of |dy/dx|^2 through g * v / |v|, against finite differences.
  Tensor g = d.stored_weight("kernel_g");
  auto penalty = [&] {
    Tensor y = sum(d(x));
    GradOptions o;
    o.create_graph = true;
    Tensor gx = grad({y}, {x}, o)[0];
    return sum(gx * gx);
  };
  g.zero_grad();
  penalty().backward();
  const std::vector<float> analytic = g.grad().to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) {
    const float saved = g.to_vector()[i];
    const double h = 1e-2;
    auto at = [&](double value) {
      NoGrad off;
      std::vector<float> vals = g.to_vector();
      vals[i] = static_cast<float>(value);
      g.assign(Tensor(g.shape(), vals));
      EnableGrad on;
      return static_cast<double>(penalty().to_vector()[0]);
    };
    const double numeric = (at(saved + h) - at(saved - h)) / (2 * h);
    (void)at(saved);
    BOOST_TEST(std::abs(numeric - analytic[i]) <= 1e-3 + 2e-2 * std::abs(numeric),
               "element " << i << ": tape " << analytic[i] << " vs " << numeric);
  }
}

BOOST_AUTO_TEST_CASE(weight_normalization_starts_where_the_layer_was) {
  set_random_seed(8);
  Conv2D c({.filters = 3, .kernel_size = {2, 2}});
  Rng rng(1);
  const Tensor x = random_tensor({2, 5, 5, 2}, rng);
  const Tensor before = c(x);
  Tensor v = c.stored_weight("kernel");
  parametrize(c, "kernel", weight_normalization());
  Tensor g = c.stored_weight("kernel_g");
  BOOST_TEST((g.shape() == Shape{3}));
  const std::vector<float> kv = v.to_vector();
  for (std::size_t f = 0; f < 3; ++f) {
    double n = 0;
    for (std::size_t i = f; i < kv.size(); i += 3) n += double(kv[i]) * kv[i];
    BOOST_TEST(std::abs(g.to_vector()[f] - std::sqrt(n)) <= 1e-6 * std::sqrt(n));
  }
  const std::vector<float> a = before.to_vector(), b = c(x).to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) BOOST_TEST(std::abs(a[i] - b[i]) <= 1e-5f);
  // g sets each filter's norm, whatever v's scale.
  {
    NoGrad off;
    g.assign(Tensor({3}, {1.f, 2.f, 0.5f}));
    v.assign(v * 7.f);
  }
  const std::vector<float> w = c.kernel().to_vector();
  for (std::size_t f = 0; f < 3; ++f) {
    double n = 0;
    for (std::size_t i = f; i < w.size(); i += 3) n += double(w[i]) * w[i];
    BOOST_TEST(std::abs(std::sqrt(n) - std::vector<double>{1, 2, 0.5}[f]) < 1e-5);
  }
}

BOOST_AUTO_TEST_CASE(spectral_normalization_divides_by_the_largest_singular_value) {
  set_random_seed(12);
  Conv2D c({.filters = 6, .kernel_size = {3, 3}, .kernel_initializer = "random_normal"});
  (void)c(Tensor({1, 4, 4, 2}, 0.f));
  const std::vector<float> w0 = c.stored_weight("kernel").to_vector();
  const double sigma = largest_singular_value(w0, 3 * 3 * 2, 6);
  parametrize(c, "kernel", spectral_normalization());
  BOOST_TEST(c.count_params() == 3u * 3 * 2 * 6 + 6 + 6 + 18);  // + u (6) + v (18)
  std::size_t non_trainable = 0;
  for (const auto& w : c.weights())
    if (!w.trainable) non_trainable += w.value.size();
  BOOST_TEST(non_trainable == 24u);
  // After the registration's 15 iterations the estimate is close; the normalized kernel's
  // largest singular value is 1 to that accuracy.
  const std::vector<float> wn = c.kernel().to_vector();
  BOOST_TEST(std::abs(w0[0] / wn[0] - sigma) <= 2e-2 * sigma);
  // Inference calls leave u and v; training calls iterate, and the estimate converges.
  const Tensor u0 = c.stored_weight("kernel_u").clone();
  (void)c(Tensor({1, 4, 4, 2}, 1.f), false);
  BOOST_TEST(same_bits(u0, c.stored_weight("kernel_u")));
  for (int i = 0; i < 40; ++i) (void)c(Tensor({1, 4, 4, 2}, 1.f), true);
  BOOST_TEST(!same_bits(u0, c.stored_weight("kernel_u")));
  const std::vector<float> wc = c.kernel().to_vector();
  BOOST_TEST(std::abs(largest_singular_value(wc, 18, 6) - 1.0) <= 1e-4);
}

BOOST_AUTO_TEST_CASE(a_spectrally_normalized_model_trains_saves_and_loads) {
  ScratchDir dir;
  clear_session();
  set_random_seed(3);
  auto conv = make<Conv2D>({.filters = 4, .kernel_size = {3, 3}, .activation = "relu"});
  auto dense = make<Dense>({.units = 2});
  parametrize(conv, "kernel", spectral_normalization(2));  // before the layer builds
  parametrize(dense, "kernel", weight_normalization());
  Sequential m({Input({6, 6, 1}), conv, make<Flatten>(), dense});
  m.compile("mse", "adam");
  Rng rng(9);
  const Tensor x = random_tensor({16, 6, 6, 1}, rng), y = random_tensor({16, 2}, rng);
  const auto h = m.fit(x, y, {.batch_size = 8, .epochs = 6, .verbose = 0});
  BOOST_TEST(h.history.at("loss").back() < h.history.at("loss").front());
  const nlohmann::json config = m.get_config();
  BOOST_TEST(config.dump().find("SpectralNormalization") != std::string::npos);
  save_model(m, dir / "m.safetensors");
  auto back = load_model(dir / "m.safetensors");
  BOOST_TEST(same_bits(back->predict(x), m.predict(x)));
  // The power iteration's vectors came back, not fresh ones.
  const auto weights = back->weights();
  bool found_u = false;
  for (const auto& w : m.weights())
    if (w.name.find("kernel_u") != std::string::npos)
      for (const auto& b : weights)
        if (b.name == w.name) found_u = same_bits(b.value, w.value);
  BOOST_TEST(found_u);
  // A callable saves, but cannot come back from data.
  auto f = make<Dense>({.units = 2});
  parametrize(f, "kernel", [](const Tensor& w) { return w * 2.f; });
  Sequential fm({Input({3}), f});
  save_model(fm, dir / "f.safetensors");
  check_throws<std::runtime_error>("case 2", [&] { (void)load_model(dir / "f.safetensors"); },
                                   {"Function", "register_parametrization"});
}

BOOST_AUTO_TEST_CASE(bad_uses_name_the_layer_and_the_weight) {
  Dense d({.units = 2, .name = "head"});
  (void)d(Tensor({1, 3}, 0.f));
  check_throws<std::invalid_argument>("case 3",
                                      [&] { parametrize(d, "kernal", weight_normalization()); },
                                      {"'head'", "kernal", "kernel, bias"});
  check_throws<std::invalid_argument>(
      "case 4", [&] { parametrize(d, "kernel", std::shared_ptr<Parametrization>()); },
      {"'head'", "null"});
  check_throws<std::invalid_argument>(
      "case 5", [&] { parametrize(d, "block/kernel", weight_normalization()); }, {"sub-layer"});
  check_throws<std::invalid_argument>("case 6",
                                      [&] { parametrize(d, "bias", weight_standardization()); },
                                      {"WeightStandardization", "'bias'", "'head'", "rank >= 2"});
  check_throws<std::invalid_argument>("case 7",
                                      [&] { parametrize(d, "kernel", weight_normalization(2)); },
                                      {"WeightNormalization", "axis 2", "(3, 2)"});
  check_throws<std::invalid_argument>("case 8", [] { (void)spectral_normalization(0); },
                                      {"power_iterations", "0"});
  check_throws<std::invalid_argument>("case 9", [&] { remove_parametrizations(d, "kernel"); },
                                      {"'kernel'", "'head'", "no parametrization"});
  parametrize(d, "kernel", [](const Tensor& w) { return sum(w); });
  check_throws<std::invalid_argument>("case 10",
                                      [&] {
                                        (void)d(Tensor({1, 3}, 0.f));
                                      },
                                      {"keep the shape", "(3, 2)"});
  // Registered before build: checked when the layer builds.
  Dense later({.units = 2, .name = "later"});
  parametrize(later, "kernal", weight_normalization());
  check_throws<std::out_of_range>("case 11",
                                  [&] {
                                    (void)later(Tensor({1, 3}, 0.f));
                                  },
                                  {"'later'", "kernal"});
  check_throws<std::invalid_argument>("case 12",
                                      [] { (void)parametrization_from_config("Nope", nullptr); },
                                      {"unknown parametrization", "Nope"});
}

BOOST_AUTO_TEST_SUITE_END()
