#pragma once
/// @file ops_array.hpp
/// Indexing and movement, more reductions, and contractions (issue 12), included by ops.hpp.
/// Semantics follow NumPy (and PyTorch where NumPy has no gradient): negative axes count from
/// the end, zero-size tensors give correctly shaped (often empty) results. Bad axes, shapes or
/// arguments throw std::invalid_argument (std::out_of_range for indices) naming the op, what was
/// expected and what was received.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape {

// ---- indexing and movement (autodiff/ops/movement.cpp, autodiff/ops/indexing.cpp) ----

/// One axis of a slice, Python semantics: start and stop may be negative (counting from the
/// end) or absent (the whole axis in the step's direction), and are clipped to the axis; step
/// may be negative but not 0. `Slice{}` keeps the whole axis.
struct Slice {
  std::optional<std::int64_t> start = std::nullopt, stop = std::nullopt;
  std::int64_t step = 1;
};

/// x[..., start:stop:step, ...] on one axis (a copy). Throws std::invalid_argument for a bad
/// axis or a step of 0.
Tensor slice(const Tensor& x, int axis, std::optional<std::int64_t> start,
             std::optional<std::int64_t> stop, std::int64_t step = 1);
/// x[s0, s1, ...]: slices[i] applies to axis i; axes past slices.size() are kept whole. Throws
/// std::invalid_argument when there are more slices than axes or a step is 0.
Tensor slice(const Tensor& x, const std::vector<Slice>& slices);

/// NumPy split into `sections` equal parts along `axis`; throws std::invalid_argument when the
/// extent is not divisible (or sections < 1).
std::vector<Tensor> split(const Tensor& x, std::int64_t sections, int axis = 0);
/// NumPy split at `indices` along `axis`: parts [0, i0), [i0, i1), ..., [ik, n), each index
/// clipped as a slice bound (negative ones count from the end), so parts may be empty.
std::vector<Tensor> split_at(const Tensor& x, const std::vector<std::int64_t>& indices,
                             int axis = 0);
/// Joins tensors of one shape along a new axis (in [-(rank+1), rank]).
Tensor stack(const std::vector<Tensor>& xs, int axis = 0);
/// The slices of x along `axis`, that axis removed (the inverse of stack).
std::vector<Tensor> unstack(const Tensor& x, int axis = 0);

enum class PadMode { constant, reflect, symmetric };
/// "constant", "reflect" or "symmetric"; throws std::invalid_argument naming `who` otherwise.
PadMode parse_pad_mode(const std::string& name, const char* who);
/// NumPy pad: pad_width holds (before, after) per axis, or one pair for every axis. reflect
/// mirrors without repeating the edge, symmetric with it; pads wider than the axis reflect
/// again, as NumPy does. Throws std::invalid_argument for negative widths, a wrong number of
/// pairs, or reflect/symmetric of an axis of extent 0 (NumPy's "can't extend empty axis").
Tensor pad(const Tensor& x, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width,
           PadMode mode = PadMode::constant, float constant_value = 0.f);
/// NumPy tile: x repeated reps[i] times along each axis (reps shorter than the rank is padded
/// with leading 1s, longer promotes x with leading axes of extent 1). Negative reps throw.
Tensor tile(const Tensor& x, const std::vector<std::int64_t>& reps);
/// NumPy repeat: each element repeated `repeats` times along `axis`; without an axis x is
/// flattened first.
Tensor repeat(const Tensor& x, std::int64_t repeats, std::optional<int> axis = std::nullopt);
/// NumPy repeat with one count per element of the axis (repeats.size() == extent).
Tensor repeat(const Tensor& x, const std::vector<std::int64_t>& repeats,
              std::optional<int> axis = std::nullopt);
/// NumPy broadcast_to (extents of 1 stretch, leading axes are added); the gradient sums back.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// Inserts an axis of extent 1 at `axis` (in [-(rank+1), rank]).
Tensor expand_dims(const Tensor& x, int axis);
/// Inserts axes of extent 1 so that they sit at `axes` in the result (NumPy's tuple form).
Tensor expand_dims(const Tensor& x, const std::vector<int>& axes);
/// Removes axes of extent 1: `axes`, or every one when empty. Throws std::invalid_argument when a
/// named axis has another extent.
Tensor squeeze(const Tensor& x, const std::vector<int>& axes = {});
/// NumPy take (tf.gather): elements of x along `axis` at `indices`; the result's shape is
/// x.shape[:axis] + indices.shape + x.shape[axis+1:]. Without an axis x is flattened. Indices
/// are integral floats in [-n, n) (negative count from the end); another value throws
/// std::invalid_argument, one out of range std::out_of_range, naming the op, the index and its
/// position. The gradient scatter-adds (repeated indices accumulate).
Tensor take(const Tensor& x, const Tensor& indices, std::optional<int> axis = std::nullopt);
Tensor take(const Tensor& x, const std::vector<std::int64_t>& indices,
            std::optional<int> axis = std::nullopt);
