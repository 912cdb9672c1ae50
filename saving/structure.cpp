#include "saving/structure.hpp"

#include <map>
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
             out.push_back({key + w.name, path + w.name, {path + w.name, w.value, w.trainable && on}});
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

}  // namespace xtape::layers
