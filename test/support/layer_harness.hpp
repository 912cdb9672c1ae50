#pragma once
/// @file layer_harness.hpp
/// The one generic layer check used by every layer test: output shape (against the expected
/// shape and the layer's own compute_output_shape), weight counts (all, and non-trainable), a
/// training step that gives every trainable weight a gradient of its shape, a finite-difference
/// check through the layer with respect to its input and every trainable weight, and (when
/// asked) a config round trip through the registry that rebuilds the layer, copies its weights
/// and gives the same bits.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "layers/layer.hpp"
#include "saving/registry.hpp"
#include "test/support/gradcheck.hpp"

namespace xtape::testing {

struct LayerCheck {
  Shape input;  ///< per-sample input shape
  std::size_t batch = 2;
  Shape expected_output;  ///< per-sample output shape
  std::size_t expected_params = 0;
  bool gradcheck = true;
  GradcheckOptions grad{};
  std::uint64_t seed = 11;
  std::size_t expected_non_trainable =
      0;                    ///< scalars in non-trainable weights (of expected_params)
  bool round_trip = false;  ///< get_config -> layer_from_config -> same config, same outputs
  /// Inputs with |x| in [0.1, 1) instead of [-1, 1): for layers with a kink at 0 (relu family).
  bool away_from_zero = false;
};

inline void check_layer(const std::string& label, layers::Layer& layer, const LayerCheck& c) {
  Rng rng(c.seed);
  Shape full{c.batch};
  full.insert(full.end(), c.input.begin(), c.input.end());
  Tensor x = (c.away_from_zero ? random_away_from_zero(full, rng) : random_tensor(full, rng))
                 .set_requires_grad(true);
  Tensor y = layer(x, false);
  Shape expected{c.batch};
  expected.insert(expected.end(), c.expected_output.begin(), c.expected_output.end());
  BOOST_TEST((y.shape() == expected), label << ": output shape " << shape_str(y.shape())
                                            << ", expected " << shape_str(expected));
  BOOST_TEST((layer.compute_output_shape(c.input) == c.expected_output),
             label << ": compute_output_shape disagrees with the output");
  BOOST_TEST(layer.count_params() == c.expected_params, label << ": " << layer.count_params()
                                                              << " parameters, expected "
                                                              << c.expected_params);
  std::size_t non_trainable = 0;
  for (const auto& w : layer.weights())
    if (!w.trainable) non_trainable += w.value.size();
  BOOST_TEST(non_trainable == c.expected_non_trainable,
             label << ": " << non_trainable << " non-trainable parameters, expected "
                   << c.expected_non_trainable);
  if (c.round_trip) {
    const nlohmann::json config = layer.get_config();
    auto back = layers::layer_from_config({{"class_name", layer.class_name()}, {"config", config}});
    BOOST_TEST(back->get_config() == config, label << ": config after the round trip "
                                                   << back->get_config().dump() << " vs "
                                                   << config.dump());
    back->ensure_built(c.input);
    const auto ws = layer.weights();
    BOOST_TEST_REQUIRE(back->weights().size() == ws.size(),
                       label << ": weights after the round trip");
    for (const auto& w : ws) back->weight(w.name).assign(w.value);
    NoGrad guard;
    const Tensor a = layer(x, false), b = (*back)(x, false);
    BOOST_TEST((a.to_vector() == b.to_vector()), label << ": outputs differ after the round trip");
  }
  // A training step: every trainable weight gets a gradient of its own shape.
  const auto vars = layer.trainable_variables();
  for (auto v : vars) v.value.zero_grad();
  sum(layer(x, true) * random_tensor(y.shape(), rng)).backward();
  for (const auto& v : vars) {
    BOOST_TEST(v.value.grad().defined(), label << ": " << v.name << " received no gradient");
    if (v.value.grad().defined())
      BOOST_TEST((v.value.grad().shape() == v.value.shape()),
                 label << ": " << v.name << " gradient shape");
    BOOST_TEST(v.name.rfind(layer.name() + "/", 0) == 0, label << ": variable name " << v.name);
  }
  if (!c.gradcheck) return;
  std::vector<Tensor> leaves{x};
  for (const auto& v : vars) leaves.push_back(v.value);
  gradcheck_leaves(
      label, [&] { return layer(x, false); }, leaves, c.grad);
}

}  // namespace xtape::testing
