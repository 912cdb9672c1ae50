#pragma once
/// @file options.hpp
/// Options and results of Model::fit, evaluate and predict (Keras names and defaults).
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xtape::layers {

class Callback;

/// Options of Model::fit (Keras names and defaults).
struct FitOptions {
  std::size_t batch_size = 32;
  int epochs = 1;
  /// Fraction of the data, taken from the end before shuffling, held out for validation.
  float validation_split = 0.f;
  bool shuffle = true;
  /// 0 silent, 1 progress bar (one line per epoch when stdout is not a terminal), 2 one line.
  int verbose = 1;
  /// Epoch to start from (epochs counts the last epoch, as in Keras).
  int initial_epoch = 0;
  /// Called in order at the beginning and end of training, of every epoch and of every batch.
  std::vector<std::shared_ptr<Callback>> callbacks = {};
};

/// Per-epoch metrics of a fit: history["loss"], history["accuracy"], history["val_loss"], ...
struct History {
  std::map<std::string, std::vector<double>> history;
  std::vector<double> epoch_seconds;
};

/// Options of evaluate and predict.
struct EvaluateOptions {
  std::size_t batch_size = 32;
  int verbose = 1;
};

}  // namespace xtape::layers
