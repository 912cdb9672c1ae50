#pragma once
/// @file state_numbers.hpp
/// Internal: numbers in callback state, written exactly ("%.17g") and read back strictly.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "layers/layer.hpp"

namespace xtape::layers::state_numbers {

inline std::string text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// state[key] as a number; throws std::invalid_argument naming `who` and the key.
inline double number(const LayerState& state, const std::string& key, const std::string& who) {
  const auto it = state.find(key);
  if (it == state.end())
    throw std::invalid_argument(who + ": state entry '" + key + "' is missing");
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0')
    throw std::invalid_argument(who + ": state entry '" + key + "' is not a number");
  return v;
}

/// state[key] as an integer in [lo, hi].
inline int integer(const LayerState& state, const std::string& key, const std::string& who, int lo,
                   int hi) {
  const double v = number(state, key, who);
  if (!(v >= lo && v <= hi) || v != static_cast<double>(static_cast<long long>(v)))
    throw std::invalid_argument(who + ": state entry '" + key + "' is not an integer in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(v);
}

}  // namespace xtape::layers::state_numbers
