#include "layers/pooling.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace xtape::layers {

namespace {
std::vector<int> expand(const std::vector<int>& v, int rank, const char* what,
                        const std::string& cls) {
  if (static_cast<int>(v.size()) == rank) return v;
  if (v.size() == 1) return std::vector<int>(static_cast<std::size_t>(rank), v[0]);
  throw std::invalid_argument(cls + ": " + what + " needs 1 or " + std::to_string(rank) +
                              " values, got " + std::to_string(v.size()));
}
}  // namespace

Pooling::Pooling(int rank, bool max, PoolOptions options)
    : Layer(options.name), rank_(rank), max_(max) {
  // The class name, for messages (class_name() is not available in the constructor).
  const std::string cls =
      std::string(max ? "MaxPooling" : "AveragePooling") + std::to_string(rank) + "D";
  pool_ = expand(options.pool_size, rank, "pool_size", cls);
  strides_ = options.strides.empty() ? pool_ : expand(options.strides, rank, "strides", cls);
  for (int p : pool_)
    if (p <= 0)
      throw std::invalid_argument(cls + ": pool_size must be positive, got " + std::to_string(p));
  for (int s : strides_)
    if (s <= 0)
      throw std::invalid_argument(cls + ": strides must be positive, got " + std::to_string(s));
  padding_ = parse_padding(options.padding, cls.c_str());
}

Shape Pooling::compute_output_shape(const Shape& in) const {
  Shape out;
  for (int i = 0; i < rank_; ++i) {
    const std::size_t u = static_cast<std::size_t>(i),
                      n = i < static_cast<int>(in.size()) ? in[u] : 0;
    const std::size_t s = static_cast<std::size_t>(strides_[u]),
                      p = static_cast<std::size_t>(pool_[u]);
    out.push_back(padding_ == Padding::same ? (n + s - 1) / s : (n >= p ? (n - p) / s + 1 : 0));
  }
  out.push_back(in.empty() ? 0 : in.back());
  return out;
}

void Pooling::build(const Shape& in) {
  if (static_cast<int>(in.size()) != rank_ + 1)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + ", got " + batch_shape_str(in));
  const Shape out = compute_output_shape(in);
  for (std::size_t i = 0; i + 1 < out.size(); ++i)
    if (out[i] == 0)
      throw std::invalid_argument(class_name() + " '" + name() + "': input " + batch_shape_str(in) +
                                  " is smaller than the pool window with 'valid' padding");
}

Tensor Pooling::call(const Tensor& x, bool) {
  if (rank_ == 3) {
    const std::array<int, 3> p{pool_[0], pool_[1], pool_[2]},
        s{strides_[0], strides_[1], strides_[2]};
    return max_ ? max_pool3d(x, p, s, padding_) : avg_pool3d(x, p, s, padding_);
  }
  if (rank_ == 2) {
    return max_ ? max_pool2d(x, {pool_[0], pool_[1]}, {strides_[0], strides_[1]}, padding_)
                : avg_pool2d(x, {pool_[0], pool_[1]}, {strides_[0], strides_[1]}, padding_);
  }
  // 1-d pooling is 2-d pooling over a height of 1.
  const auto l = [](std::size_t v) { return static_cast<long>(v); };
  const Shape& s = x.shape();
  if (s.size() != 3)
    throw std::invalid_argument(class_name() + " '" + name() +
                                "': expected inputs of rank 3, got shape " + shape_str(s));
  Tensor x4 = reshape(x, {l(s[0]), 1, l(s[1]), l(s[2])});
  Tensor y = max_ ? max_pool2d(x4, {1, pool_[0]}, {1, strides_[0]}, padding_)
                  : avg_pool2d(x4, {1, pool_[0]}, {1, strides_[0]}, padding_);
  return reshape(y, {l(s[0]), l(y.shape()[2]), l(s[2])});
}

nlohmann::json Pooling::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["pool_size"] = pool_;
  c["strides"] = strides_;
  c["padding"] = padding_ == Padding::same ? "same" : "valid";
  c["data_format"] = "channels_last";
  return c;
}

GlobalPooling::GlobalPooling(int rank, bool max, GlobalPoolOptions options)
    : Layer(options.name), rank_(rank), max_(max), keepdims_(options.keepdims) {}

Shape GlobalPooling::compute_output_shape(const Shape& in) const {
  if (keepdims_) {
    Shape out(static_cast<std::size_t>(rank_), 1);
    out.push_back(in.empty() ? 0 : in.back());
    return out;
  }
  return {in.empty() ? 0 : in.back()};
}

void GlobalPooling::build(const Shape& in) {
  if (static_cast<int>(in.size()) != rank_ + 1)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + " (batch, " + std::to_string(rank_) +
                                " spatial axes, channels), got " + batch_shape_str(in));
}

Tensor GlobalPooling::call(const Tensor& x, bool) {
  if (static_cast<int>(x.ndim()) != rank_ + 2)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + ", got shape " + shape_str(x.shape()));
  std::vector<int> axes;
  for (int a = 1; a <= rank_; ++a) axes.push_back(a);
  return max_ ? max(x, axes, keepdims_) : mean(x, axes, keepdims_);
}

nlohmann::json GlobalPooling::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["data_format"] = "channels_last";
  c["keepdims"] = keepdims_;
  return c;
}

}  // namespace xtape::layers
