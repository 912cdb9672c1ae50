// The Functional API (models/model.cpp, layers/node.cpp) and the merge layers
// (layers/merging.cpp): symbolic calls, DAGs of several inputs and outputs, shared layers, the
// summary with "Connected to", and the errors reported while the graph is built.
#include <boost/test/unit_test.hpp>
#include <sstream>

#include "autodiff/ops.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/merging.hpp"
#include "models/model.hpp"
#include "test/support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;
using xtape::testing::random_tensor;

BOOST_AUTO_TEST_SUITE(models_functional)

BOOST_AUTO_TEST_CASE(symbolic_calls_infer_shapes_without_computing) {
  clear_session();
  set_random_seed(1);
  const SymbolicTensor in = Input({28, 28, 1});
  BOOST_TEST(in.shape_str() == "(None, 28, 28, 1)");
  const SymbolicTensor c = make<Conv2D>({.filters = 8, .kernel_size = {3, 3}})(in);
  BOOST_TEST(c.shape() == (Shape{26, 26, 8}));
  BOOST_TEST(c.layer()->built());
  BOOST_TEST(tape_size() == 0u);  // nothing was computed or recorded
  const SymbolicTensor f = make<Flatten>()(c);
  BOOST_TEST(f.shape() == (Shape{26 * 26 * 8}));
  Model m(in, make<Dense>({.units = 10, .activation = "softmax"})(f));
  BOOST_TEST(m.is_functional());
  BOOST_TEST(m.class_name() == "Functional");
  BOOST_TEST(m.name() == "functional");
  BOOST_TEST(m.layers().size() == 4u);  // the InputLayer included, as Keras lists it
  const Tensor y = m(Tensor(Shape{3, 28, 28, 1}, 0.1f));
  BOOST_TEST(y.shape() == (Shape{3, 10}));
}

BOOST_AUTO_TEST_CASE(two_inputs_two_outputs) {
  clear_session();
  set_random_seed(2);
  const SymbolicTensor a = Input({4}, "a"), b = Input({6}, "b");
  const SymbolicTensor ha = make<Dense>({.units = 5, .activation = "relu"})(a);
  const SymbolicTensor hb = make<Dense>({.units = 5, .activation = "relu"})(b);
  const SymbolicTensor joined = make<Concatenate>()({ha, hb});
  BOOST_TEST(joined.shape() == (Shape{10}));
  const SymbolicTensor out_a = make<Dense>({.units = 1, .name = "out_a"})(joined);
  const SymbolicTensor out_b =
      make<Dense>({.units = 3, .name = "out_b"})(make<Multiply>()({ha, hb}));
  Model m({a, b}, {out_a, out_b});
  BOOST_TEST(m.compute_output_shapes({{4}, {6}}) == (std::vector<Shape>{{1}, {3}}));
  Rng rng(3);
  Tensor xa = random_tensor({7, 4}, rng), xb = random_tensor({7, 6}, rng);
  const auto ys = m.call_all({xa, xb});
  BOOST_REQUIRE(ys.size() == 2u);
  BOOST_TEST(ys[0].shape() == (Shape{7, 1}));
  BOOST_TEST(ys[1].shape() == (Shape{7, 3}));
  // The same numbers as the layers applied by hand.
  NoGrad ng;
  auto dense = [&](const std::string& n) {
    return std::dynamic_pointer_cast<Dense>(m.get_layer(n));
  };
  const Tensor ra = relu(matmul(xa, dense("dense")->kernel()) + dense("dense")->bias());
  const Tensor rb = relu(matmul(xb, dense("dense_1")->kernel()) + dense("dense_1")->bias());
  const Tensor ea = matmul(concat({ra, rb}, 1), dense("out_a")->kernel()) + dense("out_a")->bias();
  BOOST_TEST(ys[0].to_vector() == ea.to_vector(), boost::test_tools::per_element());
  check_throws<std::invalid_argument>("one output", [&] { (void)m({xa, xb}); }, {"2 outputs"});
  check_throws<std::invalid_argument>(
      "input count", [&] { (void)m.call_all({xa}); },
      {"functional", "built for inputs of shape (None, 4), (None, 6)", "(7, 4)"});
}

