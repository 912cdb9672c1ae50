// Tests for autodiff/ops/elementwise.cpp: arithmetic with broadcasting, sum_to, and the unary
// functions — forward values against reference loops, gradients by finite differences.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "autodiff/ops.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::random_away_from_zero;
using xtape::testing::random_tensor;

namespace {

// Reference broadcasting in double: out[i] = f(a[ia], b[ib]) with NumPy index mapping.
std::vector<double> broadcast_reference(const Tensor& a, const Tensor& b, const Shape& out,
                                        const std::function<double(double, double)>& f) {
  const std::size_t n = out.size();
  auto offset = [&](const Shape& s, const std::vector<std::size_t>& idx) {
    std::size_t off = 0;
    const std::size_t lead = n - s.size();
    for (std::size_t i = 0; i < s.size(); ++i) off = off * s[i] + (s[i] == 1 ? 0 : idx[lead + i]);
    return off;
  };
  std::vector<double> r(shape_size(out));
  std::vector<std::size_t> idx(n, 0);
  for (std::size_t flat = 0; flat < r.size(); ++flat) {
    r[flat] = f(a.data()[offset(a.shape(), idx)], b.data()[offset(b.shape(), idx)]);
    for (std::size_t k = n; k-- > 0;) {
      if (++idx[k] < out[k]) break;
      idx[k] = 0;
    }
  }
  return r;
}

struct BinaryCase {
  Shape a, b, out;
};

const std::vector<BinaryCase> kBroadcastCases = {
    {{3, 1}, {1, 4}, {3, 4}},
    {{2, 3, 4}, {4}, {2, 3, 4}},
    {{4}, {2, 3, 4}, {2, 3, 4}},
    {{2, 3, 4}, {}, {2, 3, 4}},
    {{}, {2, 3}, {2, 3}},
    {{2, 1, 4}, {3, 1}, {2, 3, 4}},
    {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}},
    {{5, 1, 1}, {1, 3, 2}, {5, 3, 2}},
    {{1}, {1}, {1}},
    {{2, 3, 1}, {2, 1, 5}, {2, 3, 5}},
};

