#pragma once
/// @file founding_model.hpp
/// The founding example's two custom layers and model, for tests (the example,
/// examples/standardized_conv2d_mnist.cpp, defines its own copies, as a user would).
#include <memory>

#include "autodiff/ops.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/pooling.hpp"
#include "models/sequential.hpp"

namespace xtape::testing {

/// Overrides only convolution_op: a weight-standardized kernel, VALID padding.
class StandardizedConv2DWithOverride : public layers::Conv2D {
 public:
  using Conv2D::Conv2D;
  Tensor convolution_op(const Tensor& inputs, const Tensor& kernel) override {
    auto [mean, var] = moments(kernel, {0, 1, 2}, true);
    return conv2d(inputs, (kernel - mean) / sqrt(var + 1e-10f), strides(), Padding::valid);
  }
};

/// Overrides call: standardizes kernel() and adds the bias itself (no activation, as in Keras).
class StandardizedConv2DWithCall : public layers::Conv2D {
 public:
  using Conv2D::Conv2D;
  Tensor call(const Tensor& inputs, bool) override {
    auto [mean, var] = moments(kernel(), {0, 1, 2}, true);
    Tensor result = convolution_op(inputs, (kernel() - mean) / sqrt(var + 1e-10f));
    if (use_bias()) result = result + bias();
    return result;
  }
};

/// The recipe's CNN: Input(28,28,1), the two standardized convs with pooling, Flatten,
/// Dropout(0.5), Dense(10, softmax).
inline layers::Sequential founding_model() {
  using namespace layers;
  return Sequential({
      Input({28, 28, 1}),
      std::make_shared<StandardizedConv2DWithCall>(ConvOptions{.filters = 32, .kernel_size = {3, 3}, .activation = "relu"}),
      std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
      std::make_shared<StandardizedConv2DWithOverride>(ConvOptions{.filters = 64, .kernel_size = {3, 3}, .activation = "relu"}),
      std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
      std::make_shared<Flatten>(),
      std::make_shared<Dropout>(0.5f),
      std::make_shared<Dense>(DenseOptions{.units = 10, .activation = "softmax"}),
  });
}

}  // namespace xtape::testing