BOOST_AUTO_TEST_CASE(a_shared_layer_gets_the_sum_of_both_uses_gradients) {
  clear_session();
  set_random_seed(4);
  const SymbolicTensor a = Input({3}), b = Input({3});
  auto shared = make<Dense>({.units = 2, .activation = "tanh"});
  const SymbolicTensor sa = shared(a), sb = shared(b);
  BOOST_TEST(shared->node_count() == 2);
  Model m({a, b}, {make<Subtract>()({sa, sb})});
  BOOST_TEST(m.count_params() == 8u);  // counted once
  Rng rng(5);
  Tensor xa = random_tensor({4, 3}, rng).set_requires_grad(true);
  Tensor xb = random_tensor({4, 3}, rng).set_requires_grad(true);
  xtape::testing::gradcheck_leaves("shared dense",
                                   [&] {
                                     return m({xa, xb});
                                   },
                                   {xa, xb, shared->kernel(), shared->bias()});
}

BOOST_AUTO_TEST_CASE(every_merge_layer) {
  clear_session();
  const Tensor x(Shape{2, 3}, std::vector<float>{1, -2, 3, 4, 5, -6});
  const Tensor y(Shape{2, 3}, std::vector<float>{2, -1, 3, -4, 6, 1});
  auto run = [&](Layer& l) { return l({x, y}).to_vector(); };
  Add add;
  Subtract sub;
  Multiply mul;
  Average avg;
  Maximum mx;
  Minimum mn;
  BOOST_TEST(run(add) == (std::vector<float>{3, -3, 6, 0, 11, -5}),
             boost::test_tools::per_element());
  BOOST_TEST(run(sub) == (std::vector<float>{-1, -1, 0, 8, -1, -7}),
             boost::test_tools::per_element());
  BOOST_TEST(run(mul) == (std::vector<float>{2, 2, 9, -16, 30, -6}),
             boost::test_tools::per_element());
  BOOST_TEST(run(avg) == (std::vector<float>{1.5f, -1.5f, 3, 0, 5.5f, -2.5f}),
             boost::test_tools::per_element());
  BOOST_TEST(run(mx) == (std::vector<float>{2, -1, 3, 4, 6, 1}), boost::test_tools::per_element());
  BOOST_TEST(run(mn) == (std::vector<float>{1, -2, 3, -4, 5, -6}),
             boost::test_tools::per_element());
  Concatenate cat;
  BOOST_TEST(cat({x, y}).shape() == (Shape{2, 6}));
  // Broadcasting per-sample extents of 1, three inputs.
  Add add3;
  const Tensor one(Shape{2, 1}, 10.f);
  BOOST_TEST(add3({x, y, one}).to_vector() == (std::vector<float>{13, 7, 16, 10, 21, 5}),
             boost::test_tools::per_element());
  // Gradients of the compositions (away from ties).
  Rng rng(6);
  Tensor p = xtape::testing::random_distinct({2, 3}, rng).set_requires_grad(true);
  Tensor q = xtape::testing::random_distinct({2, 3}, rng, 0.05f, -0.97f).set_requires_grad(true);
  Maximum gmx;
  Minimum gmn;
  Average gavg;
  xtape::testing::gradcheck_leaves("maximum", [&] { return gmx({p, q}); }, {p, q});
  xtape::testing::gradcheck_leaves("minimum", [&] { return gmn({p, q}); }, {p, q});
  xtape::testing::gradcheck_leaves("average", [&] { return gavg({p, q}); }, {p, q});
}

