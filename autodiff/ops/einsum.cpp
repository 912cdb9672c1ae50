// Contractions: matmul with transpose flags (the GEMM reads the transposes in place) and einsum,
// which permutes/reshapes each pair of operands onto one batched matmul. einsum has no backward
// code: it is a composition of sum, transpose, reshape, matmul and *.
#include <algorithm>
#include <map>
#include <stdexcept>
#include <tuple>

#include "autodiff/ops/index_maps.hpp"
#include "kernels/gemm.hpp"

namespace xtape {

using detail::Grads;
using detail::record;

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const Shape &as = a.shape(), &bs = b.shape();
  if (as.size() < 2 || bs.size() < 2)
    throw std::invalid_argument("matmul: expected operands of rank >= 2, got shapes " +
                                shape_str(as) + " and " + shape_str(bs));
  const std::size_t ar = as[as.size() - 2], ac = as.back(), br = bs[bs.size() - 2], bc = bs.back();
  const std::size_t m = ta ? ac : ar, k = ta ? ar : ac, k2 = tb ? bc : br, n = tb ? br : bc;
  if (k != k2)
    throw std::invalid_argument("matmul: inner dimensions differ: shapes " + shape_str(as) +
                                (ta ? " (transposed)" : "") + " and " + shape_str(bs) +
                                (tb ? " (transposed)" : "") + " (" + std::to_string(k) + " vs " +
                                std::to_string(k2) + ")");
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  const std::size_t nb = shape_size(batch);
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {m, n});
  Tensor out = detail::new_result(out_shape, "matmul");
  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {ar, ac});
  b_full.insert(b_full.end(), {br, bc});
  detail::checked_size(a_full, "matmul");
  detail::checked_size(b_full, "matmul");
  using I = std::int64_t;
  if (out.size() != 0) {
    float* o = detail::mutable_data(out);
    if (bs.size() == 2 && !ta) {
      // A 2-d right operand shared across the batch: one tall GEMM over the stacked rows.
      kernels::sgemm(false, tb, static_cast<I>(nb * m), static_cast<I>(n), static_cast<I>(k), 1.f,
                     a.data(), static_cast<I>(ac), b.data(), static_cast<I>(bc), 0.f, o,
                     static_cast<I>(n));
    } else {
      const Tensor af = detail::broadcast_values(a, a_full);
      const Tensor bf = detail::broadcast_values(b, b_full);
      for (std::size_t i = 0; i < nb; ++i)
        kernels::sgemm(ta, tb, static_cast<I>(m), static_cast<I>(n), static_cast<I>(k), 1.f,
                       af.data() + i * ar * ac, static_cast<I>(ac), bf.data() + i * br * bc,
                       static_cast<I>(bc), 0.f, o + i * m * n, static_cast<I>(n));
    }
  }
  const Tensor va = a, vb = b;  // with their history, for create_graph (inputs: no cycle)
  // With C = op(A) op(B): dop(A) = G op(B)^T and dop(B) = op(A)^T G, written as matmuls with
  // flags so no operand is transposed in memory; then summed over broadcast batch axes.
  return record("matmul", out, {a, b}, [va, vb, ta, tb](const Tensor& g, Grads& grads) {
    if (grads.needs(0)) {
      const Tensor ga = !ta ? matmul(g, vb, false, !tb) : matmul(vb, g, tb, true);
      grads.add(0, sum_to(ga, va.shape()));
    }
    if (grads.needs(1)) {
      if (vb.ndim() == 2 && va.ndim() > 2 && !ta) {
        // One (k, n) gradient from the stacked rows of every batch.
        const long kk = static_cast<long>(va.shape().back());
        const Tensor a2 = reshape(va, {-1, kk});
        const Tensor g2 = reshape(g, {-1, static_cast<long>(g.shape().back())});
        grads.add(1, !tb ? matmul(a2, g2, true, false) : matmul(g2, a2, true, false));
      } else {
        const Tensor gb = !tb ? matmul(va, g, !ta, false) : matmul(g, va, true, ta);
        grads.add(1, sum_to(gb, vb.shape()));
      }
    }
  }, true);
}

