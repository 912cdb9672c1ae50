// saving/: configs of every built-in layer, whole-model files (save_model / load_model),
// weights addressed by structure (a model built twice loads the other's file), layer state in
// checkpoints, and refusals of corrupt or mismatched files.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autodiff/ops.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/merging.hpp"
#include "layers/pooling.hpp"
#include "layers/saving.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "saving/model_file.hpp"
#include "saving/registry.hpp"
#include "support/temp_dir.hpp"
#include "test/support/founding_model.hpp"
#include "test/support/gradcheck.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_throws;
using xtape::testing::random_tensor;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using TempDir = xtape::testing::TempDir;

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

bool bitwise_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!bitwise_equal(a[i], b[i])) return false;
  return true;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A Functional model holding every built-in layer type.
std::shared_ptr<Model> every_layer_model() {
  const SymbolicTensor img = Input({12, 12, 2}, "image");
  SymbolicTensor x = make<Conv2D>(
      {.filters = 4, .kernel_size = {3, 3}, .padding = "same", .activation = "relu"})(img);
  x = make<DepthwiseConv2D>({.kernel_size = {3}, .padding = "same", .depth_multiplier = 2})(x);
  x = make<SeparableConv2D>({.filters = 4, .kernel_size = {3}, .padding = "same"})(x);
  x = make<Conv2DTranspose>(
      {.filters = 2, .kernel_size = {3}, .strides = {2}, .padding = "same", .output_padding = {1}})(
      x);
  x = make<MaxPooling2D>({.pool_size = {2, 2}})(x);
  x = make<MaxPooling2D>({.pool_size = {2, 2}})(x);
  x = make<AveragePooling2D>({.pool_size = {2, 2}, .strides = {1, 1}})(x);
  const SymbolicTensor pooled = make<Concatenate>({.axis = -1})(
      {make<GlobalAveragePooling2D>()(x), make<GlobalMaxPooling2D>()(x)});
  x = make<Flatten>()(x);
  x = make<Concatenate>({.axis = -1})({x, pooled});
  x = make<Dropout>({.rate = 0.25f, .seed = 5})(x);
  const SymbolicTensor seq_in = Input({10, 3}, "steps");
  SymbolicTensor s = make<Conv1D>({.filters = 2, .kernel_size = {3}, .dilation_rate = {2}})(seq_in);
  s = make<Conv1D>({.filters = 3, .kernel_size = {2}, .padding = "causal"})(s);
  s = make<DepthwiseConv1D>({.kernel_size = {3}, .padding = "same"})(s);
  s = make<SeparableConv1D>({.filters = 2, .kernel_size = {2}, .depth_multiplier = 2})(s);
  s = make<Conv1DTranspose>({.filters = 2, .kernel_size = {3}, .strides = {2}})(s);
  s = make<MaxPooling1D>({.pool_size = {2}})(s);
  s = make<AveragePooling1D>({.pool_size = {2}, .strides = {1}})(s);
  s = make<Flatten>()(s);
  const SymbolicTensor a = make<Dense>({.units = 6, .activation = "tanh", .use_bias = false})(x);
  const SymbolicTensor b = make<Dense>({.units = 6, .kernel_initializer = "he_normal"})(s);
  const SymbolicTensor merged = make<Concatenate>({.axis = -1})(
      {make<Add>()({a, b}), make<Subtract>()({a, b}), make<Multiply>()({a, b}),
       make<Average>()({a, b}), make<Maximum>()({a, b}), make<Minimum>()({a, b})});
  const SymbolicTensor out = make<Activation>("softmax")(make<Dense>({.units = 3})(merged));
  return std::make_shared<Model>(std::vector<SymbolicTensor>{img, seq_in},
                                 std::vector<SymbolicTensor>{out, a}, "every_layer");
}

