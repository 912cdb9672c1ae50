#pragma once
/// @file dataset.hpp
/// Sources of batches for Model::fit, evaluate and predict, for data that does not fit in one
/// tensor or is made on the fly (Keras's PyDataset / generators).
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "autodiff/random.hpp"
#include "training/options.hpp"

namespace xtape::layers {

/// A source of batches, read epoch by epoch.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Batches per epoch, or 0 when unknown (fit then needs steps_per_epoch).
  virtual std::size_t batches() const = 0;
  /// Starts epoch `epoch` (0-based): shuffling happens here.
  virtual void begin_epoch(int /*epoch*/) {}
  /// The next batch of the epoch, or nullopt when the epoch's data is exhausted.
  virtual std::optional<Batch> next() = 0;
};

/// Options of ArrayDataset.
struct ArrayDatasetOptions {
  std::size_t batch_size = 32;
  bool shuffle = true;
  /// Seed of the shuffle; a fresh permutation every epoch.
  std::uint64_t seed = 0;
  /// Per-sample weights (n,), or undefined.
  Tensor sample_weight = {};
};

/// In-memory arrays (every x and y with the same number of rows) in shuffled batches.
class ArrayDataset : public Dataset {
 public:
  /// Throws std::invalid_argument when the arrays disagree in rows, are empty, or
  /// batch_size is 0.
  ArrayDataset(std::vector<Tensor> x, std::vector<Tensor> y, ArrayDatasetOptions options = {});
  std::size_t batches() const override;
  void begin_epoch(int epoch) override;
  std::optional<Batch> next() override;
  std::size_t rows() const { return n_; }

 private:
  std::vector<Tensor> x_, y_;
  ArrayDatasetOptions options_;
  std::size_t n_ = 0, pos_ = 0;
  std::vector<std::size_t> order_;
  Rng rng_;
};

/// Batches from a callable: `next()` returns the next batch or nullopt at the end of an
/// epoch; `reset(epoch)` (optional) starts an epoch. `batches` is the count per epoch if
/// known, else 0.
class GeneratorDataset : public Dataset {
 public:
  GeneratorDataset(std::function<std::optional<Batch>()> next, std::size_t batches = 0,
                   std::function<void(int)> reset = nullptr);
  std::size_t batches() const override { return batches_; }
  void begin_epoch(int epoch) override {
    if (reset_) reset_(epoch);
  }
  std::optional<Batch> next() override { return next_(); }

 private:
  std::function<std::optional<Batch>()> next_;
  std::size_t batches_;
  std::function<void(int)> reset_;
};

/// Rows `rows` of every array (the batch of a shuffled epoch).
std::vector<Tensor> gather_all(const std::vector<Tensor>& arrays,
                               const std::vector<std::size_t>& rows);

}  // namespace xtape::layers
