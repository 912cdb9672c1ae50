// Tests for autodiff/ops/shape.cpp: reshape, flatten, transpose, concat, gather_rows, slice_rows.
#include <boost/test/unit_test.hpp>
#include <numeric>
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

using In = const std::vector<Tensor>&;

Tensor iota_tensor(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

std::vector<double> iota_values(std::size_t n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 0.0);
  return v;
}

// Reference transpose in double: out axis i is x axis perm[i].
std::vector<double> transpose_reference(const Tensor& x, const std::vector<int>& perm, Shape& out) {
  const Shape& s = x.shape();
  const std::size_t n = s.size();
  out.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = s[static_cast<std::size_t>(perm[i])];
  std::vector<std::size_t> stride(n, 1);
  for (std::size_t k = n; k-- > 1;) stride[k - 1] = stride[k] * s[k];
  std::vector<double> r(x.size());
  std::vector<std::size_t> idx(n, 0);
  for (std::size_t flat = 0; flat < r.size(); ++flat) {
    std::size_t off = 0;
    for (std::size_t i = 0; i < n; ++i) off += idx[i] * stride[static_cast<std::size_t>(perm[i])];
    r[flat] = x.data()[off];
    for (std::size_t k = n; k-- > 0;) {
      if (++idx[k] < out[k]) break;
      idx[k] = 0;
    }
  }
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shape_ops)

BOOST_AUTO_TEST_CASE(reshape_and_flatten) {
  const Tensor x = iota_tensor({2, 3, 4});
  check_values("reshape (4, 6)", reshape(x, {4, 6}), {4, 6}, iota_values(24), 0, 0);
  check_values("reshape (-1, 3)", reshape(x, {-1, 3}), {8, 3}, iota_values(24), 0, 0);
  check_values("reshape (2, -1, 2)", reshape(x, {2, -1, 2}), {2, 6, 2}, iota_values(24), 0, 0);
  check_values("reshape (-1)", reshape(x, {-1}), {24}, iota_values(24), 0, 0);
  check_values("reshape (1, 24, 1)", reshape(x, {1, 24, 1}), {1, 24, 1}, iota_values(24), 0, 0);
  check_values("reshape scalar", reshape(Tensor({1, 1}, {5.f}), {}), {}, {5}, 0, 0);
  check_values("flatten", flatten(x), {24}, iota_values(24), 0, 0);
  check_values("flatten from 1", flatten(x, 1), {2, 12}, iota_values(24), 0, 0);
  check_values("flatten from -1", flatten(x, -1), {2, 3, 4}, iota_values(24), 0, 0);
  check_values("flatten from 2 of 4-d", flatten(iota_tensor({2, 3, 4, 5}), 2), {2, 3, 20},
               iota_values(120), 0, 0);

  Rng rng(1);
  const Tensor r = random_tensor({2, 3, 4}, rng);
  gradcheck("reshape (-1, 6)", [](In in) { return reshape(in[0], {-1, 6}); }, {r});
  gradcheck("reshape (4, 3, 2) then multiply",
            [](In in) {
              return reshape(in[0], {4, 3, 2}) * in[1];
            },
            {r, random_tensor({3, 2}, rng)});
  gradcheck("flatten", [](In in) { return flatten(in[0]); }, {r});
  gradcheck("flatten from 1", [](In in) { return flatten(in[0], 1) * 2.f; }, {r});

  check_throws<std::invalid_argument>("reshape to a wrong size",
                                      [&] {
                                        reshape(x, {5, 5});
                                      },
                                      {"reshape", "(2, 3, 4)", "(5, 5)"});
  check_throws<std::invalid_argument>("reshape with -1 not dividing",
                                      [&] {
                                        reshape(x, {-1, 5});
                                      },
                                      {"reshape", "(2, 3, 4)", "(-1, 5)"});
  check_throws<std::invalid_argument>("reshape with two -1",
                                      [&] {
                                        reshape(x, {-1, -1});
                                      },
                                      {"reshape"});
  check_throws<std::invalid_argument>("reshape with a negative extent",
                                      [&] {
                                        reshape(x, {-2, -12});
                                      },
                                      {"reshape"});
  check_throws<std::invalid_argument>("flatten bad axis", [&] { flatten(x, 3); },
                                      {"flatten", "3", "(2, 3, 4)"});
}

