#include "saving/structure.hpp"

#include <map>
#include <stdexcept>

#include "io/files.hpp"
#include <unordered_set>

namespace xtape::layers {

namespace {

template <class Visit>
void walk(const Layer& layer, const std::string& key_prefix, const std::string& path_prefix,
          bool enclosing_trainable, Visit&& visit) {
  const bool on = enclosing_trainable && layer.trainable();
  visit(layer, key_prefix, path_prefix, on);
  std::map<std::string, int> counts;
  for (const auto& sub : layer.sublayers()) {
    const std::string base = to_snake_case(sub->class_name());
    const int n = counts[base]++;
    const std::string key = key_prefix + (n == 0 ? base : base + "_" + std::to_string(n)) + "/";
    walk(*sub, key, path_prefix + sub->name() + "/", on, visit);
  }
}

}  // namespace

std::vector<StructuredWeight> structured_weights(const Layer& root) {
  std::vector<StructuredWeight> out;
  std::unordered_set<const void*> seen;
  walk(root, "", "", true,
       [&](const Layer& l, const std::string& key, const std::string& path, bool on) {
         for (const Weight& w : l.own_weights())
           if (seen.insert(w.value.id()).second)
             out.push_back(
                 {key + w.name, path + w.name, {path + w.name, w.value, w.trainable && on}});
       });
  return out;
}

std::vector<StructuredLayer> structured_layers(const Layer& root) {
  std::vector<StructuredLayer> out;
  std::unordered_set<const Layer*> seen;
  walk(root, "", "", true, [&](const Layer& l, const std::string& key, const std::string&, bool) {
    if (&l == &root || !seen.insert(&l).second) return;
    out.push_back({key.substr(0, key.size() - 1), const_cast<Layer*>(&l)});
  });
  return out;
}

// The model's weights read from `f`, in structure order, after checking names, dtypes, shapes
// and values. Tensors under "optimizer/" are left to the caller when `allow_optimizer`.
std::vector<Tensor> read_structured_weights(const std::string& who, const SafetensorsFile& f,
                                            const std::vector<StructuredWeight>& weights,
                                            bool allow_optimizer) {
  std::map<std::string, const StructuredWeight*> expected;
  for (const auto& w : weights) expected[w.key] = &w;
  for (const auto& [name, e] : f.tensors) {
    if (expected.count(name)) continue;
    if (allow_optimizer && name.rfind("optimizer/", 0) == 0) continue;
    throw std::runtime_error(who + ": '" + f.path + "': " + "unknown tensor " + io::quoted(name) + " " +
                             shape_str(e.shape) +
                             ": the model has no weight at that place in its structure");
  }
  std::vector<Tensor> values;
  for (const auto& w : weights) {
    const Tensor& t = w.weight.value;
    const std::string label = "'" + w.key + "' (weight '" + w.path + "')";
    const auto it = f.tensors.find(w.key);
    if (it == f.tensors.end())
      throw std::runtime_error(who + ": '" + f.path + "': " + "missing tensor " + label +
                               " of shape " + shape_str(t.shape()));
    if (it->second.dtype != "F32")
      throw std::runtime_error(who + ": '" + f.path + "': " + "tensor " + label +
                               ": expected dtype F32, got " + it->second.dtype);
    if (it->second.shape != t.shape())
      throw std::runtime_error(who + ": '" + f.path + "': " + "tensor " + label +
                               ": expected shape " + shape_str(t.shape()) + ", got " +
                               shape_str(it->second.shape));
    values.push_back(f.f32(w.key));  // also refuses NaN and infinities
  }
  return values;
}

}  // namespace xtape::layers
