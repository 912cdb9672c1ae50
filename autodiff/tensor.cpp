// Tensor handles, the tape, and the reverse walk that back-propagates through it.
//
// A record is owned by the tensor it produced and by the records downstream of it that use that
// tensor, so the tape of a result is the set of records reachable from it, wherever they were
// recorded, and an abandoned graph frees itself. Records are numbered in creation order by one
// counter for all threads, a valid topological order. backward() collects the records reachable
// from the root (iteratively, claiming each for this walk), sorts them by that number and runs
// them from the newest, each that received a gradient, freeing each once run: no recursion, and
// the same order the walk of a thread's list of records would take.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/profiler.hpp"
#include "kernels/fp_mode.hpp"

namespace xtape {

using detail::Node;
using detail::TensorImpl;

namespace {

// Product of the extents; false when it overflows (a zero extent makes it 0 whatever the rest).
bool extent_product(const Shape& shape, std::size_t& n) {
  n = 1;
  bool overflow = false;
  for (std::size_t d : shape) {
    if (d == 0) {
      n = 0;
      return true;
    }
    overflow = overflow || __builtin_mul_overflow(n, d, &n);
  }
  return !overflow;
}

std::string byte_str(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 6) bytes /= 1024.0, ++u;
  std::ostringstream os;
  os.precision(u == 0 ? 0 : 3);
  os << std::fixed << bytes << ' ' << units[u];
  return os.str();
}

}  // namespace

std::size_t shape_size(const Shape& shape) {
  std::size_t n;
  if (!extent_product(shape, n))
    throw std::length_error("shape_size: the extents of shape " + shape_str(shape) +
                            " multiply to more than 2^64 elements");
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ',';
  os << ')';
  return os.str();
}

