// Matrix multiplication (2-d and batched with broadcast batch axes) and its backward rule.
#include <stdexcept>
#include <utility>

#include "autodiff/ops/helpers.hpp"
#include "kernels/gemm.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

namespace {

// out[b] = op(a[b]) x op(b[b]) for every batch b; a, b and out are contiguous stacks of
// matrices with the same batch count. rows/cols are the stored (untransposed) extents.
void batched_gemm(bool ta, bool tb, std::size_t batch, const float* a, std::size_t a_rows,
                  std::size_t a_cols, const float* b, std::size_t b_rows, std::size_t b_cols,
                  float* out) {
  const std::size_t m = ta ? a_cols : a_rows, k = ta ? a_rows : a_cols;
  const std::size_t n = tb ? b_rows : b_cols;
  for (std::size_t i = 0; i < batch; ++i)
    kernels::sgemm(ta, tb, static_cast<std::int64_t>(m), static_cast<std::int64_t>(n),
                   static_cast<std::int64_t>(k), 1.f, a + i * a_rows * a_cols,
                   static_cast<std::int64_t>(a_cols), b + i * b_rows * b_cols,
                   static_cast<std::int64_t>(b_cols), 0.f, out + i * m * n,
                   static_cast<std::int64_t>(n));
}

// x with its last two axes exchanged (recorded).
Tensor swap_last_axes(const Tensor& x) {
  std::vector<int> perm(x.ndim());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int>(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return transpose(x, perm);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  const Shape &as = a.shape(), &bs = b.shape();
  if (as.size() < 2 || bs.size() < 2)
    throw std::invalid_argument("matmul: expected operands of rank >= 2, got shapes " +
                                shape_str(as) + " and " + shape_str(bs));
  const std::size_t m = as[as.size() - 2], k = as.back(), k2 = bs[bs.size() - 2], n = bs.back();
  if (k != k2)
    throw std::invalid_argument("matmul: inner dimensions differ: shapes " + shape_str(as) +
                                " and " + shape_str(bs) + " (" + std::to_string(k) + " vs " +
                                std::to_string(k2) + ")");
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  const std::size_t nb = shape_size(batch);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = detail::new_result(out_shape, "matmul");
  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  // The operands broadcast over the batch (copies, unless b is 2-d).
  detail::checked_size(a_full, "matmul");
  detail::checked_size(b_full, "matmul");
  // A 2-d right operand shared across the batch is one tall GEMM.
  if (bs.size() == 2 && as.size() >= 2) {
    kernels::sgemm(false, false, static_cast<std::int64_t>(nb * m), static_cast<std::int64_t>(n),
                   static_cast<std::int64_t>(k), 1.f, a.data(), static_cast<std::int64_t>(k),
                   b.data(), static_cast<std::int64_t>(n), 0.f, detail::mutable_data(out),
                   static_cast<std::int64_t>(n));
  } else {
    const Tensor af = detail::broadcast_values(a, a_full), bf = detail::broadcast_values(b, b_full);
    batched_gemm(false, false, nb, af.data(), m, k, bf.data(), k, n, detail::mutable_data(out));
  }
  const Tensor va = a, vb = b;  // with their history, for create_graph (inputs: no cycle)
  // dA = G B^T, dB = A^T G (per batch), summed over broadcast batch axes.
  return record("matmul", out, {a, b}, [va, vb, a_full, b_full, nb, m, k, n](const Tensor& g, Grads& grads) {
    if (detail::creating_graph()) {  // the same products, recorded
      if (grads.needs(0)) grads.add(0, sum_to(matmul(g, swap_last_axes(vb)), va.shape()));
      if (grads.needs(1)) grads.add(1, sum_to(matmul(swap_last_axes(va), g), vb.shape()));
      return;
    }
    const Tensor af = detail::broadcast_values(va, a_full), bf = detail::broadcast_values(vb, b_full);
    if (grads.needs(0)) {
      Tensor ga = Tensor::empty(a_full);
      batched_gemm(false, true, nb, g.data(), m, n, bf.data(), k, n, detail::mutable_data(ga));
      grads.add(0, sum_to(ga, va.shape()));
    }
    if (grads.needs(1)) {
      if (vb.ndim() == 2) {  // one (k, n) gradient from the stacked rows: A^T G over all batches
        Tensor gb = Tensor::empty(vb.shape());
        kernels::sgemm(true, false, static_cast<std::int64_t>(k), static_cast<std::int64_t>(n),
                       static_cast<std::int64_t>(nb * m), 1.f, af.data(),
                       static_cast<std::int64_t>(k), g.data(), static_cast<std::int64_t>(n), 0.f,
                       detail::mutable_data(gb), static_cast<std::int64_t>(n));
        grads.add(1, gb);
      } else {
        Tensor gb = Tensor::empty(b_full);
        batched_gemm(true, false, nb, af.data(), m, k, g.data(), m, n, detail::mutable_data(gb));
        grads.add(1, sum_to(gb, vb.shape()));
      }
    }
  }, true);
}

}  // namespace xtape
