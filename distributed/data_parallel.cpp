// DataParallel's gradient buckets and step agreement (the fit side is in
// training/data_parallel_fit.cpp).
#include "distributed/data_parallel.hpp"

#include <cstring>
#include <stdexcept>

#include "autodiff/detail.hpp"

namespace xtape::distributed {

DataParallel::DataParallel(DataParallelOptions options)
    : comm_(options.communicator ? std::move(options.communicator) : world()),
      bucket_bytes_(options.bucket_bytes) {
  if (bucket_bytes_ == 0)
    throw std::invalid_argument("DataParallel: bucket_bytes must be positive, got 0");
  share_ = -1.f;  // no begin_step yet
}

bool DataParallel::begin_step(std::size_t local_rows, bool loss_finite) {
  double v[2] = {double(local_rows), loss_finite ? 0.0 : 1.0};
  comm_->allreduce_sum(v, 2);
  if (v[0] <= 0.0)
    throw std::runtime_error("DataParallel: a training step with no row on any of the " +
                             std::to_string(comm_->size()) + " ranks");
  // b_r / b: exactly 1 on a group of one.
  share_ = static_cast<float>(double(local_rows) / v[0]);
  return v[1] == 0.0;
}

void DataParallel::plan(const std::vector<optim::Variable>& vars) {
  planned_names_.clear();
  planned_sizes_.clear();
  for (const auto& v : vars) {
    planned_names_.push_back(v.name);
    planned_sizes_.push_back(v.value.size());
  }
  buckets_.clear();
  bucket_sizes_.clear();
  const std::size_t cap = std::max<std::size_t>(1, bucket_bytes_ / sizeof(float));
  std::vector<Slot> bucket;
  std::size_t filled = 0;
  // Reverse registration order: the last layers' gradients are final first in backward.
  for (std::size_t i = vars.size(); i-- > 0;) {
    const std::size_t n = vars[i].value.size();
    if (filled && filled + n > cap) {
      buckets_.push_back(std::move(bucket));
      bucket_sizes_.push_back(filled);
      bucket.clear();
      filled = 0;
    }
    bucket.push_back({i, filled, n});
    filled += n;
  }
  if (!bucket.empty()) {
    buckets_.push_back(std::move(bucket));
    bucket_sizes_.push_back(filled);
  }
  std::size_t largest = 0;
  for (std::size_t s : bucket_sizes_) largest = std::max(largest, s);
  buffer_.assign(largest, 0.f);
}

void DataParallel::reduce_gradients(std::vector<optim::Variable>& vars) {
  bool same = vars.size() == planned_names_.size();
  for (std::size_t i = 0; same && i < vars.size(); ++i)
    same = vars[i].name == planned_names_[i] && vars[i].value.size() == planned_sizes_[i];
  if (!same) plan(vars);
  // A train_step of the user's that did not call begin_step: equal shards assumed.
  const float share = share_ >= 0.f ? share_ : 1.f / static_cast<float>(comm_->size());
  share_ = -1.f;
  for (std::size_t k = 0; k < buckets_.size(); ++k) {
    float* buf = buffer_.data();
    for (const Slot& s : buckets_[k]) {
      const Tensor g = vars[s.var].value.grad();
      if (!g.defined()) {
        std::memset(buf + s.offset, 0, s.size * sizeof(float));
        continue;
      }
      const float* src = g.data();
      for (std::size_t i = 0; i < s.size; ++i) buf[s.offset + i] = src[i] * share;
    }
    comm_->allreduce_sum(buf, bucket_sizes_[k]);
    for (const Slot& s : buckets_[k]) {
      // A fresh tensor: a gradient backward stored may share its buffer with another one.
      Tensor& value = vars[s.var].value;
      Tensor g = Tensor::empty(value.shape());
      std::memcpy(detail::mutable_data(g), buf + s.offset, s.size * sizeof(float));
      value.set_grad(g);
    }
  }
  ++steps_;
}

std::size_t DataParallel::bytes_per_step() const {
  std::size_t n = 0;
  for (std::size_t s : bucket_sizes_) n += s;
  return n * sizeof(float);
}

}  // namespace xtape::distributed