namespace {

thread_local bool t_grad_enabled = true;

// ---------------------------------------------------------------- profiler

using prof_clock = std::chrono::steady_clock;

struct Profile {
  bool on = false;
  bool by_shape = false;
  prof_clock::time_point last;
  std::map<std::string, OpTime> ops;
  OpTime& at(const char* op, const Shape& shape) {
    const std::string key = by_shape ? op + shape_str(shape) : std::string(op);
    OpTime& t = ops[key];
    if (t.op.empty()) t.op = key;
    return t;
  }
};

thread_local Profile t_profile;

double ms_between(prof_clock::time_point a, prof_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Record numbers and walk ids, for all threads; and the count of live, unconsumed records.
std::atomic<std::uint64_t> g_next_seq{1};
std::atomic<std::uint64_t> g_next_walk{1};
std::atomic<std::size_t> g_live_records{0};

std::shared_ptr<TensorImpl> make_impl(const Shape& shape) {
  const std::size_t n = detail::checked_size(shape, "Tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<detail::Storage>(n);
  return impl;
}

}  // namespace

std::size_t detail::max_tensor_bytes() {
  static const std::size_t limit = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    std::size_t bytes;
    if (pages <= 0 || page <= 0 ||
        __builtin_mul_overflow(static_cast<std::size_t>(pages), static_cast<std::size_t>(page),
                               &bytes))
      bytes = std::numeric_limits<std::size_t>::max();
    // Kernels index buffers with signed 64-bit offsets.
    return std::min<std::size_t>(bytes, std::numeric_limits<std::ptrdiff_t>::max());
  }();
  return limit;
}

std::size_t detail::checked_size(const Shape& shape, const char* op) {
  std::size_t n;
  if (!extent_product(shape, n))
    throw std::length_error(std::string(op) + ": the extents of shape " + shape_str(shape) +
                            " multiply to more than 2^64 elements");
  if (n > max_tensor_bytes() / sizeof(float))
    throw std::length_error(std::string(op) + ": a tensor of shape " + shape_str(shape) + " (" +
                            std::to_string(n) + " elements, " +
                            byte_str(static_cast<double>(n) * sizeof(float)) +
                            ") would exceed this machine's memory (" +
                            byte_str(static_cast<double>(max_tensor_bytes())) + ")");
  return n;
}

Tensor detail::make_deferred(const Shape& shape, std::shared_ptr<const Producer> producer,
                             const std::vector<Tensor>& reads) {
  const std::size_t n = checked_size(shape, "Tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(n, std::move(producer));
  const bool exposed = std::any_of(reads.begin(), reads.end(), [](const Tensor& t) {
    return t.defined() && t.impl()->storage->exposed();
  });
  if (exposed) {
    (void)std::as_const(*impl->storage).data();  // computed now, from the current values
    return Tensor(impl);
  }
  for (const Tensor& t : reads)
    if (t.defined()) t.impl()->storage->add_reader(impl->storage);
  return Tensor(impl);
}

// ---------------------------------------------------------------- construction and access

Tensor::Tensor(const Shape& shape, float fill) : impl_(make_impl(shape)) {
  std::fill_n(impl_->data(), shape_size(shape), fill);
}

Tensor::Tensor(const Shape& shape, const std::vector<float>& values) : impl_(make_impl(shape)) {
  if (values.size() != shape_size(shape))
    throw std::invalid_argument("Tensor: " + std::to_string(values.size()) +
                                " values given for shape " + shape_str(shape) + " (" +
                                std::to_string(shape_size(shape)) + " elements)");
  std::copy(values.begin(), values.end(), impl_->data());
}

Tensor Tensor::zeros(const Shape& shape) { return Tensor(shape, 0.f); }
Tensor Tensor::ones(const Shape& shape) { return Tensor(shape, 1.f); }
Tensor Tensor::full(const Shape& shape, float value) { return Tensor(shape, value); }
Tensor Tensor::scalar(float value) { return Tensor(Shape{}, value); }
Tensor Tensor::empty(const Shape& shape) { return Tensor(make_impl(shape)); }

const TensorImpl& Tensor::checked() const {
  if (!impl_) throw std::logic_error("Tensor: use of an undefined tensor");
  return *impl_;
}

const Shape& Tensor::shape() const { return checked().shape; }

std::size_t Tensor::dim(int axis) const {
  const auto& s = shape();
  const int n = static_cast<int>(s.size());
  const int a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw std::out_of_range("Tensor::dim: axis " + std::to_string(axis) +
                            " out of range for shape " + shape_str(s));
  return s[static_cast<std::size_t>(a)];
}

std::size_t Tensor::size() const { return shape_size(shape()); }

float* Tensor::data() {
  checked();
  return impl_->storage->expose();
}
const float* Tensor::data() const {
  checked();
  return std::as_const(*impl_->storage).data();
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + size()); }

float Tensor::item() const {
  if (size() != 1)
    throw std::invalid_argument("Tensor::item: expected one element, got shape " +
                                shape_str(shape()));
  return data()[0];
}

namespace {
std::size_t flat_index(const Shape& shape, std::initializer_list<std::size_t> index) {
  if (index.size() != shape.size())
    throw std::out_of_range("Tensor::at: index of rank " + std::to_string(index.size()) +
                            " for shape " + shape_str(shape));
  std::size_t flat = 0, axis = 0;
  for (std::size_t i : index) {
    if (i >= shape[axis])
      throw std::out_of_range("Tensor::at: index " + std::to_string(i) + " out of range on axis " +
                              std::to_string(axis) + " of shape " + shape_str(shape));
    flat = flat * shape[axis] + i;
    ++axis;
  }
  return flat;
}
}  // namespace

float& Tensor::at(std::initializer_list<std::size_t> index) {
  return data()[flat_index(shape(), index)];
}
float Tensor::at(std::initializer_list<std::size_t> index) const {
  return data()[flat_index(shape(), index)];
}

// ---------------------------------------------------------------- gradients

bool Tensor::requires_grad() const { return checked().requires_grad; }

Tensor& Tensor::set_requires_grad(bool value) {
  if (checked().grad_fn)
    throw std::logic_error(
        "Tensor::set_requires_grad: only leaves can be marked; this tensor was "
        "produced by '" +
        std::string(impl_->grad_fn->op) + "' (use detach())");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return !checked().grad_fn; }
Tensor Tensor::grad() const {
  const TensorImpl& self = checked();
  std::lock_guard<std::mutex> lock(self.grad_mutex);
  return self.grad;
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    throw std::invalid_argument("Tensor::set_grad: gradient of shape " + shape_str(g.shape()) +
                                " for a tensor of shape " + shape_str(shape()));
  std::lock_guard<std::mutex> lock(impl_->grad_mutex);
  impl_->grad = g;
}

void Tensor::zero_grad() {
  checked();
  Tensor old;  // freed outside the lock
  std::lock_guard<std::mutex> lock(impl_->grad_mutex);
  old = std::move(impl_->grad);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = checked().shape;
  impl->storage = impl_->storage;
  return Tensor(impl);
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape());
  std::memcpy(detail::mutable_data(out), data(), size() * sizeof(float));
  return out;
}

