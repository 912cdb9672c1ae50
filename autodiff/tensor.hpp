#pragma once
/// @file tensor.hpp
/// xtape::Tensor: an n-d float32 array with reverse-mode automatic differentiation.
///
/// A Tensor is a cheap handle (a shared pointer) to a node holding a contiguous, row-major,
/// 64-byte aligned float buffer and its shape. Ops whose inputs require gradients record their
/// backward rule in the result, numbered in creation order; Tensor::backward() runs the records
/// reachable from its tensor newest first. The records belong to the graph, not to a thread: a
/// graph may be built on several threads and back-propagated on any. This header is light on
/// purpose: no xtensor templates (see autodiff/xtensor_interop.hpp for conversions).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

/// Shape of a tensor: extents, outermost first. An empty shape is a scalar (one element).
using Shape = std::vector<std::size_t>;

/// Number of elements of a shape (1 for a scalar, 0 when any extent is 0). Throws
/// std::length_error when the extents multiply to more than 2^64 elements.
std::size_t shape_size(const Shape& shape);

/// "(2, 3, 4)" — used in every error message.
std::string shape_str(const Shape& shape);

namespace detail {
struct TensorImpl;
struct Node;
}  // namespace detail

/// Options of Tensor::backward and grad().
struct BackwardOptions {
  /// Run the backward rules on the tape, so the gradients produced carry history and can be
  /// differentiated again (to any order). Rules without a differentiable form throw
  /// std::logic_error naming the op.
  bool create_graph = false;
  /// Keep the records for another backward pass (by default: what create_graph is).
  std::optional<bool> retain_graph;
};

/// An n-d float32 array that can take part in automatic differentiation.
class Tensor {
 public:
  /// An undefined tensor (defined() is false): the value of grad() before any backward().
  Tensor() = default;
  /// A tensor of the given shape filled with `fill`. Throws std::length_error when the extents
  /// overflow or the buffer would exceed the machine's physical memory (ops check their results
  /// the same way, and their errors name the op).
  explicit Tensor(const Shape& shape, float fill = 0.f);
  /// A tensor of the given shape holding `values` (row-major). Throws std::invalid_argument
  /// when values.size() differs from the shape's element count.
  Tensor(const Shape& shape, const std::vector<float>& values);

  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  /// A 0-d tensor.
  static Tensor scalar(float value);
  /// A tensor with uninitialised contents (for kernels that overwrite every element).
  static Tensor empty(const Shape& shape);

  /// False for a default-constructed tensor.
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  std::size_t ndim() const { return shape().size(); }
  /// Extent of axis `axis`; negative axes count from the end. Throws std::out_of_range.
  std::size_t dim(int axis) const;
  /// Number of elements.
  std::size_t size() const;

  /// Contiguous row-major data. Writing through data() bypasses the tape (like PyTorch's
  /// `.data`): do it only on leaves or outside a recorded computation.
  ///
  /// The non-const overload (and non-const at()) hands out a writable pointer, so it marks the
  /// buffer (shared by every handle to it: copies, detach(), reshape views) "exposed" for good:
  /// ops that would defer their result on it (conv2d and what fuses into it, max_pool2d's
  /// gradient) compute at once instead, so a write through a pointer taken before such an op
  /// never reaches its result. It also computes every pending result that reads the buffer.
  /// To fill a tensor without exposing it, use the constructors or assign(); to read, a const
  /// handle (std::as_const), to_vector() or item(). Writing through a const pointer
  /// (const_cast) is not supported.
  float* data();
  const float* data() const;
  std::vector<float> to_vector() const;
  /// The single element of a one-element tensor; throws std::invalid_argument otherwise.
  float item() const;
  /// Element access by full index; throws std::out_of_range on a bad index or rank.
  float& at(std::initializer_list<std::size_t> index);
  float at(std::initializer_list<std::size_t> index) const;

  /// True when gradients flow to this tensor (a trainable leaf or the result of an op on one).
  bool requires_grad() const;
  /// Marks a leaf as needing a gradient; throws std::logic_error on a non-leaf.
  Tensor& set_requires_grad(bool value = true);
  /// True when the tensor was not produced by a recorded op.
  bool is_leaf() const;
  /// The accumulated gradient of a leaf (undefined before any backward()).
  Tensor grad() const;
  /// Replaces the stored gradient (used by optimizers' clipping and tests).
  void set_grad(const Tensor& g);
  /// Drops the accumulated gradient.
  void zero_grad();