BOOST_AUTO_TEST_CASE(graph_errors_name_the_layer_and_the_shapes) {
  clear_session();
  const SymbolicTensor a = Input({4}), b = Input({5}), c = Input({2, 3});
  check_throws<std::invalid_argument>("add shapes",
                                      [&] {
                                        (void)make<Add>()({a, b});
                                      },
                                      {"add", "(None, 4)", "(None, 5)", "broadcast"});
  check_throws<std::invalid_argument>("add ranks", [&] { (void)make<Add>()({a, c}); }, {"rank"});
  check_throws<std::invalid_argument>("one input", [&] { (void)make<Add>()(a); }, {"at least 2"});
  check_throws<std::invalid_argument>("subtract 3",
                                      [&] {
                                        (void)make<Subtract>()({a, a, a});
                                      },
                                      {"exactly 2"});
  check_throws<std::invalid_argument>("concat",
                                      [&] {
                                        (void)make<Concatenate>()({a, c});
                                      },
                                      {"concatenate", "(None, 4)", "(None, 2, 3)"});
  check_throws<std::invalid_argument>(
      "concat axis",
      [&] {
        (void)make<Concatenate>(ConcatenateOptions{.axis = 5})({a, a});
      },
      {"axis 5"});
  check_throws<std::invalid_argument>(
      "conv rank", [&] { (void)make<Conv2D>({.filters = 2, .kernel_size = {3}})(a); },
      {"conv2d", "(None, 4)", "rank"});
  auto d = make<Dense>({.units = 3});
  (void)d(a);
  check_throws<std::invalid_argument>("reuse with another shape", [&] { (void)d(b); },
                                      {"dense", "(None, 5)", "(None, 4)"});
  // An output that needs an Input the model was not given.
  const SymbolicTensor sum = make<Add>()({a, make<Dense>({.units = 4})(b)});
  check_throws<std::invalid_argument>("missing input", [&] { Model m(a, sum); },
                                      {"not among the model's inputs"});
  check_throws<std::invalid_argument>("not an input", [&] { Model m(sum, sum); }, {"not an Input"});
  check_throws<std::invalid_argument>("input twice", [&] { Model m({a, a}, {sum}); }, {"twice"});
  // A layer on the stack cannot join a graph.
  Dense local({.units = 2});
  check_throws<std::invalid_argument>("not shared", [&] { (void)local(a); },
                                      {"std::shared_ptr", "make<Dense>"});
}

BOOST_AUTO_TEST_CASE(summary_of_a_functional_model) {
  clear_session();
  set_random_seed(7);
  const SymbolicTensor a = Input({4}, "in_a"), b = Input({4}, "in_b");
  auto shared = make<Dense>({.units = 3, .name = "shared"});
  const SymbolicTensor s = make<Add>("sum")({shared(a), shared(b)});
  Model m({a, b}, {make<Dense>({.units = 1, .name = "out"})(s)}, "two_inputs");
  std::ostringstream os;
  m.summary(os);
  const std::string expected =
      "Model: \"two_inputs\"\n"
      "┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓\n"
      "┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃\n"
      "┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩\n"
      "│ in_a (InputLayer)   │ (None, 4)         │          0 │ -                 │\n"
      "├─────────────────────┼───────────────────┼────────────┼───────────────────┤\n"
      "│ in_b (InputLayer)   │ (None, 4)         │          0 │ -                 │\n"
      "├─────────────────────┼───────────────────┼────────────┼───────────────────┤\n"
      "│ shared (Dense)      │ (None, 3)         │         15 │ in_a[0][0],       │\n"
      "│                     │                   │            │ in_b[0][0]        │\n"
      "├─────────────────────┼───────────────────┼────────────┼───────────────────┤\n"
      "│ sum (Add)           │ (None, 3)         │          0 │ shared[0][0],     │\n"
      "│                     │                   │            │ shared[1][0]      │\n"
      "├─────────────────────┼───────────────────┼────────────┼───────────────────┤\n"
      "│ out (Dense)         │ (None, 1)         │          4 │ sum[0][0]         │\n"
      "└─────────────────────┴───────────────────┴────────────┴───────────────────┘\n"
      " Total params: 19 (76.00 B)\n"
      " Trainable params: 19 (76.00 B)\n"
      " Non-trainable params: 0 (0.00 B)\n";
  BOOST_TEST(os.str() == expected);
}

BOOST_AUTO_TEST_CASE(a_chain_prints_like_a_sequential) {
  clear_session();
  set_random_seed(8);
  const SymbolicTensor in = Input({3});
  Model m(in, make<Dense>({.units = 2})(in));
  std::ostringstream os;
  m.summary(os);
  BOOST_TEST(os.str().find("Connected to") == std::string::npos, os.str());
  BOOST_TEST(os.str().find("input_layer (InputLayer)") != std::string::npos, os.str());
  BOOST_TEST(os.str().find("dense (Dense)                   │ (None, 2)") != std::string::npos,
             os.str());
}

BOOST_AUTO_TEST_SUITE_END()
