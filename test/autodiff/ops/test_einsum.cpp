// Tests for autodiff/ops/einsum.cpp: matmul with transpose flags and einsum. Forward values are
// checked against a naive double-precision evaluation of the equation written here (every label
// assignment summed; extents of 1 broadcast), and against NumPy 1.24 for a small case.
#include <boost/test/unit_test.hpp>
#include <map>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "autodiff/profiler.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;
using V = std::vector<double>;

// Naive einsum in double for an explicit equation of letters only ("ab,bc->ac").
std::vector<double> naive_einsum(const std::string& eq, const std::vector<Tensor>& xs,
                                 Shape& out_shape) {
  const std::size_t arrow = eq.find("->");
  std::vector<std::string> terms;
  std::string cur;
  for (char c : eq.substr(0, arrow)) {
    if (c == ',') {
      terms.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  terms.push_back(cur);
  const std::string out = eq.substr(arrow + 2);
  std::map<char, std::size_t> ext;
  for (std::size_t i = 0; i < terms.size(); ++i)
    for (std::size_t d = 0; d < terms[i].size(); ++d)
      ext[terms[i][d]] = std::max(ext[terms[i][d]], xs[i].shape()[d]);
  std::string all;
  for (const auto& [c, e] : ext) all += c;
  out_shape.clear();
  for (char c : out) out_shape.push_back(ext[c]);
  std::vector<double> r(shape_size(out_shape), 0.0);
  std::map<char, std::size_t> idx;
  for (char c : all) idx[c] = 0;
  std::size_t combos = 1;
  for (char c : all) combos *= ext[c];
  for (std::size_t n = 0; n < combos; ++n) {
    double p = 1.0;
    for (std::size_t i = 0; i < terms.size(); ++i) {
      std::size_t off = 0;
      for (std::size_t d = 0; d < terms[i].size(); ++d) {
        const std::size_t e = xs[i].shape()[d];
        off = off * e + (e == 1 ? 0 : idx[terms[i][d]]);
      }
      p *= xs[i].data()[off];
    }
    std::size_t o = 0;
    for (char c : out) o = o * ext[c] + idx[c];
    r[o] += p;
    for (std::size_t k = all.size(); k-- > 0;) {
      if (++idx[all[k]] < ext[all[k]]) break;
      idx[all[k]] = 0;
    }
  }
  return r;
}

std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

Tensor swap_last(const Tensor& t) {
  std::vector<int> perm;
  for (int i = 0; i < static_cast<int>(t.ndim()); ++i) perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return transpose(t, perm);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(einsum_ops)

BOOST_AUTO_TEST_CASE(matmul_with_transpose_flags) {
  Rng rng(31);
  struct Case {
    Shape a, b;  // stored shapes (before the flags)
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{3, 4}, {4, 5}, false, false},       {{4, 3}, {4, 5}, true, false},
      {{3, 4}, {5, 4}, false, true},        {{4, 3}, {5, 4}, true, true},
      {{2, 3, 4}, {2, 4, 5}, false, false}, {{2, 1, 4, 3}, {3, 5, 4}, true, true},
      {{2, 3, 4}, {5, 4}, false, true},     {{2, 4, 3}, {4, 5}, true, false},
      {{3, 4}, {2, 5, 4}, false, true},     {{1, 4, 3}, {2, 4, 5}, true, false},
  };
  for (const Case& c : cases) {
    const std::string label =
        shape_str(c.a) + (c.ta ? "^T" : "") + " x " + shape_str(c.b) + (c.tb ? "^T" : "");
    const Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
    // Reference: the plain matmul of the operands transposed in memory, in double via einsum's
    // naive evaluator on the transposed copies.
    const Tensor at = c.ta ? swap_last(a) : a, bt = c.tb ? swap_last(b) : b;
    const Tensor y = matmul(a, b, c.ta, c.tb);
    const Tensor ref = matmul(at, bt);
    check_values(label, y, ref.shape(), as_double(ref), 1e-5, 1e-5);
    gradcheck("matmul " + label, [&](In in) { return matmul(in[0], in[1], c.ta, c.tb); }, {a, b});
  }
  check_throws<std::invalid_argument>(
      "inner",
      [] {
        matmul(Tensor(Shape{3, 4}), Tensor(Shape{3, 4}), false, false);
      },
      {"matmul", "(3, 4)", "4 vs 3"});
  check_throws<std::invalid_argument>(
      "inner transposed",
      [] {
        matmul(Tensor(Shape{3, 4}), Tensor(Shape{5, 3}), false, true);
      },
      {"matmul", "(5, 3) (transposed)"});
  check_throws<std::invalid_argument>("rank",
                                      [] {
                                        matmul(Tensor(Shape{3}), Tensor(Shape{3, 4}), true, false);
                                      },
                                      {"matmul", "rank >= 2"});
  check_zero_size("matmul k = 0", [](In in) { return matmul(in[0], in[1], true, false); },
                  {Tensor(Shape{0, 3}), Tensor(Shape{0, 2})}, {3, 2});
  const Tensor z = matmul(Tensor(Shape{2, 0, 3}), Tensor(Shape{2, 0, 4}), true, false);
  BOOST_TEST((z.shape() == Shape{2, 3, 4} && z.to_vector() == std::vector<float>(24, 0.f)));
  check_zero_size("matmul empty batch", [](In in) { return matmul(in[0], in[1], false, true); },
                  {Tensor(Shape{0, 2, 3}), Tensor(Shape{4, 3})}, {0, 2, 4});
}

BOOST_AUTO_TEST_CASE(einsum_against_naive) {
  Rng rng(32);
  struct Case {
    std::string eq, naive;  // naive: the same equation with "..." spelt out, letters only
    std::vector<Shape> shapes;
  };
  const std::vector<Case> cases = {
      {"ij,jk->ik", "ij,jk->ik", {{3, 4}, {4, 5}}},
      {"ij,jk", "ij,jk->ik", {{3, 4}, {4, 5}}},  // implicit output
      {"ij,kj->ik", "ij,kj->ik", {{3, 4}, {5, 4}}},
      {"ji,jk->ki", "ji,jk->ki", {{4, 3}, {4, 5}}},
      {"bij,bjk->bik", "bij,bjk->bik", {{2, 3, 4}, {2, 4, 5}}},
      {"bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk", {{2, 3, 4, 5}, {2, 3, 6, 5}}},
      {"bhqk,bhkd->bhqd", "bhqk,bhkd->bhqd", {{2, 3, 4, 6}, {2, 3, 6, 5}}},
      {"...ij,jk->...ik", "xyij,jk->xyik", {{2, 3, 4, 5}, {5, 6}}},
      {"...ij,...jk->...ik", "xyij,xyjk->xyik", {{2, 1, 3, 4}, {5, 4, 2}}},  // "..." broadcasts
      {"bqhd,bkhd->bhqk", "bqhd,bkhd->bhqk", {{2, 4, 3, 5}, {2, 6, 3, 5}}},  // permuted operands
      {"abc,cd->dba", "abc,cd->dba", {{2, 3, 4}, {4, 5}}},
      {"ij,ij->ij", "ij,ij->ij", {{3, 4}, {3, 4}}},
      {"i,j->ij", "i,j->ij", {{3}, {4}}},
      {"ij,ij->", "ij,ij->", {{3, 4}, {3, 4}}},
      {"ijk,j->ik", "ijk,j->ik", {{2, 3, 4}, {3}}},
      {"ijk->kj", "ijk->kj", {{2, 3, 4}}},
      {"ij->", "ij->", {{3, 4}}},
      {"ij,jk,kl->il", "ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 5}}},
      {"bn,anm,bm->ba", "bn,anm,bm->ba", {{2, 3}, {4, 3, 5}, {2, 5}}},
      {" i j , j k -> i k ", "ij,jk->ik", {{2, 3}, {3, 2}}},
      {"ii->i", "ii->i", {{3, 3}}},  // diagonal
      {"ii", "ii->", {{3, 3}}},      // trace (implicit output: i is seen twice)
      {"bii->bi", "bii->bi", {{2, 3, 3}}},
      {"iij,jk->ik", "iij,jk->ik", {{3, 3, 4}, {4, 2}}},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> xs;
    for (const Shape& s : c.shapes) xs.push_back(random_tensor(s, rng));
    Shape out;
    std::vector<Tensor> naive_in = xs;
    if (c.eq == "...ij,...jk->...ik") naive_in[1] = reshape(xs[1], {1, 5, 4, 2});
    const std::vector<double> ref = naive_einsum(c.naive, naive_in, out);
    check_values("einsum " + c.eq, einsum(c.eq, xs), out, ref, 1e-5, 1e-5);
    gradcheck(
        "einsum " + c.eq, [&](In in) { return einsum(c.eq, in); }, xs);
  }
  // NumPy 1.24: np.einsum('ij,jk->ik', [[1,2],[3,4]], [[5,6],[7,8]]).
  check_values("numpy",
               einsum("ij,jk->ik", {Tensor({2, 2}, {1, 2, 3, 4}), Tensor({2, 2}, {5, 6, 7, 8})}),
               {2, 2}, V{19, 22, 43, 50}, 0, 0);
}

BOOST_AUTO_TEST_CASE(einsum_large_runs_on_the_gemm) {
  // Attention-sized shapes: forward against the batched matmul, gradients by random directions.
  Rng rng(33);
  const Tensor q = random_tensor({2, 4, 64, 32}, rng), k = random_tensor({2, 4, 48, 32}, rng);
  const Tensor s = einsum("bhqd,bhkd->bhqk", {q, k});
  const Tensor ref = matmul(q, swap_last(k));
  check_values("bhqd,bhkd->bhqk", s, {2, 4, 64, 48}, as_double(ref), 1e-5, 1e-5);
  gradcheck("bhqd,bhkd->bhqk large", [](In in) { return einsum("bhqd,bhkd->bhqk", in); }, {q, k});
  const Tensor w = random_tensor({32, 16}, rng);
  gradcheck("...ij,jk->...ik large", [](In in) { return einsum("...ij,jk->...ik", in); }, {q, w});
}

BOOST_AUTO_TEST_CASE(attention_contractions_move_no_data) {
  // The layouts of attention read straight into the GEMM: no transpose is recorded, forward or
  // backward (the transposes are GEMM flags), and "...ij,jk->...ik" is a reshape and one matmul.
  Rng rng(34);
  const std::vector<std::pair<std::string, std::vector<Shape>>> cases = {
      {"bhqd,bhkd->bhqk", {{2, 3, 8, 4}, {2, 3, 6, 4}}},
      {"bhqk,bhkd->bhqd", {{2, 3, 8, 6}, {2, 3, 6, 4}}},
      {"...ij,jk->...ik", {{2, 3, 8, 4}, {4, 5}}},
      {"ij,kj->ik", {{3, 4}, {5, 4}}}};
  for (const auto& [eq, shapes] : cases) {
    std::vector<Tensor> xs;
    for (const Shape& s : shapes) xs.push_back(random_tensor(s, rng).set_requires_grad());
    profiler_start();
    sum(einsum(eq, xs)).backward();
    std::size_t transposes = 0, matmuls = 0;
    for (const OpTime& t : profiler_stop()) {
      if (t.op == "transpose") transposes += t.forward_calls + t.backward_calls;
      if (t.op == "matmul") matmuls += t.forward_calls;
    }
    BOOST_TEST(transposes == 0u, eq);
    BOOST_TEST(matmuls == 1u, eq);
  }
}

BOOST_AUTO_TEST_CASE(einsum_errors_and_zero_size) {
  const Tensor a(Shape{3, 4}), b(Shape{4, 5});
  check_throws<std::invalid_argument>("operand count", [&] { einsum("ij,jk->ik", {a}); },
                                      {"einsum", "2 operands", "got 1"});
  check_throws<std::invalid_argument>("rank",
                                      [&] {
                                        einsum("ijk,jk->ik", {a, b});
                                      },
                                      {"einsum", "operand 0", "(3, 4)", "3 axes"});
  check_throws<std::invalid_argument>("extent",
                                      [&] {
                                        einsum("ij,ik->jk", {a, b});
                                      },
                                      {"einsum", "'i'", "extent 4", "3"});
  check_throws<std::invalid_argument>("character",
                                      [&] {
                                        einsum("i1,jk->ik", {a, b});
                                      },
                                      {"einsum", "'1'"});
  check_throws<std::invalid_argument>("output label",
                                      [&] {
                                        einsum("ij,jk->iz", {a, b});
                                      },
                                      {"einsum", "'z'", "no operand"});
  check_throws<std::invalid_argument>("repeated output",
                                      [&] {
                                        einsum("ij,jk->ii", {a, b});
                                      },
                                      {"einsum", "'i'", "repeated"});
  check_throws<std::invalid_argument>("diagonal extents",
                                      [&] {
                                        einsum("ii->i", {Tensor(Shape{2, 3})});
                                      },
                                      {"einsum", "'i'", "extent 3", "2"});
  check_throws<std::invalid_argument>("ellipsis",
                                      [&] {
                                        einsum("..ij,jk->ik", {a, b});
                                      },
                                      {"einsum", "..."});
  check_throws<std::invalid_argument>(
      "ellipsis extents",
      [&] {
        einsum("...i,...i->...", {Tensor(Shape{2, 3}), Tensor(Shape{4, 3})});
      },
      {"einsum", "extent"});
  check_zero_size("einsum k = 0", [](In in) { return einsum("ij,jk->ik", in); },
                  {Tensor(Shape{3, 0}), Tensor(Shape{0, 2})}, {3, 2});
  check_zero_size("einsum empty batch", [](In in) { return einsum("bij,bjk->bik", in); },
                  {Tensor(Shape{0, 2, 3}), Tensor(Shape{0, 3, 4})}, {0, 2, 4});
  check_zero_size("einsum empty free axis", [](In in) { return einsum("ij,jk->ik", in); },
                  {Tensor(Shape{0, 3}), Tensor(Shape{3, 2})}, {0, 2});
}

BOOST_AUTO_TEST_SUITE_END()
