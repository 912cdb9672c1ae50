#include "saving/registry.hpp"

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "layers/activation_layers.hpp"
#include "layers/einsum_dense.hpp"
#include "layers/node.hpp"
#include "layers/noise.hpp"
#include "layers/normalization.hpp"
#include "layers/parametrize.hpp"
#include "layers/reshaping.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "saving/config_read.hpp"

namespace xtape::layers {

using json = nlohmann::json;
using namespace config_read;

namespace {

template <class T>
void read(const json& c, const char* key, T& out);

template <>
void read(const json& c, const char* key, std::string& out) {
  if (!c.contains(key)) return;
  if (!c[key].is_string()) bad_key(key, "a string", c[key]);
  out = c[key].get<std::string>();
}

template <>
void read(const json& c, const char* key, bool& out) {
  if (!c.contains(key)) return;
  if (!c[key].is_boolean()) bad_key(key, "true or false", c[key]);
  out = c[key].get<bool>();
}

template <>
void read(const json& c, const char* key, std::size_t& out) {
  if (!c.contains(key)) return;
  if (!c[key].is_number_unsigned()) bad_key(key, "a non-negative integer", c[key]);
  out = c[key].get<std::size_t>();
}

template <>
void read(const json& c, const char* key, int& out) {
  if (!c.contains(key)) return;
  if (!c[key].is_number_integer() || c[key].get<long long>() < -(1LL << 30) ||
      c[key].get<long long>() > (1LL << 30))
    bad_key(key, "an integer", c[key]);
  out = c[key].get<int>();
}

template <>
void read(const json& c, const char* key, float& out) {
  if (!c.contains(key)) return;
  if (!c[key].is_number()) bad_key(key, "a number", c[key]);
  out = c[key].get<float>();
}

template <>
void read(const json& c, const char* key, std::vector<int>& out) {
  if (!c.contains(key)) return;
  const json& v = c[key];
  if (v.is_number_integer()) {
    out = {v.get<int>()};
    return;
  }
  if (!v.is_array()) bad_key(key, "an integer or a list of integers", v);
  out.clear();
  for (const json& e : v) {
    if (!e.is_number_integer() || e.get<long long>() < 0 || e.get<long long>() > (1LL << 30))
      bad_key(key, "a list of non-negative integers", v);
    out.push_back(e.get<int>());
  }
}

// Keras writes "linear" for no activation; the layers take "" too.
std::string activation(const json& c) {
  std::string a;
  read(c, "activation", a);
  return a == "linear" ? "" : a;
}

// A number or null (Keras's None).
void read_optional(const json& c, const char* key, std::optional<float>& out) {
  if (!c.contains(key) || c[key].is_null()) return;
  if (!c[key].is_number()) bad_key(key, "a number or null", c[key]);
  out = c[key].get<float>();
}

// A list of integers, a single integer or null (none).
void read_axes(const json& c, const char* key, std::vector<int>& out) {
  if (!c.contains(key) || c[key].is_null()) return;
  if (c[key].is_number_integer()) {
    read(c, key, out);
    return;
  }
  if (!c[key].is_array()) bad_key(key, "an integer, a list of integers or null", c[key]);
  out.clear();
  for (const json& e : c[key]) {
    if (!e.is_number_integer() || e.get<long long>() < -(1LL << 30) ||
        e.get<long long>() > (1LL << 30))
      bad_key(key, "a list of integers", c[key]);
    out.push_back(e.get<int>());
  }
}

template <class L, class Options>
std::shared_ptr<Layer> with_options(const Options& o, const json& c) {
  auto l = std::make_shared<L>(o);
  apply_base_config(*l, c);
  return l;
}

std::map<std::string, LayerFactory>& factories();

template <class L>
std::shared_ptr<Layer> simple(const json& c) {
  auto l = std::make_shared<L>(name_of(c));
  apply_base_config(*l, c);
  return l;
}

}  // namespace

// Defined in saving/model_config.cpp.
std::shared_ptr<Layer> functional_from_config(const nlohmann::json& config);
std::shared_ptr<Layer> sequential_from_config(const nlohmann::json& config);

namespace {

template <class L>
void add_conv(std::map<std::string, LayerFactory>& f, const char* cls) {
  f[cls] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<L>(conv_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
}

template <class L>
void add_global_pooling(std::map<std::string, LayerFactory>& f, const char* cls) {
  f[cls] = [](const json& c) -> std::shared_ptr<Layer> {
    GlobalPoolOptions o;
    read(c, "keepdims", o.keepdims);
    o.name = name_of(c);
    auto l = std::make_shared<L>(o);
    apply_base_config(*l, c);
    return l;
  };
}

template <class L>
void add_noise(std::map<std::string, LayerFactory>& f, const char* cls) {
  f[cls] = [](const json& c) -> std::shared_ptr<Layer> {
    NoiseOptions o;
    read(c, "rate", o.rate);
    read(c, "stddev", o.stddev);
    if (c.contains("seed") && !c["seed"].is_null()) {
      if (!c["seed"].is_number_unsigned())
        bad_key("seed", "null or a non-negative integer", c["seed"]);
      o.seed = c["seed"].get<std::uint64_t>();
    }
    o.name = name_of(c);
    auto l = std::make_shared<L>(o);
    apply_base_config(*l, c);
    return l;
  };
}

bool natural(const json& v) { return v.is_number_integer() && v.get<long long>() >= 0; }

// Keras's int-or-pair options: n, [a, b].
std::array<std::size_t, 2> pair_of(const json& c, const char* key) {
  if (!c.contains(key)) bad_key(key, "an integer or a pair", json());
  const json& v = c[key];
  if (natural(v)) return {v.get<std::size_t>(), v.get<std::size_t>()};
  if (v.is_array() && v.size() == 2 && natural(v[0]) && natural(v[1]))
    return {v[0].get<std::size_t>(), v[1].get<std::size_t>()};
  bad_key(key, "a non-negative integer or a pair of them", v);
  return {};
}

// Keras's 2-d forms: n, [a, b] (symmetric per axis), [[top, bottom], [left, right]].
std::array<std::array<std::size_t, 2>, 2> pairs_of(const json& c, const char* key) {
  if (!c.contains(key)) bad_key(key, "an integer or pairs", json());
  const json& v = c[key];
  if (natural(v)) {
    const std::size_t n = v.get<std::size_t>();
    return {{{n, n}, {n, n}}};
  }
  if (v.is_array() && v.size() == 2) {
    if (natural(v[0]) && natural(v[1])) {
      const std::size_t a = v[0].get<std::size_t>(), b = v[1].get<std::size_t>();
      return {{{a, a}, {b, b}}};
    }
    if (v[0].is_array() && v[1].is_array()) {
      json sub0 = {{"x", v[0]}}, sub1 = {{"x", v[1]}};
      return {pair_of(sub0, "x"), pair_of(sub1, "x")};
    }
  }
  bad_key(key, "an integer, a pair or a pair of pairs", v);
  return {};
}

std::map<std::string, LayerFactory> builtins() {
  std::map<std::string, LayerFactory> f;
  f["InputLayer"] = [](const json& c) -> std::shared_ptr<Layer> {
    return std::make_shared<InputLayer>(batch_shape(c), name_of(c));
  };
  f["Dense"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Dense>(dense_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  add_conv<Conv1D>(f, "Conv1D");
  add_conv<Conv2D>(f, "Conv2D");
  add_conv<Conv3D>(f, "Conv3D");
  add_conv<Conv2DTranspose>(f, "Conv2DTranspose");
  add_conv<Conv1DTranspose>(f, "Conv1DTranspose");
  add_conv<DepthwiseConv2D>(f, "DepthwiseConv2D");
  add_conv<DepthwiseConv1D>(f, "DepthwiseConv1D");
  add_conv<SeparableConv2D>(f, "SeparableConv2D");
  add_conv<SeparableConv1D>(f, "SeparableConv1D");
  f["StandardizedConv2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    StandardizedConvOptions o;
    static_cast<ConvOptions&>(o) = conv_options_from_config(c);
    read(c, "epsilon", o.epsilon);
    auto l = std::make_shared<StandardizedConv2D>(o);
    apply_base_config(*l, c);
    return l;
  };
  f["MaxPooling1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<MaxPooling1D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["MaxPooling2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<MaxPooling2D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["AveragePooling2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<AveragePooling2D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["MaxPooling3D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<MaxPooling3D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["AveragePooling3D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<AveragePooling3D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["AveragePooling1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<AveragePooling1D>(pool_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  add_global_pooling<GlobalAveragePooling1D>(f, "GlobalAveragePooling1D");
  add_global_pooling<GlobalAveragePooling2D>(f, "GlobalAveragePooling2D");
  add_global_pooling<GlobalAveragePooling3D>(f, "GlobalAveragePooling3D");
  add_global_pooling<GlobalMaxPooling1D>(f, "GlobalMaxPooling1D");
  add_global_pooling<GlobalMaxPooling2D>(f, "GlobalMaxPooling2D");
  add_global_pooling<GlobalMaxPooling3D>(f, "GlobalMaxPooling3D");
  add_noise<GaussianNoise>(f, "GaussianNoise");
  add_noise<GaussianDropout>(f, "GaussianDropout");
  add_noise<SpatialDropout1D>(f, "SpatialDropout1D");
  add_noise<SpatialDropout2D>(f, "SpatialDropout2D");
  add_noise<AlphaDropout>(f, "AlphaDropout");
  f["Identity"] = simple<Identity>;
  f["EinsumDense"] = [](const json& c) -> std::shared_ptr<Layer> {
    EinsumDenseOptions o;
    read(c, "equation", o.equation);
    if (c.contains("output_shape")) {
      const json& v = c["output_shape"];
      if (v.is_number_integer()) {
        o.output_shape = {v.get<std::size_t>()};
      } else if (v.is_array()) {
        for (const json& e : v) {
          if (!e.is_number_integer() || e.get<long long>() < 0)
            bad_key("output_shape", "non-negative integers", v);
          o.output_shape.push_back(e.get<std::size_t>());
        }
      } else {
        bad_key("output_shape", "an integer or a list of them", v);
      }
    }
    o.activation = activation(c);
    if (c.contains("bias_axes") && !c["bias_axes"].is_null()) read(c, "bias_axes", o.bias_axes);
    read(c, "kernel_initializer", o.kernel_initializer);
    read(c, "bias_initializer", o.bias_initializer);
    if (c.contains("kernel_regularizer"))
      o.kernel_regularizer = regularizer_from_config(c["kernel_regularizer"]);
    if (c.contains("bias_regularizer"))
      o.bias_regularizer = regularizer_from_config(c["bias_regularizer"]);
    if (c.contains("kernel_constraint"))
      o.kernel_constraint = constraint_from_config(c["kernel_constraint"]);
    if (c.contains("bias_constraint"))
      o.bias_constraint = constraint_from_config(c["bias_constraint"]);
    o.name = name_of(c);
    auto l = std::make_shared<EinsumDense>(o);
    apply_base_config(*l, c);
    return l;
  };
  f["Reshape"] = [](const json& c) -> std::shared_ptr<Layer> {
    std::vector<long> t;
    if (!c.contains("target_shape") || !c["target_shape"].is_array())
      bad_key("target_shape", "a list of extents", c.value("target_shape", json()));
    for (const json& e : c["target_shape"]) t.push_back(e.is_null() ? -1L : e.get<long>());
    auto l = std::make_shared<Reshape>(t, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Permute"] = [](const json& c) -> std::shared_ptr<Layer> {
    std::vector<int> dims;
    read(c, "dims", dims);
    auto l = std::make_shared<Permute>(dims, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["RepeatVector"] = [](const json& c) -> std::shared_ptr<Layer> {
    std::size_t n = 0;
    read(c, "n", n);
    auto l = std::make_shared<RepeatVector>(n, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["ZeroPadding1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<ZeroPadding1D>(pair_of(c, "padding"), name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["ZeroPadding2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<ZeroPadding2D>(pairs_of(c, "padding"), name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Cropping1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Cropping1D>(pair_of(c, "cropping"), name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Cropping2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Cropping2D>(pairs_of(c, "cropping"), name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["UpSampling1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    std::size_t size = 2;
    read(c, "size", size);
    auto l = std::make_shared<UpSampling1D>(size, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["UpSampling2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    const auto p = pair_of(c, "size");
    std::string interpolation = "nearest";
    read(c, "interpolation", interpolation);
    auto l = std::make_shared<UpSampling2D>(p, interpolation, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["ActivityRegularization"] = [](const json& c) -> std::shared_ptr<Layer> {
    float a = 0.f, b = 0.f;
    read(c, "l1", a);
    read(c, "l2", b);
    auto l = std::make_shared<ActivityRegularization>(a, b, name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Flatten"] = simple<Flatten>;
  f["Dropout"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Dropout>(dropout_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Activation"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Activation>(activation(c), name_of(c));
    apply_base_config(*l, c);
    return l;
  };
  f["ReLU"] = [](const json& c) -> std::shared_ptr<Layer> {
    ReLUOptions o;
    read_optional(c, "max_value", o.max_value);
    read(c, "negative_slope", o.negative_slope);
    read(c, "threshold", o.threshold);
    o.name = name_of(c);
    return with_options<ReLU>(o, c);
  };
  f["LeakyReLU"] = [](const json& c) -> std::shared_ptr<Layer> {
    LeakyReLUOptions o;
    read(c, "negative_slope", o.negative_slope);
    o.name = name_of(c);
    return with_options<LeakyReLU>(o, c);
  };
  f["PReLU"] = [](const json& c) -> std::shared_ptr<Layer> {
    PReLUOptions o;
    read(c, "alpha_initializer", o.alpha_initializer);
    read_axes(c, "shared_axes", o.shared_axes);
    o.name = name_of(c);
    return with_options<PReLU>(o, c);
  };
  f["ELU"] = [](const json& c) -> std::shared_ptr<Layer> {
    ELUOptions o;
    read(c, "alpha", o.alpha);
    o.name = name_of(c);
    return with_options<ELU>(o, c);
  };
  f["Softmax"] = [](const json& c) -> std::shared_ptr<Layer> {
    SoftmaxOptions o;
    read(c, "axis", o.axis);
    o.name = name_of(c);
    return with_options<Softmax>(o, c);
  };
  f["BatchNormalization"] = [](const json& c) -> std::shared_ptr<Layer> {
    BatchNormalizationOptions o;
    read(c, "axis", o.axis);
    read(c, "momentum", o.momentum);
    read(c, "epsilon", o.epsilon);
    read(c, "center", o.center);
    read(c, "scale", o.scale);
    read(c, "beta_initializer", o.beta_initializer);
    read(c, "gamma_initializer", o.gamma_initializer);
    read(c, "moving_mean_initializer", o.moving_mean_initializer);
    read(c, "moving_variance_initializer", o.moving_variance_initializer);
    o.name = name_of(c);
    return with_options<BatchNormalization>(o, c);
  };
  f["LayerNormalization"] = [](const json& c) -> std::shared_ptr<Layer> {
    LayerNormalizationOptions o;
    read_axes(c, "axis", o.axis);
    read(c, "epsilon", o.epsilon);
    read(c, "center", o.center);
    read(c, "scale", o.scale);
    read(c, "rms_scaling", o.rms_scaling);
    read(c, "beta_initializer", o.beta_initializer);
    read(c, "gamma_initializer", o.gamma_initializer);
    o.name = name_of(c);
    return with_options<LayerNormalization>(o, c);
  };
  f["GroupNormalization"] = [](const json& c) -> std::shared_ptr<Layer> {
    GroupNormalizationOptions o;
    read(c, "groups", o.groups);
    read(c, "axis", o.axis);
    read(c, "epsilon", o.epsilon);
    read(c, "center", o.center);
    read(c, "scale", o.scale);
    read(c, "beta_initializer", o.beta_initializer);
    read(c, "gamma_initializer", o.gamma_initializer);
    o.name = name_of(c);
    return with_options<GroupNormalization>(o, c);
  };
  f["UnitNormalization"] = [](const json& c) -> std::shared_ptr<Layer> {
    UnitNormalizationOptions o;
    read_axes(c, "axis", o.axis);
    o.name = name_of(c);
    return with_options<UnitNormalization>(o, c);
  };
  f["Add"] = simple<Add>;
  f["Subtract"] = simple<Subtract>;
  f["Multiply"] = simple<Multiply>;
  f["Average"] = simple<Average>;
  f["Maximum"] = simple<Maximum>;
  f["Minimum"] = simple<Minimum>;
  f["Concatenate"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Concatenate>(concatenate_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Functional"] = functional_from_config;
  f["Sequential"] = sequential_from_config;
  return f;
}

std::mutex g_registry_mutex;

std::map<std::string, LayerFactory>& factories() {
  static std::map<std::string, LayerFactory> f = builtins();
  return f;
}

}  // namespace

namespace {
// Keras's kernel/bias/activity regularizers and kernel/bias constraints (null when absent).
template <class O>
void read_penalties(const json& c, O& o) {
  auto reg = [&](const char* key, Regularizer& out) {
    if (c.contains(key)) out = regularizer_from_config(c[key]);
  };
  auto con = [&](const char* key, Constraint& out) {
    if (c.contains(key)) out = constraint_from_config(c[key]);
  };
  reg("kernel_regularizer", o.kernel_regularizer);
  reg("bias_regularizer", o.bias_regularizer);
  reg("activity_regularizer", o.activity_regularizer);
  con("kernel_constraint", o.kernel_constraint);
  con("bias_constraint", o.bias_constraint);
}
}  // namespace

DenseOptions dense_options_from_config(const json& c) {
  DenseOptions o;
  read(c, "units", o.units);
  o.activation = activation(c);
  read(c, "use_bias", o.use_bias);
  read(c, "kernel_initializer", o.kernel_initializer);
  read(c, "bias_initializer", o.bias_initializer);
  read_penalties(c, o);
  o.name = name_of(c);
  return o;
}

// The layers are channels-last only: Keras's data_format "channels_first" is refused, not
// silently read as channels-last.
void require_channels_last(const json& c) {
  if (c.contains("data_format") && !c["data_format"].is_null() &&
      c["data_format"] != "channels_last")
    bad_key("data_format", "\"channels_last\" or null (xtape layers are channels-last only)",
            c["data_format"]);
}

ConvOptions conv_options_from_config(const json& c) {
  require_channels_last(c);
  ConvOptions o;
  read(c, "filters", o.filters);
  read(c, "kernel_size", o.kernel_size);
  read(c, "strides", o.strides);
  read(c, "padding", o.padding);
  read(c, "dilation_rate", o.dilation_rate);
  o.activation = activation(c);
  read(c, "use_bias", o.use_bias);
  read(c, "kernel_initializer", o.kernel_initializer);
  read(c, "bias_initializer", o.bias_initializer);
  if (c.contains("output_padding") && !c["output_padding"].is_null())
    read(c, "output_padding", o.output_padding);
  read(c, "depth_multiplier", o.depth_multiplier);
  read(c, "depthwise_initializer", o.depthwise_initializer);
  read(c, "pointwise_initializer", o.pointwise_initializer);
  read_penalties(c, o);
  read(c, "groups", o.groups);
  o.name = name_of(c);
  return o;
}

PoolOptions pool_options_from_config(const json& c) {
  require_channels_last(c);
  PoolOptions o;
  read(c, "pool_size", o.pool_size);
  read(c, "strides", o.strides);
  read(c, "padding", o.padding);
  o.name = name_of(c);
  return o;
}

DropoutOptions dropout_options_from_config(const json& c) {
  DropoutOptions o;
  read(c, "rate", o.rate);
  if (c.contains("seed") && !c["seed"].is_null()) {
    if (!c["seed"].is_number_unsigned())
      bad_key("seed", "null or a non-negative integer", c["seed"]);
    o.seed = c["seed"].get<std::uint64_t>();
  }
  o.name = name_of(c);
  return o;
}

ConcatenateOptions concatenate_options_from_config(const json& c) {
  ConcatenateOptions o;
  read(c, "axis", o.axis);
  o.name = name_of(c);
  return o;
}

void apply_base_config(Layer& layer, const json& c) {
  bool trainable = true;
  read(c, "trainable", trainable);
  if (!trainable) layer.set_trainable(false);
}

namespace {
// The "parametrizations" of a config (Layer::get_config writes them), unless the factory has
// registered them itself.
void apply_parametrizations(Layer& layer, const json& c) {
  if (!c.contains("parametrizations") || !layer.parametrizations().empty()) return;
  const json& list = c["parametrizations"];
  if (!list.is_array()) bad_key("parametrizations", "a list", list);
  for (const json& p : list) {
    if (!p.is_object() || !p.contains("weight") || !p["weight"].is_string() ||
        !p.contains("class_name") || !p["class_name"].is_string())
      bad_key("parametrizations", "entries {\"weight\": ..., \"class_name\": ..., \"config\": ...}",
              p);
    parametrize(layer, p["weight"].get<std::string>(),
                parametrization_from_config(p["class_name"].get<std::string>(),
                                            p.contains("config") ? p["config"] : json(nullptr)));
  }
}
}  // namespace

void register_layer(const std::string& class_name, LayerFactory factory) {
  if (class_name.empty()) throw std::invalid_argument("register_layer: empty class name");
  if (!factory)
    throw std::invalid_argument("register_layer: empty factory for '" + class_name + "'");
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  factories()[class_name] = std::move(factory);
}

bool is_registered(const std::string& class_name) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  return factories().count(class_name) != 0;
}

std::shared_ptr<Layer> layer_from_config(const json& entry) {
  if (!entry.is_object() || !entry.contains("class_name") || !entry["class_name"].is_string() ||
      !entry.contains("config") || !entry["config"].is_object())
    throw std::invalid_argument(
        "layer config: expected {\"class_name\": ..., \"config\": {...}}, got " +
        entry.dump().substr(0, 80));
  const std::string cls = entry["class_name"].get<std::string>();
  LayerFactory factory;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    const auto it = factories().find(cls);
    if (it != factories().end()) factory = it->second;
  }
  if (!factory)
    throw std::invalid_argument("unknown layer class '" + cls + "': register it before loading, " +
                                "e.g. xtape::layers::register_layer<" + cls + ">(\"" + cls +
                                "\") or register_layer(\"" + cls + "\", factory)");
  try {
    std::shared_ptr<Layer> layer = factory(entry["config"]);
    if (!layer) throw std::invalid_argument("the factory returned null");
    apply_parametrizations(*layer, entry["config"]);
    return layer;
  } catch (const std::exception& e) {
    throw std::invalid_argument("layer '" + name_of(entry["config"]) + "' (" + cls +
                                "): " + e.what());
  }
}

}  // namespace xtape::layers