std::vector<double> unary_reference(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = f(x.data()[i]);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(elementwise)

BOOST_AUTO_TEST_CASE(broadcasting_hand_cases) {
  Tensor col({3, 1}, {1.f, 2.f, 3.f});
  Tensor row({1, 4}, {10.f, 20.f, 30.f, 40.f});
  check_values("(3,1)+(1,4)", col + row, {3, 4}, {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
  check_values("(1,4)-(3,1)", row - col, {3, 4}, {9, 19, 29, 39, 8, 18, 28, 38, 7, 17, 27, 37});
  check_values("2 - (3,1)", 2.f - col, {3, 1}, {1, 0, -1});
  check_values("(3,1) / 2", col / 2.f, {3, 1}, {0.5, 1, 1.5});
  check_values("4 / (3,1)", 4.f / col, {3, 1}, {4, 2, 4.0 / 3});
  check_values("-(1,4)", -row, {1, 4}, {-10, -20, -30, -40});
  check_values("3 * (3,1)", 3.f * col, {3, 1}, {3, 6, 9});
  check_values("(3,1) * 3", col * 3.f, {3, 1}, {3, 6, 9});
  check_values("1 + (3,1)", 1.f + col, {3, 1}, {2, 3, 4});
  check_values("(3,1) - 1", col - 1.f, {3, 1}, {0, 1, 2});
  check_values("scalar + scalar", Tensor::scalar(2.f) + Tensor::scalar(3.f), {}, {5});
}

BOOST_AUTO_TEST_CASE(broadcasting_against_reference) {
  Rng rng(1);
  for (const BinaryCase& c : kBroadcastCases) {
    const Tensor a = random_tensor(c.a, rng), b = random_away_from_zero(c.b, rng, 0.5f, 1.5f);
    const std::string s = shape_str(c.a) + " op " + shape_str(c.b);
    check_values("add " + s, a + b, c.out, broadcast_reference(a, b, c.out, std::plus<double>()));
    check_values("subtract " + s, a - b, c.out,
                 broadcast_reference(a, b, c.out, std::minus<double>()));
    check_values("multiply " + s, a * b, c.out,
                 broadcast_reference(a, b, c.out, std::multiplies<double>()));
    check_values("divide " + s, a / b, c.out,
                 broadcast_reference(a, b, c.out, std::divides<double>()));
  }
  // Large enough for the kernels' multi-threaded path.
  const Tensor a = random_tensor({64, 33, 40}, rng), b = random_tensor({33, 1}, rng);
  check_values("large multiply", a * b, {64, 33, 40},
               broadcast_reference(a, b, {64, 33, 40}, std::multiplies<double>()));
  const Tensor c = random_tensor({100000}, rng);
  check_values("large add scalar", c + 0.25f, {100000},
               broadcast_reference(c, Tensor::scalar(0.25f), {100000}, std::plus<double>()));
}

BOOST_AUTO_TEST_CASE(arithmetic_gradients) {
  Rng rng(2);
  for (const BinaryCase& c : kBroadcastCases) {
    const std::string s = shape_str(c.a) + " op " + shape_str(c.b);
    const Tensor a = random_tensor(c.a, rng);
    // NOTE: divisors have |b| in [0.5, 1.5), away from the pole at 0.
    const Tensor b = random_away_from_zero(c.b, rng, 0.5f, 1.5f);
    gradcheck("add " + s, [](const std::vector<Tensor>& in) { return in[0] + in[1]; }, {a, b});
    gradcheck("subtract " + s, [](const std::vector<Tensor>& in) { return in[0] - in[1]; }, {a, b});
    gradcheck("multiply " + s, [](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {a, b});
    gradcheck("divide " + s, [](const std::vector<Tensor>& in) { return in[0] / in[1]; }, {a, b});
  }
  const Tensor x = random_away_from_zero({2, 3}, rng, 0.5f, 1.5f);
  gradcheck("negative", [](const std::vector<Tensor>& in) { return -in[0]; }, {x});
  gradcheck("x + 2", [](const std::vector<Tensor>& in) { return in[0] + 2.f; }, {x});
  gradcheck("2 + x", [](const std::vector<Tensor>& in) { return 2.f + in[0]; }, {x});
  gradcheck("x - 2", [](const std::vector<Tensor>& in) { return in[0] - 2.f; }, {x});
  gradcheck("2 - x", [](const std::vector<Tensor>& in) { return 2.f - in[0]; }, {x});
  gradcheck("x * 3", [](const std::vector<Tensor>& in) { return in[0] * 3.f; }, {x});
  gradcheck("3 * x", [](const std::vector<Tensor>& in) { return 3.f * in[0]; }, {x});
  gradcheck("x / 4", [](const std::vector<Tensor>& in) { return in[0] / 4.f; }, {x});
  gradcheck("4 / x", [](const std::vector<Tensor>& in) { return 4.f / in[0]; }, {x});
  // Scalar tensors on either side, both requiring gradients.
  gradcheck("() * (2,3)", [](const std::vector<Tensor>& in) { return in[0] * in[1]; },
            {Tensor::scalar(0.7f), x});
  gradcheck("(2,3) / ()", [](const std::vector<Tensor>& in) { return in[0] / in[1]; },
            {x, Tensor::scalar(-1.3f)});
  // A large broadcast (multi-threaded kernels and reductions), in directional mode.
  gradcheck("large (16,30,40) * (30,1)",
            [](const std::vector<Tensor>& in) { return in[0] * in[1]; },
            {random_tensor({16, 30, 40}, rng), random_tensor({30, 1}, rng)});
}

BOOST_AUTO_TEST_CASE(sum_to_undoes_broadcasting) {
  Tensor x({2, 3, 4}, 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i);
  // Reference: sum over the broadcast axes.
  auto reference = [&](const Shape& target) {
    std::vector<double> r(shape_size(target), 0.0);
    const std::size_t lead = 3 - target.size();
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 3; ++j)
        for (std::size_t k = 0; k < 4; ++k) {
          const std::size_t idx[3] = {i, j, k};
          std::size_t off = 0;
          for (std::size_t a = 0; a < target.size(); ++a)
            off = off * target[a] + (target[a] == 1 ? 0 : idx[lead + a]);
          r[off] += x.at({i, j, k});
        }
    return r;
  };
  for (const Shape& target :
       std::vector<Shape>{{4}, {3, 1}, {1, 3, 4}, {2, 1, 1}, {}, {1}, {2, 3, 4}, {2, 1, 4}})
    check_values("sum_to " + shape_str(target), sum_to(x, target), target, reference(target));
  check_throws<std::invalid_argument>("sum_to (2,3,4) -> (3,)", [&] { sum_to(x, {3}); },
                                      {"(2, 3, 4)", "(3,)"});
  check_throws<std::invalid_argument>("sum_to (2,3,4) -> (1,2,3,4)", [&] {
    sum_to(x, {1, 2, 3, 4});
  });

  // sum_to is a public op: applied to a tensor that requires a gradient, it must record on the
  // tape like every other op (not silently cut the gradient's path).
  Rng rng(5);
  Tensor leaf = random_tensor({2, 3, 4}, rng).set_requires_grad();
  const bool recorded = sum_to(leaf, {3, 1}).requires_grad();
  BOOST_TEST(recorded,
             "sum_to((2, 3, 4) -> (3, 1)) of a tensor requiring a gradient does not record");
  if (recorded)
    gradcheck("sum_to (2,3,4) -> (3,1)",
              [](const std::vector<Tensor>& in) {
                return sum_to(in[0], {3, 1});
              },
              {random_tensor({2, 3, 4}, rng)});
}

BOOST_AUTO_TEST_CASE(broadcast_errors_name_op_and_shapes) {
  const Tensor a({2, 3}, 1.f), b({4}, 1.f);
  check_throws<std::invalid_argument>("add", [&] { a + b; }, {"add", "(2, 3)", "(4,)"});
  check_throws<std::invalid_argument>("subtract", [&] { b - a; }, {"subtract", "(4,)", "(2, 3)"});
  check_throws<std::invalid_argument>("multiply",
                                      [&] {
                                        a* Tensor({3, 2}, 1.f);
                                      },
                                      {"multiply", "(2, 3)", "(3, 2)"});
  check_throws<std::invalid_argument>("divide",
                                      [&] {
                                        Tensor({2, 3, 4}, 1.f) / Tensor({3, 3}, 1.f);
                                      },
                                      {"divide", "(2, 3, 4)", "(3, 3)"});
  check_throws<std::invalid_argument>("broadcast_shapes",
                                      [] {
                                        broadcast_shapes({5, 2}, {3, 1, 3}, "myop");
                                      },
                                      {"myop", "(5, 2)", "(3, 1, 3)"});
  BOOST_TEST((broadcast_shapes({3, 1}, {1, 4}, "x") == Shape{3, 4}));
  BOOST_TEST((broadcast_shapes({4}, {2, 3, 4}, "x") == Shape{2, 3, 4}));
  BOOST_TEST((broadcast_shapes({}, {2, 1}, "x") == Shape{2, 1}));
  check_throws<std::invalid_argument>("clip with lo > hi", [&] { clip(a, 1.f, 0.f); }, {"clip"});
}

BOOST_AUTO_TEST_CASE(broadcast_results_too_large_for_memory_name_the_op) {
  // Two 4 MiB operands whose broadcast is 2^40 floats (4 TiB): refused before allocating.
  const Tensor col({std::size_t{1} << 20, 1}, 1.f), row({1, std::size_t{1} << 20}, 1.f);
  check_throws<std::length_error>("multiply", [&] { col* row; },
                                  {"multiply", "(1048576, 1048576)", "memory"});
  check_throws<std::length_error>("add", [&] { row + col; }, {"add", "(1048576, 1048576)"});
}

BOOST_AUTO_TEST_CASE(unary_forward_values) {
  Rng rng(3);
  const Tensor x = random_tensor({3, 7}, rng, -3.f, 3.f);
  const Tensor pos = random_tensor({3, 7}, rng, 0.1f, 4.f);
  check_values("sqrt", sqrt(pos), pos.shape(),
               unary_reference(pos, [](double v) { return std::sqrt(v); }));
  check_values("exp", exp(x), x.shape(), unary_reference(x, [](double v) { return std::exp(v); }));
  check_values("log", log(pos), pos.shape(),
               unary_reference(pos, [](double v) { return std::log(v); }));
  check_values("pow 2.5", pow(pos, 2.5f), pos.shape(),
               unary_reference(pos, [](double v) { return std::pow(v, 2.5); }), 1e-5, 1e-5);
  check_values("pow 3 of negatives", pow(x, 3.f), x.shape(),
               unary_reference(x, [](double v) { return v * v * v; }), 1e-5, 1e-5);
  check_values("pow -0.5", pow(pos, -0.5f), pos.shape(),
               unary_reference(pos, [](double v) { return 1.0 / std::sqrt(v); }));
  check_values("abs", abs(x), x.shape(), unary_reference(x, [](double v) { return std::abs(v); }));
  check_values("square", square(x), x.shape(), unary_reference(x, [](double v) { return v * v; }));
  check_values("relu", relu(x), x.shape(),
               unary_reference(x, [](double v) { return v > 0 ? v : 0.0; }));
  check_values("sigmoid", sigmoid(x), x.shape(),
               unary_reference(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }));
  check_values("tanh", tanh(x), x.shape(),
               unary_reference(x, [](double v) { return std::tanh(v); }));
  check_values("clip", clip(x, -1.f, 0.5f), x.shape(),
               unary_reference(x, [](double v) { return std::min(std::max(v, -1.0), 0.5); }));
  // Exact hand values and extremes.
  check_values("relu hand", relu(Tensor({4}, {-2.f, -0.f, 0.f, 3.f})), {4}, {0, 0, 0, 3}, 0, 0);
  check_values("sigmoid extremes", sigmoid(Tensor({3}, {-100.f, 0.f, 100.f})), {3}, {0, 0.5, 1},
               1e-6, 1e-6);
  check_values("tanh extremes", tanh(Tensor({3}, {-50.f, 0.f, 50.f})), {3}, {-1, 0, 1}, 1e-6, 1e-6);
  check_values("exp/log", log(exp(Tensor({3}, {-5.f, 0.f, 5.f}))), {3}, {-5, 0, 5}, 1e-6, 1e-6);
  // Large inputs take the vectorised multi-threaded path.
  const Tensor big = random_tensor({50000}, rng, -4.f, 4.f);
  check_values("large tanh", tanh(big), big.shape(),
               unary_reference(big, [](double v) { return std::tanh(v); }));
  check_values("large exp", exp(big), big.shape(),
               unary_reference(big, [](double v) { return std::exp(v); }));
  check_values("large sigmoid", sigmoid(big), big.shape(),
               unary_reference(big, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }));
}

BOOST_AUTO_TEST_CASE(unary_gradients) {
  Rng rng(4);
  using In = const std::vector<Tensor>&;
  const Tensor x = random_tensor({3, 5}, rng, -2.f, 2.f);
  // NOTE: sqrt, log and fractional/negative powers on inputs in [0.5, 2), away from 0.
  const Tensor pos = random_tensor({3, 5}, rng, 0.5f, 2.f);
  // NOTE: relu and abs have a kink at 0; their inputs have |x| in [0.1, 2), more than any
  // finite-difference step (1e-2) away from it.
  const Tensor kinked = random_away_from_zero({3, 5}, rng, 0.1f, 2.f);
  gradcheck("sqrt", [](In in) { return sqrt(in[0]); }, {pos});
  gradcheck("exp", [](In in) { return exp(in[0]); }, {x});
  gradcheck("log", [](In in) { return log(in[0]); }, {pos});
  gradcheck("pow 2", [](In in) { return pow(in[0], 2.f); }, {x});
  gradcheck("pow 3", [](In in) { return pow(in[0], 3.f); }, {x});
  gradcheck("pow 2.5", [](In in) { return pow(in[0], 2.5f); }, {pos});
  gradcheck("pow -1.5", [](In in) { return pow(in[0], -1.5f); }, {pos});
  gradcheck("pow 0.5", [](In in) { return pow(in[0], 0.5f); }, {pos});
  gradcheck("abs", [](In in) { return abs(in[0]); }, {kinked});
  gradcheck("square", [](In in) { return square(in[0]); }, {x});
  gradcheck("relu", [](In in) { return relu(in[0]); }, {kinked});
  gradcheck("sigmoid", [](In in) { return sigmoid(in[0]); }, {x});
  gradcheck("tanh", [](In in) { return tanh(in[0]); }, {x});
  // NOTE: clip's bounds -0.75 and 0.6 are kinks; inputs are kept 0.1 away from them, on both
  // sides (clipped elements have zero gradient, in-range ones pass it through).
  Tensor clip_in({12}, {-1.5f, -0.9f, -0.6f, -0.3f, -0.1f, 0.f, 0.2f, 0.45f, 0.5f, 0.7f, 1.f, 3.f});
  gradcheck("clip", [](In in) { return clip(in[0], -0.75f, 0.6f); }, {clip_in});
  // Gradients of clip: 1 inside [lo, hi], 0 outside.
  Tensor c = clip_in.clone().set_requires_grad();
  sum(clip(c, -0.75f, 0.6f)).backward();
  BOOST_TEST((c.grad().to_vector() == std::vector<float>{0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));
  // Zero-gradient points are defined: d|x|/dx and relu' at exactly 0 are 0.
  Tensor z({1}, {0.f});
  z.set_requires_grad();
  sum(abs(z) + relu(z)).backward();
  BOOST_TEST(z.grad().item() == 0.f);
  // Compositions of several unary functions.
  gradcheck("tanh(exp(x)) * sigmoid(x)", [](In in) { return tanh(exp(in[0])) * sigmoid(in[0]); },
            {x});
  // Large inputs: vectorised multi-threaded kernels, directional mode.
  const Tensor big = random_tensor({40, 50}, rng, -2.f, 2.f);
  gradcheck("large sigmoid * tanh", [](In in) { return sigmoid(in[0]) * tanh(in[0]); }, {big});
}

BOOST_AUTO_TEST_CASE(zero_size_tensors_broadcast_like_numpy) {
  // An extent of 1 stretches to anything, 0 included; (0, 4) with (4,) is (0, 4), not (1, 4)
  // (which read a stale value out of a buffer of 0 elements).
  BOOST_TEST((broadcast_shapes({0, 4}, {4}, "x") == Shape{0, 4}));
  BOOST_TEST((broadcast_shapes({4}, {0, 4}, "x") == Shape{0, 4}));
  BOOST_TEST((broadcast_shapes({0}, {1}, "x") == Shape{0}));
  BOOST_TEST((broadcast_shapes({1, 0}, {5, 1}, "x") == Shape{5, 0}));
  BOOST_TEST((broadcast_shapes({2, 1, 0}, {3, 1}, "x") == Shape{2, 3, 0}));
  BOOST_TEST((broadcast_shapes({}, {0}, "x") == Shape{0}));
  check_throws<std::invalid_argument>("0 against 2", [] { broadcast_shapes({0}, {2}, "myop"); },
                                      {"myop", "(0,)", "(2,)"});
  using F = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, F>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"subtract", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"multiply", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"divide", [](const Tensor& a, const Tensor& b) { return a / b; }},
  };
  const std::vector<std::tuple<Shape, Shape, Shape>> shapes = {
      {{0, 4}, {4}, {0, 4}},
      {{0, 4}, {}, {0, 4}},
      {{}, {0, 4}, {0, 4}},
      {{3, 0}, {3, 1}, {3, 0}},
      {{1, 0}, {5, 1}, {5, 0}},
      {{0, 4}, {1, 4}, {0, 4}},
      {{2, 0, 3}, {2, 1, 3}, {2, 0, 3}},
      {{0}, {0}, {0}},
  };
  for (const auto& [name, f] : ops)
    for (const auto& [sa, sb, so] : shapes)
      check_zero_size(
          std::string(name) + " " + shape_str(sa) + " " + shape_str(sb),
          [f = f](const std::vector<Tensor>& in) { return f(in[0], in[1]); },
          {Tensor(sa, 2.f), Tensor(sb, 2.f)}, so);
  // With a float, as `x * 2` is written.
  check_zero_size("(0, 4) * 2", [](const std::vector<Tensor>& in) { return in[0] * 2.f; },
                  {Tensor({0, 4}, 1.f)}, {0, 4});
  check_zero_size("1 - (3, 0)", [](const std::vector<Tensor>& in) { return 1.f - in[0]; },
                  {Tensor({3, 0}, 1.f)}, {3, 0});
  check_zero_size("sum_to (0, 4) -> (4,)",
                  [](const std::vector<Tensor>& in) { return sum_to(in[0], {4}); },
                  {Tensor({0, 4}, 1.f)}, {4});
}

