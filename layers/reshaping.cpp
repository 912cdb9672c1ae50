// Reshaping layers as compositions of recorded ops (reshape, transpose, concat, slice, pad,
// upsample2d): no gradient code of their own.
#include "layers/reshaping.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

namespace {

std::vector<long> longs(const Shape& s) { return std::vector<long>(s.begin(), s.end()); }

void check_rank(const Layer& l, const Tensor& x, std::size_t rank) {
  if (x.ndim() != rank)
    throw std::invalid_argument(l.class_name() + " '" + l.name() + "': expected inputs of rank " +
                                std::to_string(rank) + ", got shape " + shape_str(x.shape()));
}

}  // namespace

// ---- Reshape ----

Reshape::Reshape(std::vector<long> target_shape, std::string name)
    : Layer(std::move(name)), target_(std::move(target_shape)) {
  if (std::count(target_.begin(), target_.end(), -1L) > 1)
    throw std::invalid_argument("Reshape: at most one extent of target_shape may be -1");
  for (long d : target_)
    if (d < -1 || d == 0)
      throw std::invalid_argument("Reshape: target_shape extents must be positive or -1, got " +
                                  std::to_string(d));
}

Shape Reshape::compute_output_shape(const Shape& in) const {
  const std::size_t n = shape_size(in);
  std::size_t known = 1;
  for (long d : target_)
    if (d > 0) known *= static_cast<std::size_t>(d);
  Shape out;
  for (long d : target_)
    out.push_back(d > 0 ? static_cast<std::size_t>(d) : (known ? n / known : 0));
  if (shape_size(out) != n)
    throw std::invalid_argument("Reshape '" + name() + "': cannot reshape samples of shape " +
                                shape_str(in) + " (" + std::to_string(n) + " elements) to " +
                                shape_str(out));
  return out;
}

Tensor Reshape::call(const Tensor& x, bool) {
  if (x.ndim() == 0) throw std::invalid_argument("Reshape '" + name() + "': a scalar input");
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  std::vector<long> target{static_cast<long>(x.shape()[0])};
  for (std::size_t d : compute_output_shape(sample)) target.push_back(static_cast<long>(d));
  return reshape(x, target);
}

nlohmann::json Reshape::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["target_shape"] = target_;
  return c;
}

// ---- Permute ----

Permute::Permute(std::vector<int> dims, std::string name)
    : Layer(std::move(name)), dims_(std::move(dims)) {
  std::vector<int> sorted = dims_;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != static_cast<int>(i) + 1)
      throw std::invalid_argument("Permute: dims must be a permutation of 1.." +
                                  std::to_string(dims_.size()) + " (the batch axis stays first)");
}

Shape Permute::compute_output_shape(const Shape& in) const {
  if (in.size() != dims_.size())
    throw std::invalid_argument("Permute '" + name() + "': dims of " +
                                std::to_string(dims_.size()) + " axes for samples of shape " +
                                shape_str(in));
  Shape out;
  for (int d : dims_) out.push_back(in[static_cast<std::size_t>(d - 1)]);
  return out;
}

Tensor Permute::call(const Tensor& x, bool) {
  check_rank(*this, x, dims_.size() + 1);
  std::vector<int> perm{0};
  perm.insert(perm.end(), dims_.begin(), dims_.end());
  return transpose(x, perm);
}

nlohmann::json Permute::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["dims"] = dims_;
  return c;
}

// ---- RepeatVector ----

RepeatVector::RepeatVector(std::size_t n, std::string name) : Layer(std::move(name)), n_(n) {
  if (n == 0) throw std::invalid_argument("RepeatVector: n must be positive, got 0");
}

Shape RepeatVector::compute_output_shape(const Shape& in) const {
  if (in.size() != 1)
    throw std::invalid_argument("RepeatVector '" + name() + "': expected samples of rank 1, got " +
                                shape_str(in));
  return {n_, in[0]};
}

Tensor RepeatVector::call(const Tensor& x, bool) {
  check_rank(*this, x, 2);
  return broadcast_to(expand_dims(x, 1), {x.shape()[0], n_, x.shape()[1]});
}

nlohmann::json RepeatVector::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["n"] = n_;
  return c;
}

// ---- ZeroPadding ----

ZeroPadding::ZeroPadding(int rank, std::vector<std::array<std::size_t, 2>> padding,
                         std::string name)
    : Layer(std::move(name)), rank_(rank), padding_(std::move(padding)) {}

Shape ZeroPadding::compute_output_shape(const Shape& in) const {
  Shape out = in;
  for (int i = 0; i < rank_ && static_cast<std::size_t>(i) < in.size(); ++i)
    out[static_cast<std::size_t>(i)] +=
        padding_[static_cast<std::size_t>(i)][0] + padding_[static_cast<std::size_t>(i)][1];
  return out;
}

