// The Loss base (Keras's Loss.__call__: squeeze/expand, shape check, sample weight, mask,
// reduction), make_loss and the name registry get().
#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include "autodiff/ops.hpp"
#include "losses/detail.hpp"
#include "losses/losses.hpp"

namespace xtape::losses {

namespace detail {

bool squeeze_or_expand(Shape& a, Shape& b, bool expand_rank_1) {
  const std::size_t ra = a.size(), rb = b.size();
  if (ra == rb + 1 && a.back() == 1) {
    if (rb == 1 && expand_rank_1)
      b.push_back(1);
    else
      a.pop_back();
    return true;
  }
  if (rb == ra + 1 && b.back() == 1) {
    if (ra == 1 && expand_rank_1)
      a.push_back(1);
    else
      b.pop_back();
    return true;
  }
  return false;
}

Tensor reshaped(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  return reshape(x, std::vector<long>(shape.begin(), shape.end()));
}

void squeeze_or_expand(Tensor& a, Tensor& b, bool expand_rank_1) {
  Shape sa = a.shape(), sb = b.shape();
  if (!squeeze_or_expand(sa, sb, expand_rank_1)) return;
  a = reshaped(a, sa);
  b = reshaped(b, sb);
}

int normalize_axis(int axis, const Shape& shape, const std::string& who) {
  const int n = static_cast<int>(shape.size());
  const int a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw std::invalid_argument(who + ": axis " + std::to_string(axis) +
                                " is out of range for shape " + shape_str(shape));
  return a;
}

Tensor mean_last(const Tensor& x) { return x.ndim() >= 2 ? mean(x, {-1}) : x; }

}  // namespace detail

Reduction parse_reduction(const std::string& name) {
  if (name == "sum_over_batch_size" || name == "mean") return Reduction::sum_over_batch_size;
  if (name == "sum") return Reduction::sum;
  if (name == "none") return Reduction::none;
  throw std::invalid_argument("unknown loss reduction '" + name +
                              "' (expected sum_over_batch_size, sum or none)");
}

std::string reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::sum_over_batch_size:
      return "sum_over_batch_size";
    case Reduction::sum:
      return "sum";
    case Reduction::none:
      return "none";
  }
  return "?";
}

Loss::Loss(std::string name, Reduction reduction) : name_(std::move(name)), reduction_(reduction) {
  if (name_.empty()) throw std::invalid_argument("Loss: the name must not be empty");
}

std::invalid_argument Loss::shape_error(const std::string& what, const Tensor& y_true,
                                        const Tensor& y_pred) const {
  return std::invalid_argument(name_ + ": " + what + "; received y_true of shape " +
                               shape_str(y_true.shape()) + " and y_pred of shape " +
                               shape_str(y_pred.shape()));
}

void Loss::check_shapes(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() == 0) throw shape_error("expected y_pred of rank >= 1", y_true, y_pred);
  if (y_true.shape() != y_pred.shape())
    throw shape_error("expected y_true of y_pred's shape (or (n,) against (n, 1))", y_true, y_pred);
}

Tensor Loss::mask(const Tensor&, const Tensor&) const { return Tensor(); }

