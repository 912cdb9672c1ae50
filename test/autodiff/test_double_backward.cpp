// Tests of grad() and backward() options: gradients of any tensors without touching leaves'
// grad(), retain_graph, allow_unused, create_graph (second and third derivatives, Hessian-vector
// products, a gradient penalty that trains), the second-order check of every differentiable
// primitive, clear refusals where a rule has no differentiable form, and the tape's memory.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "autodiff/ops.hpp"
#include "autodiff/ops_normalization.hpp"
#include "autodiff/storage.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::gradgradcheck;
using xtape::testing::random_away_from_zero;
using xtape::testing::random_distinct;
using xtape::testing::random_tensor;

namespace {

GradOptions creating() {
  GradOptions o;
  o.create_graph = true;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(double_backward)

BOOST_AUTO_TEST_CASE(grad_returns_gradients_of_any_tensors_and_leaves_grad_untouched) {
  Tensor x = Tensor({3}, {1.f, 2.f, 3.f}).set_requires_grad();
  const Tensor h = x * x;       // a result, not a leaf
  const Tensor y = sum(h * 3.f);  // dy/dh = 3, dy/dx = 6x
  const std::vector<Tensor> g = grad({y}, {x, h});
  BOOST_TEST(!x.grad().defined());
  BOOST_TEST(g[0].to_vector() == std::vector<float>({6.f, 12.f, 18.f}),
             boost::test_tools::per_element());
  BOOST_TEST(g[1].to_vector() == std::vector<float>({3.f, 3.f, 3.f}),
             boost::test_tools::per_element());
  BOOST_TEST(!g[0].requires_grad());  // no create_graph: plain values
}

BOOST_AUTO_TEST_CASE(grad_of_several_outputs_with_seeds) {
  Tensor x = Tensor({2}, {1.f, -2.f}).set_requires_grad();
  const Tensor a = x * 2.f, b = square(x);
  GradOptions o;
  o.grad_outputs = {Tensor({2}, {1.f, 10.f}), Tensor({2}, {1.f, 1.f})};
  const Tensor g = grad({a, b}, {x}, o)[0];  // 2 * seed_a + 2x * seed_b
  BOOST_TEST(g.to_vector() == std::vector<float>({4.f, 16.f}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(only_the_records_on_a_path_to_an_input_run) {
  // y = u + v with u from x and v from w: grad(y, {x}) runs nothing behind v, so a record
  // whose rule would throw there is never reached.
  Tensor x = Tensor({2}, {1.f, 2.f}).set_requires_grad();
  Tensor w = Tensor({2}, {3.f, 4.f}).set_requires_grad();
  const Tensor u = exp(x), v = log(w);
  const Tensor y = sum(u + v);
  const Tensor gx = grad({y}, {x})[0];
  BOOST_TEST(gx.to_vector()[1] == std::exp(2.f));
  BOOST_TEST(!w.grad().defined());
  // The path to w was not consumed: a backward through it still works.
  sum(v).backward();
  BOOST_TEST(w.grad().to_vector()[0] == 1.f / 3.f);
}

BOOST_AUTO_TEST_CASE(unused_inputs_and_bad_arguments_are_clear_errors) {
  Tensor x = Tensor({2}, {1.f, 2.f}).set_requires_grad();
  Tensor z = Tensor({2}, {1.f, 2.f}).set_requires_grad();
  const Tensor c({2}, {1.f, 2.f});
  check_throws<std::logic_error>("unused", [&] { grad({sum(x * 2.f)}, {z}); },
                                 {"grad: input 0", "not used", "allow_unused"});
  GradOptions o;
  o.allow_unused = true;
  const auto g = grad({sum(x * 2.f)}, {x, z}, o);
  BOOST_TEST(g[0].defined());
  BOOST_TEST(!g[1].defined());
  check_throws<std::invalid_argument>("constant input", [&] { grad({sum(x * 2.f)}, {c}); },
                                      {"grad: input 0", "does not require a gradient"});
  check_throws<std::invalid_argument>("non-scalar", [&] { grad({x * 2.f}, {x}); },
                                      {"grad: output 0", "(2,)", "needs a seed"});
  GradOptions bad;
  bad.grad_outputs = {Tensor({3}, 1.f)};
  check_throws<std::invalid_argument>("seed shape", [&] { grad({x * 2.f}, {x}, bad); },
                                      {"grad: output 0", "(2,)", "(3,)"});
  check_throws<std::invalid_argument>("constant output", [&] { grad({sum(c)}, {x}); },
                                      {"grad: output 0", "does not require a gradient"});
}

BOOST_AUTO_TEST_CASE(retain_graph_allows_a_second_pass) {
  Tensor x = Tensor({2}, {1.f, 2.f}).set_requires_grad();
  Tensor y = sum(exp(x));
  BackwardOptions keep;
  keep.retain_graph = true;
  y.backward(keep);
  const std::vector<float> once = x.grad().to_vector();
  y.backward();  // the records were kept; this pass frees them
  for (std::size_t i = 0; i < 2; ++i) BOOST_TEST(x.grad().to_vector()[i] == 2.f * once[i]);
  check_throws<std::logic_error>("third pass", [&] { y.backward(); }, {"already consumed"});
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(backward_with_create_graph_gives_leaf_gradients_with_history) {
  Tensor x = Tensor({1}, {0.7f}).set_requires_grad();
  BackwardOptions o;
  o.create_graph = true;
  sum(pow(x, 3.f)).backward(o);
  const Tensor g = x.grad();  // 3x^2, with history
  BOOST_TEST(g.requires_grad());
  x.zero_grad();
  sum(g).backward();  // d(3x^2)/dx = 6x
  BOOST_TEST(x.grad().item() == 6.f * 0.7f, boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(third_derivatives_against_closed_forms) {
  const std::vector<float> xs = {-1.3f, -0.4f, 0.2f, 0.9f, 1.7f};
  for (float v : xs) {
    Tensor x = Tensor({1}, {v}).set_requires_grad();
    const Tensor t1 = grad({sum(tanh(x))}, {x}, creating())[0];
    const Tensor t2 = grad({sum(t1)}, {x}, creating())[0];
    const Tensor t3 = grad({sum(t2)}, {x})[0];
    const double t = std::tanh(static_cast<double>(v)), f1 = 1 - t * t;
    BOOST_TEST(t1.item() == f1, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(t2.item() == -2 * t * f1, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(t3.item() == -2 * f1 * (1 - 3 * t * t), boost::test_tools::tolerance(2e-5));
  }
  for (float p : {2.f, 3.f, 4.5f}) {
    const double v = 1.3;
    Tensor x = Tensor({1}, {static_cast<float>(v)}).set_requires_grad();
    const Tensor d1 = grad({sum(pow(x, p))}, {x}, creating())[0];
    const Tensor d2 = grad({sum(d1)}, {x}, creating())[0];
    const Tensor d3 = grad({sum(d2)}, {x}, creating())[0];
    const double pd = p;
    BOOST_TEST(d3.item() == pd * (pd - 1) * (pd - 2) * std::pow(v, pd - 3),
               boost::test_tools::tolerance(1e-5));
  }
}

BOOST_AUTO_TEST_CASE(every_differentiable_primitive_passes_gradgradcheck) {
  Rng rng(41);
  const Tensor a = random_tensor({3, 4}, rng), b = random_tensor({3, 4}, rng);
  const Tensor pos = random_tensor({3, 4}, rng, 0.5f, 2.f);
  const Tensor away = random_away_from_zero({3, 4}, rng, 0.2f, 1.f);
  const Tensor row = random_tensor({4}, rng);
  using V = std::vector<Tensor>;
  struct Case {
    const char* name;
    testing::TensorFn f;
    V inputs;
  };
  const std::vector<Case> cases = {
      {"add (broadcast)", [](const V& v) { return (v[0] + v[1]) * (v[0] + v[1]); }, {a, row}},
      {"subtract", [](const V& v) { return square(v[0] - v[1]); }, {a, b}},
      {"multiply", [](const V& v) { return v[0] * v[1] * v[0]; }, {a, b}},
      {"divide", [](const V& v) { return v[0] / v[1]; }, {a, pos}},
      {"negative", [](const V& v) { return -(v[0] * v[0]); }, {a}},
      {"sqrt", [](const V& v) { return sqrt(v[0]); }, {pos}},
      {"exp", [](const V& v) { return exp(v[0]); }, {a}},
      {"log", [](const V& v) { return log(v[0]); }, {pos}},
      {"pow", [](const V& v) { return pow(v[0], 2.5f); }, {pos}},
      {"abs", [](const V& v) { return abs(v[0]) * v[0]; }, {away}},
      {"square", [](const V& v) { return square(v[0]); }, {a}},
      {"relu", [](const V& v) { return relu(v[0]) * v[0]; }, {away}},
      {"sigmoid", [](const V& v) { return sigmoid(v[0]); }, {a}},
      {"tanh", [](const V& v) { return tanh(v[0]); }, {a}},
      {"clip", [](const V& v) { return clip(v[0], -0.5f, 0.5f) * v[0]; }, {away}},
      {"sum", [](const V& v) { return square(sum(v[0], {1}, true)) * v[0]; }, {a}},
      {"mean", [](const V& v) { return square(mean(v[0], {0})); }, {a}},
      {"max", [](const V& v) { return square(max(v[0], {1})); }, {random_distinct({3, 4}, rng)}},
      {"reshape", [](const V& v) { return square(reshape(v[0], {4, 3})); }, {a}},
      {"transpose", [](const V& v) { return square(transpose(v[0])) * 2.f; }, {a}},
      {"concat", [](const V& v) { return square(concat({v[0], v[1]}, 1)); }, {a, b}},
      {"gather_rows", [](const V& v) { return square(gather_rows(v[0], {2, 0, 2})); }, {a}},
      {"slice_rows", [](const V& v) { return square(slice_rows(v[0], 1, 3)); }, {a}},
      {"matmul", [](const V& v) { return square(matmul(v[0], v[1])); },
       {a, random_tensor({4, 2}, rng)}},
      {"matmul (batched, broadcast)", [](const V& v) { return square(matmul(v[0], v[1])); },
       {random_tensor({2, 3, 4}, rng), random_tensor({4, 2}, rng)}},
      {"softmax", [](const V& v) { return softmax(v[0]); }, {a}},
      {"softmax (axis 0)", [](const V& v) { return softmax(v[0], 0); }, {a}},
      {"log_softmax", [](const V& v) { return log_softmax(v[0]); }, {a}},
      {"dropout",
       [](const V& v) {
         Rng r(9);  // the same mask at every evaluation
         return square(dropout(v[0], 0.4f, true, r));
       },
       {a}},
      {"categorical_crossentropy",
       [](const V& v) {
         const Tensor t({3, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1});
         return categorical_crossentropy(t, softmax(v[0]));
       },
       {a}},
      {"mlp",
       [](const V& v) { return tanh(matmul(tanh(matmul(v[0], v[1])), v[2])); },
       {a, random_tensor({4, 5}, rng), random_tensor({5, 2}, rng)}},
  };
  for (const Case& c : cases) gradgradcheck(c.name, c.f, c.inputs);
}

BOOST_AUTO_TEST_CASE(array_and_elementwise_ops_pass_gradgradcheck) {
  // The issue-12 ops whose rules are written with recorded ops: the gather/scatter pair behind
  // every indexing and movement op, broadcast_to, the selections and the smooth functions.
  Rng rng(48);
  const Tensor a = random_tensor({3, 4}, rng), b = random_tensor({3, 4}, rng);
  const Tensor pos = random_tensor({3, 4}, rng, 0.2f, 2.f);
  const Tensor away = random_away_from_zero({3, 4}, rng, 0.2f, 1.f);
  using V = std::vector<Tensor>;
  struct Case {
    const char* name;
    testing::TensorFn f;
    V inputs;
  };
  const std::vector<Case> cases = {
      {"slice", [](const V& v) { return square(slice(v[0], 1, 1, -1, 2)); }, {a}},
      {"pad reflect",
       [](const V& v) { return square(pad(v[0], {{1, 2}, {2, 1}}, PadMode::reflect)); }, {a}},
      {"take", [](const V& v) { return square(take(v[0], {2, 0, 2}, 1)); }, {a}},
      {"tile", [](const V& v) { return square(tile(v[0], {2, 1})); }, {a}},
      {"broadcast_to", [](const V& v) { return square(broadcast_to(v[0], {2, 3, 4})); }, {a}},
      {"stack and roll", [](const V& v) { return square(roll(stack({v[0], v[1]}, 1), 1, 2)); }, {a, b}},
      {"maximum", [](const V& v) { return square(maximum(v[0], v[1])); }, {a, b}},
      {"where", [](const V& v) { return square(where(greater(v[0], 0.f), v[0], v[1])); }, {a, b}},
      {"sin", [](const V& v) { return sin(v[0]); }, {a}},
      {"cos", [](const V& v) { return cos(v[0]); }, {a}},
      {"log1p", [](const V& v) { return log1p(v[0]); }, {pos}},
      {"expm1", [](const V& v) { return expm1(v[0]); }, {a}},
      {"erf", [](const V& v) { return erf(v[0]); }, {a}},
      {"softplus", [](const V& v) { return softplus(v[0]); }, {a}},
      {"cumsum", [](const V& v) { return square(cumsum(v[0], 1, true, true)); }, {a}},
      {"norm 2", [](const V& v) { return square(norm(v[0], 2, {1})) * norm(v[0], 2, {1}); }, {a}},
      {"norm 1", [](const V& v) { return square(norm(v[0], 1, {0})); }, {away}},
      {"prod", [](const V& v) { return square(prod(v[0], {1})); }, {pos}},
      {"prod with a zero",
       [](const V& v) { return prod(v[0], {0, 2}); },
       {Tensor({2, 2, 2}, {0.f, 0.5f, 1.5f, -0.7f, 0.9f, 1.2f, -1.1f, 0.8f})}},
      {"matmul transposed",
       [](const V& v) { return square(matmul(v[0], v[1], true, false)); }, {a, b}},
      {"matmul batched, b transposed",
       [](const V& v) { return square(matmul(v[0], v[1], false, true)); },
       {random_tensor({2, 3, 4}, rng), random_tensor({5, 4}, rng)}},
      {"scale_shift",
       [](const V& v) { return square(scale_shift(v[0], v[1], v[2])); },
       {random_tensor({2, 3, 4}, rng), random_tensor({4}, rng), random_tensor({4}, rng)}},
      {"fused_moments",
       [](const V& v) {
         const auto mv = fused_moments(v[0], {0, 1}, false);
         return square(mv.first) + mv.second * mv.second;
       },
       {random_tensor({3, 2, 4}, rng)}},
  };
  for (const Case& c : cases) gradgradcheck(c.name, c.f, c.inputs);
}

BOOST_AUTO_TEST_CASE(hessian_vector_product_matches_the_explicit_hessian) {
  // A small MLP's loss as a function of its 3x2 + 2x1 = 8 weights. Hv by double backward
  // against H assembled column by column from central differences of the gradient (in double).
  Rng rng(43);
  const Tensor x = random_tensor({5, 3}, rng), t = random_tensor({5, 1}, rng);
  const std::vector<float> w0 = random_tensor({8}, rng).to_vector();
  auto loss_of = [&](const Tensor& w) {
    const Tensor w1 = reshape(slice_rows(w, 0, 6), {3, 2});
    const Tensor w2 = reshape(slice_rows(w, 6, 8), {2, 1});
    return mean(square(matmul(tanh(matmul(x, w1)), w2) - t));
  };
  auto gradient_at = [&](const std::vector<double>& wv) {
    std::vector<float> f(wv.begin(), wv.end());
    Tensor w = Tensor({8}, f).set_requires_grad();
    return grad({loss_of(w)}, {w})[0].to_vector();
  };
  const std::vector<float> v = random_tensor({8}, rng).to_vector();
  Tensor w = Tensor({8}, w0).set_requires_grad();
  const Tensor g = grad({loss_of(w)}, {w}, creating())[0];
  const std::vector<float> hv = grad({sum(g * Tensor({8}, v))}, {w})[0].to_vector();
  const double h = 1e-2;
  std::vector<double> expected(8, 0.0);
  for (std::size_t j = 0; j < 8; ++j) {
    std::vector<double> up(w0.begin(), w0.end()), down = up;
    up[j] += h;
    down[j] -= h;
    const auto gu = gradient_at(up), gd = gradient_at(down);
    for (std::size_t i = 0; i < 8; ++i)
      expected[i] += (static_cast<double>(gu[i]) - gd[i]) / (2 * h) * v[j];  // H[i][j] v[j]
  }
  for (std::size_t i = 0; i < 8; ++i)
    BOOST_TEST(std::abs(hv[i] - expected[i]) <= 2e-3 + 1e-2 * std::abs(expected[i]),
               "Hv[" << i << "] = " << hv[i] << ", explicit " << expected[i]);
}

BOOST_AUTO_TEST_CASE(a_gradient_penalty_trains) {
  // A critic D(x) = tanh(x W1) W2 pushed to |dD/dx| = 1 at every sample (WGAN-GP's penalty):
  // gradient descent on the penalty through double backward drives it down.
  Rng rng(44);
  const Tensor x = random_tensor({32, 4}, rng);
  Tensor w1 = (random_tensor({4, 8}, rng) * 0.2f).detach().set_requires_grad();
  Tensor w2 = (random_tensor({8, 1}, rng) * 0.2f).detach().set_requires_grad();
  auto penalty = [&] {
    Tensor xi = x.clone().set_requires_grad();
    const Tensor d = matmul(tanh(matmul(xi, w1)), w2);
    const Tensor gx = grad({sum(d)}, {xi}, creating())[0];  // (32, 4), with history
    const Tensor norm = sqrt(sum(square(gx), {1}) + 1e-12f);
    return mean(square(norm - 1.f));
  };
  const float first = penalty().item();
  float last = first;
  for (int step = 0; step < 200; ++step) {
    const Tensor p = penalty();
    last = p.item();
    const auto g = grad({p}, {w1, w2});
    NoGrad off;
    w1.assign(w1 - g[0] * 0.5f);
    w2.assign(w2 - g[1] * 0.5f);
  }
  BOOST_TEST(first > 0.5f);
  BOOST_TEST(last < 0.01f * first, "penalty " << first << " -> " << last);
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(convolutions_and_pooling_pass_gradgradcheck) {
  Rng rng(45);
  using V = std::vector<Tensor>;
  const Tensor x = random_tensor({2, 6, 5, 3}, rng), k = random_tensor({3, 3, 3, 4}, rng);
  const Tensor b = random_tensor({4}, rng);
  struct Case {
    const char* name;
    testing::TensorFn f;
    V inputs;
  };
  const std::vector<Case> cases = {
      {"conv2d valid", [](const V& v) { return square(conv2d(v[0], v[1])); }, {x, k}},
      {"conv2d same, strides 2",
       [](const V& v) { return square(conv2d(v[0], v[1], {2, 2}, Padding::same)); }, {x, k}},
      {"conv2d dilated",
       [](const V& v) { return square(conv2d(v[0], v[1], {1, 1}, Padding::same, {2, 1})); },
       {x, k}},
      {"conv1d",
       [](const V& v) { return square(conv1d(v[0], v[1], 1, Padding::same)); },
       {random_tensor({2, 7, 3}, rng), random_tensor({3, 3, 2}, rng)}},
      {"fused conv2d + bias, relu, max_pool2d",
       [](const V& v) { return square(max_pool2d(relu(conv2d(v[0], v[1]) + v[2]), {2, 2})); },
       {random_distinct({2, 6, 6, 3}, rng, 0.01f), k, b}},
      {"max_pool2d 3x3 stride 2 same",
       [](const V& v) {
         return square(max_pool2d(v[0], {3, 3}, {2, 2}, Padding::same));
       },
       {random_distinct({2, 5, 5, 2}, rng)}},
      {"avg_pool2d same",
       [](const V& v) { return square(avg_pool2d(v[0], {2, 2}, {2, 2}, Padding::same)); },
       {random_tensor({2, 5, 5, 2}, rng)}},
      // The founding example's op: a convolution with the kernel standardized per filter.
      {"standardized conv2d",
       [](const V& v) {
         const auto [m, var] = moments(v[1], {0, 1, 2}, true);
         return square(conv2d(v[0], (v[1] - m) / sqrt(var + 1e-5f)));
       },
       {x, k}},
  };
  for (const Case& c : cases) gradgradcheck(c.name, c.f, c.inputs);
}

BOOST_AUTO_TEST_CASE(a_convolution_with_taps_only_in_padding_differentiates_twice) {
  // Dilation 3 on a 2x5 image with 'same' padding: the kernel's outer rows read only padding
  // (its columns all live), so the forward runs on its live block; the second-order pass
  // slices the kernel and pads its gradient back with recorded ops.
  Rng rng(49);
  gradgradcheck("pruned conv2d",
                [](const std::vector<Tensor>& v) {
                  return square(conv2d(v[0], v[1], {1, 1}, Padding::same, {3, 3}));
                },
                {random_tensor({1, 2, 5, 2}, rng), random_tensor({3, 3, 2, 2}, rng)});
  gradgradcheck("pruned conv2d, dilation 4 on 3x3",
                [](const std::vector<Tensor>& v) {
                  return square(conv2d(v[0], v[1], {1, 1}, Padding::same, {4, 4}));
                },
                {random_tensor({1, 3, 3, 1}, rng), random_tensor({3, 3, 1, 2}, rng)});
}

BOOST_AUTO_TEST_CASE(a_thousand_double_backward_steps_leave_the_tape_empty_and_memory_flat) {
  Rng rng(46);
  const Tensor x = random_tensor({16, 4}, rng);
  Tensor w = random_tensor({4, 4}, rng).set_requires_grad();
  auto step = [&] {
    const Tensor y = tanh(matmul(x, w));
    const Tensor g = grad({sum(square(y))}, {w}, creating())[0];
    const Tensor hv = grad({sum(g * g)}, {w})[0];
    BOOST_TEST_REQUIRE(hv.defined());
  };
  for (int i = 0; i < 10; ++i) step();  // warm the allocator's cache
  BOOST_TEST(tape_size() == 0u);
  const std::size_t live = detail::allocator_stats().live_bytes;
  for (int i = 0; i < 1000; ++i) step();
  BOOST_TEST(tape_size() == 0u);
  BOOST_TEST(detail::allocator_stats().live_bytes == live);
}

BOOST_AUTO_TEST_CASE(first_order_results_are_unchanged_bits) {
  // The same loss back-propagated by backward(), by grad() and by grad() with create_graph:
  // identical bits (create_graph records the same arithmetic).
  Rng rng(47);
  const Tensor x = random_tensor({6, 5}, rng);
  const Tensor w0 = random_tensor({5, 3}, rng);
  auto loss = [&](const Tensor& w) { return mean(square(softmax(tanh(matmul(x, w))) - 0.3f)); };
  Tensor w = w0.clone().set_requires_grad();
  loss(w).backward();
  const std::vector<float> a = w.grad().to_vector();
  Tensor w2 = w0.clone().set_requires_grad();
  const std::vector<float> b = grad({loss(w2)}, {w2})[0].to_vector();
  const std::vector<float> c = grad({loss(w2)}, {w2}, creating())[0].to_vector();
  BOOST_TEST(a == b, boost::test_tools::per_element());
  BOOST_TEST(a == c, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
