#pragma once
/// @file noise.hpp
/// Regularization layers that draw random numbers while training and are the identity at
/// inference (Keras's GaussianNoise, GaussianDropout, SpatialDropout1D/2D, AlphaDropout), and
/// Identity and Lambda. Each noise layer owns its generator (seeded from the option, else from
/// the global RNG at construction) and saves its state in checkpoints, as Dropout does.
#include <functional>
#include <optional>
#include <string>

#include "autodiff/random.hpp"
#include "layers/layer.hpp"

namespace xtape::layers {

/// Options of the noise layers: `rate` (a drop probability in [0, 1)) or `stddev` (>= 0).
struct NoiseOptions {
  float rate = 0.f;
  float stddev = 0.f;
  std::optional<std::uint64_t> seed;
  std::string name = "";
};

/// Base of the noise layers: the generator, its checkpoint state, and the config's seed.
class NoiseLayer : public Layer {
 public:
  NoiseLayer(const char* cls, NoiseOptions options, bool uses_rate);
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;
  LayerState save_own_state() const override;
  void load_own_state(const LayerState& state) override;
  Rng& rng() { return rng_; }

 protected:
  NoiseOptions options_;
  Rng rng_;

 private:
  bool uses_rate_;
};

/// x + N(0, stddev^2) noise while training.
class GaussianNoise : public NoiseLayer {
 public:
  using Options = NoiseOptions;
  explicit GaussianNoise(NoiseOptions options) : NoiseLayer("GaussianNoise", std::move(options), false) {}
  Tensor call(const Tensor& inputs, bool training) override;
};

/// x * N(1, rate / (1 - rate)) noise while training.
class GaussianDropout : public NoiseLayer {
 public:
  using Options = NoiseOptions;
  explicit GaussianDropout(NoiseOptions options) : NoiseLayer("GaussianDropout", std::move(options), true) {}
  Tensor call(const Tensor& inputs, bool training) override;
};

/// Dropout of whole channels: one draw per (sample, channel), the kept ones scaled by
/// 1 / (1 - rate). Inputs (batch, steps, channels) for 1D, (batch, h, w, channels) for 2D.
class SpatialDropout : public NoiseLayer {
 public:
  SpatialDropout(const char* cls, int rank, NoiseOptions options)
      : NoiseLayer(cls, std::move(options), true), rank_(rank) {}
  Tensor call(const Tensor& inputs, bool training) override;

 private:
  int rank_;
};

class SpatialDropout1D : public SpatialDropout {
 public:
  using Options = NoiseOptions;
  explicit SpatialDropout1D(NoiseOptions options) : SpatialDropout("SpatialDropout1D", 1, std::move(options)) {}
};

class SpatialDropout2D : public SpatialDropout {
 public:
  using Options = NoiseOptions;
  explicit SpatialDropout2D(NoiseOptions options) : SpatialDropout("SpatialDropout2D", 2, std::move(options)) {}
};

/// Dropout that keeps SELU's self-normalizing mean and variance: dropped units take SELU's
/// negative saturation value, then an affine correction (Keras's AlphaDropout).
class AlphaDropout : public NoiseLayer {
 public:
  using Options = NoiseOptions;
  explicit AlphaDropout(NoiseOptions options) : NoiseLayer("AlphaDropout", std::move(options), true) {}
  Tensor call(const Tensor& inputs, bool training) override;
};

/// The identity that adds l1 * sum(|x|) + l2 * sum(x^2) of its input to the loss (Keras's
/// ActivityRegularization).
class ActivityRegularization : public Layer {
 public:
  explicit ActivityRegularization(float l1 = 0.f, float l2 = 0.f, std::string name = "");
  Tensor call(const Tensor& inputs, bool) override;
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  nlohmann::json get_config() const override;

 private:
  float l1_, l2_;
};

/// The identity (Keras's Identity).
class Identity : public Layer {
 public:
  explicit Identity(std::string name = "") : Layer(std::move(name)) {}
  Tensor call(const Tensor& inputs, bool) override { return inputs; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
};

/// Any C++ callable of tensors as a layer (Keras's Lambda); the tape differentiates it. Not
/// loadable from a config (its code is not data), as Keras refuses to in safe mode.
class Lambda : public Layer {
 public:
  using Function = std::function<Tensor(const Tensor&)>;
  explicit Lambda(Function fn, std::string name = "");
  Tensor call(const Tensor& inputs, bool) override { return fn_(inputs); }

 private:
  Function fn_;
};

}  // namespace xtape::layers
