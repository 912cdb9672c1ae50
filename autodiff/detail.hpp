#pragma once
/// @file detail.hpp
/// Internals of the tape, shared by the op implementations. Not part of the public API.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/storage.hpp"
#include "autodiff/tensor.hpp"

namespace xtape::kernels {
struct Pool2DGeometry;
}

namespace xtape::detail {

/// The shared state behind a Tensor handle.
struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage> storage;
  bool requires_grad = false;
  Tensor grad;  ///< accumulated gradient (leaves only), guarded by grad_mutex
  /// Guards `grad`: concurrent backward() calls on different graphs may end in one shared leaf.
  mutable std::mutex grad_mutex;
  std::shared_ptr<Node> grad_fn;  ///< the record that produced this tensor (non-leaves)
  /// Set by softmax over the last axis: the logits it normalised. Cross-entropy "from
  /// probabilities" then works from these logits, as Keras's TensorFlow backend does
  /// (`_keras_logits`), which keeps gradients alive when probabilities saturate.
  Tensor softmax_logits;
  float* data() { return storage->data(); }
};

/// Collects the gradients a backward rule produces for its inputs.
class Grads {
 public:
  explicit Grads(const std::vector<std::shared_ptr<TensorImpl>>& inputs, const char* op)
      : inputs_(inputs), op_(op) {}
  /// True when input i needs a gradient (compute it only then).
  bool needs(std::size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  /// Adds g into input i's gradient; throws std::logic_error if g's shape differs from the
  /// input's (a bug in a backward rule).
  void add(std::size_t i, const Tensor& g);

 private:
  const std::vector<std::shared_ptr<TensorImpl>>& inputs_;
  const char* op_;
};

using BackwardFn = std::function<void(const Tensor& grad_output, Grads& grads)>;

/// One record on the tape: the op that produced a tensor, what its backward rule needs, and the
/// gradient accumulated for that tensor while the tape is walked.
///
/// The tape is the graph itself: a record is owned by the tensor it produced and by the records
/// that use that tensor, so the records behind a result are those reachable from it, whichever
/// threads recorded them. Sequence numbers (one counter for all threads) give creation order, a
/// valid topological order: an op's inputs exist before it runs.
struct Node {
  /// `walk` of a record run by a backward() and freed.
  static constexpr std::uint64_t kConsumed = ~std::uint64_t{0};

  std::uint64_t seq = 0;  ///< position in creation order (the tape's order)
  const char* op = "";
  /// Inputs in op order; nullptr for inputs that need no gradient.
  std::vector<std::shared_ptr<TensorImpl>> inputs;
  BackwardFn backward;
  Tensor grad;  ///< gradient w.r.t. the output, accumulated during backward
  Shape out_shape;
  /// The rule computes its gradients with recorded ops when creating_graph() is true, so they
  /// can be differentiated again. A rule without that form refuses create_graph.
  bool differentiable = false;
  /// 0 while free, the id of the backward() walking it (one walk at a time owns a record and
  /// its `grad`), kConsumed once run.
  std::atomic<std::uint64_t> walk{0};
  bool consumed() const { return walk.load(std::memory_order_acquire) == kConsumed; }
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Frees the chain of records behind this one iteratively, so dropping a graph of any depth
  /// without calling backward() cannot overflow the stack.
  ~Node();
};

/// Writable access to t's buffer for library code that keeps no pointer past its own work (an op
/// writing its result, an optimizer's in-place update, an initializer): like Tensor::data() it
/// first computes every pending result that reads the buffer, but it does not mark the buffer
/// exposed, so deferred ops on it keep fusing. User code goes through Tensor::data().
inline float* mutable_data(const Tensor& t) { return t.impl()->data(); }

/// Adds g into the gradient slot of `target` (a leaf's grad, under its mutex, or the output
/// gradient of a record the calling backward() owns).
void accumulate(TensorImpl& target, const Tensor& g, const char* op);

/// Records `out` as produced by `op` from `inputs` with rule `backward` when recording is on and
/// some input requires a gradient; returns `out` (marked requires_grad in that case).
/// `differentiable`: the rule has a create_graph form (see Node::differentiable).
Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward,
              bool differentiable = false);

/// True while a backward rule runs for a backward()/grad() with create_graph: the rule must
/// then compute with recorded ops (grad_enabled() is on), reading its saved tensors with their
/// history (inputs as captured handles, its own output through SavedOutput).
bool creating_graph();

