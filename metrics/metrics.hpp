#pragma once
/// @file metrics.hpp
/// Metrics as stateful objects with Keras 3's semantics (keras/src/metrics): update_state()
/// accumulates a batch, result() reads the value, reset_state() starts over. Metrics record
/// nothing on the tape (they read values under NoGrad) and accumulate in double precision. Every
/// metric checks its shapes after Keras's squeeze/expand of (n,) against (n, 1): a mismatch
/// throws std::invalid_argument naming the metric and both shapes.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape::metrics {

/// Base of every metric (Keras's keras.metrics.Metric).
class Metric {
 public:
  /// Throws std::invalid_argument for an empty name.
  explicit Metric(std::string name);
  virtual ~Metric() = default;

  /// Accumulates one batch. sample_weight (optional) weighs samples as Keras does: (n,), (n, 1),
  /// a scalar, or per element. Throws std::invalid_argument on mismatched shapes or bad labels.
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred,
                            const Tensor& sample_weight = Tensor()) = 0;
  /// The value over every batch since the last reset (0 before any).
  virtual double result() const = 0;
  /// Forgets every batch.
  virtual void reset_state() = 0;

  const std::string& name() const { return name_; }

  /// The accumulated state as numbers (for checkpoints and a distributed all-reduce: the state of
  /// every built-in metric sums across replicas). Default: empty (no state to save).
  virtual std::vector<double> state() const;
  /// Restores a state() of the same metric; throws std::invalid_argument naming the metric when
  /// the size differs.
  virtual void set_state(const std::vector<double>& state);

 protected:
  /// "<name>: <what>; received y_true of shape (..) and y_pred of shape (..)" as an exception.
  std::invalid_argument shape_error(const std::string& what, const Tensor& y_true,
                                    const Tensor& y_pred) const;
  /// Throws std::invalid_argument unless state.size() == expected.
  void check_state_size(const std::vector<double>& state, std::size_t expected) const;

 private:
  std::string name_;
};

namespace detail {
/// Per-sample metric values in double, with their shape (first axis: the samples).
struct Values {
  Shape shape;
  std::vector<double> v;
};
}  // namespace detail

/// Weighted mean of values (Keras's keras.metrics.Mean), the base of most metrics. Each update
/// reduces values to one per sample (the mean over the other axes) and adds them; the count grows
/// by the number of samples, or by the sum of the sample weights.
class Mean : public Metric {
 public:
  explicit Mean(std::string name = "mean");
  /// Accumulates `values` (a scalar counts as one sample) with an optional sample_weight.
  void update_values(const Tensor& values, const Tensor& sample_weight = Tensor());
  /// Mean takes values, not targets: y_pred holds the values and y_true must be undefined
  /// (std::invalid_argument otherwise).
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  /// total / count, 0 while count is 0.
  double result() const override;
  void reset_state() override;
  /// {total, count}.
  std::vector<double> state() const override;
  void set_state(const std::vector<double>& state) override;
  double total() const { return total_; }
  double count() const { return count_; }

 protected:
  /// Adds per-sample values with an optional sample_weight (Keras's
  /// reduce_to_samplewise_values); throws std::invalid_argument naming the metric when the
  /// weight does not fit the values.
  void accumulate(const detail::Values& values, const Tensor& sample_weight);

 private:
  double total_ = 0, count_ = 0;
};

/// Weighted sum of values (Keras's keras.metrics.Sum).
class Sum : public Metric {
 public:
  explicit Sum(std::string name = "sum");
  void update_values(const Tensor& values, const Tensor& sample_weight = Tensor());
  /// As Mean::update_state: values in y_pred, y_true undefined.
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  double result() const override { return total_; }
  void reset_state() override { total_ = 0; }
  /// {total}.
  std::vector<double> state() const override { return {total_}; }
  void set_state(const std::vector<double>& state) override;

 private:
  double total_ = 0;
};

