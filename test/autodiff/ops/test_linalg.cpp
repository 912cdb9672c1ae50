// Tests for autodiff/ops/linalg.cpp: matmul, 2-d and batched with broadcast batch axes.
#include <boost/test/unit_test.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

namespace {

// Naive batched matmul in double with NumPy batch broadcasting.
std::vector<double> matmul_reference(const Tensor& a, const Tensor& b, Shape& out_shape) {
  const Shape &as = a.shape(), &bs = b.shape();
  const std::size_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const std::size_t nd = std::max(ab.size(), bb.size());
  Shape batch(nd);
  auto ext = [&](const Shape& s, std::size_t i) {
    return i < nd - s.size() ? std::size_t{1} : s[i - (nd - s.size())];
  };
  for (std::size_t i = 0; i < nd; ++i) batch[i] = std::max(ext(ab, i), ext(bb, i));
  out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  const std::size_t nb = shape_size(batch);
  std::vector<double> out(nb * m * n, 0.0);
  std::vector<std::size_t> idx(nd, 0);
  for (std::size_t bi = 0; bi < nb; ++bi) {
    std::size_t oa = 0, ob = 0;
    for (std::size_t i = 0; i < nd; ++i) {
      oa = oa * ext(ab, i) + (ext(ab, i) == 1 ? 0 : idx[i]);
      ob = ob * ext(bb, i) + (ext(bb, i) == 1 ? 0 : idx[i]);
    }
    const float* pa = a.data() + oa * m * k;
    const float* pb = b.data() + ob * k * n;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (std::size_t p = 0; p < k; ++p) s += static_cast<double>(pa[i * k + p]) * pb[p * n + j];
        out[(bi * m + i) * n + j] = s;
      }
    for (std::size_t k2 = nd; k2-- > 0;) {
      if (++idx[k2] < batch[k2]) break;
      idx[k2] = 0;
    }
  }
  return out;
}

struct MatmulCase {
  Shape a, b;
};

const std::vector<MatmulCase> kCases = {
    {{3, 4}, {4, 5}},              // 2-d
    {{1, 1}, {1, 1}},              // 1x1
    {{2, 3, 4}, {2, 4, 5}},        // batched
    {{2, 3, 4}, {4, 5}},           // 2-d right operand shared across the batch
    {{3, 4}, {2, 4, 5}},           // 2-d left operand shared across the batch
    {{2, 1, 3, 4}, {3, 4, 2}},     // broadcast batch axes (2,1) with (3,)
    {{1, 3, 2, 4}, {2, 1, 4, 3}},  // broadcast batch axes on both sides
    {{2, 2, 3, 4}, {4, 3}},        // 4-d with a shared 2-d operand
};

}  // namespace

BOOST_AUTO_TEST_SUITE(linalg)

