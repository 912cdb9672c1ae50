// models/model.cpp and layers/layer.cpp's nesting: layers that own layers, subclassed models,
// freezing, models inside models, and a residual block written three ways.
#include <boost/test/unit_test.hpp>
#include <sstream>

#include "autodiff/ops.hpp"
#include "layers/core.hpp"
#include "layers/merging.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "test/support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::random_tensor;

namespace {

// A residual block as a layer that owns two Dense layers.
class ResidualBlock : public Layer {
 public:
  explicit ResidualBlock(std::size_t units) : units_(units) {}
  std::size_t units_;  // before the members built from it
  Tensor call(const Tensor& x, bool training) override {
    return x + d2_(d1_(x, training), training);
  }
  Shape compute_output_shape(const Shape& s) const override { return s; }
  LayerRef<Dense> d1_ = track(make<Dense>({.units = units_, .activation = "relu"}));
  LayerRef<Dense> d2_ = track(make<Dense>({.units = 4}));
};

// A block whose sub-layer is made in build(), once the input width is known.
class LazyProjection : public Layer {
 public:
  void build(const Shape& s) override { proj_ = track(make<Dense>({.units = s.back() * 2})); }
  Tensor call(const Tensor& x, bool training) override { return proj_(x, training); }
  LayerRef<Dense> proj_;
};

// A residual model by subclassing Model: any C++ in call().
class ResidualModel : public Model {
 public:
  ResidualModel() = default;
  Tensor call(const Tensor& x, bool training) override {
    Tensor h = x;
    for (int i = 0; i < 2; ++i) h = h + d2_(d1_(h, training), training);  // the block used twice
    return out_(h, training);
  }
  LayerRef<Dense> d1_ = track(make<Dense>({.units = 8, .activation = "relu"}));
  LayerRef<Dense> d2_ = track(make<Dense>({.units = 4}));
  LayerRef<Dense> out_ = track(make<Dense>({.units = 1}));
};

// y = sum of the 4 inputs' squares: a smooth regression any of the models below can learn.
std::pair<Tensor, Tensor> regression_data(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  Tensor x = random_tensor({n, 4}, rng);
  Tensor y(Shape{n, 1}, 0.f);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < 4; ++j) y.data()[i] += x.data()[i * 4 + j] * x.data()[i * 4 + j];
  return {x, y};
}

bool same_values(const Tensor& a, const Tensor& b) { return a.to_vector() == b.to_vector(); }

