// Core and pooling layers: shape inference, parameter counts, naming, errors, and the generic
// layer check (training step and finite differences through the layer).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/einsum_dense.hpp"
#include "layers/initializers.hpp"
#include "layers/noise.hpp"
#include "layers/pooling.hpp"
#include "saving/registry.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;
using xtape::testing::LayerCheck;

namespace {
Tensor draw_normal(const Shape& shape, Rng& rng) {
  std::vector<float> v(shape_size(shape));
  for (float& e : v) e = rng.normal();
  return Tensor(shape, v);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(layers_core)

BOOST_AUTO_TEST_CASE(snake_case_names_like_keras) {
  BOOST_TEST(to_snake_case("StandardizedConv2DWithCall") == "standardized_conv2d_with_call");
  BOOST_TEST(to_snake_case("StandardizedConv2DWithOverride") ==
             "standardized_conv2d_with_override");
  BOOST_TEST(to_snake_case("MaxPooling2D") == "max_pooling2d");
  BOOST_TEST(to_snake_case("Conv2D") == "conv2d");
  BOOST_TEST(to_snake_case("Dense") == "dense");
  BOOST_TEST(to_snake_case("AveragePooling2D") == "average_pooling2d");
}

BOOST_AUTO_TEST_CASE(unique_names_number_repeats) {
  clear_session();
  Dense a({.units = 2}), b({.units = 2}), c({.units = 2, .name = "head"});
  MaxPooling2D p, q;
  BOOST_TEST(a.name() == "dense");
  BOOST_TEST(b.name() == "dense_1");
  BOOST_TEST(c.name() == "head");
  BOOST_TEST(p.name() == "max_pooling2d");
  BOOST_TEST(q.name() == "max_pooling2d_1");
  BOOST_TEST(p.class_name() == "MaxPooling2D");
}

BOOST_AUTO_TEST_CASE(dense_layer) {
  Dense d({.units = 3, .activation = "tanh"});
  check_layer("Dense", d,
              {.input = {4}, .batch = 3, .expected_output = {3}, .expected_params = 15});
  BOOST_TEST((d.kernel().shape() == Shape{4, 3}));
  BOOST_TEST((d.bias().shape() == Shape{3}));
  Dense no_bias({.units = 5, .use_bias = false});
  check_layer("Dense without bias", no_bias,
              {.input = {2, 4}, .expected_output = {2, 5}, .expected_params = 20});
}

BOOST_AUTO_TEST_CASE(dense_glorot_uniform_limits) {
  Dense d({.units = 64});
  d.ensure_built({100});
  const float limit = std::sqrt(6.f / (100 + 64));
  float lo = 1, hi = -1;
  for (float v : d.kernel().to_vector()) lo = std::min(lo, v), hi = std::max(hi, v);
  BOOST_TEST(lo >= -limit);
  BOOST_TEST(hi <= limit);
  BOOST_TEST(hi - lo > 1.8f * limit);  // actually spread over the range
  for (float v : d.bias().to_vector()) BOOST_TEST(v == 0.f);
}

BOOST_AUTO_TEST_CASE(orthogonal_identity_truncated_and_variance_scaling_initializers) {
  Rng rng(31);
  for (const Shape& shape : {Shape{6, 4}, Shape{4, 6}, Shape{3, 3, 2, 5}}) {
    Tensor w = Tensor::empty(shape);
    get_initializer("orthogonal")(w, rng);
    const std::size_t cols = shape.back(), rows = w.size() / cols;
    // Q^T Q = I for tall matrices, Q Q^T = I for wide ones.
    const bool tall = rows >= cols;
    const std::size_t n = tall ? cols : rows;
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b) {
        double dot = 0;
        for (std::size_t k = 0; k < (tall ? rows : cols); ++k)
          dot += tall ? double(w.data()[k * cols + a]) * w.data()[k * cols + b]
                      : double(w.data()[a * cols + k]) * w.data()[b * cols + k];
        BOOST_TEST(std::abs(dot - (a == b ? 1.0 : 0.0)) < 1e-5, shape_str(shape)
                                                                    << " " << a << "," << b);
      }
  }
  Tensor eye = Tensor::empty({3, 4});
  get_initializer("identity")(eye, rng);
  BOOST_TEST(eye.to_vector() == std::vector<float>({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}),
             boost::test_tools::per_element());
  Tensor big = Tensor::empty({200, 100});
  get_initializer("truncated_normal")(big, rng);
  double m = 0, v = 0, top = 0;
  for (float e : big.to_vector()) m += e, top = std::max(top, double(std::abs(e)));
  m /= big.size();
  for (float e : big.to_vector()) v += (e - m) * (e - m);
  BOOST_TEST(top <= 0.1 + 1e-7);  // two standard deviations
  BOOST_TEST(std::sqrt(v / big.size()) == 0.05 * 0.8796, boost::test_tools::tolerance(0.03));
  get_initializer("variance_scaling")(big, rng);  // fan_in 200: stddev sqrt(1/200)
  v = 0, m = 0;
  for (float e : big.to_vector()) m += e;
  m /= big.size();
  for (float e : big.to_vector()) v += (e - m) * (e - m);
  BOOST_TEST(std::sqrt(v / big.size()) == std::sqrt(1.0 / 200), boost::test_tools::tolerance(0.03));
  check_throws<std::invalid_argument>("identity rank",
                                      [&] {
                                        Tensor t = Tensor::empty({2, 2, 2});
                                        get_initializer("identity")(t, rng);
                                      },
                                      {"identity", "2-d"});
  check_throws<std::invalid_argument>("mode", [] { variance_scaling(1, "fan_x", "uniform"); },
                                      {"variance_scaling", "fan_x"});
  check_throws<std::invalid_argument>("unknown", [] { get_initializer("glorot"); },
                                      {"unknown initializer 'glorot'", "orthogonal"});
}

BOOST_AUTO_TEST_CASE(flatten_dropout_activation) {
  Flatten f;
  check_layer("Flatten", f, {.input = {3, 2, 2}, .expected_output = {12}, .expected_params = 0});
  Activation a("sigmoid");
  check_layer("Activation", a, {.input = {5}, .expected_output = {5}, .expected_params = 0});
  Dropout d({.rate = 0.5f, .seed = 3});
  Tensor x(Shape{4, 1000}, 1.f);
  Tensor inference = d(x, false);
  BOOST_TEST(inference.to_vector() == x.to_vector());
  Tensor train = d(x, true);
  std::size_t zeros = 0;
  for (float v : train.to_vector()) {
    BOOST_TEST((v == 0.f || v == 2.f));
    zeros += v == 0.f;
  }
  BOOST_TEST(zeros > 1800);
  BOOST_TEST(zeros < 2200);
  BOOST_CHECK_THROW(Dropout(1.f), std::invalid_argument);
  BOOST_CHECK_THROW(Activation("swishy"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(pooling_same_vs_valid) {
  MaxPooling2D valid({.pool_size = {2, 2}});
  check_layer("MaxPooling2D valid", valid,
              {.input = {5, 5, 3}, .expected_output = {2, 2, 3}, .expected_params = 0});
  MaxPooling2D same({.pool_size = {2, 2}, .padding = "same"});
  check_layer("MaxPooling2D same", same,
              {.input = {5, 5, 3}, .expected_output = {3, 3, 3}, .expected_params = 0});
  AveragePooling2D avg({.pool_size = {3, 3}, .strides = {1, 2}, .padding = "same"});
  check_layer("AveragePooling2D", avg,
              {.input = {6, 7, 2}, .expected_output = {6, 4, 2}, .expected_params = 0});
  MaxPooling1D p1({.pool_size = {3}, .strides = {2}});
  check_layer("MaxPooling1D", p1,
              {.input = {9, 4}, .expected_output = {4, 4}, .expected_params = 0});
  BOOST_CHECK_THROW(MaxPooling2D({.padding = "full"}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(wrong_input_shape_is_a_clear_error) {
  Dense d({.units = 2, .name = "probe"});
  d(Tensor(Shape{1, 3}, 1.f));
  try {
    d(Tensor(Shape{1, 4}, 1.f));
    BOOST_FAIL("expected an exception");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("probe") != std::string::npos, msg);
    BOOST_TEST(msg.find("(None, 3)") != std::string::npos, msg);
    BOOST_TEST(msg.find("(1, 4)") != std::string::npos, msg);
  }
  BOOST_CHECK_THROW(Dense({.units = 0}), std::invalid_argument);
  BOOST_CHECK_THROW(Dense({.units = 2, .kernel_initializer = "glorot"}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(global_pooling_and_average_pooling_1d) {
  GlobalAveragePooling2D gap;
  check_layer("GlobalAveragePooling2D", gap, {.input = {3, 4, 2}, .expected_output = {2}});
  GlobalMaxPooling2D gmp({.keepdims = true});
  check_layer("GlobalMaxPooling2D keepdims", gmp,
              {.input = {3, 4, 2}, .expected_output = {1, 1, 2}, .gradcheck = false});
  GlobalAveragePooling1D gap1({.keepdims = true});
  check_layer("GlobalAveragePooling1D keepdims", gap1,
              {.input = {5, 3}, .expected_output = {1, 3}});
  GlobalMaxPooling1D gmp1;
  check_layer("GlobalMaxPooling1D", gmp1,
              {.input = {5, 3}, .expected_output = {3}, .gradcheck = false});
  GlobalAveragePooling3D gap3;
  check_layer("GlobalAveragePooling3D", gap3, {.input = {2, 3, 2, 4}, .expected_output = {4}});
  AveragePooling1D ap1({.pool_size = {2}, .strides = {1}});
  check_layer("AveragePooling1D", ap1, {.input = {5, 3}, .expected_output = {4, 3}});
  // Values: channel means / maxima over the spatial axes; NaN propagates through the max.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x({1, 2, 2, 2}, {1.f, 10.f, 2.f, nan, 3.f, 30.f, 4.f, 40.f});
  const std::vector<float> avg = GlobalAveragePooling2D()(x).to_vector();
  BOOST_TEST(avg[0] == 2.5f);
  BOOST_TEST(std::isnan(avg[1]));
  const std::vector<float> mx = GlobalMaxPooling2D()(x).to_vector();
  BOOST_TEST(mx[0] == 4.f);
  BOOST_TEST(std::isnan(mx[1]));
  const Tensor seq({1, 3, 1}, {1.f, 2.f, 6.f});
  BOOST_TEST(AveragePooling1D({.pool_size = {2}, .strides = {1}})(seq).to_vector() ==
                 std::vector<float>({1.5f, 4.f}),
             boost::test_tools::per_element());
  BOOST_CHECK_THROW(GlobalAveragePooling2D()(Tensor({2, 3, 4}, 1.f)), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(layers_noise)

BOOST_AUTO_TEST_CASE(noise_layers_are_the_identity_at_inference_and_noisy_in_training) {
  Rng rng(21);
  const Tensor x = xtape::testing::random_tensor({64, 8, 8, 4}, rng, 0.5f, 1.5f);
  GaussianNoise gn({.stddev = 0.3f, .seed = 1});
  GaussianDropout gd({.rate = 0.2f, .seed = 2});
  SpatialDropout2D sd({.rate = 0.25f, .seed = 3});
  AlphaDropout ad({.rate = 0.1f, .seed = 4});
  for (Layer* l : std::initializer_list<Layer*>{&gn, &gd, &sd, &ad})
    BOOST_TEST(l->operator()(x, false).to_vector() == x.to_vector(), l->class_name());
  const std::vector<float> xv = x.to_vector();
  // GaussianNoise: additive, mean 0 and stddev 0.3.
  {
    const std::vector<float> y = gn(x, true).to_vector();
    double m = 0, v = 0;
    for (std::size_t i = 0; i < y.size(); ++i) m += y[i] - xv[i];
    m /= y.size();
    for (std::size_t i = 0; i < y.size(); ++i) v += (y[i] - xv[i] - m) * (y[i] - xv[i] - m);
    BOOST_TEST(std::abs(m) < 0.01);
    BOOST_TEST(std::sqrt(v / y.size()) == 0.3, boost::test_tools::tolerance(0.02));
  }
  // GaussianDropout: multiplicative, mean 1 and stddev sqrt(rate / (1 - rate)) = 0.5.
  {
    const std::vector<float> y = gd(x, true).to_vector();
    double m = 0, v = 0;
    for (std::size_t i = 0; i < y.size(); ++i) m += y[i] / xv[i];
    m /= y.size();
    for (std::size_t i = 0; i < y.size(); ++i) v += (y[i] / xv[i] - m) * (y[i] / xv[i] - m);
    BOOST_TEST(m == 1.0, boost::test_tools::tolerance(0.01));
    BOOST_TEST(std::sqrt(v / y.size()) == 0.5, boost::test_tools::tolerance(0.03));
  }
  // SpatialDropout2D: whole channels dropped (all of a sample's h x w or none), the kept ones
  // scaled by 1 / (1 - rate); about a quarter dropped.
  {
    const std::vector<float> y = sd(x, true).to_vector();
    std::size_t dropped = 0;
    for (std::size_t n = 0; n < 64; ++n)
      for (std::size_t c = 0; c < 4; ++c) {
        const bool zero = y[n * 256 + c] == 0.f;
        dropped += zero;
        for (std::size_t p = 0; p < 64; ++p) {
          const std::size_t i = n * 256 + p * 4 + c;
          BOOST_TEST_REQUIRE(y[i] == (zero ? 0.f : xv[i] * (1.f / 0.75f)));
        }
      }
    BOOST_TEST(dropped > 40u);
    BOOST_TEST(dropped < 90u);
  }
  // AlphaDropout keeps a standard normal input's mean 0 and variance 1 (SELU's fixed point).
  {
    Rng r(5);
    const Tensor z = draw_normal({200000}, r);
    AlphaDropout a2({.rate = 0.3f, .seed = 6});
    const std::vector<float> y = a2(z, true).to_vector();
    double m = 0, v = 0;
    for (float e : y) m += e;
    m /= y.size();
    for (float e : y) v += (e - m) * (e - m);
    BOOST_TEST(std::abs(m) < 0.01);
    BOOST_TEST(v / y.size() == 1.0, boost::test_tools::tolerance(0.02));
  }
  GaussianNoise fresh({.stddev = 0.3f, .seed = 1});
  check_layer("GaussianNoise", fresh, {.input = {3, 2}, .expected_output = {3, 2}});
  BOOST_CHECK_THROW(GaussianDropout({.rate = 1.f}), std::invalid_argument);
  BOOST_CHECK_THROW(GaussianNoise({.stddev = -1.f}), std::invalid_argument);
  BOOST_CHECK_THROW(SpatialDropout1D({.rate = 0.5f})(x, true), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(gaussian_layers_draw_from_random_normal) {
  // GaussianNoise adds stddev * z and GaussianDropout multiplies by 1 + sd * z, z from the
  // layer's generator seeded by its seed (reproducible; the values changed when the layers
  // moved to the counter-based generator).
  const Tensor x = Tensor::full({4, 33}, 1.5f);
  GaussianNoise gn({.stddev = 0.3f, .seed = 5});
  Rng r(5);
  const std::vector<float> noise = random_normal(x.shape(), 0.f, 0.3f, r).to_vector();
  const std::vector<float> y = gn(x, true).to_vector();
  for (std::size_t i = 0; i < y.size(); ++i) BOOST_TEST_REQUIRE(y[i] == 1.5f + noise[i]);
  GaussianDropout gd({.rate = 0.2f, .seed = 6});
  Rng r2(6);
  const std::vector<float> mult = random_normal(x.shape(), 1.f, 0.5f, r2).to_vector();
  const std::vector<float> y2 = gd(x, true).to_vector();
  for (std::size_t i = 0; i < y2.size(); ++i) BOOST_TEST_REQUIRE(y2[i] == 1.5f * mult[i]);
}

BOOST_AUTO_TEST_CASE(noise_layer_states_and_configs_round_trip) {
  GaussianNoise a({.stddev = 0.5f, .seed = 9});
  const Tensor x({2, 3}, 1.f);
  const LayerState st = a.save_own_state();
  const std::vector<float> first = a(x, true).to_vector();
  a.load_own_state(st);
  BOOST_TEST(a(x, true).to_vector() == first, boost::test_tools::per_element());
  auto back = layer_from_config({{"class_name", "GaussianNoise"}, {"config", a.get_config()}});
  BOOST_TEST(back->get_config() == a.get_config());
  SpatialDropout1D s({.rate = 0.2f});
  auto sback = layer_from_config({{"class_name", "SpatialDropout1D"}, {"config", s.get_config()}});
  BOOST_TEST(sback->get_config() == s.get_config());
  Identity id;
  BOOST_TEST(id(x).to_vector() == x.to_vector());
  Lambda twice([](const Tensor& t) { return t * 2.f; });
  check_layer("Lambda", twice, {.input = {3}, .expected_output = {3}});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(layers_einsum_dense)

BOOST_AUTO_TEST_CASE(einsum_dense_as_keras) {
  EinsumDense d({.equation = "ab,bc->ac", .output_shape = {4}, .bias_axes = "c"});
  check_layer("EinsumDense ab,bc->ac", d,
              {.input = {3}, .expected_output = {4}, .expected_params = 16});
  Rng rng(41);
  const Tensor x = xtape::testing::random_tensor({2, 3}, rng);
  const Tensor ref = matmul(x, d.kernel()) + d.weight("bias");
  const std::vector<float> a = d(x).to_vector(), b = ref.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i)
    BOOST_TEST(a[i] == b[i], boost::test_tools::tolerance(1e-6f));
  // A sequence: (batch, steps, in) -> (batch, steps, out), the bias over the last axis only.
  EinsumDense seq({.equation = "abc,cd->abd", .output_shape = {5, 2}, .bias_axes = "d"});
  check_layer("EinsumDense abc,cd->abd", seq,
              {.input = {5, 3}, .expected_output = {5, 2}, .expected_params = 8});
  BOOST_TEST((seq.weight("bias").shape() == Shape{2}));
  // Elided leading axes, and a kernel with an output-only axis: (..., b) -> (..., c, e).
  EinsumDense heads({.equation = "...b,bce->...ce", .output_shape = {2, 3}, .bias_axes = "ce"});
  check_layer("EinsumDense ...b,bce->...ce", heads,
              {.input = {4, 5}, .expected_output = {4, 2, 3}, .expected_params = 36});
  BOOST_TEST((heads.kernel().shape() == Shape{5, 2, 3}));
  auto back = layer_from_config({{"class_name", "EinsumDense"}, {"config", heads.get_config()}});
  BOOST_TEST(back->get_config() == heads.get_config());
  check_throws<std::invalid_argument>(
      "form", [] { EinsumDense({.equation = "ab->b", .output_shape = {2}}); },
      {"EinsumDense", "'ab->b'"});
  check_throws<std::invalid_argument>(
      "output_shape",
      [] {
        EinsumDense({.equation = "ab,bc->ac", .output_shape = {2, 3}});
      },
      {"EinsumDense", "output_shape has 2", "needs 1"});
  check_throws<std::invalid_argument>(
      "kernel letter", [] { EinsumDense({.equation = "ab,bz->ac", .output_shape = {2}}); },
      {"EinsumDense", "'z'"});
  check_throws<std::invalid_argument>(
      "bias", [] { EinsumDense({.equation = "ab,bc->ac", .output_shape = {2}, .bias_axes = "b"}); },
      {"EinsumDense", "bias axis 'b'"});
}

BOOST_AUTO_TEST_SUITE_END()