namespace {

using Labels = std::vector<int>;  // letters by their char code, ellipsis axes as 256 + j

bool has(const Labels& l, int x) { return std::find(l.begin(), l.end(), x) != l.end(); }

std::string label_str(int l) {
  return l < 256 ? std::string(1, static_cast<char>(l)) : "... axis " + std::to_string(l - 256);
}

struct Term {
  Labels letters;  // before expanding the ellipsis; -1 marks where "..." sits
  bool ellipsis = false;
};

Term parse_term(const std::string& s, const std::string& eq, const std::string& what) {
  Term t;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (t.ellipsis || s.compare(i, 3, "...") != 0)
        throw std::invalid_argument("einsum: malformed \"...\" in " + what + " of \"" + eq + "\"");
      t.ellipsis = true;
      t.letters.push_back(-1);
      i += 2;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t.letters.push_back(static_cast<unsigned char>(c));
    } else {
      throw std::invalid_argument("einsum: unexpected character '" + std::string(1, c) + "' in " +
                                  what + " of \"" + eq + "\" (labels are letters)");
    }
  }
  return t;
}

// Expands "..." into `e` ellipsis labels (right-aligned among `total`).
Labels expand(const Term& t, std::size_t e, std::size_t total) {
  Labels out;
  for (int l : t.letters) {
    if (l != -1) {
      out.push_back(l);
      continue;
    }
    for (std::size_t j = total - e; j < total; ++j) out.push_back(256 + static_cast<int>(j));
  }
  return out;
}

Tensor reshape_to(const Tensor& x, const Shape& s) {
  return reshape(x, std::vector<long>(s.begin(), s.end()));
}

// x (axes labelled `from`) with its axes permuted into the order `to` (the same labels).
Tensor permute_to(const Tensor& x, const Labels& from, const Labels& to) {
  if (from == to) return x;
  std::vector<int> perm;
  for (int l : to)
    perm.push_back(static_cast<int>(std::find(from.begin(), from.end(), l) - from.begin()));
  return transpose(x, perm);
}

// Sums x over the axes whose labels are not in `keep`; updates `labels`.
Tensor sum_out(const Tensor& x, Labels& labels, const std::vector<int>& keep) {
  std::vector<int> axes;
  Labels rest;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (has(keep, labels[i]))
      rest.push_back(labels[i]);
    else
      axes.push_back(static_cast<int>(i));
  }
  if (axes.empty()) return x;
  labels = rest;
  return sum(x, axes);
}

std::size_t extent(const Tensor& x, const Labels& labels, int l) {
  return x.shape()[static_cast<std::size_t>(std::find(labels.begin(), labels.end(), l) -
                                            labels.begin())];
}

Shape extents(const Tensor& x, const Labels& labels, const Labels& which) {
  Shape s;
  for (int l : which) s.push_back(extent(x, labels, l));
  return s;
}

std::size_t product(const Shape& s) {
  std::size_t p = 1;
  for (std::size_t e : s) p *= e;
  return p;
}

