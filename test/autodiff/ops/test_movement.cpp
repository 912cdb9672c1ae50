// Tests for autodiff/ops/movement.cpp and indexing.cpp: slice, split, stack, unstack, pad, tile,
// repeat, broadcast_to, expand_dims, squeeze, flip, roll, take/gather, take_along_axis,
// one_hot. Reference values were computed with NumPy 1.24 (test/autodiff/ops/
// make_movement_refs.py prints them) on x = arange(24).reshape(2, 3, 4) and
// y = arange(6).reshape(2, 3), and committed as literals.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "kernels/threads.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::check_values;
using xtape::testing::check_zero_size;
using xtape::testing::gradcheck;
using xtape::testing::gradgradcheck;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;
using V = std::vector<double>;

Tensor iota_tensor(const Shape& shape) {
  std::vector<float> v(shape_size(shape));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor(shape, v);
}

const Tensor& x3() {
  static const Tensor x = iota_tensor({2, 3, 4});
  return x;
}
const Tensor& y2() {
  static const Tensor y = iota_tensor({2, 3});
  return y;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(movement)

BOOST_AUTO_TEST_CASE(slice_python_semantics) {
  const Tensor& x = x3();
  check_values("x[:, ::-2, 1:]", slice(x, {{}, {.step = -2}, {.start = 1}}), {2, 2, 3},
               V{9, 10, 11, 1, 2, 3, 21, 22, 23, 13, 14, 15}, 0, 0);
  check_values("x[..., -3:-1]", slice(x, -1, -3, -1), {2, 3, 2},
               V{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}, 0, 0);
  check_values("x[1:, :, ::3]", slice(x, {{.start = 1}, {}, {.step = 3}}), {1, 3, 2},
               V{12, 15, 16, 19, 20, 23}, 0, 0);
  check_values("x[-5:10, 2:-5:-1, -1::-3]",
               slice(x, {{.start = -5, .stop = 10},
                         {.start = 2, .stop = -5, .step = -1},
                         {.start = -1, .step = -3}}),
               {2, 3, 2}, V{11, 8, 7, 4, 3, 0, 23, 20, 19, 16, 15, 12}, 0, 0);
  // Empty and clipped slices, as Python.
  BOOST_TEST((slice(x, 1, 5, 1).shape() == Shape{2, 0, 4}));
  BOOST_TEST((slice(x, 2, 3, 1, -1).shape() == Shape{2, 3, 2}));
  BOOST_TEST(
      (slice(x, 0, std::nullopt, std::nullopt, std::numeric_limits<std::int64_t>::min()).shape() ==
       Shape{1, 3, 4}));
  BOOST_TEST((slice(x, 0, -100, 100).shape() == Shape{2, 3, 4}));
  check_throws<std::invalid_argument>("step 0", [&] { slice(x, 1, 0, 2, 0); }, {"slice", "0"});
  check_throws<std::invalid_argument>("axis 3", [&] { slice(x, 3, 0, 1); },
                                      {"slice", "axis 3", "(2, 3, 4)"});
  check_throws<std::invalid_argument>("too many slices",
                                      [&] {
                                        slice(x, {{}, {}, {}, {}});
                                      },
                                      {"slice", "4 slices", "(2, 3, 4)"});
}

BOOST_AUTO_TEST_CASE(split_stack_unstack) {
  const Tensor x = iota_tensor({10});
  const auto parts = split(x, 5);
  BOOST_TEST_REQUIRE(parts.size() == 5u);
  check_values("split part 3", parts[3], {2}, V{6, 7}, 0, 0);
  const auto at = split_at(x, {2, 5, 20, -1});
  BOOST_TEST_REQUIRE(at.size() == 5u);
  check_values("split_at [0,2)", at[0], {2}, V{0, 1}, 0, 0);
  check_values("split_at [2,5)", at[1], {3}, V{2, 3, 4}, 0, 0);
  check_values("split_at [5,20)", at[2], {5}, V{5, 6, 7, 8, 9}, 0, 0);
  BOOST_TEST((at[3].shape() == Shape{0}));  // [20, -1): empty, as NumPy
  check_values("split_at [-1,)", at[4], {1}, V{9}, 0, 0);
  const auto cols = split(y2(), 3, -1);
  check_values("split columns", cols[1], {2, 1}, V{1, 4}, 0, 0);
  check_throws<std::invalid_argument>("unequal split", [&] { split(x, 3); },
                                      {"split", "(10,)", "3 equal sections"});
  check_throws<std::invalid_argument>("0 sections", [&] { split(x, 0); }, {"split", "0"});

  const Tensor a({2}, {1.f, 2.f}), b({2}, {3.f, 4.f});
  check_values("stack axis 0", stack({a, b}), {2, 2}, V{1, 2, 3, 4}, 0, 0);
  check_values("stack axis -1", stack({a, b}, -1), {2, 2}, V{1, 3, 2, 4}, 0, 0);
  const auto un = unstack(x3(), 1);
  BOOST_TEST_REQUIRE(un.size() == 3u);
  check_values("unstack axis 1 part 2", un[2], {2, 4}, V{8, 9, 10, 11, 20, 21, 22, 23}, 0, 0);
  check_throws<std::invalid_argument>("stack shapes",
                                      [&] {
                                        stack({a, y2()});
                                      },
                                      {"stack", "(2, 3)", "(2,)"});
  check_throws<std::invalid_argument>("stack axis", [&] { stack({a, b}, 2); }, {"stack", "axis 2"});
  check_throws<std::invalid_argument>("stack nothing", [&] { stack({}); }, {"stack"});
}

BOOST_AUTO_TEST_CASE(pad_numpy_semantics) {
  const Tensor& y = y2();
  check_values(
      "pad reflect ((3,4),(5,2))", pad(y, {{3, 4}, {5, 2}}, PadMode::reflect), {9, 10},
      V{4, 3, 4, 5, 4, 3, 4, 5, 4, 3, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 4, 3, 4, 5, 4, 3, 4, 5, 4, 3,
        1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 4, 3, 4, 5, 4, 3, 4, 5, 4, 3, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0,
        4, 3, 4, 5, 4, 3, 4, 5, 4, 3, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 4, 3, 4, 5, 4, 3, 4, 5, 4, 3},
      0, 0);
  check_values(
      "pad symmetric ((3,4),(5,2))", pad(y, {{3, 4}, {5, 2}}, PadMode::symmetric), {9, 10},
      V{4, 5, 5, 4, 3, 3, 4, 5, 5, 4, 4, 5, 5, 4, 3, 3, 4, 5, 5, 4, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1,
        1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 4, 5, 5, 4, 3, 3, 4, 5, 5, 4, 4, 5, 5, 4, 3, 3, 4, 5, 5, 4,
        1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 4, 5, 5, 4, 3, 3, 4, 5, 5, 4},
      0, 0);
  check_values("pad constant 7", pad(y, {{1, 0}, {0, 2}}, PadMode::constant, 7.f), {3, 5},
               V{7, 7, 7, 7, 7, 0, 1, 2, 7, 7, 3, 4, 5, 7, 7}, 0, 0);
  // NumPy fills wide pads chunk by chunk, which is not a periodic reflection: its last element
  // here is 0 where a period of 4 would give 1.
  check_values("pad symmetric (1, 8) of [0, 1]",
               pad(iota_tensor({2}), {{1, 8}}, parse_pad_mode("Symmetric", "test")), {11},
               V{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0}, 0, 0);
  check_values("pad reflect of one element", pad(Tensor({1}, {5.f}), {{2, 1}}, PadMode::reflect),
               {4}, V{5, 5, 5, 5}, 0, 0);
  check_values("one pair for every axis", pad(y, {{1, 1}}), {4, 5},
               V{0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 5, 0, 0, 0, 0, 0, 0}, 0, 0);
  // Constant padding extends empty axes; reflect cannot (NumPy raises too).
  check_values("pad an empty axis",
               pad(Tensor(Shape{0, 2}), {{1, 0}, {0, 1}}, PadMode::constant, 3), {1, 3}, V{3, 3, 3},
               0, 0);
  check_throws<std::invalid_argument>(
      "reflect an empty axis",
      [&] {
        pad(Tensor(Shape{0, 2}), {{1, 0}, {0, 0}}, PadMode::reflect);
      },
      {"pad", "extent 0", "(0, 2)"});
  check_throws<std::invalid_argument>("negative width",
                                      [&] {
                                        pad(y, {{0, 0}, {-1, 0}});
                                      },
                                      {"pad", "negative", "(2, 3)"});
  check_throws<std::invalid_argument>("pairs",
                                      [&] {
                                        pad(y, {{0, 0}, {1, 0}, {1, 1}});
                                      },
                                      {"pad", "expected 2", "got 3"});
  check_throws<std::invalid_argument>("mode", [&] { parse_pad_mode("wrap", "pad"); },
                                      {"pad", "wrap"});
}

BOOST_AUTO_TEST_CASE(tile_repeat_broadcast_dims) {
  const Tensor& y = y2();
  check_values("tile (2,1,2)", tile(y, {2, 1, 2}), {2, 2, 6},
               V{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, 0, 0);
  check_values("tile (3)", tile(y, {3}), {2, 9},
               V{0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5}, 0, 0);
  BOOST_TEST((tile(y, {0, 2}).shape() == Shape{0, 6}));
  check_throws<std::invalid_argument>("tile negative", [&] { tile(y, {-1, 1}); }, {"tile", "-1"});
  check_values("repeat 2 axis 1", repeat(y, 2, 1), {2, 6}, V{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, 0,
               0);
  check_values("repeat [1,0,3] axis -1", repeat(y, std::vector<std::int64_t>{1, 0, 3}, -1), {2, 4},
               V{0, 2, 2, 2, 3, 5, 5, 5}, 0, 0);
  check_values("repeat 2 flat", repeat(y, 2), {12}, V{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, 0, 0);
  check_throws<std::invalid_argument>("repeat counts",
                                      [&] {
                                        repeat(y, std::vector<std::int64_t>{1, 2}, 1);
                                      },
                                      {"repeat", "2 repeat counts", "(2, 3)"});
  check_throws<std::invalid_argument>("repeat negative", [&] { repeat(y, -2, 0); },
                                      {"repeat", "-2"});

  check_values("broadcast_to (2,2,3)", broadcast_to(Tensor({3}, {1, 2, 3}), {2, 2, 3}), {2, 2, 3},
               V{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}, 0, 0);
  // An exact copy: -0 stays -0 (x + 0, the former implementation, gave +0).
  const Tensor neg0 = broadcast_to(Tensor({1}, {-0.f}), {3});
  for (float v : neg0.to_vector()) BOOST_TEST(std::signbit(v));
  check_values("broadcast_to (2,0)", broadcast_to(Tensor({1, 1}, {4.f}), {2, 0}), {2, 0}, V{});
  check_throws<std::invalid_argument>("broadcast_to",
                                      [&] {
                                        broadcast_to(y, {3, 3});
                                      },
                                      {"broadcast_to", "(2, 3)", "(3, 3)"});
  check_throws<std::invalid_argument>("broadcast_to rank", [&] { broadcast_to(y, {3}); },
                                      {"broadcast_to", "(2, 3)", "(3,)"});

  BOOST_TEST((expand_dims(y, 0).shape() == Shape{1, 2, 3}));
  BOOST_TEST((expand_dims(y, -1).shape() == Shape{2, 3, 1}));
  BOOST_TEST((expand_dims(y, std::vector<int>{0, -1}).shape() == Shape{1, 2, 3, 1}));
  BOOST_TEST((expand_dims(y, std::vector<int>{1, 2}).shape() == Shape{2, 1, 1, 3}));
  check_throws<std::invalid_argument>("expand_dims axis", [&] { expand_dims(y, 3); },
                                      {"expand_dims", "axis 3", "(2, 3)"});
  check_throws<std::invalid_argument>("expand_dims repeated",
                                      [&] {
                                        expand_dims(y, std::vector<int>{0, -4});
                                      },
                                      {"expand_dims", "repeated"});
  const Tensor z({1, 2, 1, 3, 1});
  BOOST_TEST((squeeze(z).shape() == Shape{2, 3}));
  BOOST_TEST((squeeze(z, {-1, 0}).shape() == Shape{2, 1, 3}));
  check_throws<std::invalid_argument>("squeeze extent", [&] { squeeze(z, {1}); },
                                      {"squeeze", "axis 1", "extent 2", "expected 1"});
}

BOOST_AUTO_TEST_CASE(flip_and_roll) {
  const Tensor& x = x3();
  check_values(
      "flip (0,2)", flip(x, {0, 2}), {2, 3, 4},
      V{15, 14, 13, 12, 19, 18, 17, 16, 23, 22, 21, 20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8}, 0,
      0);
  check_values("flip all", flip(y2()), {2, 3}, V{5, 4, 3, 2, 1, 0}, 0, 0);
  check_values(
      "roll 5 flat", roll(x, 5), {2, 3, 4},
      V{19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, 0,
      0);
  check_values(
      "roll (1,-5) axes (1,2)", roll(x, {1, -5}, {1, 2}), {2, 3, 4},
      V{9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4, 21, 22, 23, 20, 13, 14, 15, 12, 17, 18, 19, 16}, 0,
      0);
  check_values("roll an axis listed twice (the shifts add)", roll(y2(), {1, 1}, {0, 0}), {2, 3},
               V{0, 1, 2, 3, 4, 5}, 0, 0);
  check_throws<std::invalid_argument>("flip axis", [&] { flip(x, {3}); }, {"flip", "3"});
  check_throws<std::invalid_argument>("roll shifts",
                                      [&] {
                                        roll(x, {1, 2}, {0, 1, 2});
                                      },
                                      {"roll", "2 shifts", "3 axes"});
}

BOOST_AUTO_TEST_CASE(take_gather_one_hot) {
  const Tensor& x = x3();
  check_values("take [2,-1,0] axis 2", take(x, std::vector<std::int64_t>{2, -1, 0}, 2), {2, 3, 3},
               V{2, 3, 0, 6, 7, 4, 10, 11, 8, 14, 15, 12, 18, 19, 16, 22, 23, 20}, 0, 0);
  check_values("gather [[1,0],[1,1]] axis 0", gather(x, Tensor({2, 2}, {1, 0, 1, 1}), 0),
               {2, 2, 3, 4}, V{12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 0,  1,  2,  3,
                               4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                               20, 21, 22, 23, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23},
               0, 0);
  check_values("take flat", take(x, Tensor({3}, {23, -24, 5})), {3}, V{23, 0, 5}, 0, 0);
  check_values("take a braced list", take(x, {-1}, 0), {1, 3, 4},
               V{12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, 0, 0);
  check_values("gather a braced list", gather(y2(), {2}, 1), {2, 1}, V{2, 5}, 0, 0);
  check_values("take a scalar index", take(x, Tensor::scalar(1.f), 1), {2, 4},
               V{4, 5, 6, 7, 16, 17, 18, 19}, 0, 0);
  check_values("take_along_axis", take_along_axis(x, Tensor({2, 3, 1}, {0, 3, 1, 2, 2, -1}), 2),
               {2, 3, 1}, V{0, 7, 9, 14, 18, 23}, 0, 0);
  // Indices broadcast against x on the other axes.
  check_values("take_along_axis broadcast", take_along_axis(x, Tensor({1, 1, 2}, {3, 0}), 2),
               {2, 3, 2}, V{3, 0, 7, 4, 11, 8, 15, 12, 19, 16, 23, 20}, 0, 0);
  check_throws<std::out_of_range>("take out of range",
                                  [&] {
                                    take(x, Tensor({2, 2}, {0, 1, 2, 4}), 1);
                                  },
                                  {"take", "index 4", "position (1, 1)", "axis 1", "extent 3"});
  check_throws<std::out_of_range>("take negative out of range",
                                  [&] {
                                    take(x, std::vector<std::int64_t>{0, -3}, 0);
                                  },
                                  {"take", "index -3", "position 1", "extent 2"});
  check_throws<std::invalid_argument>("take fractional",
                                      [&] {
                                        gather(x, Tensor({3}, {0, 1.5f, 1}), 2);
                                      },
                                      {"gather", "1.5", "position 1", "not an integer"});
  check_throws<std::invalid_argument>(
      "take NaN", [&] { take(x, Tensor({1}, {std::numeric_limits<float>::quiet_NaN()})); },
      {"take", "nan", "position 0"});
  check_throws<std::out_of_range>("take_along_axis range",
                                  [&] {
                                    take_along_axis(x, Tensor({1, 1, 1}, {4}), -1);
                                  },
                                  {"take_along_axis", "index 4", "extent 4"});
  check_throws<std::invalid_argument>("take_along_axis rank",
                                      [&] {
                                        take_along_axis(x, Tensor({2}, {0, 1}), 0);
                                      },
                                      {"take_along_axis", "(2,)", "(2, 3, 4)", "rank"});

  check_values("one_hot", one_hot(Tensor({3}, {2, 0, 1}), 3), {3, 3}, V{0, 0, 1, 1, 0, 0, 0, 1, 0},
               0, 0);
  check_values("one_hot axis 0 on/off", one_hot(Tensor({2}, {1, 0}), 3, 0, 5.f, -1.f), {3, 2},
               V{-1, 5, 5, -1, -1, -1}, 0, 0);
  check_values("one_hot of (2, 1) axis 1", one_hot(Tensor({2, 1}, {1, 2}), 3, 1), {2, 3, 1},
               V{0, 1, 0, 0, 0, 1}, 0, 0);
  BOOST_TEST(!one_hot(Tensor({1}, {0.f}).set_requires_grad(), 2).requires_grad());
  check_throws<std::out_of_range>("one_hot range",
                                  [&] {
                                    one_hot(Tensor({2}, {1, 3}), 3);
                                  },
                                  {"one_hot", "index 3", "position 1", "depth 3"});
  check_throws<std::out_of_range>("one_hot negative", [&] { one_hot(Tensor({1}, {-1}), 3); },
                                  {"one_hot", "index -1"});
  check_throws<std::invalid_argument>("one_hot fraction", [&] { one_hot(Tensor({1}, {0.5f}), 3); },
                                      {"one_hot", "0.5", "not an integer"});
}

BOOST_AUTO_TEST_CASE(gradients) {
  Rng rng(12);
  const Tensor x = random_tensor({3, 4, 5}, rng);
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> cases = {
      {"slice multi-axis",
       [](const Tensor& t) {
         return slice(t, {{.start = -2, .step = -1}, {.start = 1, .stop = 4, .step = 2}});
       }},
      {"slice one axis", [](const Tensor& t) { return slice(t, 2, 4, 0, -3); }},
      {"split part",
       [](const Tensor& t) {
         return split_at(t, {1, 3}, 1)[1] * 2.f;
       }},
      {"split sum of parts",
       [](const Tensor& t) {
         auto p = split(t, 5, -1);
         return p[0] * p[4] + p[2];
       }},
      {"stack",
       [](const Tensor& t) {
         return stack({t, t * t}, 1);
       }},
      {"unstack",
       [](const Tensor& t) {
         auto p = unstack(t, 2);
         return p[1] * p[3];
       }},
      {"pad constant",
       [](const Tensor& t) {
         return pad(t, {{1, 2}, {0, 1}, {3, 0}}, PadMode::constant, 2.f);
       }},
      {"pad reflect wide",
       [](const Tensor& t) {
         return pad(t, {{4, 5}, {0, 1}, {6, 2}}, PadMode::reflect);
       }},
      {"pad symmetric wide",
       [](const Tensor& t) {
         return pad(t, {{4, 7}, {9, 1}, {0, 2}}, PadMode::symmetric);
       }},
      {"tile",
       [](const Tensor& t) {
         return tile(t, {2, 1, 1, 3});
       }},
      {"repeat",
       [](const Tensor& t) {
         return repeat(t, std::vector<std::int64_t>{2, 0, 1, 3}, 1);
       }},
      {"repeat flat", [](const Tensor& t) { return repeat(t, 2); }},
      {"broadcast_to",
       [](const Tensor& t) {
         return broadcast_to(slice(t, 1, 0, 1), {2, 3, 4, 5});
       }},
      {"expand_dims/squeeze",
       [](const Tensor& t) { return squeeze(expand_dims(t, 1) * 3.f, {1}); }},
      {"flip",
       [](const Tensor& t) {
         return flip(t, {0, -1});
       }},
      {"roll",
       [](const Tensor& t) {
         return roll(t, {7, -2}, {2, 0});
       }},
      {"roll flat", [](const Tensor& t) { return roll(t, -13); }},
      {"take repeated indices",
       [](const Tensor& t) {
         return take(t, Tensor({2, 3}, {1, -1, 1, 0, 4, 1}), 2);
       }},
      {"take flat",
       [](const Tensor& t) {
         return take(t, std::vector<std::int64_t>{59, 0, 0, 7});
       }},
      {"take_along_axis",
       [](const Tensor& t) {
         return take_along_axis(t, Tensor({3, 2, 1}, {0, 3, 3, 3, 1, -4}), 1);
       }},
  };
  for (const auto& [name, f] : cases) {
    const auto fn = f;
    gradcheck(name, [fn](In in) { return fn(in[0]); }, {x});
  }
}

BOOST_AUTO_TEST_CASE(zero_size) {
  const Tensor e({2, 0, 3});
  check_zero_size("slice", [](In in) { return slice(in[0], 2, 1, std::nullopt); }, {e}, {2, 0, 2});
  check_zero_size("split", [](In in) { return split(in[0], 3, 2)[1]; }, {e}, {2, 0, 1});
  check_zero_size("stack", [](In in) { return stack({in[0], in[0]}, 1); }, {e}, {2, 2, 0, 3});
  BOOST_TEST(unstack(e, 1).empty());
  check_zero_size("pad constant",
                  [](In in) {
                    return pad(in[0], {{0, 0}, {1, 1}, {0, 0}});
                  },
                  {e}, {2, 2, 3});
  check_zero_size("pad reflect of the other axes",
                  [](In in) {
                    return pad(in[0], {{1, 1}, {0, 0}, {2, 2}}, PadMode::reflect);
                  },
                  {e}, {4, 0, 7});
  check_zero_size("tile", [](In in) { return tile(in[0], {2, 5, 1}); }, {e}, {4, 0, 3});
  check_zero_size("repeat", [](In in) { return repeat(in[0], 3, 0); }, {e}, {6, 0, 3});
  check_zero_size("broadcast_to",
                  [](In in) {
                    return broadcast_to(in[0], {4, 2, 0, 3});
                  },
                  {e}, {4, 2, 0, 3});
  check_zero_size("flip", [](In in) { return flip(in[0]); }, {e}, {2, 0, 3});
  check_zero_size("roll", [](In in) { return roll(in[0], 4, 1); }, {e}, {2, 0, 3});
  check_zero_size("roll flat", [](In in) { return roll(in[0], 4); }, {e}, {2, 0, 3});
  check_zero_size("take no indices", [](In in) { return take(in[0], Tensor(Shape{0}), 1); },
                  {Tensor({2, 3})}, {2, 0});
  check_zero_size("take from an empty tensor",
                  [](In in) {
                    return take(in[0], {1, 0}, 0);
                  },
                  {e}, {2, 0, 3});
  check_throws<std::out_of_range>("take from an empty axis", [&] { take(e, {0}, 1); },
                                  {"take", "extent 0"});
  check_zero_size("take_along_axis",
                  [](In in) {
                    return take_along_axis(in[0], Tensor({2, 0, 1}), 2);
                  },
                  {e}, {2, 0, 1});
  BOOST_TEST((one_hot(Tensor(Shape{0}), 4).shape() == Shape{0, 4}));
  // Empty tensors with a huge extent stay cheap: nothing is materialised per element.
  const Tensor wide({std::size_t{1} << 40, 0});
  check_zero_size("slice of (2^40, 0)", [](In in) { return slice(in[0], 0, 1, std::nullopt); },
                  {wide}, {(std::size_t{1} << 40) - 1, 0});
  check_zero_size("flip of (2^40, 0)", [](In in) { return flip(in[0]); }, {wide},
                  {std::size_t{1} << 40, 0});
}

BOOST_AUTO_TEST_CASE(constant_pad_rows) {
  // Constant padding of non-empty tensors (whole rows copied between fills) against a reference
  // loop, on the last axis, inner axes, several axes and none; gradients of both orders; the
  // same bits on 1 and 2 threads.
  Rng rng(61);
  using Widths = std::vector<std::pair<std::int64_t, std::int64_t>>;
  struct Case {
    Shape shape;
    Widths widths;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 4, 5}, {{0, 0}, {1, 1}, {1, 1}, {0, 0}}},
                                         {{2, 3, 4, 5}, {{1, 0}, {0, 2}, {0, 0}, {3, 1}}},
                                         {{2, 3, 4}, {{0, 0}, {0, 0}, {0, 0}}},
                                         {{7}, {{2, 3}}},
                                         {{3, 4}, {{2, 0}, {0, 0}}}}) {
    const Tensor x = random_tensor(c.shape, rng);
    Shape os = c.shape;
    for (std::size_t d = 0; d < os.size(); ++d)
      os[d] += static_cast<std::size_t>(c.widths[d].first + c.widths[d].second);
    std::vector<double> ref(shape_size(os), -1.5);
    std::vector<std::size_t> idx(os.size(), 0);
    for (std::size_t flat = 0; flat < ref.size(); ++flat) {
      std::size_t src = 0;
      bool inside = true;
      for (std::size_t d = 0; d < os.size(); ++d) {
        const auto i = static_cast<std::int64_t>(idx[d]) - c.widths[d].first;
        inside = inside && i >= 0 && i < static_cast<std::int64_t>(c.shape[d]);
        src = src * c.shape[d] + static_cast<std::size_t>(std::max<std::int64_t>(i, 0));
      }
      if (inside) ref[flat] = x.data()[src];
      for (std::size_t d = os.size(); d-- > 0;) {
        if (++idx[d] < os[d]) break;
        idx[d] = 0;
      }
    }
    const std::string label = "pad constant " + shape_str(c.shape);
    check_values(label, pad(x, c.widths, PadMode::constant, -1.5f), os, ref, 0, 0);
    const Widths w = c.widths;
    gradcheck(label, [w](In in) { return pad(in[0], w); }, {x});
    gradgradcheck(label, [w](In in) { return square(pad(in[0], w, PadMode::constant, 0.5f)); },
                  {x});
  }
  const Tensor bx = random_tensor({16, 56, 56, 32}, rng), bw = random_tensor({16, 58, 58, 32}, rng);
  auto run = [&](int threads) {
    const int before = kernels::num_threads();
    const bool guard = kernels::load_guard();
    kernels::set_load_guard(false);
    kernels::set_num_threads(threads);
    Tensor x = bx.clone().set_requires_grad(true);
    const Tensor y = pad(x, {{0, 0}, {1, 1}, {1, 1}, {0, 0}});
    sum(y * bw).backward();
    kernels::set_num_threads(before);
    kernels::set_load_guard(guard);
    return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  for (std::size_t i = 0; i < one.size(); ++i)
    BOOST_TEST(std::memcmp(one[i].data(), two[i].data(), one[i].size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