void Tensor::assign(const Tensor& src) {
  if (src.size() != size())
    throw std::invalid_argument("Tensor::assign: source of shape " + shape_str(src.shape()) +
                                " into a tensor of shape " + shape_str(shape()));
  // A library write: flushes pending readers of this buffer but does not expose it.
  float* dst = impl_->data();
  if (src.data() != dst) std::memmove(dst, src.data(), size() * sizeof(float));
}

namespace {

// The records one backward() owns: claimed while collected, released (if not run) on exit,
// also when a rule throws, so another backward() may go through them later.
struct Walk {
  const std::uint64_t id = g_next_walk.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<Node>> nodes;
  Walk() = default;
  Walk(const Walk&) = delete;
  Walk& operator=(const Walk&) = delete;
  ~Walk() {  // records left here were not run (a rule threw): drop their partial gradients
    for (const auto& n : nodes)
      if (n) {
        n->grad = Tensor();
        release(*n);
      }
  }
  void release(Node& n) const {
    std::uint64_t mine = id;
    n.walk.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
  }
  // Adds n to the walk unless it is already in it; throws when another walk owns it or it was
  // consumed, before any rule has run.
  void claim(const std::shared_ptr<Node>& n) {
    std::uint64_t expected = 0;
    if (n->walk.compare_exchange_strong(expected, id, std::memory_order_acq_rel)) {
      nodes.push_back(n);
      return;
    }
    if (expected == id) return;
    if (expected == Node::kConsumed)
      throw std::logic_error(
          std::string("backward: the graph goes through the record of '") + n->op +
          "', already consumed by an earlier backward(); recompute the forward pass");
    throw std::logic_error(
        std::string("backward: the graph goes through the record of '") + n->op +
        "', which a backward() on another thread is running now; graphs that share "
        "records cannot be back-propagated concurrently (compute the shared part "
        "once per thread, or call backward() on one loss that sums them)");
  }
};

void run_backward(const std::shared_ptr<Node>& root, TensorImpl& root_impl, const Tensor& seed) {
  if (root->consumed())
    throw std::logic_error(
        "backward: the tape records of this graph were already consumed by an "
        "earlier backward(); recompute the forward pass");
  Walk walk;
  walk.claim(root);
  // Breadth-first over the inputs, iteratively: the vector is its own queue.
  for (std::size_t i = 0; i < walk.nodes.size(); ++i)
    for (const auto& in : walk.nodes[i]->inputs)
      if (in && in->grad_fn) walk.claim(in->grad_fn);
  std::sort(walk.nodes.begin(), walk.nodes.end(),
            [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
              return a->seq > b->seq;
            });
  detail::accumulate(root_impl, seed, "backward");

  // The walk holds every record strongly: consuming one releases its inputs, which may be the
  // last owners of records further down that still await their gradient.
  for (auto& slot : walk.nodes) {
    Node& node = *slot;
    if (!node.grad.defined()) {  // not on a path from the root that carries a gradient
      walk.release(node);
      slot.reset();
      continue;
    }
    detail::Grads grads(node.inputs, node.op);
    if (t_profile.on) {
      const auto t0 = prof_clock::now();
      node.backward(node.grad, grads);
      const auto t1 = prof_clock::now();
      OpTime& t = t_profile.at(node.op, node.out_shape);
      t.backward_ms += ms_between(t0, t1);
      ++t.backward_calls;
    } else {
      node.backward(node.grad, grads);
    }
    // Free what the record held: saved tensors, inputs and the gradient.
    node.backward = nullptr;
    node.inputs.clear();
    node.grad = Tensor();
    node.walk.store(Node::kConsumed, std::memory_order_release);
    g_live_records.fetch_sub(1, std::memory_order_relaxed);
    slot.reset();
  }
  if (t_profile.on) t_profile.last = prof_clock::now();
}

}  // namespace

void Tensor::backward() {
  if (size() != 1)
    throw std::logic_error(
        "backward: called without a seed gradient on a non-scalar tensor of shape " +
        shape_str(shape()) + "; pass a seed of that shape");
  backward(Tensor::ones(shape()));
}

