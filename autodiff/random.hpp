#pragma once
/// @file random.hpp
/// A small, fast, seedable random generator (xoshiro256**) whose state can be saved and restored.
#include <array>
#include <cstdint>

namespace xtape {

/// Deterministic pseudo-random generator. Same seed, same sequence, on every platform.
class Rng {
 public:
  /// Seeds the four state words from `seed` with splitmix64.
  explicit Rng(std::uint64_t seed = 1337);
  void seed(std::uint64_t seed);
  /// Next 64 random bits.
  std::uint64_t next_u64();
  /// Uniform float in [0, 1) with 24 random bits.
  float uniform();
  /// Uniform float in [lo, hi).
  float uniform(float lo, float hi);
  /// Standard normal (Box-Muller).
  float normal();
  /// Uniform integer in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n);

  using State = std::array<std::uint64_t, 4>;
  State state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  State s_{};
};

/// The process-wide default generator used by initializers and layers without their own.
Rng& global_rng();
/// Reseeds global_rng() (like keras.utils.set_random_seed).
void set_random_seed(std::uint64_t seed);

}  // namespace xtape