Tensor ZeroPadding::call(const Tensor& x, bool) {
  check_rank(*this, x, static_cast<std::size_t>(rank_) + 2);
  std::vector<std::pair<std::int64_t, std::int64_t>> widths(x.ndim(), {0, 0});
  for (int i = 0; i < rank_; ++i) {
    const auto [before, after] = padding_[static_cast<std::size_t>(i)];
    widths[static_cast<std::size_t>(i) + 1] = {static_cast<std::int64_t>(before),
                                               static_cast<std::int64_t>(after)};
  }
  return pad(x, widths);
}

nlohmann::json ZeroPadding::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (rank_ == 1)
    c["padding"] = padding_[0];
  else
    c["padding"] = padding_;
  c["data_format"] = "channels_last";
  return c;
}

// ---- Cropping ----

Cropping::Cropping(int rank, std::vector<std::array<std::size_t, 2>> cropping, std::string name)
    : Layer(std::move(name)), rank_(rank), cropping_(std::move(cropping)) {}

Shape Cropping::compute_output_shape(const Shape& in) const {
  Shape out = in;
  for (int i = 0; i < rank_ && static_cast<std::size_t>(i) < in.size(); ++i) {
    const auto [a, b] = cropping_[static_cast<std::size_t>(i)];
    out[static_cast<std::size_t>(i)] =
        in[static_cast<std::size_t>(i)] > a + b ? in[static_cast<std::size_t>(i)] - a - b : 0;
  }
  return out;
}

void Cropping::build(const Shape& in) {
  if (in.size() != static_cast<std::size_t>(rank_) + 1)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + ", got " + batch_shape_str(in));
  for (int i = 0; i < rank_; ++i) {
    const auto [a, b] = cropping_[static_cast<std::size_t>(i)];
    if (a + b >= in[static_cast<std::size_t>(i)])
      throw std::invalid_argument(class_name() + " '" + name() + "': cropping " +
                                  std::to_string(a) + " + " + std::to_string(b) +
                                  " leaves nothing of an axis of extent " +
                                  std::to_string(in[static_cast<std::size_t>(i)]));
  }
}

Tensor Cropping::call(const Tensor& x, bool) {
  check_rank(*this, x, static_cast<std::size_t>(rank_) + 2);
  std::vector<Slice> slices(x.ndim());
  for (int i = 0; i < rank_; ++i) {
    const auto [a, b] = cropping_[static_cast<std::size_t>(i)];
    const auto n = static_cast<std::int64_t>(x.shape()[static_cast<std::size_t>(i) + 1]);
    slices[static_cast<std::size_t>(i) + 1] =
        Slice{static_cast<std::int64_t>(a), n - static_cast<std::int64_t>(b)};
  }
  return slice(x, slices);
}

nlohmann::json Cropping::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (rank_ == 1)
    c["cropping"] = cropping_[0];
  else
    c["cropping"] = cropping_;
  c["data_format"] = "channels_last";
  return c;
}

// ---- UpSampling ----

UpSampling::UpSampling(int rank, std::vector<std::size_t> size, std::string interpolation,
                       std::string name)
    : Layer(std::move(name)),
      rank_(rank),
      size_(std::move(size)),
      interpolation_(std::move(interpolation)) {
  for (std::size_t s : size_)
    if (s == 0) throw std::invalid_argument("UpSampling: size must be positive, got 0");
  if (interpolation_ != "nearest" && interpolation_ != "bilinear")
    throw std::invalid_argument(
        "UpSampling2D: interpolation must be 'nearest' or 'bilinear', got '" + interpolation_ +
        "'");
}

Shape UpSampling::compute_output_shape(const Shape& in) const {
  Shape out = in;
  for (int i = 0; i < rank_ && static_cast<std::size_t>(i) < in.size(); ++i)
    out[static_cast<std::size_t>(i)] *= size_[static_cast<std::size_t>(i)];
  return out;
}

Tensor UpSampling::call(const Tensor& x, bool) {
  check_rank(*this, x, static_cast<std::size_t>(rank_) + 2);
  if (rank_ == 2) return upsample2d(x, {size_[0], size_[1]}, interpolation_);
  // (n, steps, c) as the image (n, steps, 1, c).
  const Shape& s = x.shape();
  const Tensor y = upsample2d(
      reshape(x, {static_cast<long>(s[0]), static_cast<long>(s[1]), 1, static_cast<long>(s[2])}),
      {size_[0], 1}, interpolation_);
  return reshape(
      y, {static_cast<long>(s[0]), static_cast<long>(s[1] * size_[0]), static_cast<long>(s[2])});
}

nlohmann::json UpSampling::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (rank_ == 1) {
    c["size"] = size_[0];
  } else {
    c["size"] = size_;
    c["data_format"] = "channels_last";
    c["interpolation"] = interpolation_;
  }
  return c;
}

}  // namespace xtape::layers
