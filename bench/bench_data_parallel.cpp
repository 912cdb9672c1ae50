// bench_data_parallel: one epoch of the founding model (examples/standardized_conv2d_mnist.cpp,
// batch 128, Adam) through Model::fit with FitOptions::distribute, on however many ranks it is
// started (mpirun -np P, OMP_NUM_THREADS per rank), and the bytes all-reduced per step.
// bench/data_parallel.sh compares 2 ranks x 1 thread with 1 rank x 2 threads.
//
// Usage: bench_data_parallel [--epochs N] [--limit N] [--synthetic]
// The last lines ("RESULT key value", rank 0) are for scripts.
#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

// The two customised layers of the founding example, copied verbatim.
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

}  // namespace

int main(int argc, char** argv) {
  int epochs = 1;
  std::size_t limit = 0;
  bool synthetic = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--epochs" && i + 1 < argc)
      epochs = std::atoi(argv[++i]);
    else if (a == "--limit" && i + 1 < argc)
      limit = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--synthetic")
      synthetic = true;
    else {
      std::cerr << "usage: " << argv[0] << " [--epochs N] [--limit N] [--synthetic]\n";
      return 2;
    }
  }
  auto dp = std::make_shared<distributed::DataParallel>();
  const bool chief = dp->communicator().is_chief();
  set_random_seed(1337);
  Tensor x, y;
  if (!synthetic) {
    try {
      auto [train, test] = datasets::mnist::load_data();
      (void)test;
      x = reshape(datasets::to_float(train.first, 1.f / 255.f), {-1, 28, 28, 1});
      y = datasets::to_categorical(train.second, 10);
    } catch (const std::exception& e) {
      if (chief) std::cout << "MNIST not found (" << e.what() << "): synthetic data\n";
      synthetic = true;
    }
  }
  if (synthetic) {
    const std::size_t n = 60000;
    x = Tensor::empty({n, 28, 28, 1});
    y = Tensor(Shape{n, 10}, 0.f);
    Rng rng(1);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
    for (std::size_t i = 0; i < n; ++i) y.data()[i * 10 + rng.below(10)] = 1.f;
  }
  if (limit > 0 && limit < x.dim(0)) {
    x = slice_rows(x, 0, limit);
    y = slice_rows(y, 0, limit);
  }
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
      std::make_shared<Dense>(DenseOptions{.units = 10, .activation = "softmax"}),
  });
  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  const auto t0 = std::chrono::steady_clock::now();
  const History h = model.fit(x, y,
                              {.batch_size = 128,
                               .epochs = epochs,
                               .validation_split = 0.1f,
                               .verbose = 0,
                               .distribute = dp});
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (chief) {
    const double steps_per_epoch = double(dp->steps()) / epochs;
    std::cout << "ranks " << dp->size() << " x threads " << num_threads() << ": epoch";
    for (double s : h.epoch_seconds) std::cout << ' ' << s << " s";
    std::cout << " (fit " << total << " s), " << steps_per_epoch << " steps an epoch, "
              << dp->bytes_per_step() << " bytes all-reduced per step in "
              << dp->bucket_sizes().size() << " bucket(s) ("
              << dp->bytes_per_step() * 2.0 * (dp->size() - 1) / std::max(1, dp->size()) / 1e6
              << " MB sent per rank per step by a ring), val_accuracy "
              << h.history.at("val_accuracy").back() << '\n'
              << "RESULT ranks " << dp->size() << '\n'
              << "RESULT threads " << num_threads() << '\n'
              << "RESULT epoch_seconds " << h.epoch_seconds.front() << '\n'
              << "RESULT bytes_per_step " << dp->bytes_per_step() << '\n';
  }
  dp->communicator().barrier();
  return 0;
}