void register_founding_classes() {
  register_layer<xtape::testing::StandardizedConv2DWithCall>("StandardizedConv2DWithCall");
  register_layer<xtape::testing::StandardizedConv2DWithOverride>("StandardizedConv2DWithOverride");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(saving_model_file)

BOOST_AUTO_TEST_CASE(configs_use_keras_keys_and_round_trip) {
  clear_session();
  Conv2D conv({.filters = 7,
               .kernel_size = {3, 5},
               .strides = {2},
               .padding = "same",
               .dilation_rate = {1},
               .activation = "relu",
               .use_bias = false,
               .name = "c"});
  const json c = conv.get_config();
  BOOST_TEST(c["filters"] == 7);
  BOOST_TEST((c["kernel_size"] == json::array({3, 5})));
  BOOST_TEST((c["strides"] == json::array({2, 2})));
  BOOST_TEST(c["padding"] == "same");
  BOOST_TEST(c["activation"] == "relu");
  BOOST_TEST(c["use_bias"] == false);
  BOOST_TEST(c["name"] == "c");
  BOOST_TEST(c["trainable"] == true);
  auto back = layer_from_config({{"class_name", "Conv2D"}, {"config", c}});
  BOOST_TEST(back->get_config() == c);
  BOOST_TEST(back->class_name() == "Conv2D");
  // Every layer of the all-layers model survives its own config.
  auto m = every_layer_model();
  for (const auto& l : m->layers()) {
    if (l->class_name() == "InputLayer") continue;
    const json entry = {{"class_name", l->class_name()}, {"config", l->get_config()}};
    auto r = layer_from_config(entry);
    BOOST_TEST(r->get_config() == entry["config"], l->class_name());
  }
  check_throws<std::invalid_argument>(
      "bad key type",
      [&] {
        json bad = c;
        bad["filters"] = "seven";
        (void)layer_from_config({{"class_name", "Conv2D"}, {"config", bad}});
      },
      {"'c'", "Conv2D", "filters", "\"seven\""});
}

BOOST_AUTO_TEST_CASE(save_model_and_load_model_give_the_same_predictions) {
  TempDir dir;
  clear_session();
  set_random_seed(11);
  auto m = every_layer_model();
  Rng rng(12);
  const Tensor img = random_tensor({5, 12, 12, 2}, rng), steps = random_tensor({5, 10, 3}, rng);
  const auto expected = m->call_all({img, steps});
  save_model(*m, dir / "model.safetensors");
  const Rng::State rng_before = global_rng().state();
  auto loaded = load_model(dir / "model.safetensors");
  BOOST_TEST((global_rng().state() == rng_before));
  BOOST_TEST(loaded->class_name() == "Functional");
  BOOST_TEST(loaded->name() == "every_layer");
  const auto got = loaded->call_all({img, steps});
  BOOST_REQUIRE(got.size() == 2u);
  BOOST_TEST(bitwise_equal(got[0], expected[0]));
  BOOST_TEST(bitwise_equal(got[1], expected[1]));
  BOOST_TEST(bitwise_equal(loaded->get_weights(), m->get_weights()));
  BOOST_TEST(loaded->get_config() == m->get_config());
  // The config is Keras-shaped.
  const SafetensorsFile f = read_safetensors(dir / "model.safetensors");
  const json config = json::parse(f.metadata.at("model_config"));
  BOOST_TEST(config["class_name"] == "Functional");
  BOOST_TEST(config["config"]["layers"][0]["class_name"] == "InputLayer");
  std::size_t add_at = 0;
  for (std::size_t i = 0; i < config["config"]["layers"].size(); ++i)
    if (config["config"]["layers"][i]["class_name"] == "Add") add_at = i;
  const json& add = config["config"]["layers"][add_at];
  BOOST_TEST(add["class_name"] == "Add", add.dump());
  BOOST_TEST(add["inbound_nodes"][0]["args"][0].size() == 2u);
  BOOST_TEST(add["inbound_nodes"][0]["args"][0][0]["config"]["keras_history"][1] == 0);
}

BOOST_AUTO_TEST_CASE(sequential_and_shared_layers_round_trip) {
  TempDir dir;
  clear_session();
  set_random_seed(13);
  {
    // A Sequential built by its first call (no Input), with a frozen layer.
    Sequential seq({std::make_shared<Dense>(DenseOptions{.units = 4, .activation = "relu"}),
                    std::make_shared<Dense>(DenseOptions{.units = 2})});
    const Tensor x(Shape{3, 5}, 0.3f);
    const Tensor y = seq(x);
    seq.layers()[0]->set_trainable(false);
    save_model(seq, dir / "seq.safetensors");
    auto back = load_model(dir / "seq.safetensors");
    BOOST_TEST(back->class_name() == "Sequential");
    BOOST_TEST(bitwise_equal((*back)(x), y));
    BOOST_TEST(!back->layers()[0]->trainable());
    BOOST_TEST(back->trainable_variables().size() == 2u);
  }
  {
    // A shared layer, called twice, stays one layer with two nodes.
    const SymbolicTensor a = Input({3}), b = Input({3});
    auto shared = make<Dense>({.units = 2});
    Model m({a, b}, {make<Add>()({shared(a), shared(b)})});
    save_model(m, dir / "shared.safetensors");
    auto back = load_model(dir / "shared.safetensors");
    BOOST_TEST(back->count_params() == 8u);
    const Tensor xa(Shape{2, 3}, 0.5f), xb(Shape{2, 3}, -0.25f);
    BOOST_TEST(bitwise_equal((*back)({xa, xb}), m({xa, xb})));
  }
}

BOOST_AUTO_TEST_CASE(the_founding_model_round_trips_with_its_classes_registered) {
  TempDir dir;
  clear_session();
  set_random_seed(14);
  Sequential m = xtape::testing::founding_model();
  Rng rng(15);
  const Tensor x = random_tensor({4, 28, 28, 1}, rng, 0.f, 1.f);
  const Tensor y = m.predict(x);
  m.compile("categorical_crossentropy", "adam", {"accuracy"});
  Tensor labels(Shape{4, 10}, 0.f);
  for (std::size_t i = 0; i < 4; ++i) labels.data()[i * 10 + i] = 1.f;
  const auto score = m.evaluate(x, labels, {.verbose = 0});
  save_model(m, dir / "founding.safetensors");
  // Not registered: the error names the class and how to register it.
  const std::string msg = error_of([&] { (void)load_model(dir / "founding.safetensors"); });
  if (!is_registered("StandardizedConv2DWithCall")) {
    BOOST_TEST(msg.find("StandardizedConv2DWithCall") != std::string::npos, msg);
    BOOST_TEST(msg.find("register_layer") != std::string::npos, msg);
    BOOST_TEST(msg.find("founding.safetensors") != std::string::npos, msg);
  }
  register_founding_classes();
  auto back = load_model(dir / "founding.safetensors");
  BOOST_TEST(back->layers()[1]->class_name() == "StandardizedConv2DWithCall");
  BOOST_TEST(bitwise_equal(back->predict(x), y));
  // Compiled as saved: the same loss and metrics.
  BOOST_REQUIRE(back->compiled());
  BOOST_TEST(back->optimizer()->name() == "adam");
  BOOST_TEST((back->evaluate(x, labels, {.verbose = 0}) == score));
  std::ostringstream a, b;
  m.summary(a);
  back->summary(b);
  BOOST_TEST(a.str() == b.str());
}

BOOST_AUTO_TEST_CASE(weights_load_into_a_model_built_twice_in_one_process) {
  TempDir dir;
  clear_session();
  set_random_seed(16);
  Sequential first = xtape::testing::founding_model();
  Sequential second = xtape::testing::founding_model();  // layers named conv..._1, dense_1, ...
  BOOST_TEST(second.layers()[7]->name() == "dense_1");
  first.save_weights(dir / "w.safetensors");
  BOOST_TEST(!bitwise_equal(first.get_weights(), second.get_weights()));
  second.load_weights(dir / "w.safetensors");
  BOOST_TEST(bitwise_equal(first.get_weights(), second.get_weights()));
  // The file names the structure: the same keys whatever the layer names.
  const SafetensorsFile f = read_safetensors(dir / "w.safetensors");
  BOOST_TEST(f.contains("dense/kernel"));
  BOOST_TEST(f.contains("standardized_conv2d_with_override/kernel"));
  // A model of another structure: the error names the place and both shapes.
  using xtape::testing::StandardizedConv2DWithCall;
  using xtape::testing::StandardizedConv2DWithOverride;
  Sequential other({Input({28, 28, 1}),
                    std::make_shared<StandardizedConv2DWithCall>(
                        ConvOptions{.filters = 16, .kernel_size = {3, 3}}),
                    std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
                    std::make_shared<StandardizedConv2DWithOverride>(
                        ConvOptions{.filters = 64, .kernel_size = {3, 3}}),
                    std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
                    std::make_shared<Flatten>(), std::make_shared<Dropout>(0.5f),
                    std::make_shared<Dense>(DenseOptions{.units = 10})});
  const auto other_before = other.get_weights();
  const std::string msg = error_of([&] { other.load_weights(dir / "w.safetensors"); });
  BOOST_TEST(msg.find("standardized_conv2d_with_call/kernel") != std::string::npos, msg);
  BOOST_TEST(msg.find("expected shape (3, 3, 1, 16), got (3, 3, 1, 32)") != std::string::npos, msg);
  BOOST_TEST(bitwise_equal(other.get_weights(), other_before));
}

BOOST_AUTO_TEST_CASE(layer_state_goes_through_the_state_hook) {
  TempDir dir;
  clear_session();
  set_random_seed(17);
  auto drop = std::make_shared<Dropout>(0.5f);
  Sequential m({Input({4}), std::make_shared<Dense>(DenseOptions{.units = 4}), drop});
  m.compile("mse", "sgd");
  m.save_checkpoint(dir / "ck.safetensors", 0);
  const SafetensorsFile f = read_safetensors(dir / "ck.safetensors");
  BOOST_TEST(f.metadata.count("state/dropout/rng") == 1u);
  const Rng::State saved = drop->rng().state();
  (void)drop->rng().next_u64();
  BOOST_TEST(m.load_checkpoint(dir / "ck.safetensors") == 0);
  BOOST_TEST((drop->rng().state() == saved));
  check_throws<std::invalid_argument>("bad state",
                                      [&] {
                                        drop->load_own_state({{"rng", "x"}});
                                      },
                                      {"dropout", "rng"});
  check_throws<std::invalid_argument>("unknown state",
                                      [&] {
                                        Dense({.units = 1}).load_own_state({{"k", "v"}});
                                      },
                                      {"no state", "'k'"});
}

BOOST_AUTO_TEST_CASE(corrupt_or_mismatched_model_files_are_refused) {
  TempDir dir;
  clear_session();
  set_random_seed(18);
  Sequential m({Input({3}), std::make_shared<Dense>(DenseOptions{.units = 2})});
  save_model(m, dir / "good.safetensors");
  m.save_weights(dir / "weights.safetensors");
  const SafetensorsFile good = read_safetensors(dir / "good.safetensors");
  auto rewrite = [&](const std::string& name, std::map<std::string, std::string> meta,
                     std::vector<std::pair<std::string, Tensor>> tensors) {
    write_safetensors(dir / name, tensors, meta);
    return dir / name;
  };
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [k, _] : good.tensors) tensors.emplace_back(k, good.f32(k));
  const std::string config = good.metadata.at("model_config");
  struct Case {
    std::string what, path, part;
  };
  json unknown = json::parse(config);
  unknown["config"]["layers"][1]["class_name"] = "NoSuchLayer";
  json wide = json::parse(config);
  wide["config"]["layers"][1]["config"]["units"] = 5;
  const std::vector<Case> cases = {
      {"weights file", dir / "weights.safetensors", "not a model file"},
      {"no config", rewrite("a", {{"format", "xtape.model"}}, tensors), "model_config"},
      {"bad json", rewrite("b", {{"format", "xtape.model"}, {"model_config", "{"}}, tensors),
       "not valid JSON"},
      {"unknown class",
       rewrite("c", {{"format", "xtape.model"}, {"model_config", unknown.dump()}}, tensors),
       "NoSuchLayer"},
      {"shape mismatch",
       rewrite("d", {{"format", "xtape.model"}, {"model_config", wide.dump()}}, tensors),
       "expected shape (3, 5), got (3, 2)"},
      {"missing weight",
       rewrite("e", {{"format", "xtape.model"}, {"model_config", config}}, {tensors[0]}),
       "missing tensor"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of([&] { (void)load_model(c.path); });
    BOOST_TEST(msg.find(c.part) != std::string::npos, c.what << ": " << msg);
    BOOST_TEST(msg.find(c.path) != std::string::npos, c.what << ": " << msg);
  }
}

BOOST_AUTO_TEST_SUITE_END()
