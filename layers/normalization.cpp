#include "layers/normalization.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "autodiff/ops_normalization.hpp"

namespace xtape::layers {

namespace {

// `axis` (of the full input, batch axis 0, negative from the end) normalised for a per-sample
// shape; the batch axis is refused.
int full_axis(int axis, const Shape& sample, const std::string& who) {
  const int rank = static_cast<int>(sample.size()) + 1;
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 1 || a >= rank)
    throw std::invalid_argument(
        who + ": axis " + std::to_string(axis) + " is out of range for inputs of shape " +
        batch_shape_str(sample) + " (expected 1.." + std::to_string(rank - 1) + " or -1..-" +
        std::to_string(rank - 1) + "; the batch axis cannot be normalized)");
  return a;
}

std::vector<int> full_axes(const std::vector<int>& axes, const Shape& sample,
                           const std::string& who) {
  if (axes.empty()) throw std::invalid_argument(who + ": expected at least one axis, got none");
  std::vector<int> out;
  for (int a : axes) out.push_back(full_axis(a, sample, who));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(who + ": repeated axis for inputs of shape " +
                                batch_shape_str(sample));
  return out;
}

// Shape (1, ..., extent on `axes`, ..., 1) of rank `rank`, as reshape's argument.
std::vector<long> broadcast_shape(const Shape& full, const std::vector<int>& axes) {
  std::vector<long> s(full.size(), 1);
  for (int a : axes)
    s[static_cast<std::size_t>(a)] = static_cast<long>(full[static_cast<std::size_t>(a)]);
  return s;
}

nlohmann::json axis_json(const std::vector<int>& axes) {
  return axes.size() == 1 ? nlohmann::json(axes[0]) : nlohmann::json(axes);
}

void check_epsilon(float epsilon, const std::string& who) {
  if (!(epsilon > 0.f))
    throw std::invalid_argument(who + ": epsilon must be positive, got " + std::to_string(epsilon));
}

std::string who(const char* cls, const std::string& name) {
  return std::string(cls) + " '" + name + "'";
}

}  // namespace

// ---- BatchNormalization ----

BatchNormalization::BatchNormalization(BatchNormalizationOptions options)
    : Layer(options.name), options_(std::move(options)) {
  check_epsilon(options_.epsilon, "BatchNormalization");
  if (!(options_.momentum >= 0.f && options_.momentum <= 1.f))
    throw std::invalid_argument("BatchNormalization: momentum must be in [0, 1], got " +
                                std::to_string(options_.momentum));
  for (const std::string* init :
       {&options_.beta_initializer, &options_.gamma_initializer, &options_.moving_mean_initializer,
        &options_.moving_variance_initializer})
    get_initializer(*init);  // validate the names now
}

void BatchNormalization::build(const Shape& input_shape) {
  axis_ = full_axis(options_.axis, input_shape, who("BatchNormalization", name()));
  const Shape shape{input_shape[static_cast<std::size_t>(axis_ - 1)]};
  if (options_.scale) add_weight("gamma", shape, get_initializer(options_.gamma_initializer));
  if (options_.center) add_weight("beta", shape, get_initializer(options_.beta_initializer));
  add_weight("moving_mean", shape, get_initializer(options_.moving_mean_initializer), false);
  add_weight("moving_variance", shape, get_initializer(options_.moving_variance_initializer),
             false);
}

Tensor BatchNormalization::call(const Tensor& inputs, bool training) {
  const std::vector<long> bs = broadcast_shape(inputs.shape(), {axis_});
  const long channels = bs[static_cast<std::size_t>(axis_)];
  Tensor mean, var;
  // As Keras: a frozen BatchNormalization runs in inference mode.
  if (training && trainable()) {
    // One primitive: statistics and y in two passes, its backward in two (batch_normalization).
    Tensor batch_mean, batch_var;
    Tensor y = batch_normalization(inputs, axis_, options_.scale ? weight("gamma") : Tensor(),
                                   options_.center ? weight("beta") : Tensor(), options_.epsilon,
                                   &batch_mean, &batch_var);
    NoGrad guard;
    const float m = options_.momentum;
    Tensor mm = moving_mean(), mv = moving_variance();
    mm.assign(mm * m + reshape(batch_mean, {channels}) * (1.f - m));
    mv.assign(mv * m + reshape(batch_var, {channels}) * (1.f - m));
    return y;
  } else {
    mean = reshape(moving_mean(), bs);
    var = reshape(moving_variance(), bs);
  }
  // x * a + b with a = gamma / sqrt(var + epsilon), b = beta - mean * a (ops.batch_normalization).
  Tensor a = 1.f / sqrt(var + options_.epsilon);
  if (options_.scale) a = a * reshape(weight("gamma"), bs);
  Tensor b = -(mean * a);
  if (options_.center) b = b + reshape(weight("beta"), bs);
  return scale_shift(inputs, a, b);
}