/// A rule's own output, saved without the cycle a plain handle would make (the output owns the
/// record that would own it): values() has no history; tensor() is the output itself, with its
/// history, while creating_graph() (the output is alive then: the walk holds its consumers).
class SavedOutput {
 public:
  explicit SavedOutput(const Tensor& out) : values_(out.detach()), self_(out.impl()) {}
  const Tensor& values() const { return values_; }
  /// The output with history when creating a graph, else values().
  Tensor tensor() const;

 private:
  Tensor values_;
  std::weak_ptr<TensorImpl> self_;
};

/// True when recording is on and any of the tensors requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

/// The largest buffer a tensor may have, in bytes: the machine's physical memory (a larger one
/// could never be used, and asking the system for it gives a bare std::bad_alloc).
std::size_t max_tensor_bytes();

/// Element count of `shape` for a tensor that `op` is about to create. Throws std::length_error
/// naming `op` and the shape when the product of the extents overflows or the buffer would
/// exceed max_tensor_bytes().
std::size_t checked_size(const Shape& shape, const char* op);

/// A tensor of `shape` whose values `producer` computes on first access; `reads` are the
/// tensors the producer reads (a later write to one of them computes it first). When one of
/// them is exposed (a pointer from Tensor::data() may be outstanding), the values are computed
/// at once instead: a write through that pointer cannot be seen coming.
Tensor make_deferred(const Shape& shape, std::shared_ptr<const Producer> producer,
                     const std::vector<Tensor>& reads);

/// The pending producer behind `t` when its values are deferred and not yet computed.
inline std::shared_ptr<const Producer> pending_producer(const Tensor& t) {
  return t.defined() ? t.impl()->storage->producer() : nullptr;
}

/// Fusions into a deferred conv2d (autodiff/ops/conv.cpp): the conv with `bias` (broadcast
/// over the channel axis) or relu applied in its epilogue. Undefined when `a` is not such a
/// pending result or the epilogue cannot take the op.
Tensor fuse_conv_bias(const Tensor& a, const Tensor& bias);
Tensor fuse_conv_relu(const Tensor& a);
/// The conv with x * scale + shift (channel vectors) applied in its epilogue after the bias: a
/// batch normalization in inference folded into the convolution. Not after relu.
Tensor fuse_conv_scale_shift(const Tensor& a, const Tensor& scale, const Tensor& shift);
/// Max pooling of a pending conv2d result that nothing else holds: runs the convolution and the
/// pooling together per image, writes `out` and `argmax`, and returns true; `x` stays pending
/// (computed again only if read). False when `x` is not such a result.
bool fuse_conv_max_pool(const Tensor& x, const kernels::Pool2DGeometry& pool, float* out,
                        std::int32_t* argmax);

/// Gradients from max_pool2d's backward are deferred scatters of the pooled gradient
/// (autodiff/ops/pool.cpp), computed when read. relu's backward masks such a gradient in
/// pooled form (`values` = relu's output), a quarter of the memory traffic for 2x2 windows: the
/// result is again a deferred scatter. Undefined when `g` is not a pending scatter of
/// `values`' shape.
Tensor mask_pool_scatter(const Tensor& g, const Tensor& values);
/// When `t` is a pending scatter (not yet computed): its pool geometry, pooled gradient and
/// argmax, for kernels that read it in pooled form, and a handle that keeps them alive while
/// used. Null otherwise.
std::shared_ptr<const Producer> pending_pool_grad(const Tensor& t, kernels::Pool2DGeometry& pool,
                                                  const float*& grad_pooled,
                                                  const std::int32_t*& argmax);
/// sum_to(x, shape) for a pending pool scatter x and a per-channel `shape` (a bias gradient),
/// summed in pooled form with the bits of the dense sum. Undefined when not applicable.
Tensor pool_scatter_channel_sums(const Tensor& x, const Shape& shape);

/// True when `bias` broadcasts over every axis of a rank-`rank` tensor but its last, of extent
/// `channels` (shape (channels), (1, channels), ...): a per-channel bias or its gradient.
inline bool is_channel_vector(const Shape& bias, std::size_t rank, std::size_t channels) {
  if (bias.empty() || bias.size() > rank || bias.back() != channels) return false;
  for (std::size_t i = 0; i + 1 < bias.size(); ++i)
    if (bias[i] != 1) return false;
  return true;
}

/// A handle for saving a tensor inside a backward rule: same data, no history (so a rule never
/// keeps its own output's record alive through a cycle).
inline Tensor saved(const Tensor& t) { return t.detach(); }

}  // namespace xtape::detail
