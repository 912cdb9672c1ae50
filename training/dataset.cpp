#include "training/dataset.hpp"

#include <numeric>
#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

std::vector<Tensor> gather_all(const std::vector<Tensor>& arrays,
                               const std::vector<std::size_t>& rows) {
  std::vector<Tensor> out;
  out.reserve(arrays.size());
  for (const Tensor& a : arrays) out.push_back(gather_rows(a, rows));
  return out;
}

ArrayDataset::ArrayDataset(std::vector<Tensor> x, std::vector<Tensor> y, ArrayDatasetOptions o)
    : x_(std::move(x)), y_(std::move(y)), options_(std::move(o)), rng_(options_.seed) {
  if (options_.batch_size == 0)
    throw std::invalid_argument("ArrayDataset: batch_size must be positive");
  if (x_.empty()) throw std::invalid_argument("ArrayDataset: no input arrays");
  n_ = x_[0].ndim() ? x_[0].shape()[0] : 0;
  auto check = [&](const Tensor& t, const char* what) {
    if (!t.defined() || t.ndim() == 0 || t.shape()[0] != n_)
      throw std::invalid_argument(std::string("ArrayDataset: ") + what + " of shape " +
                                  (t.defined() ? shape_str(t.shape()) : "undefined") +
                                  " does not have the " + std::to_string(n_) + " rows of x");
  };
  for (const Tensor& t : x_) check(t, "input");
  for (const Tensor& t : y_) check(t, "target");
  if (options_.sample_weight.defined()) check(options_.sample_weight, "sample_weight");
  if (n_ == 0) throw std::invalid_argument("ArrayDataset: no samples");
  order_.resize(n_);
  std::iota(order_.begin(), order_.end(), 0);
}

std::size_t ArrayDataset::batches() const {
  return n_ / options_.batch_size + (n_ % options_.batch_size != 0);
}

void ArrayDataset::begin_epoch(int) {
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle)
    for (std::size_t i = n_; i-- > 1;) std::swap(order_[i], order_[rng_.below(i + 1)]);
  pos_ = 0;
}

std::optional<Batch> ArrayDataset::next() {
  if (pos_ >= n_) return std::nullopt;
  const std::size_t take = std::min(options_.batch_size, n_ - pos_);
  Batch b;
  b.rows.assign(order_.begin() + static_cast<long>(pos_),
                order_.begin() + static_cast<long>(pos_ + take));
  pos_ += take;
  b.x = gather_all(x_, b.rows);
  b.y = gather_all(y_, b.rows);
  if (options_.sample_weight.defined())
    b.sample_weight = gather_rows(options_.sample_weight, b.rows);
  return b;
}

GeneratorDataset::GeneratorDataset(std::function<std::optional<Batch>()> next, std::size_t batches,
                                   std::function<void(int)> reset)
    : next_(std::move(next)), batches_(batches), reset_(std::move(reset)) {
  if (!next_) throw std::invalid_argument("GeneratorDataset: empty next()");
}

}  // namespace xtape::layers