nlohmann::json BatchNormalization::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["axis"] = options_.axis;
  c["momentum"] = options_.momentum;
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["beta_initializer"] = options_.beta_initializer;
  c["gamma_initializer"] = options_.gamma_initializer;
  c["moving_mean_initializer"] = options_.moving_mean_initializer;
  c["moving_variance_initializer"] = options_.moving_variance_initializer;
  for (const char* k :
       {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
    c[k] = nullptr;
  c["synchronized"] = false;
  return c;
}

// ---- LayerNormalization ----

LayerNormalization::LayerNormalization(LayerNormalizationOptions options)
    : Layer(options.name), options_(std::move(options)) {
  check_epsilon(options_.epsilon, "LayerNormalization");
  if (options_.axis.empty())
    throw std::invalid_argument("LayerNormalization: expected at least one axis, got none");
  get_initializer(options_.beta_initializer);
  get_initializer(options_.gamma_initializer);
}

void LayerNormalization::build(const Shape& input_shape) {
  axes_ = full_axes(options_.axis, input_shape, who("LayerNormalization", name()));
  Shape shape;
  for (int a : axes_) shape.push_back(input_shape[static_cast<std::size_t>(a - 1)]);
  if (options_.scale || options_.rms_scaling)
    add_weight("gamma", shape, get_initializer(options_.gamma_initializer));
  if (options_.center && !options_.rms_scaling)
    add_weight("beta", shape, get_initializer(options_.beta_initializer));
}

Tensor LayerNormalization::call(const Tensor& inputs, bool) {
  if (options_.rms_scaling) {  // Keras 3's formula: the variance, but x itself scaled
    const Tensor var = fused_moments(inputs, axes_, true).second;
    return inputs * (1.f / sqrt(var + options_.epsilon)) *
           reshape(weight("gamma"), broadcast_shape(inputs.shape(), axes_));
  }
  // Trailing axes (the usual case): one kernel each way.
  const int rank = static_cast<int>(inputs.ndim());
  const int first = axes_.front();
  if (axes_.back() == rank - 1 && axes_.back() - first + 1 == static_cast<int>(axes_.size()))
    return layer_normalization(inputs, first, options_.scale ? weight("gamma") : Tensor(),
                               options_.center ? weight("beta") : Tensor(), options_.epsilon);
  auto stats = fused_moments(inputs, axes_, true);
  const Tensor inv = 1.f / sqrt(stats.second + options_.epsilon);
  // Per-row scale and shift (one pass), then per-feature gamma and beta (one pass).
  Tensor y = scale_shift(inputs, inv, -(stats.first * inv));
  const std::vector<long> bs = broadcast_shape(inputs.shape(), axes_);
  if (options_.scale && options_.center)
    return scale_shift(y, reshape(weight("gamma"), bs), reshape(weight("beta"), bs));
  if (options_.scale) return y * reshape(weight("gamma"), bs);
  if (options_.center) return y + reshape(weight("beta"), bs);
  return y;
}

nlohmann::json LayerNormalization::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["axis"] = axis_json(options_.axis);
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["rms_scaling"] = options_.rms_scaling;
  c["beta_initializer"] = options_.beta_initializer;
  c["gamma_initializer"] = options_.gamma_initializer;
  for (const char* k :
       {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
    c[k] = nullptr;
  return c;
}

// ---- GroupNormalization ----

GroupNormalization::GroupNormalization(GroupNormalizationOptions options)
    : Layer(options.name), options_(std::move(options)) {
  check_epsilon(options_.epsilon, "GroupNormalization");
  if (options_.groups == 0 || options_.groups < -1)
    throw std::invalid_argument("GroupNormalization: groups must be positive or -1, got " +
                                std::to_string(options_.groups));
  get_initializer(options_.beta_initializer);
  get_initializer(options_.gamma_initializer);
}

void GroupNormalization::build(const Shape& input_shape) {
  const std::string w = who("GroupNormalization", name());
  axis_ = full_axis(options_.axis, input_shape, w);
  const std::size_t dim = input_shape[static_cast<std::size_t>(axis_ - 1)];
  const std::size_t groups =
      options_.groups == -1 ? dim : static_cast<std::size_t>(options_.groups);
  // Keras's messages.
  if (dim < groups)
    throw std::invalid_argument(w + ": Number of groups (" + std::to_string(groups) +
                                ") cannot be more than the number of channels (" +
                                std::to_string(dim) + ").");
  if (dim % groups != 0)
    throw std::invalid_argument(w + ": Number of groups (" + std::to_string(groups) +
                                ") must be a multiple of the number of channels (" +
                                std::to_string(dim) + ").");
  groups_ = static_cast<int>(groups);
  if (options_.scale) add_weight("gamma", {dim}, get_initializer(options_.gamma_initializer));
  if (options_.center) add_weight("beta", {dim}, get_initializer(options_.beta_initializer));
}

Tensor GroupNormalization::call(const Tensor& inputs, bool) {
  const Shape& s = inputs.shape();
  // Channels last (the usual case): one kernel each way.
  if (static_cast<std::size_t>(axis_) + 1 == s.size())
    return group_normalization(inputs, groups_, options_.scale ? weight("gamma") : Tensor(),
                               options_.center ? weight("beta") : Tensor(), options_.epsilon);
  const std::size_t a = static_cast<std::size_t>(axis_);
  // (n, ..., c, ...) -> (n, ..., groups, c / groups, ...), statistics over all but n and groups.
  std::vector<long> grouped(s.begin(), s.end());
  grouped[a] = static_cast<long>(s[a]) / groups_;
  grouped.insert(grouped.begin() + static_cast<long>(a), groups_);
  Tensor xg = reshape(inputs, grouped);
  // Channels inside: the groups axis moves next to the batch axis, so that the statistics and
  // the normalization run on contiguous rows of one (sample, group) each (fused_moments' and
  // scale_shift's one-pass forms) instead of the generic reductions and broadcasts.
  const int rank = static_cast<int>(grouped.size());
  std::vector<int> perm(static_cast<std::size_t>(rank)), back(perm.size());
  for (int i = 0; i < rank; ++i) perm[static_cast<std::size_t>(i)] = i;
  if (axis_ != 1) {
    perm.erase(perm.begin() + axis_);
    perm.insert(perm.begin() + 1, axis_);
    xg = transpose(xg, perm);
  }
  for (int i = 0; i < rank; ++i)
    back[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = i;
  std::vector<int> axes;
  for (int i = 2; i < rank; ++i) axes.push_back(i);
  auto stats = fused_moments(xg, axes, true);
  const Tensor inv = 1.f / sqrt(stats.second + options_.epsilon);
  Tensor yg = scale_shift(xg, inv, -(stats.first * inv));
  if (axis_ != 1) yg = transpose(yg, back);
  Tensor y = reshape(yg, std::vector<long>(s.begin(), s.end()));
  const std::vector<long> bs = broadcast_shape(s, {axis_});
  if (options_.scale && options_.center)
    return scale_shift(y, reshape(weight("gamma"), bs), reshape(weight("beta"), bs));
  if (options_.scale) return y * reshape(weight("gamma"), bs);
  if (options_.center) return y + reshape(weight("beta"), bs);
  return y;
}

nlohmann::json GroupNormalization::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["groups"] = options_.groups;
  c["axis"] = options_.axis;
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["beta_initializer"] = options_.beta_initializer;
  c["gamma_initializer"] = options_.gamma_initializer;
  for (const char* k :
       {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
    c[k] = nullptr;
  return c;
}

// ---- UnitNormalization ----

UnitNormalization::UnitNormalization(UnitNormalizationOptions options)
    : Layer(options.name), options_(std::move(options)) {
  if (options_.axis.empty())
    throw std::invalid_argument("UnitNormalization: expected at least one axis, got none");
}

void UnitNormalization::build(const Shape& input_shape) {
  axes_ = full_axes(options_.axis, input_shape, who("UnitNormalization", name()));
}

Tensor UnitNormalization::call(const Tensor& inputs, bool) {
  // Keras: x * rsqrt(max(sum(x^2), 1e-12)).
  const Tensor sq = sum(square(inputs), axes_, true);
  return inputs / sqrt(maximum(sq, 1e-12f));
}

nlohmann::json UnitNormalization::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["axis"] = axis_json(options_.axis);
  return c;
}

}  // namespace xtape::layers