/// A per-sample metric function: (y_true, y_pred) -> one value per sample (or per element).
using MetricFn = std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)>;

/// The mean of a per-sample function (Keras's MeanMetricWrapper). y_true and y_pred reach the
/// function after the (n,) vs (n, 1) squeeze/expand, under NoGrad.
class MeanMetricWrapper : public Mean {
 public:
  /// Throws std::invalid_argument for an empty function.
  MeanMetricWrapper(std::string name, MetricFn fn);
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;

 private:
  MetricFn fn_;
};

/// Mean of per-batch values weighted by count (a MeanMetricWrapper): any per-sample function
/// becomes a metric.
std::shared_ptr<Metric> make_metric(std::string name, MetricFn per_sample_fn);

/// A built-in metric by Keras name, alias or class name: "accuracy"/"acc",
/// "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
/// "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mean_squared_error"
/// ("mse"), "mean_absolute_error" ("mae"), "root_mean_squared_error", "auc", "precision",
/// "recall", "mean", "sum", and the means of losses ("binary_crossentropy",
/// "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence", "poisson",
/// "hinge", "squared_hinge", "categorical_hinge", "mean_absolute_percentage_error",
/// "mean_squared_logarithmic_error", "cosine_similarity", "logcosh"). The metric is named
/// `name` (a class name gives the class's default name), as Keras's compile names it.
/// "accuracy" resolves as Keras does: with loss_name categorical_crossentropy to categorical
/// accuracy, sparse_categorical_crossentropy to sparse, binary_crossentropy to binary; otherwise
/// from the shapes of the first update (y_pred's last extent 1: binary; y_true of lower rank or
/// last extent 1: sparse; else categorical). Throws std::invalid_argument naming an unknown metric.
std::shared_ptr<Metric> get(const std::string& name, const std::string& loss_name = "");

// ---- accuracies and regression errors (metrics/accuracy.cpp) ----