Tensor Loss::operator()(const Tensor& y_true_in, const Tensor& y_pred_in,
                        const Tensor& sample_weight) const {
  if (!y_true_in.defined() || !y_pred_in.defined())
    throw std::invalid_argument(name_ + ": y_true and y_pred must be defined tensors");
  Tensor y_true = y_true_in, y_pred = y_pred_in;
  detail::squeeze_or_expand(y_true, y_pred);
  check_shapes(y_true, y_pred);
  Tensor values = call(y_true, y_pred);
  if (!values.defined()) throw std::logic_error(name_ + ": call() returned an undefined tensor");

  // Keras's apply_mask: with sum_over_batch_size, valid entries weigh total / valid so that the
  // mean runs over the valid ones only.
  Tensor weight = sample_weight;
  if (Tensor m = mask(y_true, y_pred); m.defined()) {
    if (reduction_ == Reduction::sum_over_batch_size) {
      double valid = 0;
      for (std::size_t i = 0; i < m.size(); ++i) valid += m.data()[i];
      m = m * (valid > 0 ? static_cast<float>(m.size()) / static_cast<float>(valid) : 0.f);
    }
    if (weight.defined()) {
      detail::squeeze_or_expand(m, weight);
      if (broadcast_shapes(m.shape(), weight.shape(), name_.c_str()) != m.shape())
        throw std::invalid_argument(
            name_ + ": sample_weight of shape " + shape_str(weight.shape()) +
            " does not broadcast to the losses of shape " + shape_str(m.shape()));
      weight = weight * m;
    } else {
      weight = m;
    }
  }
  if (weight.defined()) {
    detail::squeeze_or_expand(values, weight);
    // A scalar, or one weight per loss element with extents of 1 broadcast (not NumPy's
    // right-aligned broadcasting of a lower rank, which would weight (n,) across (n, n) wrongly).
    bool ok = weight.ndim() == 0 || weight.ndim() == values.ndim();
    for (std::size_t i = 0; ok && i < weight.ndim(); ++i)
      ok = weight.shape()[i] == 1 || weight.shape()[i] == values.shape()[i];
    if (!ok)
      throw std::invalid_argument(name_ + ": sample_weight of shape " + shape_str(weight.shape()) +
                                  " does not match the per-sample losses of shape " +
                                  shape_str(values.shape()) + " (y_pred of shape " +
                                  shape_str(y_pred.shape()) +
                                  "): expected a scalar or one weight per sample");
    values = values * weight;
  }

  // Keras's reduce_values: a scalar is returned as it is.
  if (reduction_ == Reduction::none || values.ndim() == 0) return values;
  if (reduction_ == Reduction::sum || values.size() == 0) return sum(values);
  return mean(values);
}

namespace {

class FunctionLoss : public Loss {
 public:
  FunctionLoss(std::string name, LossFn fn, Reduction reduction)
      : Loss(std::move(name), reduction), fn_(std::move(fn)) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    return fn_(y_true, y_pred);
  }

 protected:
  // A user function decides which shapes it takes; its own ops report mismatches.
  void check_shapes(const Tensor&, const Tensor&) const override {}

 private:
  LossFn fn_;
};

// "crossentropy": Keras's compile picks binary, sparse or categorical from the shapes.
class AutoCrossentropy : public Loss {
 public:
  AutoCrossentropy(std::string name, Reduction reduction) : Loss(std::move(name), reduction) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    const bool binary = y_pred.shape().back() == 1;
    const bool sparse =
        y_true.ndim() < y_pred.ndim() || (y_true.shape().back() == 1 && y_pred.shape().back() > 1);
    if (binary) return binary_(y_true, y_pred);
    if (sparse) return sparse_(y_true, y_pred);
    return categorical_(y_true, y_pred);
  }

 protected:
  void check_shapes(const Tensor& y_true, const Tensor& y_pred) const override {
    if (y_true.ndim() == 0 || y_pred.ndim() == 0)
      throw shape_error("expected y_true and y_pred of rank >= 1", y_true, y_pred);
  }

 private:
  BinaryCrossentropy binary_{{.reduction = Reduction::none, .name = name()}};
  SparseCategoricalCrossentropy sparse_{{.reduction = Reduction::none, .name = name()}};
  CategoricalCrossentropy categorical_{{.reduction = Reduction::none, .name = name()}};
};

struct Entry {
  std::vector<std::string> names;  // Keras names and aliases
  std::string class_name;
  std::string default_name;
  std::function<std::shared_ptr<Loss>(std::string, Reduction)> make;
};

