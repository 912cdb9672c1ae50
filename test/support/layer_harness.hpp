#pragma once
/// @file layer_harness.hpp
/// The one generic layer check used by every layer test: output shape (against the expected
/// shape and the layer's own compute_output_shape), weight count, a training step that gives
/// every trainable weight a gradient of its shape, and a finite-difference check through the
/// layer with respect to its input and every trainable weight.
#include <boost/test/unit_test.hpp>

#include "layers/layer.hpp"
#include "test/support/gradcheck.hpp"

namespace xtape::testing {

struct LayerCheck {
  Shape input;                 ///< per-sample input shape
  std::size_t batch = 2;
  Shape expected_output;       ///< per-sample output shape
  std::size_t expected_params = 0;
  bool gradcheck = true;
  GradcheckOptions grad{};
  std::uint64_t seed = 11;
};

inline void check_layer(const std::string& label, layers::Layer& layer, const LayerCheck& c) {
  Rng rng(c.seed);
  Shape full{c.batch};
  full.insert(full.end(), c.input.begin(), c.input.end());
  Tensor x = random_tensor(full, rng).set_requires_grad(true);
  Tensor y = layer(x, false);
  Shape expected{c.batch};
  expected.insert(expected.end(), c.expected_output.begin(), c.expected_output.end());
  BOOST_TEST((y.shape() == expected), label << ": output shape " << shape_str(y.shape()) << ", expected "
                                            << shape_str(expected));
  BOOST_TEST((layer.compute_output_shape(c.input) == c.expected_output),
             label << ": compute_output_shape disagrees with the output");
  BOOST_TEST(layer.count_params() == c.expected_params, label << ": " << layer.count_params()
                                                               << " parameters, expected " << c.expected_params);
  // A training step: every trainable weight gets a gradient of its own shape.
  const auto vars = layer.trainable_variables();
  for (auto v : vars) v.value.zero_grad();
  sum(layer(x, true) * random_tensor(y.shape(), rng)).backward();
  for (const auto& v : vars) {
    BOOST_TEST(v.value.grad().defined(), label << ": " << v.name << " received no gradient");
    if (v.value.grad().defined())
      BOOST_TEST((v.value.grad().shape() == v.value.shape()), label << ": " << v.name << " gradient shape");
    BOOST_TEST(v.name.rfind(layer.name() + "/", 0) == 0, label << ": variable name " << v.name);
  }
  if (!c.gradcheck) return;
  std::vector<Tensor> leaves{x};
  for (const auto& v : vars) leaves.push_back(v.value);
  gradcheck_leaves(label, [&] { return layer(x, false); }, leaves, c.grad);
}

}  // namespace xtape::testing
