#pragma once
/// @file losses.hpp
/// Losses as objects and by name, with Keras 3's semantics (keras/src/losses): a Loss computes
/// per-sample values in call() and Loss::operator() squeezes or expands y_true against y_pred,
/// checks shapes, applies a sample weight and reduces. Every loss is a composition of the tape's
/// primitives, so it is differentiable in y_pred without gradient code of its own.
///
/// One deliberate difference from Keras: for rank-1 y_true and y_pred (n,), the elementwise losses
/// (MSE, MAE, MAPE, MSLE, Huber, LogCosh, Poisson, hinge, squared hinge, binary cross-entropy)
/// give n per-sample values, as for (n, 1). Keras averages the last axis first and so returns one
/// scalar for the batch, which a per-sample weight then cannot weight sample by sample.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "autodiff/tensor.hpp"

namespace xtape::losses {

/// How Loss::operator() reduces the weighted per-sample losses (Keras's names).
enum class Reduction {
  sum_over_batch_size,  ///< sum divided by the number of loss elements (Keras's default)
  sum,                  ///< plain sum
  none,                 ///< the weighted per-sample losses, unreduced
};

/// "sum_over_batch_size" (or "mean"), "sum", "none"; throws std::invalid_argument otherwise.
Reduction parse_reduction(const std::string& name);
/// The Keras name of a reduction.
std::string reduction_name(Reduction reduction);

/// Base of every loss (Keras's keras.losses.Loss). Subclasses implement call().
class Loss {
 public:
  explicit Loss(std::string name, Reduction reduction = Reduction::sum_over_batch_size);
  virtual ~Loss() = default;

  /// Per-sample losses, shape (n,) (or (n, ...) for elementwise losses before the last-axis
  /// mean: as in Keras the mean over the last axis is part of call()). Receives y_true and y_pred
  /// already squeezed or expanded and shape-checked by operator(). Differentiable in y_pred.
  virtual Tensor call(const Tensor& y_true, const Tensor& y_pred) const = 0;

  /// Keras's Loss.__call__: a y_true one rank below y_pred whose last extent is 1 is expanded
  /// ((n,) vs (n, 1)), or squeezed the other way; shapes are checked (std::invalid_argument
  /// naming the loss and both shapes); then call(), the optional sample_weight (broadcast against
  /// the per-sample losses, after the same squeeze/expand: (n,), (n, 1) or a scalar) and the
  /// reduction. Returns a scalar tensor, or the weighted per-sample losses for Reduction::none.
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) const;

  const std::string& name() const { return name_; }
  Reduction reduction() const { return reduction_; }

 protected:
  /// Checks the shapes after the squeeze/expand; the default wants them equal and of rank >= 1.
  /// Throws std::invalid_argument (see shape_error).
  virtual void check_shapes(const Tensor& y_true, const Tensor& y_pred) const;
  /// Which per-sample losses count (1) and which do not (0), shaped as call()'s result; undefined
  /// (the default) when all count. The reduction divides by the count of valid entries, as Keras
  /// does with a loss's mask (SparseCategoricalCrossentropy's ignore_class).
  virtual Tensor mask(const Tensor& y_true, const Tensor& y_pred) const;
  /// "<name>: <what>; y_true of shape (..) and y_pred of shape (..)" as an exception.
  std::invalid_argument shape_error(const std::string& what, const Tensor& y_true,
                                    const Tensor& y_pred) const;

 private:
  std::string name_;
  Reduction reduction_;
};

/// A per-sample loss function: (y_true, y_pred) -> per-sample losses.
using LossFn = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;

/// Any callable (y_true, y_pred) -> per-sample loss becomes a Loss (Keras's LossFunctionWrapper).
/// Throws std::invalid_argument for an empty name or function.
std::shared_ptr<Loss> make_loss(std::string name, LossFn fn,
                                Reduction reduction = Reduction::sum_over_batch_size);

/// A built-in loss by Keras name, alias or class name: "binary_crossentropy" ("bce"),
/// "categorical_crossentropy", "sparse_categorical_crossentropy", "mean_squared_error" ("mse"),
/// "mean_absolute_error" ("mae"), "mean_absolute_percentage_error" ("mape"),
/// "mean_squared_logarithmic_error" ("msle"), "huber", "log_cosh" ("logcosh"),
/// "kl_divergence" ("kld"), "poisson", "cosine_similarity", "hinge", "squared_hinge",
/// "categorical_hinge", "BinaryCrossentropy", ...; and "crossentropy" ("ce"), which picks binary,
/// sparse or categorical cross-entropy from the shapes of each call as Keras's compile does.
/// The loss is named by `name` (a class name gives the class's default name), with default
/// options and `reduction`. Throws std::invalid_argument naming an unknown loss.
std::shared_ptr<Loss> get(const std::string& name,
                          Reduction reduction = Reduction::sum_over_batch_size);

// ---- probabilistic losses (losses/probabilistic.cpp) ----

