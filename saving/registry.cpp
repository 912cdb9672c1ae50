#include "saving/registry.hpp"

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "layers/node.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"

namespace xtape::layers {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad_key(const std::string& key, const std::string& expected, const json& got) {
  std::string text = got.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  throw std::invalid_argument("config key '" + key + "': expected " + expected + ", got " + text);
}

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

std::string name_of(const json& c) {
  std::string n;
  read(c, "name", n);
  return n;
}

std::map<std::string, LayerFactory>& factories();

template <class L>
std::shared_ptr<Layer> simple(const json& c) {
  auto l = std::make_shared<L>(name_of(c));
  apply_base_config(*l, c);
  return l;
}

Shape batch_shape(const json& c) {
  if (!c.contains("batch_shape") || !c["batch_shape"].is_array() || c["batch_shape"].empty())
    bad_key("batch_shape", "[null, extents...]",
            c.contains("batch_shape") ? c["batch_shape"] : json(nullptr));
  Shape s;
  const json& b = c["batch_shape"];
  for (std::size_t i = 1; i < b.size(); ++i) {
    if (!b[i].is_number_unsigned() || b[i].get<std::size_t>() == 0 ||
        b[i].get<std::size_t>() > (std::size_t{1} << 40))
      bad_key("batch_shape", "positive extents after the batch axis", b);
    s.push_back(b[i].get<std::size_t>());
  }
  return s;
}

const json& member(const json& c, const char* key, const char* what) {
  if (!c.is_object() || !c.contains(key)) throw std::invalid_argument(std::string(what) + ": missing '" + key + "'");
  return c[key];
}

// A Functional model rebuilt from its config: the layers from their configs, then every node
// replayed once all the tensors it reads exist (shared layers may be called out of order).
std::shared_ptr<Layer> functional_from_config(const json& c) {
  const json& layers = member(c, "layers", "Functional config");
  if (!layers.is_array()) bad_key("layers", "a list", layers);
  struct Pending {
    std::shared_ptr<Layer> layer;  // null for an Input
    std::string name;
    int index;  // the node's index among the layer's nodes
    json args;  // an Input's config
  };
  std::map<std::string, std::shared_ptr<Layer>> by_name;
  std::map<std::pair<std::string, int>, std::vector<SymbolicTensor>> made;
  std::vector<Pending> pending;
  for (const json& entry : layers) {
    const std::string cls = member(entry, "class_name", "Functional layer").get<std::string>();
    const json& conf = member(entry, "config", "Functional layer");
    const std::string lname = name_of(conf);
    if (lname.empty() || by_name.count(lname))
      throw std::invalid_argument("Functional config: layer name '" + lname +
                                  "' is empty or repeated");
    if (cls == "InputLayer") {  // made in list order with the nodes, as they were first made
      by_name[lname] = nullptr;
      pending.push_back({nullptr, lname, 0, conf});
      continue;
    }
    auto layer = layer_from_config(entry);
    by_name[lname] = layer;
    const json& inbound = entry.contains("inbound_nodes") ? entry["inbound_nodes"] : json::array();
    if (!inbound.is_array()) bad_key("inbound_nodes", "a list", inbound);
    int k = 0;
    for (const json& node : inbound) pending.push_back({layer, lname, k++, member(node, "args", "inbound node")});
  }
  auto ref = [&](const json& kt) -> std::pair<std::pair<std::string, int>, int> {
    const json& h = member(member(kt, "config", "keras tensor"), "keras_history", "keras tensor");
    if (!h.is_array() || h.size() != 3 || !h[0].is_string() || !h[1].is_number_integer() ||
        !h[2].is_number_integer())
      bad_key("keras_history", "[layer name, node index, tensor index]", h);
    return {{h[0].get<std::string>(), h[1].get<int>()}, h[2].get<int>()};
  };
  auto lookup = [&](const json& kt, SymbolicTensor& out) {
    const auto [node, tensor] = ref(kt);
    const auto it = made.find(node);
    if (it == made.end()) return false;
    if (tensor < 0 || static_cast<std::size_t>(tensor) >= it->second.size())
      bad_key("keras_history", "an existing output", kt);
    out = it->second[static_cast<std::size_t>(tensor)];
    return true;
  };
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      if (!it->layer) {
        made[{it->name, 0}] = {Input(batch_shape(it->args), it->name)};
        it = pending.erase(it);
        progress = true;
        continue;
      }
      const json& args = it->args;
      if (!args.is_array() || args.size() != 1) bad_key("args", "one argument", args);
      std::vector<SymbolicTensor> inputs;
      bool ready = true;
      const bool list = args[0].is_array();
      for (const json& kt : list ? args[0] : args) {
        SymbolicTensor t;
        if (!lookup(kt, t)) {
          ready = false;
          break;
        }
        inputs.push_back(t);
      }
      if (!ready) {
        ++it;
        continue;
      }
      made[{it->name, it->index}] = it->layer->call_all(inputs);
      it = pending.erase(it);
      progress = true;
    }
    if (!progress)
      throw std::invalid_argument("Functional config: node " + std::to_string(pending[0].index) +
                                  " of layer '" + pending[0].name +
                                  "' reads a tensor that no layer makes");
  }
  auto tensors = [&](const char* key) {
    std::vector<SymbolicTensor> out;
    const json& list = member(c, key, "Functional config");
    if (!list.is_array()) bad_key(key, "a list", list);
    for (const json& h : list) {
      SymbolicTensor t;
      if (!lookup(json{{"config", {{"keras_history", h}}}}, t))
        bad_key(key, "tensors of the model's layers", h);
      out.push_back(t);
    }
    return out;
  };
  auto model = std::make_shared<Model>(tensors("input_layers"), tensors("output_layers"), name_of(c));
  apply_base_config(*model, c);
  return model;
}