BOOST_AUTO_TEST_CASE(reshape_refuses_target_shapes_whose_count_overflows) {
  // (2^62 + 1) * 4 wraps to 4 in 64 bits: it used to be accepted, and the next op read far
  // past the buffer.
  const Tensor x({4}, {1.f, 2.f, 3.f, 4.f});
  check_throws<std::length_error>("reshape to (2^62 + 1, 4)",
                                  [&] {
                                    reshape(x, {(1L << 62) + 1, 4});
                                  },
                                  {"reshape", "(4611686018427387905, 4)", "(4,)"});
  check_throws<std::length_error>("reshape to (2^32, 2^32, 2^32, 4) with -1",
                                  [&] {
                                    reshape(x, {1L << 32, 1L << 32, -1, 1L << 32});
                                  },
                                  {"reshape"});
  // Huge extents beside a zero one are fine (0 elements).
  const Tensor e({0, 3}, 0.f);
  BOOST_TEST((reshape(e, {1L << 62, 8, 0}).shape() == Shape{std::size_t{1} << 62, 8, 0}));
}

BOOST_AUTO_TEST_CASE(concat_checks_the_sum_of_its_extents) {
  // Empty tensors may have any extents; 2^63 + 2^63 along the axis wraps to 0.
  const Tensor a({std::size_t{1} << 63, 0}, 0.f);
  check_throws<std::length_error>("concat of extents 2^63 + 2^63",
                                  [&] {
                                    concat({a, a}, 0);
                                  },
                                  {"concat", "axis 0"});
  BOOST_TEST((concat({a, a}, 1).shape() == Shape{std::size_t{1} << 63, 0}));
}

