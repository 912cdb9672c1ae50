#pragma once
/// @file profiler.hpp
/// A per-thread op profiler built into the tape: where a training step's time goes, per op.
///
///     xtape::profiler_start();
///     ... forward, backward ...
///     for (const auto& t : xtape::profiler_stop()) std::cout << t.op << ' ' << t.forward_ms << '\n';
///
/// Backward times are exact (each backward rule is timed). A forward op is charged the time
/// since the previous recorded op (or since profiler_start()/profiler_mark()), so code between
/// ops, and ops that record nothing (no input requires a gradient, or NoGrad), are charged to
/// the next recorded op. Call profiler_mark() before a step to drop the time spent outside it.
#include <cstddef>
#include <string>
#include <vector>

namespace xtape {

struct OpTime {
  std::string op;
  std::size_t forward_calls = 0;
  std::size_t backward_calls = 0;
  double forward_ms = 0;
  double backward_ms = 0;
};

/// Starts (or restarts, clearing the figures) profiling on this thread. With `by_shape`, each
/// op is split by its output shape ("conv2d(128, 26, 26, 32)"), telling layers apart.
void profiler_start(bool by_shape = false);
/// Restarts the forward clock: the time since the last recorded op is charged to nothing.
void profiler_mark();
/// Stops profiling on this thread and returns the figures, largest total first.
std::vector<OpTime> profiler_stop();

}  // namespace xtape