std::shared_ptr<Layer> sequential_from_config(const json& c) {
  const json& layers = member(c, "layers", "Sequential config");
  if (!layers.is_array()) bad_key("layers", "a list", layers);
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{}, name_of(c));
  for (const json& entry : layers) model->add(layer_from_config(entry));
  if (!model->built() && c.contains("build_input_shape")) {
    json b = c["build_input_shape"];
    model->ensure_built(batch_shape(json{{"batch_shape", b}}));
  }
  apply_base_config(*model, c);
  return model;
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
  f["Conv1D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Conv1D>(conv_options_from_config(c));
    apply_base_config(*l, c);
    return l;
  };
  f["Conv2D"] = [](const json& c) -> std::shared_ptr<Layer> {
    auto l = std::make_shared<Conv2D>(conv_options_from_config(c));
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

DenseOptions dense_options_from_config(const json& c) {
  DenseOptions o;
  read(c, "units", o.units);
  o.activation = activation(c);
  read(c, "use_bias", o.use_bias);
  read(c, "kernel_initializer", o.kernel_initializer);
  read(c, "bias_initializer", o.bias_initializer);
  o.name = name_of(c);
  return o;
}

ConvOptions conv_options_from_config(const json& c) {
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
  int groups = 1;
  read(c, "groups", groups);
  if (groups != 1) bad_key("groups", "1 (grouped convolutions are not supported yet)", c["groups"]);
  o.name = name_of(c);
  return o;
}

PoolOptions pool_options_from_config(const json& c) {
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
    if (!c["seed"].is_number_unsigned()) bad_key("seed", "null or a non-negative integer", c["seed"]);
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

void register_layer(const std::string& class_name, LayerFactory factory) {
  if (class_name.empty()) throw std::invalid_argument("register_layer: empty class name");
  if (!factory) throw std::invalid_argument("register_layer: empty factory for '" + class_name + "'");
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
    return layer;
  } catch (const std::exception& e) {
    throw std::invalid_argument("layer '" + name_of(entry["config"]) + "' (" + cls + "): " + e.what());
  }
}

}  // namespace xtape::layers
