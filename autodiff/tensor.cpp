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

// What grad() asked for: the tensors whose gradients it returns. Leaves' contributions reach
// `leaf_grads` instead of their grad(); a requested result's gradient is read from its record
// when the walk reaches it (complete then: every consumer is newer and already ran).
struct Capture {
  std::vector<const TensorImpl*> inputs;
  std::vector<Tensor> grads;  // one per input
  std::size_t index_of(const TensorImpl* t) const {
    const auto it = std::find(inputs.begin(), inputs.end(), t);
    return it == inputs.end() ? inputs.size() : static_cast<std::size_t>(it - inputs.begin());
  }
};

thread_local Capture* t_capture = nullptr;
thread_local bool t_creating_graph = false;

struct WalkMode {
  bool create_graph = false;
  bool retain_graph = false;
  Capture* capture = nullptr;
};

// Sets the per-thread state a walk's rules run under, restored on exit.
class WalkScope {
 public:
  explicit WalkScope(const WalkMode& mode)
      : grad_(t_grad_enabled), creating_(t_creating_graph), capture_(t_capture) {
    t_grad_enabled = mode.create_graph;  // rules compute plain values unless creating a graph
    t_creating_graph = mode.create_graph;
    t_capture = mode.capture;
  }
  ~WalkScope() {
    t_grad_enabled = grad_;
    t_creating_graph = creating_;
    t_capture = capture_;
  }
  WalkScope(const WalkScope&) = delete;
  WalkScope& operator=(const WalkScope&) = delete;

 private:
  bool grad_, creating_;
  Capture* capture_;
};

// Back-propagates seeds[i] from roots[i]. The first-order path (no option set) is the one
// backward() always took: every reachable record that receives a gradient runs and is freed.
void run_walk(const std::vector<std::shared_ptr<TensorImpl>>& roots,
              const std::vector<Tensor>& seeds, const WalkMode& mode) {
  Walk walk;
  for (const auto& r : roots)
    if (r->grad_fn) {
      if (r->grad_fn->consumed())
        throw std::logic_error(
            "backward: the tape records of this graph were already consumed by an "
            "earlier backward(); recompute the forward pass, or pass retain_graph");
      walk.claim(r->grad_fn);
    }
  // Breadth-first over the inputs, iteratively: the vector is its own queue.
  for (std::size_t i = 0; i < walk.nodes.size(); ++i)
    for (const auto& in : walk.nodes[i]->inputs)
      if (in && in->grad_fn) walk.claim(in->grad_fn);
  std::sort(walk.nodes.begin(), walk.nodes.end(),
            [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
              return a->seq > b->seq;
            });
  // grad(): only the records on a path to a requested input run. Oldest first, a record is
  // needed when one of its inputs is requested or is the output of a needed record.
  std::vector<char> needed;
  std::vector<std::size_t> requested_at;  // capture index of each record's output, or none
  if (mode.capture) {
    const std::size_t n = walk.nodes.size(), none = mode.capture->inputs.size();
    needed.assign(n, 0);
    requested_at.assign(n, none);
    std::map<const Node*, std::size_t> position;
    for (std::size_t i = 0; i < n; ++i) position[walk.nodes[i].get()] = i;
    for (std::size_t k = 0; k < none; ++k)
      if (const auto& fn = mode.capture->inputs[k]->grad_fn; fn && position.count(fn.get()))
        requested_at[position[fn.get()]] = k;
    for (std::size_t i = n; i-- > 0;)
      for (const auto& in : walk.nodes[i]->inputs) {
        if (!in) continue;
        if (mode.capture->index_of(in.get()) != none ||
            (in->grad_fn && needed[position[in->grad_fn.get()]])) {
          needed[i] = 1;
          break;
        }
      }
  }

  WalkScope scope(mode);
  for (std::size_t i = 0; i < roots.size(); ++i)
    detail::accumulate(*roots[i], seeds[i], "backward");

  // Records run with create_graph are freed at the end: their rules' saved outputs are read
  // through the inputs of the records that consumed them.
  std::vector<std::shared_ptr<Node>> finished;
  for (std::size_t i = 0; i < walk.nodes.size(); ++i) {
    std::shared_ptr<Node>& slot = walk.nodes[i];
    Node& node = *slot;
    if (mode.capture && requested_at[i] < mode.capture->inputs.size() && node.grad.defined())
      mode.capture->grads[requested_at[i]] = node.grad;
    if (!node.grad.defined() || (mode.capture && !needed[i])) {
      node.grad = Tensor();
      walk.release(node);
      slot.reset();
      continue;
    }
    if (mode.create_graph && !node.differentiable)
      throw std::logic_error(std::string("backward with create_graph: the backward rule of '") +
                             node.op +
                             "' has no differentiable form yet, so its gradient cannot be "
                             "differentiated again (use create_graph only through other ops)");
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
    node.grad = Tensor();
    if (mode.retain_graph) {  // kept whole for another pass
      walk.release(node);
      if (mode.create_graph) finished.push_back(std::move(slot));
      slot.reset();
      continue;
    }
    node.walk.store(Node::kConsumed, std::memory_order_release);
    g_live_records.fetch_sub(1, std::memory_order_relaxed);
    if (mode.create_graph) {
      finished.push_back(std::move(slot));
    } else {  // free what the record held: saved tensors and inputs
      node.backward = nullptr;
      node.inputs.clear();
    }
    slot.reset();
  }
  if (!mode.retain_graph)
    for (const auto& n : finished) {
      n->backward = nullptr;
      n->inputs.clear();
    }
  if (t_profile.on) t_profile.last = prof_clock::now();
}