BOOST_AUTO_TEST_CASE(unary_functions_of_zero_size_tensors) {
  using F = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, F>> fns = {
      {"negative", [](const Tensor& x) { return -x; }},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }},
      {"pow", [](const Tensor& x) { return pow(x, 3.f); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"clip", [](const Tensor& x) { return clip(x, -1.f, 1.f); }},
  };
  for (const auto& [name, f] : fns)
    for (const Shape& s : {Shape{0}, Shape{0, 3}, Shape{2, 0, 5}})
      check_zero_size(
          std::string(name) + " " + shape_str(s),
          [f = f](const std::vector<Tensor>& in) { return f(in[0]); }, {Tensor(s, 0.5f)}, s);
}

BOOST_AUTO_TEST_CASE(relu_and_clip_keep_nan) {
  // relu(NaN) was 0 (a vector max returns its second operand when one is NaN). Every length
  // 1..40 puts the NaN in a full vector and in the tail; the gradient passes where relu's
  // result is NaN (PyTorch's threshold_backward: y <= 0 ? 0 : g).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t n = 1; n <= 40; ++n)
    for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      Tensor x = Tensor::empty({n});
      for (std::size_t i = 0; i < n; ++i)
        x.data()[i] = i % 2 ? -1.f - static_cast<float>(i) : static_cast<float>(i) + 0.5f;
      x.data()[at] = nan;
      x.set_requires_grad();
      const Tensor y = relu(x);
      sum(y).backward();
      for (std::size_t i = 0; i < n; ++i) {
        const float v = x.data()[i];
        if (i == at) {
          BOOST_TEST(std::isnan(y.data()[i]), "relu length " << n << " NaN at " << at);
          BOOST_TEST(x.grad().data()[i] == 1.f, "relu gradient at the NaN, length " << n);
        } else {
          BOOST_TEST(y.data()[i] == (v > 0 ? v : 0.f));
          BOOST_TEST(x.grad().data()[i] == (v > 0 ? 1.f : 0.f));
        }
      }
    }
  // -0 still gives +0 (the bits of max(x, 0)).
  BOOST_TEST(!std::signbit(relu(Tensor({1}, {-0.f})).item()));
  const Tensor c = clip(Tensor({3}, {nan, -5.f, 5.f}), -1.f, 1.f);
  BOOST_TEST(std::isnan(c.data()[0]));
  BOOST_TEST((c.data()[1] == -1.f && c.data()[2] == 1.f));
}

BOOST_AUTO_TEST_SUITE_END()