// Contracts a (labels la) with b (labels lb), keeping the labels in `keep`; returns the result
// and its labels (batch, then a's free labels, then b's).
std::pair<Tensor, Labels> contract(Tensor a, Labels la, Tensor b, Labels lb, const Labels& keep) {
  // A label summed away that one side holds with extent 1 (a broadcast "..." axis): that side
  // just drops it.
  for (int l : Labels(la))
    if (has(lb, l) && !has(keep, l) && extent(a, la, l) != extent(b, lb, l)) {
      Labels keep_a;
      for (int x : la)
        if (x != l || extent(a, la, l) != 1) keep_a.push_back(x);
      Labels keep_b;
      for (int x : lb)
        if (x != l || extent(b, lb, l) != 1) keep_b.push_back(x);
      a = sum_out(a, la, keep_a);
      b = sum_out(b, lb, keep_b);
    }
  // Labels only one side holds and nothing needs are summed on that side first.
  Labels need_a = keep, need_b = keep;
  need_a.insert(need_a.end(), lb.begin(), lb.end());
  need_b.insert(need_b.end(), la.begin(), la.end());
  a = sum_out(a, la, need_a);
  b = sum_out(b, lb, need_b);
  Labels batch, con, fa, fb;
  for (int l : la) (has(lb, l) ? (has(keep, l) ? batch : con) : fa).push_back(l);
  for (int l : lb)
    if (!has(la, l)) fb.push_back(l);
  auto cat = [](std::initializer_list<const Labels*> parts) {
    Labels r;
    for (const Labels* p : parts) r.insert(r.end(), p->begin(), p->end());
    return r;
  };
  const Shape ba = extents(a, la, batch), bb = extents(b, lb, batch);
  const Shape ea = extents(a, la, fa), eb = extents(b, lb, fb), ek = extents(a, la, con);
  Shape bout(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) bout[i] = ba[i] == 1 ? bb[i] : ba[i];
  Labels out_labels = cat({&batch, &fa, &fb});
  if (con.empty()) {
    // No contraction (an outer or elementwise product): broadcasting multiply.
    Shape sa = ba, sb = bb;
    sa.insert(sa.end(), ea.begin(), ea.end());
    sa.insert(sa.end(), fb.size(), 1);
    sb.insert(sb.end(), fa.size(), 1);
    sb.insert(sb.end(), eb.begin(), eb.end());
    const Tensor pa = reshape_to(permute_to(a, la, cat({&batch, &fa})), sa);
    const Tensor pb = reshape_to(permute_to(b, lb, cat({&batch, &fb})), sb);
    return {pa * pb, out_labels};
  }
  // a as (batch, M, K), or (batch, K, M) read transposed when that is its order already; b as
  // (batch, K, N) or (batch, N, K).
  const bool ta = la == cat({&batch, &con, &fa}) && la != cat({&batch, &fa, &con});
  const bool tb = lb == cat({&batch, &fb, &con}) && lb != cat({&batch, &con, &fb});
  const Tensor pa = permute_to(a, la, ta ? cat({&batch, &con, &fa}) : cat({&batch, &fa, &con}));
  const Tensor pb = permute_to(b, lb, tb ? cat({&batch, &fb, &con}) : cat({&batch, &con, &fb}));
  const std::size_t M = product(ea), N = product(eb), K = product(ek);
  Shape sa = ba, sb = bb;
  sa.insert(sa.end(), {ta ? K : M, ta ? M : K});
  sb.insert(sb.end(), {tb ? N : K, tb ? K : N});
  const Tensor c = matmul(reshape_to(pa, sa), reshape_to(pb, sb), ta, tb);
  Shape sc = bout;
  sc.insert(sc.end(), ea.begin(), ea.end());
  sc.insert(sc.end(), eb.begin(), eb.end());
  return {reshape_to(c, sc), out_labels};
}

