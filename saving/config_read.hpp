#pragma once
/// @file config_read.hpp
/// Internal: reading layer configs (saving/registry.cpp, saving/model_config.cpp).
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::layers::config_read {

using json = nlohmann::json;

[[noreturn]] inline void bad_key(const std::string& key, const std::string& expected,
                                 const json& got) {
  std::string text = got.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  throw std::invalid_argument("config key '" + key + "': expected " + expected + ", got " + text);
}

inline std::string name_of(const json& c) {
  if (!c.is_object() || !c.contains("name")) return "";
  if (!c["name"].is_string()) bad_key("name", "a string", c["name"]);
  return c["name"].get<std::string>();
}

inline const json& member(const json& c, const char* key, const char* what) {
  if (!c.is_object() || !c.contains(key))
    throw std::invalid_argument(std::string(what) + ": missing '" + key + "'");
  return c[key];
}

/// The per-sample shape of a "batch_shape" [null, extents...] entry.
inline Shape batch_shape(const json& c) {
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

}  // namespace xtape::layers::config_read
