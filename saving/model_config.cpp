// Functional and Sequential models rebuilt from their configs (the registry's factories for
// "Functional" and "Sequential").
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "layers/core.hpp"
#include "layers/node.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "saving/config_read.hpp"
#include "saving/registry.hpp"

namespace xtape::layers {

using namespace config_read;

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
    for (const json& node : inbound)
      pending.push_back({layer, lname, k++, member(node, "args", "inbound node")});
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
  auto model =
      std::make_shared<Model>(tensors("input_layers"), tensors("output_layers"), name_of(c));
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

}  // namespace xtape::layers
