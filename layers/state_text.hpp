#pragma once
/// @file state_text.hpp
/// Text forms of layer and training state kept in checkpoint metadata.
#include <optional>
#include <string>

#include "autodiff/random.hpp"

namespace xtape::layers {

/// An RNG state as four space-separated 16-digit hex words.
std::string rng_state_text(const Rng::State& state);
/// Parses rng_state_text's form; nullopt unless exactly four 16-digit hex words, not all zero
/// (xoshiro's all-zero state returns 0 forever).
std::optional<Rng::State> parse_rng_state(const std::string& text);

}  // namespace xtape::layers
