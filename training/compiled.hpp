#pragma once
/// @file compiled.hpp
/// Internal: what Model::compile resolved — per-output losses and weights, metrics with their
/// running sums — and the running loss trackers of the training loop.
#include <string>
#include <vector>

#include "losses/losses.hpp"
#include "metrics/metrics.hpp"
#include "models/model.hpp"

namespace xtape::layers {

struct Model::Compiled {
  struct Metric {
    std::string name;  // as logged ("accuracy", "out_a_accuracy")
    std::shared_ptr<metrics::Metric> metric;
  };
  struct Output {
    std::string name;  // the output layer's name (Keras's output names)
    std::shared_ptr<losses::Loss> loss;
    float weight = 1.f;
    std::vector<Metric> metrics;
    double loss_total = 0, loss_count = 0;  // this output's running loss (several outputs)
    Tensor last_loss;                       // this output's loss in the last compute_loss
  };
  CompileOptions options;
  std::vector<Output> outputs;  // resolved at the first step (the output count is known then)
  double loss_total = 0, loss_count = 0;
};

}  // namespace xtape::layers