// The diagonal of x over the axes sharing a label (their extents are equal): "ii->i", and a
// trace once summed. Updates `labels` to one axis per label, in order of first appearance.
Tensor diagonal(const Tensor& x, Labels& labels) {
  Labels uniq;
  for (int l : labels)
    if (!has(uniq, l)) uniq.push_back(l);
  if (uniq.size() == labels.size()) return x;
  const Shape& xs = x.shape();
  std::vector<std::size_t> stride(xs.size(), 1);
  for (std::size_t k = xs.size(); k-- > 1;) stride[k - 1] = stride[k] * xs[k];
  Shape os(uniq.size());
  std::vector<std::size_t> ustride(uniq.size(), 0);
  for (std::size_t d = 0; d < labels.size(); ++d) {
    const std::size_t u =
        static_cast<std::size_t>(std::find(uniq.begin(), uniq.end(), labels[d]) - uniq.begin());
    os[u] = xs[d];
    ustride[u] += stride[d];
  }
  const std::size_t total = detail::checked_size(os, "einsum");
  auto offsets = std::make_shared<std::vector<std::size_t>>(total);
  std::vector<std::size_t> idx(os.size(), 0);
  for (std::size_t i = 0; i < total; ++i) {
    std::size_t off = 0;
    for (std::size_t u = 0; u < os.size(); ++u) off += idx[u] * ustride[u];
    (*offsets)[i] = off;
    for (std::size_t u = os.size(); u-- > 0;) {
      if (++idx[u] < os[u]) break;
      idx[u] = 0;
    }
  }
  labels = uniq;
  return detail::flat_gather(x, offsets, os, "einsum");
}

}  // namespace

Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands) {
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq += c;
  const std::size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= lhs.size(); ++i)
    if (i == lhs.size() || lhs[i] == ',') {
      terms.push_back(lhs.substr(start, i - start));
      start = i + 1;
    }
  if (terms.size() != operands.size())
    throw std::invalid_argument("einsum: \"" + equation + "\" names " +
                                std::to_string(terms.size()) + " operands, got " +
                                std::to_string(operands.size()));
  std::vector<Term> parsed;
  std::size_t total_e = 0;
  std::vector<std::size_t> ell(terms.size());
  for (std::size_t i = 0; i < terms.size(); ++i) {
    parsed.push_back(parse_term(terms[i], equation, "operand " + std::to_string(i)));
    const std::size_t letters = parsed[i].letters.size() - (parsed[i].ellipsis ? 1 : 0);
    const std::size_t rank = operands[i].ndim();
    if (rank < letters || (!parsed[i].ellipsis && rank != letters))
      throw std::invalid_argument("einsum: operand " + std::to_string(i) + " of \"" + equation +
                                  "\" has shape " + shape_str(operands[i].shape()) + ", expected " +
                                  (parsed[i].ellipsis ? "at least " : "") +
                                  std::to_string(letters) + " axes (\"" + terms[i] + "\")");
    ell[i] = rank - letters;
    total_e = std::max(total_e, ell[i]);
  }
  std::vector<Labels> labels(terms.size());
  std::map<int, std::size_t> count, ext;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    labels[i] = expand(parsed[i], ell[i], total_e);
    for (std::size_t d = 0; d < labels[i].size(); ++d) {
      const int l = labels[i][d];
      const std::size_t e = operands[i].shape()[d];
      auto it = ext.find(l);
      if (it == ext.end()) {
        ext[l] = e;
      } else if (e != it->second) {
        // Only "..." axes broadcast (an extent of 1 stretches), as in NumPy.
        if (l < 256 || (e != 1 && it->second != 1))
          throw std::invalid_argument("einsum: label '" + label_str(l) + "' of \"" + equation +
                                      "\" has extent " + std::to_string(e) + " in operand " +
                                      std::to_string(i) + " (shape " +
                                      shape_str(operands[i].shape()) + ") but " +
                                      std::to_string(it->second) + " elsewhere");
        it->second = std::max(e, it->second);
      }
      ++count[l];
    }
  }
  Labels out;
  if (arrow != std::string::npos) {
    const Term t = parse_term(eq.substr(arrow + 2), equation, "the output");
    out = expand(t, total_e, total_e);
    for (int l : out) {
      if (!count.count(l))
        throw std::invalid_argument("einsum: output label '" + label_str(l) + "' of \"" + equation +
                                    "\" appears in no operand");
      if (std::count(out.begin(), out.end(), l) > 1)
        throw std::invalid_argument("einsum: output label '" + label_str(l) + "' of \"" + equation +
                                    "\" repeated");
    }
  } else {
    // NumPy's implicit output: the "..." axes, then the labels seen once, sorted.
    for (std::size_t j = 0; j < total_e; ++j) out.push_back(256 + static_cast<int>(j));
    for (const auto& [l, c] : count)
      if (l < 256 && c == 1) out.push_back(l);
  }
  if (operands.empty()) throw std::invalid_argument("einsum: no operands");
  // Contract left to right, keeping what the output or a later operand needs.
  std::vector<Tensor> xs;
  for (std::size_t i = 0; i < operands.size(); ++i) xs.push_back(diagonal(operands[i], labels[i]));
  Tensor acc = xs[0];
  Labels la = labels[0];
  for (std::size_t i = 1; i < operands.size(); ++i) {
    Labels keep = out;
    for (std::size_t j = i + 1; j < operands.size(); ++j)
      keep.insert(keep.end(), labels[j].begin(), labels[j].end());
    std::tie(acc, la) = contract(acc, la, xs[i], labels[i], keep);
  }
  acc = sum_out(acc, la, out);
  // A "..." axis of extent 1 stretched by the others only in the output.
  Tensor r = permute_to(acc, la, out);
  Shape want;
  for (int l : out) want.push_back(ext[l]);
  return r.shape() == want ? r : broadcast_to(r, want);
}

}  // namespace xtape
