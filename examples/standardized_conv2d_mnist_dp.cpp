// The founding example (standardized_conv2d_mnist.cpp) trained data-parallel: every rank runs
// this program, FitOptions::distribute splits each global batch of 128 between the ranks and
// averages the gradients (distributed/data_parallel.hpp). Rank 0 prints.
//
//   mpirun --allow-run-as-root -np 2 build/examples/standardized_conv2d_mnist_dp
//
// Without mpirun it trains on this process alone. OMP_NUM_THREADS sets each rank's threads.
//
// Usage: standardized_conv2d_mnist_dp [--epochs N] [--seed S] [--limit N] [--verbose 0|1|2]
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

class StandardizedConv2DWithOverride : public Conv2D {
 public:
  using Conv2D::Conv2D;
  Tensor convolution_op(const Tensor& inputs, const Tensor& kernel) override {
    auto [mean, var] = moments(kernel, {0, 1, 2}, /*keepdims=*/true);
    return conv2d(inputs, (kernel - mean) / sqrt(var + 1e-10f), strides(), Padding::valid);
  }
};

class StandardizedConv2DWithCall : public Conv2D {
 public:
  using Conv2D::Conv2D;
  Tensor call(const Tensor& inputs, bool /*training*/) override {
    auto [mean, var] = moments(kernel(), {0, 1, 2}, /*keepdims=*/true);
    Tensor result = convolution_op(inputs, (kernel() - mean) / sqrt(var + 1e-10f));
    if (use_bias()) result = result + bias();
    return result;
  }
};

int main(int argc, char** argv) {
  int epochs = 5, verbose = 1;
  std::uint64_t seed = 1337;
  std::size_t limit = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::cerr << "missing value after " << a << '\n';
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--epochs")
      epochs = std::atoi(next());
    else if (a == "--seed")
      seed = std::strtoull(next(), nullptr, 10);
    else if (a == "--limit")
      limit = std::strtoull(next(), nullptr, 10);
    else if (a == "--verbose")
      verbose = std::atoi(next());
    else {
      std::cerr << "usage: " << argv[0]
                << " [--epochs N] [--seed S] [--limit N] [--verbose 0|1|2]\n";
      return 2;
    }
  }
  auto dp = std::make_shared<distributed::DataParallel>();
  const bool chief = dp->communicator().is_chief();
  // The same seed on every rank; fit broadcasts rank 0's weights anyway.
  set_random_seed(seed);

  const std::size_t num_classes = 10;
  Tensor x_train, y_train, x_test, y_test;
  {
    auto [train, test] = datasets::mnist::load_data();
    x_train = reshape(datasets::to_float(train.first, 1.f / 255.f), {-1, 28, 28, 1});
    x_test = reshape(datasets::to_float(test.first, 1.f / 255.f), {-1, 28, 28, 1});
    y_train = datasets::to_categorical(train.second, num_classes);
    y_test = datasets::to_categorical(test.second, num_classes);
  }
  if (limit > 0 && limit < x_train.dim(0)) {
    x_train = slice_rows(x_train, 0, limit);
    y_train = slice_rows(y_train, 0, limit);
  }
  if (chief)
    std::cout << "data-parallel on " << dp->size() << " rank(s) (" << dp->communicator().name()
              << ")\n"
              << "x_train shape: " << shape_str(x_train.shape()) << '\n'
              << x_train.dim(0) << " train samples\n"
              << x_test.dim(0) << " test samples\n";

  Sequential model({
      Input({28, 28, 1}),
      std::make_shared<StandardizedConv2DWithCall>(
          ConvOptions{.filters = 32, .kernel_size = {3, 3}, .activation = "relu"}),
      std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
      std::make_shared<StandardizedConv2DWithOverride>(
          ConvOptions{.filters = 64, .kernel_size = {3, 3}, .activation = "relu"}),
      std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
      std::make_shared<Flatten>(),
      std::make_shared<Dropout>(0.5f),
      std::make_shared<Dense>(DenseOptions{.units = num_classes, .activation = "softmax"}),
  });
  if (chief) model.summary();

  const std::size_t batch_size = 128;  // the global batch: 128 / P rows per rank
  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  model.fit(x_train, y_train,
            {.batch_size = batch_size,
             .epochs = epochs,
             .validation_split = 0.1f,
             .verbose = verbose,
             .distribute = dp});
  if (chief)
    std::cout << "allreduced per step: " << dp->bytes_per_step() << " bytes in "
              << dp->bucket_sizes().size() << " bucket(s)\n";

  // Every rank holds the same weights; rank 0 evaluates and prints.
  if (chief) {
    const auto score =
        model.evaluate(x_test, y_test, {.batch_size = batch_size, .verbose = verbose});
    std::cout << "test_loss: " << score.at("loss") << '\n'
              << "test_accuracy: " << score.at("accuracy") << '\n';
  }
  dp->communicator().barrier();
  return 0;
}