template <class L>
Entry simple(std::vector<std::string> names, std::string class_name, std::string default_name) {
  return {std::move(names), std::move(class_name), std::move(default_name),
          [](std::string n, Reduction r) { return std::make_shared<L>(r, std::move(n)); }};
}

template <class L, class O>
Entry with_options(std::vector<std::string> names, std::string class_name,
                   std::string default_name) {
  return {std::move(names), std::move(class_name), std::move(default_name),
          [](std::string n, Reduction r) {
            O o;
            o.reduction = r;
            o.name = std::move(n);
            return std::make_shared<L>(std::move(o));
          }};
}

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      with_options<BinaryCrossentropy, BinaryCrossentropyOptions>(
          {"binary_crossentropy", "bce", "BCE"}, "BinaryCrossentropy", "binary_crossentropy"),
      with_options<CategoricalCrossentropy, CategoricalCrossentropyOptions>(
          {"categorical_crossentropy"}, "CategoricalCrossentropy", "categorical_crossentropy"),
      with_options<SparseCategoricalCrossentropy, SparseCategoricalCrossentropyOptions>(
          {"sparse_categorical_crossentropy"}, "SparseCategoricalCrossentropy",
          "sparse_categorical_crossentropy"),
      simple<MeanSquaredError>({"mean_squared_error", "mse", "MSE"}, "MeanSquaredError",
                               "mean_squared_error"),
      simple<MeanAbsoluteError>({"mean_absolute_error", "mae", "MAE"}, "MeanAbsoluteError",
                                "mean_absolute_error"),
      simple<MeanAbsolutePercentageError>({"mean_absolute_percentage_error", "mape", "MAPE"},
                                          "MeanAbsolutePercentageError",
                                          "mean_absolute_percentage_error"),
      simple<MeanSquaredLogarithmicError>({"mean_squared_logarithmic_error", "msle", "MSLE"},
                                          "MeanSquaredLogarithmicError",
                                          "mean_squared_logarithmic_error"),
      with_options<Huber, HuberOptions>({"huber", "huber_loss"}, "Huber", "huber_loss"),
      simple<LogCosh>({"log_cosh", "logcosh"}, "LogCosh", "log_cosh"),
      simple<KLDivergence>({"kl_divergence", "kld", "KLD", "kullback_leibler_divergence"},
                           "KLDivergence", "kl_divergence"),
      simple<Poisson>({"poisson"}, "Poisson", "poisson"),
      with_options<CosineSimilarity, CosineSimilarityOptions>(
          {"cosine_similarity"}, "CosineSimilarity", "cosine_similarity"),
      simple<Hinge>({"hinge"}, "Hinge", "hinge"),
      simple<SquaredHinge>({"squared_hinge"}, "SquaredHinge", "squared_hinge"),
      simple<CategoricalHinge>({"categorical_hinge"}, "CategoricalHinge", "categorical_hinge"),
      {{"crossentropy", "ce"},
       "",
       "crossentropy",
       [](std::string n, Reduction r) {
         return std::make_shared<AutoCrossentropy>(std::move(n), r);
       }},
  };
  return entries;
}

}  // namespace

std::shared_ptr<Loss> make_loss(std::string name, LossFn fn, Reduction reduction) {
  if (!fn) throw std::invalid_argument("make_loss: loss '" + name + "' has no function");
  return std::make_shared<FunctionLoss>(std::move(name), std::move(fn), reduction);
}

std::shared_ptr<Loss> get(const std::string& name, Reduction reduction) {
  std::string known;
  for (const Entry& e : registry()) {
    if (e.class_name == name) return e.make(e.default_name, reduction);
    if (std::find(e.names.begin(), e.names.end(), name) != e.names.end())
      return e.make(name, reduction);
    known += (known.empty() ? "" : ", ") + e.names.front();
  }
  throw std::invalid_argument("unknown loss '" + name + "' (expected one of " + known +
                              ", their aliases or class names)");
}

}  // namespace xtape::losses
