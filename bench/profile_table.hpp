#pragma once
/// @file profile_table.hpp
/// The per-op table of a training step for the model benchmarks (bench/ only): runs `step`
/// `steps` times under the tape profiler (one row per op and output shape) and prints the
/// forward, backward and total milliseconds per step of each row, then their sums.
#include <cstdio>
#include <string>

#include "xtape.hpp"

namespace xtape::bench {

template <class Step>
void print_profile_table(const std::string& title, int steps, const Step& step) {
  profiler_start(/*by_shape=*/true);
  for (int i = 0; i < steps; ++i) {
    profiler_mark();
    step();
  }
  const auto ops = profiler_stop();
  std::printf("\n%s, ms per step (forward = time since the previous op)\n", title.c_str());
  std::printf("%-36s %10s %10s %10s\n", "op (output shape)", "forward", "backward", "total");
  double fwd = 0, bwd = 0;
  for (const auto& o : ops) {
    fwd += o.forward_ms, bwd += o.backward_ms;
    std::printf("%-36s %10.3f %10.3f %10.3f\n", o.op.c_str(), o.forward_ms / steps,
                o.backward_ms / steps, (o.forward_ms + o.backward_ms) / steps);
  }
  std::printf("%-36s %10.3f %10.3f %10.3f\n\n", "all recorded ops", fwd / steps, bwd / steps,
              (fwd + bwd) / steps);
}

}  // namespace xtape::bench