/// Options of BinaryAccuracy.
struct BinaryAccuracyOptions {
  float threshold = 0.5f;  ///< y_pred > threshold predicts 1
  std::string name = "binary_accuracy";
};
/// Fraction of y_true == (y_pred > threshold), y_true of y_pred's shape.
class BinaryAccuracy : public Mean {
 public:
  explicit BinaryAccuracy(BinaryAccuracyOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;

 private:
  BinaryAccuracyOptions options_;
};

/// Fraction of argmax(y_true) == argmax(y_pred) over the last axis (one-hot y_true of y_pred's
/// shape). Ties go to the first maximal entry.
class CategoricalAccuracy : public Mean {
 public:
  explicit CategoricalAccuracy(std::string name = "categorical_accuracy");
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
};

/// Fraction of label == argmax(y_pred), labels of shape y_pred.shape[:-1] (or with a trailing 1);
/// a label that is not a class index throws std::invalid_argument naming its position.
class SparseCategoricalAccuracy : public Mean {
 public:
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy");
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
};

/// Options of TopKCategoricalAccuracy.
struct TopKCategoricalAccuracyOptions {
  int k = 5;  ///< >= 1
  std::string name = "top_k_categorical_accuracy";
};
/// Fraction of samples whose true class (argmax of one-hot y_true) is among the k largest
/// predictions; predictions tied with the k-th largest count as in the top k (as in_top_k).
class TopKCategoricalAccuracy : public Mean {
 public:
  explicit TopKCategoricalAccuracy(TopKCategoricalAccuracyOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;

 private:
  TopKCategoricalAccuracyOptions options_;
};

/// Options of SparseTopKCategoricalAccuracy.
struct SparseTopKCategoricalAccuracyOptions {
  int k = 5;  ///< >= 1
  std::string name = "sparse_top_k_categorical_accuracy";
};
/// TopKCategoricalAccuracy from integer labels of shape y_pred.shape[:-1].
class SparseTopKCategoricalAccuracy : public Mean {
 public:
  explicit SparseTopKCategoricalAccuracy(SparseTopKCategoricalAccuracyOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;

 private:
  SparseTopKCategoricalAccuracyOptions options_;
};

/// Mean of (y_true - y_pred)^2 (per sample over the last axis), y_true of y_pred's shape.
class MeanSquaredError : public Mean {
 public:
  explicit MeanSquaredError(std::string name = "mean_squared_error");
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
};

/// Mean of |y_true - y_pred| (per sample over the last axis), y_true of y_pred's shape.
class MeanAbsoluteError : public Mean {
 public:
  explicit MeanAbsoluteError(std::string name = "mean_absolute_error");
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
};

/// sqrt of the weighted mean squared error over every batch.
class RootMeanSquaredError : public Mean {
 public:
  explicit RootMeanSquaredError(std::string name = "root_mean_squared_error");
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  double result() const override;
};

// ---- confusion-matrix metrics (metrics/confusion.cpp). y_true counts as positive where it is
// nonzero; y_true has y_pred's shape (after the squeeze/expand); a sample weight is broadcast
// over y_pred's trailing axes ((n,) weighs each row). ----

enum class AUCCurve { ROC, PR };
enum class AUCSummation { interpolation, minoring, majoring };

/// Options of AUC.
struct AUCOptions {
  int num_thresholds = 200;  ///< > 1: 0 - 1e-7, 1/(T-1), ..., (T-2)/(T-1), 1 + 1e-7
  AUCCurve curve = AUCCurve::ROC;
  /// interpolation: trapezoids for ROC, Davis & Goadrich's interpolation for PR.
  AUCSummation summation_method = AUCSummation::interpolation;
  bool from_logits = false;  ///< apply a sigmoid to y_pred first
  std::string name = "auc";
};
/// Area under the ROC or precision-recall curve, from confusion counts at evenly spaced
/// thresholds (Keras's bucketed algorithm: y_pred clipped to [0, 1]). A non-finite prediction
/// throws std::invalid_argument naming its position.
class AUC : public Metric {
 public:
  explicit AUC(AUCOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override;
  /// true positives, false positives, true negatives, false negatives: num_thresholds each.
  std::vector<double> state() const override;
  void set_state(const std::vector<double>& state) override;
  /// The thresholds, ascending.
  std::vector<double> thresholds() const;

 private:
  double interpolate_pr() const;
  AUCOptions options_;
  std::vector<double> tp_, fp_, tn_, fn_;
};

/// Options of Precision and Recall.
struct PrecisionRecallOptions {
  /// y_pred > threshold predicts positive; in [0, 1]. Default 0.5, or (with top_k) any value
  /// among the top k.
  std::optional<float> threshold = std::nullopt;
  /// Only the k largest predictions of each row (along the last axis) can be positive.
  std::optional<int> top_k = std::nullopt;
  /// Only this class (an index of the last axis) is scored.
  std::optional<int> class_id = std::nullopt;
  std::string name = "";  ///< "" gives "precision" or "recall"
};

/// true positives / (true positives + false positives), 0 before any positive prediction.
class Precision : public Metric {
 public:
  explicit Precision(PrecisionRecallOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override { tp_ = fp_ = 0; }
  /// {true positives, false positives}.
  std::vector<double> state() const override { return {tp_, fp_}; }
  void set_state(const std::vector<double>& state) override;

 private:
  PrecisionRecallOptions options_;
  double tp_ = 0, fp_ = 0;
};

/// true positives / (true positives + false negatives), 0 before any positive label.
class Recall : public Metric {
 public:
  explicit Recall(PrecisionRecallOptions options = {});
  void update_state(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor()) override;
  double result() const override;
  void reset_state() override { tp_ = fn_ = 0; }
  /// {true positives, false negatives}.
  std::vector<double> state() const override { return {tp_, fn_}; }
  void set_state(const std::vector<double>& state) override;

 private:
  PrecisionRecallOptions options_;
  double tp_ = 0, fn_ = 0;
};

}  // namespace xtape::metrics