BOOST_AUTO_TEST_CASE(hand_case) {
  Tensor a({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  Tensor b({3, 2}, {7.f, 8.f, 9.f, 10.f, 11.f, 12.f});
  check_values("(2,3)x(3,2)", matmul(a, b), {2, 2}, {58, 64, 139, 154}, 0, 0);
  check_values("(3,2)x(2,3)", matmul(b, a), {3, 3}, {39, 54, 69, 49, 68, 87, 59, 82, 105}, 0, 0);
}

BOOST_AUTO_TEST_CASE(forward_against_reference) {
  Rng rng(1);
  for (const MatmulCase& c : kCases) {
    const Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
    Shape out;
    const std::vector<double> ref = matmul_reference(a, b, out);
    check_values("matmul " + shape_str(c.a) + " x " + shape_str(c.b), matmul(a, b), out, ref, 1e-5,
                 1e-5);
  }
  // Sizes that exercise the GEMM's blocking, edges and threads.
  for (const MatmulCase& c : std::vector<MatmulCase>{{{64, 70}, {70, 33}},
                                                     {{257, 129}, {129, 65}},
                                                     {{3, 37, 50}, {50, 19}},
                                                     {{4, 17, 31}, {4, 31, 23}},
                                                     {{1, 300}, {300, 1}}}) {
    const Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
    Shape out;
    const std::vector<double> ref = matmul_reference(a, b, out);
    check_values("matmul " + shape_str(c.a) + " x " + shape_str(c.b), matmul(a, b), out, ref, 1e-4,
                 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(gradients) {
  Rng rng(2);
  for (const MatmulCase& c : kCases)
    gradcheck("matmul " + shape_str(c.a) + " x " + shape_str(c.b),
              [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
              {random_tensor(c.a, rng), random_tensor(c.b, rng)});
  // One operand without a gradient (a constant input, trainable weights).
  const Tensor x = random_tensor({5, 3}, rng);
  gradcheck("matmul constant x w", [x](const std::vector<Tensor>& in) { return matmul(x, in[0]); },
            {random_tensor({3, 4}, rng)});
  // The same tensor on both sides: x x^T accumulates two contributions.
  gradcheck("matmul x x^T",
            [](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[0])); },
            {random_tensor({3, 4}, rng)});
  // A realistic dense layer in directional mode.
  gradcheck("matmul (32,64) x (64,48)",
            [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
            {random_tensor({32, 64}, rng), random_tensor({64, 48}, rng)});
  gradcheck("matmul (2,3,20,30) x (3,30,25)",
            [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
            {random_tensor({2, 1, 20, 30}, rng), random_tensor({3, 30, 25}, rng)});
}

BOOST_AUTO_TEST_CASE(errors_name_op_and_shapes) {
  check_throws<std::invalid_argument>("inner mismatch",
                                      [] {
                                        matmul(Tensor({2, 3}, 1.f), Tensor({4, 5}, 1.f));
                                      },
                                      {"matmul", "(2, 3)", "(4, 5)"});
  check_throws<std::invalid_argument>("batched inner mismatch",
                                      [] {
                                        matmul(Tensor({2, 3, 4}, 1.f), Tensor({2, 3, 5}, 1.f));
                                      },
                                      {"matmul", "(2, 3, 4)", "(2, 3, 5)"});
  check_throws<std::invalid_argument>("batch mismatch",
                                      [] {
                                        matmul(Tensor({2, 3, 4}, 1.f), Tensor({3, 4, 5}, 1.f));
                                      },
                                      {"matmul", "(2,)", "(3,)"});
  check_throws<std::invalid_argument>("rank 1",
                                      [] {
                                        matmul(Tensor({3}, 1.f), Tensor({3, 2}, 1.f));
                                      },
                                      {"matmul", "(3,)", "(3, 2)"});
  // An outer product of two 4 MiB vectors is 4 TiB: refused, naming the op and the shape.
  check_throws<std::length_error>(
      "result too large",
      [] {
        matmul(Tensor({std::size_t{1} << 20, 1}, 1.f), Tensor({1, std::size_t{1} << 20}, 1.f));
      },
      {"matmul", "(1048576, 1048576)", "memory"});
}

BOOST_AUTO_TEST_CASE(zero_size_operands) {
  using In = const std::vector<Tensor>&;
  const auto mm = [](In in) { return matmul(in[0], in[1]); };
  check_zero_size("(0, 3) x (3, 4)", mm, {Tensor({0, 3}, 1.f), Tensor({3, 4}, 1.f)}, {0, 4});
  check_zero_size("(2, 3) x (3, 0)", mm, {Tensor({2, 3}, 1.f), Tensor({3, 0}, 1.f)}, {2, 0});
  // An inner extent of 0: sums of no terms, zeros.
  Tensor z =
      check_zero_size("(2, 0) x (0, 5)", mm, {Tensor({2, 0}, 1.f), Tensor({0, 5}, 1.f)}, {2, 5});
  BOOST_TEST(z.to_vector() == std::vector<float>(10, 0.f), boost::test_tools::per_element());
  check_zero_size("batch 0", mm, {Tensor({0, 2, 3}, 1.f), Tensor({3, 4}, 1.f)}, {0, 2, 4});
  check_zero_size("batch 0 broadcast with 1", mm, {Tensor({0, 2, 3}, 1.f), Tensor({1, 3, 4}, 1.f)},
                  {0, 2, 4});
  Tensor zb = check_zero_size("batched inner 0", mm,
                              {Tensor({2, 3, 0}, 1.f), Tensor({2, 0, 4}, 1.f)}, {2, 3, 4});
  BOOST_TEST(zb.to_vector() == std::vector<float>(24, 0.f), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