  /// Back-propagates from this scalar (one-element) tensor, seeding with 1. Throws
  /// std::logic_error for a non-scalar (use the seeded overload) or a tensor without history.
  ///
  /// Runs the records reachable from this tensor, newest first, on the calling thread (they
  /// may have been recorded on any threads), and frees each once run; a second backward()
  /// through them throws std::logic_error. Threads may call backward() at the same time on
  /// graphs that share only leaves: each leaf's gradient is accumulated under its own mutex,
  /// so no contribution is lost (grad(), set_grad() and zero_grad() take it too). A graph
  /// sharing a record with a backward() running on another thread is refused with
  /// std::logic_error before anything is computed.
  void backward();
  /// Back-propagates with an explicit seed gradient of the same shape as this tensor.
  void backward(const Tensor& seed);
  /// backward() with options: `create_graph` makes the leaves' gradients carry history (they
  /// can be differentiated again); `retain_graph` keeps the records for another backward().
  void backward(const BackwardOptions& options);
  void backward(const Tensor& seed, const BackwardOptions& options);

  /// A tensor sharing this one's data with no history and requires_grad() false.
  Tensor detach() const;
  /// A deep copy of the data with no history.
  Tensor clone() const;
  /// Copies the values of `src` (same element count) into this tensor's buffer, first computing
  /// any pending result that reads it; does not expose the buffer (see data()).
  void assign(const Tensor& src);

  /// Identity of the underlying node (same for copies of a handle).
  const void* id() const { return impl_.get(); }
  /// Internal: the shared node.
  const std::shared_ptr<detail::TensorImpl>& impl() const { return impl_; }
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl) : impl_(std::move(impl)) {}

 private:
  const detail::TensorImpl& checked() const;
  std::shared_ptr<detail::TensorImpl> impl_;
};

/// Prints shape and values (truncated) as "Tensor(shape=(2, 2), [1, 2, 3, 4])".
std::ostream& operator<<(std::ostream& os, const Tensor& t);

/// True while ops record on the tape (the default). Per thread.
bool grad_enabled();

/// RAII guard that turns tape recording off in its scope (inference, optimizer updates).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

/// RAII guard that turns tape recording back on in its scope (inside a NoGrad region), as
/// torch.enable_grad.
class EnableGrad {
 public:
  EnableGrad();
  ~EnableGrad();
  EnableGrad(const EnableGrad&) = delete;
  EnableGrad& operator=(const EnableGrad&) = delete;

 private:
  bool previous_;
};

/// Flushes denormal (subnormal) floats to zero, or stops flushing them, on the calling thread
/// and on the OpenMP threads that run the kernels (PyTorch's torch.set_flush_denormal).
/// Denormals are below 1.2e-38 in magnitude; with flushing on they read and compute as 0, and
/// arithmetic on them costs no microcode assist (about a hundred cycles per instruction on
/// x86). Sequential's fit, evaluate and predict always run with flushing on, as TensorFlow
/// runs its ops. Returns false, changing nothing, where the CPU has no such mode.
bool set_flush_denormal(bool on);

/// Whether the calling thread flushes denormals.
bool flush_denormal();

/// RAII guard that sets denormal flushing (on by default) in its scope, as set_flush_denormal
/// does, and restores the previous mode of the calling thread on exit (to every thread).
class FlushDenormal {
 public:
  explicit FlushDenormal(bool on = true);
  ~FlushDenormal();
  FlushDenormal(const FlushDenormal&) = delete;
  FlushDenormal& operator=(const FlushDenormal&) = delete;

 private:
  bool previous_;
};

/// Number of records alive and not yet run by a backward(), on all threads (for tests of
/// memory growth).
std::size_t tape_size();

/// Options of grad(): those of backward, and
struct GradOptions : BackwardOptions {
  /// Seeds, one per output (an undefined entry, or none at all, seeds a one-element output
  /// with 1). Each must have its output's shape.
  std::vector<Tensor> grad_outputs;
  /// An input no output depends on gets an undefined tensor instead of an error.
  bool allow_unused = false;
};

/// The gradients of `outputs` (summed, each seeded by its grad_outputs entry) with respect to
/// each of `inputs`, which may be any tensors that require a gradient (leaves or results of
/// ops), as torch.autograd.grad. Leaves' grad() are left untouched, and only the records on a
/// path from an input to an output run. With `create_graph` the returned tensors carry
/// history. Throws std::invalid_argument for an input that does not require a gradient, a
/// seed of the wrong shape or a missing seed for a non-scalar output, and std::logic_error
/// for an unused input (unless allow_unused) or records already consumed.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const GradOptions& options = {});

}  // namespace xtape