WalkMode walk_mode(const BackwardOptions& options) {
  WalkMode mode;
  mode.create_graph = options.create_graph;
  mode.retain_graph = options.retain_graph.value_or(options.create_graph);
  return mode;
}

}  // namespace

void Tensor::backward() {
  if (size() != 1)
    throw std::logic_error(
        "backward: called without a seed gradient on a non-scalar tensor of shape " +
        shape_str(shape()) + "; pass a seed of that shape");
  backward(Tensor::ones(shape()));
}

void Tensor::backward(const Tensor& seed) { backward(seed, BackwardOptions{}); }

void Tensor::backward(const BackwardOptions& options) {
  if (size() != 1)
    throw std::logic_error(
        "backward: called without a seed gradient on a non-scalar tensor of shape " +
        shape_str(shape()) + "; pass a seed of that shape");
  backward(Tensor::ones(shape()), options);
}

void Tensor::backward(const Tensor& seed, const BackwardOptions& options) {
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
  run_walk({impl_}, {seed}, walk_mode(options));
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const GradOptions& options) {
  if (outputs.empty()) throw std::invalid_argument("grad: no outputs given");
  if (!options.grad_outputs.empty() && options.grad_outputs.size() != outputs.size())
    throw std::invalid_argument("grad: " + std::to_string(options.grad_outputs.size()) +
                                " grad_outputs for " + std::to_string(outputs.size()) +
                                " outputs (give one per output, or none)");
  std::vector<std::shared_ptr<TensorImpl>> roots;
  std::vector<Tensor> seeds;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& y = outputs[i];
    const std::string which = "grad: output " + std::to_string(i);
    if (!y.defined()) throw std::invalid_argument(which + " is undefined");
    if (!y.requires_grad())
      throw std::invalid_argument(which + " of shape " + shape_str(y.shape()) +
                                  " does not require a gradient (no input of its computation "
                                  "did, or it was computed under NoGrad)");
    Tensor seed = options.grad_outputs.empty() ? Tensor() : options.grad_outputs[i];
    if (!seed.defined()) {
      if (y.size() != 1)
        throw std::invalid_argument(which + " has shape " + shape_str(y.shape()) +
                                    "; a non-scalar output needs a seed in grad_outputs");
      seed = Tensor::ones(y.shape());
    } else if (seed.shape() != y.shape()) {
      throw std::invalid_argument(which + " has shape " + shape_str(y.shape()) +
                                  " but its seed has shape " + shape_str(seed.shape()));
    }
    roots.push_back(y.impl());
    seeds.push_back(seed);
  }
  Capture capture;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad())
      throw std::invalid_argument(
          "grad: input " + std::to_string(k) +
          (x.defined() ? " of shape " + shape_str(x.shape()) + " does not require a gradient"
                       : std::string(" is undefined")));
    capture.inputs.push_back(x.impl().get());
  }
  capture.grads.resize(inputs.size());
  WalkMode mode = walk_mode(options);
  mode.capture = &capture;
  run_walk(roots, seeds, mode);
  for (std::size_t k = 0; k < inputs.size(); ++k)
    if (!capture.grads[k].defined() && !options.allow_unused)
      throw std::logic_error("grad: input " + std::to_string(k) + " of shape " +
                             shape_str(inputs[k].shape()) +
                             " is not used by the outputs (pass allow_unused to get an "
                             "undefined tensor for it)");
  return std::move(capture.grads);
}

// ---------------------------------------------------------------- recording

namespace detail {

Node::~Node() {
  if (walk.load(std::memory_order_relaxed) != kConsumed)
    g_live_records.fetch_sub(1, std::memory_order_relaxed);
  // The rule goes first: it may hold handles of the inputs (saved for create_graph), which
  // would otherwise keep them from the iterative release below.
  backward = nullptr;
  // Take over the inputs whose last owner is this record, and their records' inputs in turn:
  // each is then destroyed with an empty input list, so no destructor recurses.
  std::vector<std::shared_ptr<TensorImpl>> pending = std::move(inputs);
  while (!pending.empty()) {
    std::shared_ptr<TensorImpl> impl = std::move(pending.back());
    pending.pop_back();
    if (impl && impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1) {
      impl->grad_fn->backward = nullptr;  // its saved handles too (see above)
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
  if (t_capture) {  // grad(): a requested leaf's gradient goes to the caller, others nowhere
    const std::size_t k = t_capture->index_of(&target);
    if (k < t_capture->inputs.size()) {
      Tensor& slot = t_capture->grads[k];
      slot = slot.defined() ? slot + g : g;
    }
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

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward,
              bool differentiable) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->differentiable = differentiable;
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

bool detail::creating_graph() { return t_creating_graph; }

Tensor detail::SavedOutput::tensor() const {
  if (!t_creating_graph) return values_;
  auto self = self_.lock();
  if (!self)  // cannot happen while a walk holds the consumers; never differentiate wrongly
    throw std::logic_error("backward with create_graph: a rule's saved output is gone");
  return Tensor(std::move(self));
}
NoGrad::NoGrad() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGrad::~NoGrad() { t_grad_enabled = previous_; }
EnableGrad::EnableGrad() : previous_(t_grad_enabled) { t_grad_enabled = true; }
EnableGrad::~EnableGrad() { t_grad_enabled = previous_; }

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(shape=" << shape_str(t.shape()) << ", [";
  const std::size_t n = t.size(), shown = std::min<std::size_t>(n, 16);
  for (std::size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << t.data()[i];
  if (shown < n) os << ", ...";
  return os << "])";
}

}  // namespace xtape