/// A braced list of indices: take(x, {0, 2}, 1).
inline Tensor take(const Tensor& x, std::initializer_list<std::int64_t> indices,
                   std::optional<int> axis = std::nullopt) {
  return take(x, std::vector<std::int64_t>(indices), axis);
}
/// tf.gather / keras.ops.take: the same as take along `axis`.
Tensor gather(const Tensor& x, const Tensor& indices, int axis = 0);
Tensor gather(const Tensor& x, const std::vector<std::int64_t>& indices, int axis = 0);
inline Tensor gather(const Tensor& x, std::initializer_list<std::int64_t> indices, int axis = 0) {
  return gather(x, std::vector<std::int64_t>(indices), axis);
}
/// NumPy take_along_axis (torch.gather): indices has x's rank and broadcasts against x on every
/// axis but `axis`; out[..., i, ...] = x[..., indices[..., i, ...], ...]. Same index rules as take.
Tensor take_along_axis(const Tensor& x, const Tensor& indices, int axis);
/// keras.ops.one_hot: integral float indices in [0, depth) -> a new axis (`axis`, default last)
/// of extent depth holding on_value at the index and off_value elsewhere. No gradient. Indices
/// that are not integers or lie outside [0, depth) throw (std::invalid_argument /
/// std::out_of_range) naming the index and its position.
Tensor one_hot(const Tensor& indices, std::int64_t depth, int axis = -1, float on_value = 1.f,
               float off_value = 0.f);
/// Reverses the order along `axes` (every axis when empty).
Tensor flip(const Tensor& x, const std::vector<int>& axes = {});
/// NumPy roll: element i of an axis moves to (i + shift) mod n. With axes, shifts pair with
/// them (one shift for all axes allowed); without, x is rolled flattened.
Tensor roll(const Tensor& x, std::int64_t shift, std::optional<int> axis = std::nullopt);
Tensor roll(const Tensor& x, const std::vector<std::int64_t>& shifts, const std::vector<int>& axes);

// ---- more reductions (autodiff/ops/reductions.cpp). Empty `axes` means every axis. ----

/// Product; groups of no elements give 1. The gradient is the product of the other elements
/// of the group (computed without dividing, so it is right with zeros in the input).
Tensor prod(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// Minimum, -max(-x): NaN propagates and the gradient goes to the first minimal element or the
/// first NaN. Throws std::invalid_argument for an empty group.
Tensor min(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// Index of the first maximum (minimum) along `axis`, as floats (exact below 2^24); without an
/// axis, the flat index. NaN ranks first (PyTorch): a group holding NaN gives its first NaN.
/// No gradient. Throws std::invalid_argument for an empty group.
Tensor argmax(const Tensor& x, std::optional<int> axis = std::nullopt, bool keepdims = false);
Tensor argmin(const Tensor& x, std::optional<int> axis = std::nullopt, bool keepdims = false);
/// log(sum(exp(x))) over `axes`, computed stably (shifted by the group's maximum): rows of -inf
/// give -inf, +inf gives +inf, empty groups give -inf. The gradient is softmax(x) (NaN on a row
/// of -inf, as in PyTorch).
Tensor logsumexp(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// Cumulative sum along `axis` (sequential in float, as NumPy); `exclusive` leaves out the
/// element itself (tf.math.cumsum), `reverse` sums from the end.
Tensor cumsum(const Tensor& x, int axis, bool exclusive = false, bool reverse = false);
/// Variance sum((x - mean)^2) / (N - ddof) over `axes` (NumPy's ddof, PyTorch's correction);
/// N - ddof <= 0 divides by 0 (inf, or NaN for a zero sum) as NumPy. A composition.
Tensor var(const Tensor& x, std::vector<int> axes = {}, double ddof = 0, bool keepdims = false);
/// sqrt(var(x, axes, ddof, keepdims)). Call it xtape::std (unqualified, `std` is the namespace).
Tensor std(const Tensor& x, std::vector<int> axes = {}, double ddof = 0, bool keepdims = false);
/// Vector norm over `axes` (every axis when empty): ord 2 (sqrt of the sum of squares), 1 (sum
/// of absolute values) or infinity (largest absolute value; NaN propagates). Gradients at 0 are
/// 0, and ord infinity splits the gradient evenly between ties (torch.linalg.vector_norm).
/// Throws std::invalid_argument for another ord, or ord infinity over an empty group.
Tensor norm(const Tensor& x, double ord = 2, std::vector<int> axes = {}, bool keepdims = false);

// ---- contractions (autodiff/ops/einsum.cpp) ----

/// op(a) x op(b) where op transposes the last two axes when its flag is set: a (..., m, k) or
/// (..., k, m) with transpose_a, b (..., k, n) or (..., n, k) with transpose_b; batch axes
/// broadcast. Runs on the GEMM with the transposes read in place (no copies).
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);
/// Einstein summation (NumPy's einsum): "ij,jk->ik", "bhqd,bhkd->bhqk", "...ij,jk->...ik", or
/// implicit output ("ij,jk": labels seen once, sorted). Labels are letters; "..." stands for
/// broadcast axes. Every contraction runs as one batched GEMM on permuted/reshaped operands;
/// more than two operands contract left to right. A label repeated within one operand takes
/// the diagonal ("ii->i", "ii->" a trace, "bii->bi"). Throws std::invalid_argument for a malformed
/// equation, operand ranks that do not match it, or extents that disagree for a label.
Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands);

}  // namespace xtape