BOOST_AUTO_TEST_CASE(reshape_shares_values_and_gradients_flow) {
  Tensor x = iota_tensor({2, 3});
  x.set_requires_grad();
  Tensor y = reshape(x, {3, 2});
  Tensor seed({3, 2}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  y.backward(seed);
  BOOST_TEST((x.grad().shape() == Shape{2, 3}));
  BOOST_TEST((x.grad().to_vector() == seed.to_vector()));
}

BOOST_AUTO_TEST_CASE(transpose_values_and_gradients) {
  Rng rng(2);
  check_values("transpose 2-d", transpose(Tensor({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f})), {3, 2},
               {1, 4, 2, 5, 3, 6}, 0, 0);
  const Tensor x = random_tensor({2, 3, 4, 5}, rng);
  for (const std::vector<int>& perm : std::vector<std::vector<int>>{
           {3, 2, 1, 0}, {0, 1, 2, 3}, {0, 3, 1, 2}, {2, 0, 3, 1}, {1, 0, 2, 3}, {0, 1, 3, 2}}) {
    Shape out;
    const std::vector<double> ref = transpose_reference(x, perm, out);
    check_values("transpose " + std::to_string(perm[0]) + std::to_string(perm[1]) +
                     std::to_string(perm[2]) + std::to_string(perm[3]),
                 transpose(x, perm), out, ref, 0, 0);
    gradcheck("transpose " + std::to_string(perm[0]) + std::to_string(perm[1]) +
                  std::to_string(perm[2]) + std::to_string(perm[3]),
              [perm](In in) { return transpose(in[0], perm); }, {random_tensor({2, 3, 2, 3}, rng)});
  }
  Shape out;
  check_values("transpose default reverses", transpose(x), {5, 4, 3, 2},
               transpose_reference(x, {3, 2, 1, 0}, out), 0, 0);
  check_values("transpose negative axes", transpose(x, {-1, 0, 1, 2}), {5, 2, 3, 4},
               transpose_reference(x, {3, 0, 1, 2}, out), 0, 0);
  const Tensor big = random_tensor({64, 48, 3}, rng);
  check_values("transpose large", transpose(big, {1, 2, 0}), {48, 3, 64},
               transpose_reference(big, {1, 2, 0}, out), 0, 0);
  gradcheck("transpose large (directional)",
            [](In in) {
              return transpose(in[0], {2, 0, 1});
            },
            {big});

  check_throws<std::invalid_argument>("transpose with a repeated axis",
                                      [&] {
                                        transpose(x, {0, 0, 1, 2});
                                      },
                                      {"transpose", "(2, 3, 4, 5)"});
  check_throws<std::invalid_argument>("transpose with too few axes",
                                      [&] {
                                        transpose(x, {1, 0});
                                      },
                                      {"transpose", "(2, 3, 4, 5)"});
  check_throws<std::invalid_argument>("transpose with an axis out of range",
                                      [&] {
                                        transpose(x, {0, 1, 2, 4});
                                      },
                                      {"transpose", "(2, 3, 4, 5)"});
}

BOOST_AUTO_TEST_CASE(concat_values_and_gradients) {
  const Tensor a({2, 2}, {1.f, 2.f, 3.f, 4.f}), b({2, 1}, {5.f, 6.f}), c({1, 2}, {7.f, 8.f});
  check_values("concat axis 1", concat({a, b}, 1), {2, 3}, {1, 2, 5, 3, 4, 6}, 0, 0);
  check_values("concat axis -1", concat({b, a}, -1), {2, 3}, {5, 1, 2, 6, 3, 4}, 0, 0);
  check_values("concat axis 0", concat({a, c}, 0), {3, 2}, {1, 2, 3, 4, 7, 8}, 0, 0);
  check_values("concat of one", concat({a}, 0), {2, 2}, {1, 2, 3, 4}, 0, 0);

  Rng rng(3);
  gradcheck("concat axis 0", [](In in) { return concat(in, 0); },
            {random_tensor({2, 3, 2}, rng), random_tensor({1, 3, 2}, rng),
             random_tensor({3, 3, 2}, rng)});
  gradcheck("concat axis 1", [](In in) { return concat(in, 1); },
            {random_tensor({2, 1, 2}, rng), random_tensor({2, 4, 2}, rng),
             random_tensor({2, 2, 2}, rng)});
  gradcheck("concat axis -1", [](In in) { return concat(in, -1); },
            {random_tensor({2, 3, 3}, rng), random_tensor({2, 3, 1}, rng)});
  // The same tensor twice: both slices' gradients accumulate.
  gradcheck("concat (x, x)",
            [](In in) {
              return concat({in[0], in[0] * 2.f}, 1);
            },
            {random_tensor({2, 3}, rng)});
  // Only some inputs need a gradient.
  const Tensor constant = random_tensor({2, 2}, rng);
  gradcheck("concat (constant, x)",
            [constant](In in) {
              return concat({constant, in[0]}, 0);
            },
            {random_tensor({3, 2}, rng)});

  check_throws<std::invalid_argument>("concat mismatch",
                                      [&] {
                                        concat({a, b}, 0);
                                      },
                                      {"concat", "(2, 2)", "(2, 1)"});
  check_throws<std::invalid_argument>("concat rank mismatch",
                                      [&] {
                                        concat({a, Tensor({2}, 1.f)}, 0);
                                      },
                                      {"concat", "(2, 2)", "(2,)"});
  check_throws<std::invalid_argument>("concat bad axis",
                                      [&] {
                                        concat({a, a}, 2);
                                      },
                                      {"concat", "2", "(2, 2)"});
  check_throws<std::invalid_argument>("concat of nothing", [] { concat({}, 0); }, {"concat"});
}

BOOST_AUTO_TEST_CASE(gather_and_slice_rows) {
  const Tensor x = iota_tensor({4, 3});
  check_values("gather_rows", gather_rows(x, {2, 0, 2}), {3, 3}, {6, 7, 8, 0, 1, 2, 6, 7, 8}, 0, 0);
  check_values("gather_rows none", gather_rows(x, {}), {0, 3}, {}, 0, 0);
  check_values("slice_rows", slice_rows(x, 1, 3), {2, 3}, {3, 4, 5, 6, 7, 8}, 0, 0);
  check_values("slice_rows all", slice_rows(x, 0, 4), {4, 3}, iota_values(12), 0, 0);
  check_values("slice_rows of 1-d", slice_rows(iota_tensor({5}), 3, 5), {2}, {3, 4}, 0, 0);

  Rng rng(4);
  // Repeated rows: their gradients add up in the source row.
  gradcheck("gather_rows with repeats",
            [](In in) {
              return gather_rows(in[0], {3, 1, 3, 0, 3});
            },
            {random_tensor({4, 2, 3}, rng)});
  gradcheck("slice_rows", [](In in) { return slice_rows(in[0], 1, 4); },
            {random_tensor({5, 3}, rng)});
  Tensor leaf = x.clone().set_requires_grad();
  sum(gather_rows(leaf, {1, 1, 3})).backward();
  BOOST_TEST((leaf.grad().to_vector() == std::vector<float>{0, 0, 0, 2, 2, 2, 0, 0, 0, 1, 1, 1}));

  check_throws<std::out_of_range>("gather_rows out of range",
                                  [&] {
                                    gather_rows(x, {0, 4});
                                  },
                                  {"gather_rows", "4", "(4, 3)"});
  check_throws<std::out_of_range>("slice_rows out of range", [&] { slice_rows(x, 2, 5); },
                                  {"slice_rows", "(4, 3)"});
  check_throws<std::out_of_range>("slice_rows reversed", [&] { slice_rows(x, 3, 2); },
                                  {"slice_rows"});
}

BOOST_AUTO_TEST_CASE(shape_ops_on_zero_size_tensors) {
  const Tensor x({0, 3, 2}, 1.f);
  check_zero_size("reshape to (3, 0)", [](In in) { return reshape(in[0], {3, 0}); }, {x}, {3, 0});
  check_zero_size("reshape to (-1, 2)", [](In in) { return reshape(in[0], {-1, 2}); }, {x}, {0, 2});
  check_zero_size("flatten", [](In in) { return flatten(in[0]); }, {x}, {0});
  check_zero_size("flatten from 1", [](In in) { return flatten(in[0], 1); }, {x}, {0, 6});
  check_zero_size("transpose", [](In in) { return transpose(in[0]); }, {x}, {2, 3, 0});
  check_zero_size("transpose (1, 0, 2)",
                  [](In in) {
                    return transpose(in[0], {1, 0, 2});
                  },
                  {x}, {3, 0, 2});
  Tensor c = check_zero_size("concat with an empty part",
                             [](In in) {
                               return concat({in[0], in[1]}, 0);
                             },
                             {Tensor({0, 3}, 1.f), Tensor({2, 3}, 1.f)}, {2, 3});
  BOOST_TEST(c.to_vector() == std::vector<float>(6, 1.f), boost::test_tools::per_element());
  check_zero_size("concat of empty parts",
                  [](In in) {
                    return concat({in[0], in[1]}, 1);
                  },
                  {Tensor({0, 3}, 1.f), Tensor({0, 2}, 1.f)}, {0, 5});
  check_zero_size("slice_rows [2, 2)", [](In in) { return slice_rows(in[0], 2, 2); },
                  {Tensor({4, 3}, 1.f)}, {0, 3});
  check_zero_size("gather_rows of none", [](In in) { return gather_rows(in[0], {}); },
                  {Tensor({4, 3}, 1.f)}, {0, 3});
  check_zero_size("gather_rows of (0, 3)", [](In in) { return gather_rows(in[0], {}); },
                  {Tensor({0, 3}, 1.f)}, {0, 3});
  check_zero_size("gather_rows of (4, 0)",
                  [](In in) {
                    return gather_rows(in[0], {1, 3});
                  },
                  {Tensor({4, 0}, 1.f)}, {2, 0});
}

BOOST_AUTO_TEST_SUITE_END()