void Tensor::backward(const Tensor& seed) {
  const TensorImpl& self = checked();
  if (!seed.defined() || seed.shape() != self.shape)
    throw std::invalid_argument(
        "backward: seed of shape " +
        (seed.defined() ? shape_str(seed.shape()) : std::string("<undefined>")) +
        " for a tensor of shape " + shape_str(self.shape));
  if (!self.requires_grad)
    throw std::logic_error("backward: the tensor of shape " + shape_str(self.shape) +
                           " does not require a gradient (no input of its computation did, or it "
                           "was computed under NoGrad)");
  NoGrad no_grad;       // backward rules compute plain values
  if (!self.grad_fn) {  // a leaf: its gradient is the seed
    detail::accumulate(*impl_, seed, "backward");
    return;
  }
  run_backward(self.grad_fn, *impl_, seed);
}

// ---------------------------------------------------------------- recording

namespace detail {

Node::~Node() {
  if (walk.load(std::memory_order_relaxed) != kConsumed)
    g_live_records.fetch_sub(1, std::memory_order_relaxed);
  // Take over the inputs whose last owner is this record, and their records' inputs in turn:
  // each is then destroyed with an empty input list, so no destructor recurses.
  std::vector<std::shared_ptr<TensorImpl>> pending = std::move(inputs);
  while (!pending.empty()) {
    std::shared_ptr<TensorImpl> impl = std::move(pending.back());
    pending.pop_back();
    if (impl && impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1) {
      auto& next = impl->grad_fn->inputs;
      for (auto& p : next) pending.push_back(std::move(p));
      next.clear();
    }
  }
}

void accumulate(TensorImpl& target, const Tensor& g, const char* op) {
  if (g.shape() != target.shape)
    throw std::logic_error(std::string("backward of '") + op + "': gradient of shape " +
                           shape_str(g.shape()) + " for a tensor of shape " +
                           shape_str(target.shape));
  // Never add in place: a rule may pass the same tensor to several inputs.
  if (target.grad_fn) {  // a record of the calling walk: no other thread touches its gradient
    Node& node = *target.grad_fn;
    if (node.consumed())
      throw std::logic_error(std::string("backward of '") + op +
                             "': reached a record already consumed by an earlier backward()");
    node.grad = node.grad.defined() ? node.grad + g : g;
    return;
  }
  std::lock_guard<std::mutex> lock(target.grad_mutex);
  target.grad = target.grad.defined() ? target.grad + g : g;
}

void Grads::add(std::size_t i, const Tensor& g) {
  if (!needs(i)) return;
  accumulate(*inputs_[i], g, op_);
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->out_shape = out.shape();
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs)
    node->inputs.push_back(t.defined() && t.requires_grad() ? t.impl() : nullptr);
  node->backward = std::move(backward);
  node->seq = g_next_seq.fetch_add(1, std::memory_order_relaxed);
  g_live_records.fetch_add(1, std::memory_order_relaxed);
  out.impl()->grad_fn = node;
  out.impl()->requires_grad = true;
  if (t_profile.on) {
    const auto now = prof_clock::now();
    OpTime& t = t_profile.at(op, out.shape());
    t.forward_ms += ms_between(t_profile.last, now);
    ++t.forward_calls;
    t_profile.last = now;
  }
  return out;
}

}  // namespace detail

std::size_t tape_size() { return g_live_records.load(std::memory_order_relaxed); }

void profiler_start(bool by_shape) {
  t_profile.ops.clear();
  t_profile.on = true;
  t_profile.by_shape = by_shape;
  t_profile.last = prof_clock::now();
}

void profiler_mark() { t_profile.last = prof_clock::now(); }

std::vector<OpTime> profiler_stop() {
  std::vector<OpTime> out;
  for (auto& [name, t] : t_profile.ops) out.push_back(t);
  t_profile.ops.clear();
  t_profile.on = false;
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

bool set_flush_denormal(bool on) { return kernels::set_team_flush_denormals(on); }
bool flush_denormal() { return kernels::thread_flushes_denormals(); }

// Applied to the whole team even when the calling thread is already in the mode (its workers
// may not be): a parallel region on entry and one on exit, per fit, not per op.
FlushDenormal::FlushDenormal(bool on) : previous_(kernels::thread_flushes_denormals()) {
  kernels::set_team_flush_denormals(on);
}
FlushDenormal::~FlushDenormal() { kernels::set_team_flush_denormals(previous_); }

bool grad_enabled() { return t_grad_enabled; }
NoGrad::NoGrad() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGrad::~NoGrad() { t_grad_enabled = previous_; }

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(shape=" << shape_str(t.shape()) << ", [";
  const std::size_t n = t.size(), shown = std::min<std::size_t>(n, 16);
  for (std::size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << t.data()[i];
  if (shown < n) os << ", ...";
  return os << "])";
}

}  // namespace xtape
