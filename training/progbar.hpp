#pragma once
/// @file progbar.hpp
/// Keras 3's progress bar: " 422/422 ━━━━━━━━━━━━━━━━━━━━ 10s 14ms/step - loss: ... ".
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace xtape::layers {

/// Prints training and evaluation progress to stdout. verbose 0: nothing; 1: a bar redrawn
/// in place on a terminal (one line at the end elsewhere); 2: one line at the end.
class Progbar {
 public:
  Progbar(std::size_t target, int verbose);
  /// Shows `current` of the target steps with the values; `final` ends the line.
  void update(std::size_t current, const std::vector<std::pair<std::string, double>>& values,
              bool final);

 private:
  using Clock = std::chrono::steady_clock;
  std::size_t target_;
  int verbose_;
  bool tty_ = false;
  std::size_t width_ = 0;
  Clock::time_point start_, last_{};
};

}  // namespace xtape::layers
