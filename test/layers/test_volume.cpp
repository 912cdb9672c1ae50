// Volume layers (NDHWC): Conv3D, MaxPooling3D and AveragePooling3D through the layer harness,
// against naive loops in double, Keras's shape formulas, convolution_op, regularizers and
// constraints, config round trips, and errors.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "autodiff/ops.hpp"
#include "layers/conv.hpp"
#include "layers/pooling.hpp"
#include "layers/regularizers.hpp"
#include "saving/registry.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::random_tensor;

namespace {

// One axis by TensorFlow's rules: output extent and leading pad.
std::pair<long, long> axis(long in, long k, long s, long dil, bool same) {
  const long eff = dil * (k - 1) + 1;
  if (!same) return {in >= eff ? (in - eff) / s + 1 : 0, 0};
  const long out = (in + s - 1) / s;
  return {out, std::max(0L, (out - 1) * s + eff - in) / 2};
}

// Naive Conv3D in double: cross-correlation of x (n, d, h, w, c) with k (kd, kh, kw, c / groups,
// f), plus bias.
std::vector<double> conv3d_layer_reference(const Tensor& x, const Tensor& k, const Tensor& b,
                                           std::array<long, 3> st, std::array<long, 3> dil,
                                           bool same, long groups) {
  const long n = static_cast<long>(x.dim(0)), c = static_cast<long>(x.dim(4));
  const long cg = static_cast<long>(k.dim(3)), f = static_cast<long>(k.dim(4)), fg = f / groups;
  long in[3], kk[3], out[3], pad[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = static_cast<long>(x.dim(static_cast<std::size_t>(i) + 1));
    kk[i] = static_cast<long>(k.dim(static_cast<std::size_t>(i)));
    std::tie(out[i], pad[i]) = axis(in[i], kk[i], st[i], dil[i], same);
  }
  std::vector<double> y;
  for (long bi = 0; bi < n; ++bi)
    for (long od = 0; od < out[0]; ++od)
      for (long oh = 0; oh < out[1]; ++oh)
        for (long ow = 0; ow < out[2]; ++ow)
          for (long o = 0; o < f; ++o) {
            double s = b.data()[o];
            const long g = o / fg;
            for (long a = 0; a < kk[0]; ++a)
              for (long p = 0; p < kk[1]; ++p)
                for (long q = 0; q < kk[2]; ++q) {
                  const long zd = od * st[0] - pad[0] + a * dil[0];
                  const long zh = oh * st[1] - pad[1] + p * dil[1];
                  const long zw = ow * st[2] - pad[2] + q * dil[2];
                  if (zd < 0 || zd >= in[0] || zh < 0 || zh >= in[1] || zw < 0 || zw >= in[2])
                    continue;
                  for (long ch = 0; ch < cg; ++ch)
                    s += static_cast<double>(
                             x.data()[(((bi * in[0] + zd) * in[1] + zh) * in[2] + zw) * c + g * cg +
                                      ch]) *
                         k.data()[(((a * kk[1] + p) * kk[2] + q) * cg + ch) * f + o];
                }
            y.push_back(s);
          }
  return y;
}

// Naive 3-d pooling in double (padded positions never the max, never counted).
std::vector<double> pool3d_layer_reference(const Tensor& x, std::array<long, 3> pool,
                                           std::array<long, 3> st, bool same, bool is_max) {
  const long n = static_cast<long>(x.dim(0)), c = static_cast<long>(x.dim(4));
  long in[3], out[3], pad[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = static_cast<long>(x.dim(static_cast<std::size_t>(i) + 1));
    std::tie(out[i], pad[i]) = axis(in[i], pool[i], st[i], 1, same);
  }
  std::vector<double> y;
  for (long b = 0; b < n; ++b)
    for (long od = 0; od < out[0]; ++od)
      for (long oh = 0; oh < out[1]; ++oh)
        for (long ow = 0; ow < out[2]; ++ow)
          for (long ch = 0; ch < c; ++ch) {
            double m = -INFINITY, s = 0;
            long count = 0;
            for (long a = 0; a < pool[0]; ++a)
              for (long p = 0; p < pool[1]; ++p)
                for (long q = 0; q < pool[2]; ++q) {
                  const long zd = od * st[0] - pad[0] + a, zh = oh * st[1] - pad[1] + p,
                             zw = ow * st[2] - pad[2] + q;
                  if (zd < 0 || zd >= in[0] || zh < 0 || zh >= in[1] || zw < 0 || zw >= in[2])
                    continue;
                  const double v =
                      x.data()[(((b * in[0] + zd) * in[1] + zh) * in[2] + zw) * c + ch];
                  m = std::max(m, v);
                  s += v;
                  ++count;
                }
            y.push_back(is_max ? m : s / static_cast<double>(count));
          }
  return y;
}

// convolution_op overridden: the kernel doubled (the tape differentiates it).
class DoubledConv3D : public Conv3D {
 public:
  using Conv3D::Conv3D;
  Tensor convolution_op(const Tensor& inputs, const Tensor& kernel) override {
    return conv3d(inputs, kernel * 2.f, strides(), padding(),
                  {dilation_rate()[0], dilation_rate()[1], dilation_rate()[2]});
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_volume)

BOOST_AUTO_TEST_CASE(conv3d_through_the_layer_harness) {
  Conv3D valid({.filters = 3, .kernel_size = {2, 3, 2}});
  check_layer("Conv3D valid", valid,
              {.input = {4, 5, 4, 2},
               .expected_output = {3, 3, 3, 3},
               .expected_params = 75,
               .round_trip = true});
  BOOST_TEST((valid.kernel().shape() == Shape{2, 3, 2, 2, 3}));
  Conv3D same({.filters = 2, .kernel_size = {3}, .strides = {2, 1, 2}, .padding = "same"});
  check_layer("Conv3D same strided", same,
              {.input = {5, 4, 3, 2},
               .expected_output = {3, 4, 2, 2},
               .expected_params = 110,
               .round_trip = true});
  Conv3D dilated({.filters = 2, .kernel_size = {2}, .dilation_rate = {2, 1, 3}, .use_bias = false});
  check_layer("Conv3D dilated", dilated,
              {.input = {5, 3, 7, 1},
               .expected_output = {3, 2, 4, 2},
               .expected_params = 16,
               .round_trip = true});
  Conv3D grouped({.filters = 4, .kernel_size = {2}, .padding = "same", .groups = 2});
  check_layer("Conv3D groups 2", grouped,
              {.input = {3, 3, 3, 4},
               .expected_output = {3, 3, 3, 4},
               .expected_params = 68,
               .round_trip = true});
  BOOST_TEST((grouped.kernel().shape() == Shape{2, 2, 2, 2, 4}));
  BOOST_TEST(grouped.get_config()["groups"] == 2);
  BOOST_TEST(valid.class_name() == "Conv3D");
}

BOOST_AUTO_TEST_CASE(conv3d_matches_a_naive_loop) {
  struct Case {
    const char* label;
    ConvOptions o;
    Shape x;
    std::array<long, 3> st, dil;
    bool same;
    long groups;
  };
  const Case cases[] = {
      {"valid",
       {.filters = 3, .kernel_size = {2, 3, 2}, .bias_initializer = "ones"},
       {2, 4, 5, 4, 2},
       {1, 1, 1},
       {1, 1, 1},
       false,
       1},
      {"same strided",
       {.filters = 2,
        .kernel_size = {3},
        .strides = {2, 3, 1},
        .padding = "same",
        .bias_initializer = "ones"},
       {1, 5, 7, 4, 3},
       {2, 3, 1},
       {1, 1, 1},
       true,
       1},
      {"dilated same",
       {.filters = 2, .kernel_size = {3, 2, 2}, .padding = "same", .dilation_rate = {2, 1, 2}},
       {2, 4, 4, 5, 1},
       {1, 1, 1},
       {2, 1, 2},
       true,
       1},
      {"groups 3",
       {.filters = 6, .kernel_size = {2}, .bias_initializer = "ones", .groups = 3},
       {1, 3, 4, 3, 3},
       {1, 1, 1},
       {1, 1, 1},
       false,
       3},
  };
  Rng rng(21);
  for (const Case& c : cases) {
    Conv3D layer(c.o);
    const Tensor x = random_tensor(c.x, rng);
    const Tensor y = layer(x);
    const auto ref =
        conv3d_layer_reference(x, layer.kernel(), layer.bias(), c.st, c.dil, c.same, c.groups);
    Shape expected{c.x[0]};
    const Shape per = layer.compute_output_shape({c.x[1], c.x[2], c.x[3], c.x[4]});
    expected.insert(expected.end(), per.begin(), per.end());
    check_values(std::string("Conv3D ") + c.label, y, expected, ref, 1e-4, 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(conv3d_output_shapes_as_keras) {
  // Keras: valid (in - dilation * (k - 1) - 1) / stride + 1, same ceil(in / stride).
  Conv3D v({.filters = 5, .kernel_size = {3, 2, 4}, .strides = {2, 1, 3}});
  BOOST_TEST((v.compute_output_shape({9, 6, 10, 3}) == Shape{4, 5, 3, 5}));
  Conv3D s({.filters = 5, .kernel_size = {3}, .strides = {2, 3, 4}, .padding = "same"});
  BOOST_TEST((s.compute_output_shape({9, 7, 8, 3}) == Shape{5, 3, 2, 5}));
  Conv3D d({.filters = 1, .kernel_size = {3}, .dilation_rate = {2}});
  BOOST_TEST((d.compute_output_shape({9, 5, 7, 1}) == Shape{5, 1, 3, 1}));
  MaxPooling3D p;  // Keras's defaults: pool_size (2, 2, 2), strides = pool_size, 'valid'
  BOOST_TEST((p.compute_output_shape({5, 4, 7, 2}) == Shape{2, 2, 3, 2}));
  AveragePooling3D q({.pool_size = {3, 2, 2}, .strides = {2, 1, 3}, .padding = "same"});
  BOOST_TEST((q.compute_output_shape({5, 4, 7, 2}) == Shape{3, 4, 3, 2}));
}

BOOST_AUTO_TEST_CASE(conv3d_convolution_op_regularizers_and_constraints) {
  Rng rng(4);
  const Tensor x = random_tensor({2, 4, 4, 4, 2}, rng);
  // The extension point: call() goes through the override, and gradients follow it.
  DoubledConv3D doubled({.filters = 2, .kernel_size = {2}, .use_bias = false});
  check_layer("Conv3D convolution_op", doubled,
              {.input = {4, 4, 4, 2}, .expected_output = {3, 3, 3, 2}, .expected_params = 32});
  const Tensor y = doubled(x);
  const Tensor ref = conv3d(x, doubled.kernel()) * 2.f;
  const std::vector<float> a = y.to_vector(), b = ref.to_vector();
  BOOST_REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    BOOST_TEST(a[i] == b[i], boost::test_tools::tolerance(1e-5f));
  // kernel_regularizer: its penalty among the layer's losses; kernel_constraint on request.
  Conv3D reg({.filters = 2,
              .kernel_size = {2},
              .kernel_initializer = "ones",
              .kernel_regularizer = l2(0.1f),
              .kernel_constraint =
                  Constraint{.kind = "max_norm", .max_value = 0.5f, .axis = {0, 1, 2, 3}}});
  reg(x);
  const auto losses = reg.losses();
  BOOST_REQUIRE(losses.size() == 1u);
  BOOST_TEST(losses[0].item() == 0.1f * 32.f, boost::test_tools::tolerance(1e-5f));
  reg.apply_constraints();
  // max_norm over the axes (0, 1, 2, 3), as Keras uses it on a kernel: each filter's 16 ones
  // scaled to norm 0.5.
  for (float k : reg.kernel().to_vector())
    BOOST_TEST(k == 0.5f / 4.f, boost::test_tools::tolerance(1e-4f));
  BOOST_TEST(reg.get_config()["kernel_regularizer"]["class_name"] == "L2");
}

BOOST_AUTO_TEST_CASE(pooling3d_through_the_layer_harness) {
  MaxPooling3D mp;
  check_layer("MaxPooling3D default", mp,
              {.input = {4, 5, 4, 3},
               .expected_output = {2, 2, 2, 3},
               .expected_params = 0,
               .grad = {.eps = 1e-3},
               .round_trip = true});
  AveragePooling3D ap({.pool_size = {3, 2, 2}, .strides = {1, 2, 1}, .padding = "same"});
  check_layer("AveragePooling3D same", ap,
              {.input = {4, 5, 3, 2},
               .expected_output = {4, 3, 3, 2},
               .expected_params = 0,
               .round_trip = true});
  MaxPooling3D ms({.pool_size = {2, 3, 2}, .strides = {2, 1, 2}, .padding = "same"});
  check_layer("MaxPooling3D same", ms,
              {.input = {3, 4, 5, 2},
               .expected_output = {2, 4, 3, 2},
               .expected_params = 0,
               .grad = {.eps = 1e-3},
               .round_trip = true});
  const auto c = ap.get_config();
  BOOST_TEST(c["pool_size"] == nlohmann::json({3, 2, 2}));
  BOOST_TEST(c["strides"] == nlohmann::json({1, 2, 1}));
  BOOST_TEST(c["padding"] == "same");
  BOOST_TEST(c["data_format"] == "channels_last");
  BOOST_TEST(mp.get_config()["strides"] == nlohmann::json({2, 2, 2}));
  BOOST_TEST(mp.class_name() == "MaxPooling3D");
  BOOST_TEST(ap.class_name() == "AveragePooling3D");
}

BOOST_AUTO_TEST_CASE(pooling3d_matches_a_naive_loop) {
  Rng rng(17);
  const Tensor x = random_tensor({2, 5, 6, 7, 3}, rng);
  MaxPooling3D mp({.pool_size = {2, 3, 2}, .strides = {1, 2, 3}});
  check_values("MaxPooling3D", mp(x), {2, 4, 2, 2, 3},
               pool3d_layer_reference(x, {2, 3, 2}, {1, 2, 3}, false, true), 0, 0);
  AveragePooling3D ap({.pool_size = {3}, .strides = {2}, .padding = "same"});
  check_values("AveragePooling3D", ap(x), {2, 3, 3, 4, 3},
               pool3d_layer_reference(x, {3, 3, 3}, {2, 2, 2}, true, false), 1e-5, 1e-6);
}

BOOST_AUTO_TEST_CASE(conv3d_relu_then_pooling_as_the_naive_loops) {
  // Conv3D(relu) -> MaxPooling3D runs the 2-d fused paths (bias, relu and the (h, w) pooling in
  // the convolution's epilogue): the same as the naive loops, and as the unfused calls.
  Rng rng(31);
  const Tensor x = random_tensor({2, 4, 6, 6, 3}, rng);
  Conv3D conv({.filters = 4,
               .kernel_size = {3},
               .padding = "same",
               .activation = "relu",
               .bias_initializer = "ones"});
  MaxPooling3D pool;
  const Tensor fused = pool(conv(x));
  Tensor c = conv(x);
  (void)c.data();  // read: computed on its own
  const Tensor separate = pool(c);
  BOOST_TEST(fused.to_vector() == separate.to_vector(), boost::test_tools::per_element());
  std::vector<double> ref =
      conv3d_layer_reference(x, conv.kernel(), conv.bias(), {1, 1, 1}, {1, 1, 1}, true, 1);
  for (double& v : ref) v = std::max(v, 0.0);
  std::vector<float> rf(ref.begin(), ref.end());
  const Tensor conv_ref({2, 4, 6, 6, 4}, rf);
  check_values("Conv3D relu -> MaxPooling3D", fused, {2, 2, 3, 3, 4},
               pool3d_layer_reference(conv_ref, {2, 2, 2}, {2, 2, 2}, false, true), 1e-4, 1e-4);
}

BOOST_AUTO_TEST_CASE(volume_layer_errors) {
  using E = std::invalid_argument;
  check_throws<E>(
      "Conv3D rank 4 input",
      [] {
        Conv3D({.filters = 2, .kernel_size = {2}})(Tensor(Shape{1, 4, 4, 2}, 0.f));
      },
      {"Conv3D", "rank 5", "(batch, depth, height, width, channels)", "(None, 4, 4, 2)"});
  check_throws<E>(
      "Conv3D kernel larger than the input",
      [] {
        Conv3D({.filters = 2, .kernel_size = {3, 5, 2}})(Tensor(Shape{1, 4, 4, 4, 1}, 0.f));
      },
      {"Conv3D", "smaller than the kernel", "(3, 5, 2, 1, 2)", "'valid'"});
  check_throws<E>("Conv3D kernel_size of 2 values",
                  [] {
                    Conv3D({.filters = 2, .kernel_size = {2, 2}});
                  },
                  {"Conv3D", "kernel_size", "1 or 3 values", "got 2"});
  check_throws<E>("Conv3D causal",
                  [] { Conv3D({.filters = 2, .kernel_size = {2}, .padding = "causal"}); },
                  {"Conv3D", "'causal'"});
  check_throws<E>("Conv3D groups", [] { Conv3D({.filters = 3, .kernel_size = {2}, .groups = 2}); },
                  {"Conv3D", "filters (3)", "groups (2)"});
  check_throws<E>(
      "Conv3D channels / groups",
      [] {
        Conv3D({.filters = 4, .kernel_size = {2}, .groups = 2})(Tensor(Shape{1, 3, 3, 3, 3}, 0.f));
      },
      {"Conv3D", "input channels (3)", "groups (2)"});
  check_throws<E>("MaxPooling3D rank 4 input",
                  [] {
                    MaxPooling3D()(Tensor(Shape{1, 4, 4, 2}, 0.f));
                  },
                  {"MaxPooling3D", "rank 5", "(None, 4, 4, 2)"});
  check_throws<E>("AveragePooling3D window larger than the input",
                  [] {
                    AveragePooling3D({.pool_size = {3}})(Tensor(Shape{1, 4, 2, 4, 1}, 0.f));
                  },
                  {"AveragePooling3D", "smaller than the pool window", "'valid'"});
  check_throws<E>("MaxPooling3D pool_size of 2 values",
                  [] {
                    MaxPooling3D({.pool_size = {2, 2}});
                  },
                  {"MaxPooling3D", "pool_size", "1 or 3 values", "got 2"});
  check_throws<E>("AveragePooling3D zero stride",
                  [] {
                    AveragePooling3D({.pool_size = {2}, .strides = {1, 0, 1}});
                  },
                  {"AveragePooling3D", "strides must be positive", "got 0"});
  check_throws<E>("MaxPooling3D padding", [] { MaxPooling3D({.padding = "full"}); },
                  {"MaxPooling3D", "'full'", "'valid' or 'same'"});
  // channels_first is refused when read from a config, not silently taken as channels_last.
  nlohmann::json conv = Conv3D({.filters = 2, .kernel_size = {2}}).get_config();
  conv["data_format"] = "channels_first";
  check_throws<E>("Conv3D channels_first",
                  [&] {
                    layer_from_config({{"class_name", "Conv3D"}, {"config", conv}});
                  },
                  {"data_format", "channels_last", "\"channels_first\""});
  nlohmann::json pool = MaxPooling3D().get_config();
  pool["data_format"] = "channels_first";
  check_throws<E>("MaxPooling3D channels_first",
                  [&] {
                    layer_from_config({{"class_name", "MaxPooling3D"}, {"config", pool}});
                  },
                  {"data_format", "channels_last"});
  pool["data_format"] = nullptr;  // Keras's None: the default, channels_last
  BOOST_TEST(layer_from_config({{"class_name", "MaxPooling3D"}, {"config", pool}})->class_name() ==
             "MaxPooling3D");
}

BOOST_AUTO_TEST_SUITE_END()