/// Options of BinaryCrossentropy.
struct BinaryCrossentropyOptions {
  bool from_logits = false;
  float label_smoothing = 0.f;  ///< in [0, 1]: y_true * (1 - s) + s / 2
  int axis = -1;                ///< the axis averaged
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "binary_crossentropy";
};
/// mean(-(y log p + (1 - y) log(1 - p)), axis) with p clipped to [1e-7, 1 - 1e-7]; from logits
/// computed stably (log-sigmoid), exact at large |logit|.
class BinaryCrossentropy : public Loss {
 public:
  explicit BinaryCrossentropy(BinaryCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  const BinaryCrossentropyOptions& options() const { return options_; }

 private:
  BinaryCrossentropyOptions options_;
};

/// Options of CategoricalCrossentropy.
struct CategoricalCrossentropyOptions {
  bool from_logits = false;
  float label_smoothing = 0.f;  ///< in [0, 1]: y_true * (1 - s) + s / classes
  int axis = -1;                ///< the class axis
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "categorical_crossentropy";
};
/// -sum(y_true * log(p), axis) from one-hot or probability targets of y_pred's shape; the op
/// categorical_crossentropy (autodiff/ops.hpp) on the last axis, so the same bits.
class CategoricalCrossentropy : public Loss {
 public:
  explicit CategoricalCrossentropy(CategoricalCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  const CategoricalCrossentropyOptions& options() const { return options_; }

 protected:
  void check_shapes(const Tensor& y_true, const Tensor& y_pred) const override;

 private:
  CategoricalCrossentropyOptions options_;
};

/// Options of SparseCategoricalCrossentropy.
struct SparseCategoricalCrossentropyOptions {
  bool from_logits = false;
  /// Labels equal to it contribute nothing and are not counted by the reduction.
  std::optional<int> ignore_class = std::nullopt;
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "sparse_categorical_crossentropy";
};
/// Cross-entropy from integer class labels (stored as floats) of shape y_pred.shape[:-1] (or
/// with a trailing 1) against y_pred (..., classes). A label that is not a class index in
/// [0, classes) (other than ignore_class) throws std::invalid_argument naming its position.
class SparseCategoricalCrossentropy : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  const SparseCategoricalCrossentropyOptions& options() const { return options_; }

 protected:
  void check_shapes(const Tensor& y_true, const Tensor& y_pred) const override;
  Tensor mask(const Tensor& y_true, const Tensor& y_pred) const override;

 private:
  Tensor one_hot(const Tensor& labels, const Tensor& y_pred) const;
  SparseCategoricalCrossentropyOptions options_;
};

/// sum(t * log(t / p), -1) with t and p clipped to [1e-7, 1].
class KLDivergence : public Loss {
 public:
  explicit KLDivergence(Reduction reduction = Reduction::sum_over_batch_size,
                        std::string name = "kl_divergence");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// mean(p - t * log(p + 1e-7), -1).
class Poisson : public Loss {
 public:
  explicit Poisson(Reduction reduction = Reduction::sum_over_batch_size,
                   std::string name = "poisson");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

// ---- regression and hinge losses (losses/regression.cpp) ----

/// mean((t - p)^2, -1).
class MeanSquaredError : public Loss {
 public:
  explicit MeanSquaredError(Reduction reduction = Reduction::sum_over_batch_size,
                            std::string name = "mean_squared_error");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// mean(|t - p|, -1).
class MeanAbsoluteError : public Loss {
 public:
  explicit MeanAbsoluteError(Reduction reduction = Reduction::sum_over_batch_size,
                             std::string name = "mean_absolute_error");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// 100 * mean(|(t - p) / max(|t|, 1e-7)|, -1).
class MeanAbsolutePercentageError : public Loss {
 public:
  explicit MeanAbsolutePercentageError(Reduction reduction = Reduction::sum_over_batch_size,
                                       std::string name = "mean_absolute_percentage_error");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// mean((log(max(p, 1e-7) + 1) - log(max(t, 1e-7) + 1))^2, -1).
class MeanSquaredLogarithmicError : public Loss {
 public:
  explicit MeanSquaredLogarithmicError(Reduction reduction = Reduction::sum_over_batch_size,
                                       std::string name = "mean_squared_logarithmic_error");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// Options of Huber.
struct HuberOptions {
  float delta = 1.f;  ///< > 0: where the loss turns from quadratic to linear
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "huber_loss";
};
/// mean(0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2, -1), e = p - t.
class Huber : public Loss {
 public:
  explicit Huber(HuberOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  const HuberOptions& options() const { return options_; }

 private:
  HuberOptions options_;
};

/// mean(log(cosh(p - t)), -1), computed without overflow.
class LogCosh : public Loss {
 public:
  explicit LogCosh(Reduction reduction = Reduction::sum_over_batch_size,
                   std::string name = "log_cosh");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// Options of CosineSimilarity.
struct CosineSimilarityOptions {
  int axis = -1;  ///< the feature axis
  Reduction reduction = Reduction::sum_over_batch_size;
  std::string name = "cosine_similarity";
};
/// -sum(l2_normalize(t) * l2_normalize(p), axis), the squared norms floored at 1e-14: -1 when
/// the vectors point the same way, 0 when one is zero.
class CosineSimilarity : public Loss {
 public:
  explicit CosineSimilarity(CosineSimilarityOptions options = {});
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
  const CosineSimilarityOptions& options() const { return options_; }

 protected:
  void check_shapes(const Tensor& y_true, const Tensor& y_pred) const override;

 private:
  CosineSimilarityOptions options_;
};

/// mean(max(1 - t p, 0), -1); labels in {0, 1} (all of them) are taken as {-1, 1}.
class Hinge : public Loss {
 public:
  explicit Hinge(Reduction reduction = Reduction::sum_over_batch_size, std::string name = "hinge");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// mean(max(1 - t p, 0)^2, -1); labels in {0, 1} (all of them) are taken as {-1, 1}.
class SquaredHinge : public Loss {
 public:
  explicit SquaredHinge(Reduction reduction = Reduction::sum_over_batch_size,
                        std::string name = "squared_hinge");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

/// max(max((1 - t) p, -1) - sum(t p, -1) + 1, 0) for one-hot t.
class CategoricalHinge : public Loss {
 public:
  explicit CategoricalHinge(Reduction reduction = Reduction::sum_over_batch_size,
                            std::string name = "categorical_hinge");
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override;
};

}  // namespace xtape::losses