// Trains `model` and checks the loss fell and every weight moved.
void trains(const std::string& label, Model& model) {
  auto xy_ = regression_data(256, 5);
  Tensor &x = xy_.first, &y = xy_.second;
  model.compile("mse", "adam");
  const auto before = model.evaluate(x, y, {.verbose = 0}).at("loss");
  // A first call builds lazily made layers; copy the weights after it.
  (void)model(slice_rows(x, 0, 1));
  const auto w0 = model.get_weights();
  BOOST_TEST_REQUIRE(!w0.empty(), label);
  model.fit(x, y, {.batch_size = 32, .epochs = 20, .verbose = 0});
  const auto after = model.evaluate(x, y, {.verbose = 0}).at("loss");
  BOOST_TEST(after < 0.5 * before, label << ": loss " << before << " -> " << after);
  const auto w1 = model.get_weights();
  const auto names = model.named_weights();
  for (std::size_t i = 0; i < w0.size(); ++i)
    BOOST_TEST(!same_values(w0[i], w1[i]), label << ": " << names[i].first << " did not move");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(models_model)

BOOST_AUTO_TEST_CASE(nested_layers_are_tracked_with_path_names) {
  clear_session();
  set_random_seed(1);
  auto block = std::make_shared<ResidualBlock>(8);
  Sequential m({Input({4}), block, std::make_shared<Dense>(DenseOptions{.units = 1})});
  // dense (4x8 + 8), dense_1 (8x4 + 4) inside the block, then dense_2 (4 + 1).
  BOOST_TEST(m.count_params() == 40u + 36u + 5u);
  BOOST_TEST(block->count_params() == 76u);
  std::vector<std::string> names;
  for (const auto& v : m.trainable_variables()) names.push_back(v.name);
  const std::vector<std::string> expected = {"residual_block/dense/kernel",
                                             "residual_block/dense/bias",
                                             "residual_block/dense_1/kernel",
                                             "residual_block/dense_1/bias",
                                             "dense_2/kernel",
                                             "dense_2/bias"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(block->weight("dense/kernel").shape() == (Shape{4, 8}));
  std::ostringstream os;
  m.summary(os);
  BOOST_TEST(os.str().find("residual_block (ResidualBlock)") != std::string::npos, os.str());
  BOOST_TEST(os.str().find("76") != std::string::npos, os.str());
  BOOST_TEST(os.str().find("Total params: 81 ") != std::string::npos, os.str());
}

BOOST_AUTO_TEST_CASE(residual_block_written_three_ways_trains) {
  clear_session();
  set_random_seed(2);
  {
    // 1. Functional.
    const SymbolicTensor in = Input({4});
    const SymbolicTensor h =
        make<Dense>({.units = 4})(make<Dense>({.units = 8, .activation = "relu"})(in));
    const SymbolicTensor out = make<Dense>({.units = 1})(make<Add>()({in, h}));
    Model functional(in, out);
    trains("functional", functional);
  }
  {
    // 2. A subclassed layer owning two Dense, in a Sequential.
    Sequential seq({Input({4}), std::make_shared<ResidualBlock>(8),
                    std::make_shared<Dense>(DenseOptions{.units = 1})});
    trains("layer owning layers", seq);
  }
  {
    // 3. A subclassed Model.
    ResidualModel sub;
    trains("subclassed model", sub);
    BOOST_TEST(sub.trainable_variables().size() == 6u);
  }
}

BOOST_AUTO_TEST_CASE(lazily_built_sublayer_reports_its_weights_after_the_first_call) {
  clear_session();
  set_random_seed(3);
  auto lazy = std::make_shared<LazyProjection>();
  BOOST_TEST(lazy->weights().empty());
  Tensor y = (*lazy)(Tensor(Shape{2, 3}, 1.f));
  BOOST_TEST(y.shape() == (Shape{2, 6}));
  BOOST_TEST(lazy->count_params() == 3u * 6u + 6u);
  BOOST_TEST(lazy->trainable_variables().size() == 2u);
  BOOST_TEST(lazy->trainable_variables()[0].name == lazy->name() + "/dense/kernel");
}

BOOST_AUTO_TEST_CASE(frozen_layers_keep_their_weights_and_count_as_non_trainable) {
  clear_session();
  set_random_seed(4);
  auto block = std::make_shared<ResidualBlock>(8);
  auto head = std::make_shared<Dense>(DenseOptions{.units = 1});
  Sequential m({Input({4}), block, head});
  block->set_trainable(false);
  BOOST_TEST(!block->d1_->trainable());  // freezing reaches the sub-layers
  BOOST_TEST(m.trainable_variables().size() == 2u);
  const Tensor frozen = block->weight("dense/kernel").clone();
  const Tensor head_before = head->kernel().clone();
  auto xy_ = regression_data(64, 6);
  Tensor &x = xy_.first, &y = xy_.second;
  m.compile("mse", "adam");
  m.fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0});
  BOOST_TEST(same_values(block->weight("dense/kernel"), frozen));
  BOOST_TEST(!same_values(head->kernel(), head_before));
  BOOST_TEST(!block->weight("dense/kernel").requires_grad());
  std::ostringstream os;
  m.summary(os);
  BOOST_TEST(os.str().find("Non-trainable params: 76 ") != std::string::npos, os.str());
  // Unfreezing restores training of the block.
  block->set_trainable(true);
  BOOST_TEST(m.trainable_variables().size() == 6u);
  m.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});
  BOOST_TEST(!same_values(block->weight("dense/kernel"), frozen));
  // A frozen model freezes everything in it.
  m.set_trainable(false);
  BOOST_TEST(m.trainable_variables().empty());
}

BOOST_AUTO_TEST_CASE(a_model_nests_in_a_model) {
  clear_session();
  set_random_seed(5);
  const SymbolicTensor a = Input({4});
  auto inner =
      std::make_shared<Model>(a, make<Dense>({.units = 16, .activation = "tanh"})(a), "encoder");
  // In a Functional model ...
  const SymbolicTensor b = Input({4});
  Model outer(b, make<Dense>({.units = 1})((*inner)(b)));
  BOOST_TEST(outer.count_params() == 80u + 17u);
  BOOST_TEST(outer.named_weights()[0].first == "encoder/dense/kernel");
  // ... and in a Sequential; both share the encoder's weights.
  Sequential seq({Input({4}), inner, std::make_shared<Dense>(DenseOptions{.units = 2})});
  BOOST_TEST(seq.count_params() == 80u + 34u);
  Tensor x(Shape{5, 4}, 0.5f);
  BOOST_TEST(outer(x).shape() == (Shape{5, 1}));
  BOOST_TEST(seq(x).shape() == (Shape{5, 2}));
  sum(outer(x)).backward();
  BOOST_TEST(inner->named_weights()[0].second.grad().defined());
  trains("nested functional", outer);
}

BOOST_AUTO_TEST_CASE(a_layer_refuses_inputs_of_another_shape_and_bad_tracking) {
  clear_session();
  auto d = std::make_shared<Dense>(DenseOptions{.units = 2});
  (void)(*d)(Tensor(Shape{1, 3}, 1.f));
  xtape::testing::check_throws<std::invalid_argument>("shape",
                                                      [&] {
                                                        (*d)(Tensor(Shape{1, 5}, 1.f));
                                                      },
                                                      {"dense", "(None, 3)", "(1, 5)"});
  auto block = std::make_shared<ResidualBlock>(8);
  xtape::testing::check_throws<std::invalid_argument>("self", [&] { block->d1_->track(block); },
                                                      {"contain itself"});
}

BOOST_AUTO_TEST_SUITE_END()
