// bench_models: the training step and the inference batch of the models of issue 16, in the
// work of Sequential::fit per step (forward in training mode, loss, zero_grad, backward, Adam
// apply, loss.item()) and of predict per batch (forward under NoGrad), denormals flushed:
//   founding  the founding example's model (standardized convolutions), batch 32, 128, 512
//   mlp       Dense 784-512-512-10 (relu, relu, softmax), batch 128
//   vgg       32x32x3: conv 32, 32, pool, 64, 64, pool, 128, pool, dense 256, dense 10 (3x3 same
//             relu convolutions), batch 64
//   conv1d    (64, 1): Conv1D(16, 5, same, relu), MaxPooling1D(2), Conv1D(32, 3, relu),
//             MaxPooling1D(2), Flatten, Dense(3, softmax), batch 32
// Synthetic data (uniform inputs, random one-hot labels), the same for every thread count.
// bench/reference/torch_models.py is the PyTorch side; bench/compare_models.sh runs both.
// Prints "RESULT <model> <threads> <train ms> <infer ms>" lines.
//
// Usage: bench_models [--steps N] [--threads 1,2] [--only founding_b32,mlp,...] [--profile]
//   --profile adds each model's per-op table of the training step (autodiff/profiler.hpp).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "profile_table.hpp"
#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

using clock_type = std::chrono::steady_clock;
using LayerPtr = std::shared_ptr<Layer>;

// The two customised layers of the founding example (as bench_model.cpp).
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

std::vector<LayerPtr> founding() {
  return {Input({28, 28, 1}),
          std::make_shared<StandardizedConv2DWithCall>(
              ConvOptions{.filters = 32, .kernel_size = {3, 3}, .activation = "relu"}),
          std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
          std::make_shared<StandardizedConv2DWithOverride>(
              ConvOptions{.filters = 64, .kernel_size = {3, 3}, .activation = "relu"}),
          std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}),
          std::make_shared<Flatten>(),
          std::make_shared<Dropout>(0.5f),
          std::make_shared<Dense>(DenseOptions{.units = 10, .activation = "softmax"})};
}

std::vector<LayerPtr> mlp() {
  return {Input({784}), std::make_shared<Dense>(DenseOptions{.units = 512, .activation = "relu"}),
          std::make_shared<Dense>(DenseOptions{.units = 512, .activation = "relu"}),
          std::make_shared<Dense>(DenseOptions{.units = 10, .activation = "softmax"})};
}

std::vector<LayerPtr> vgg() {
  auto conv = [](std::size_t f) {
    return std::make_shared<Conv2D>(
        ConvOptions{.filters = f, .kernel_size = {3, 3}, .padding = "same", .activation = "relu"});
  };
  auto pool = [] { return std::make_shared<MaxPooling2D>(PoolOptions{.pool_size = {2, 2}}); };
  return {Input({32, 32, 3}),
          conv(32),
          conv(32),
          pool(),
          conv(64),
          conv(64),
          pool(),
          conv(128),
          pool(),
          std::make_shared<Flatten>(),
          std::make_shared<Dense>(DenseOptions{.units = 256, .activation = "relu"}),
          std::make_shared<Dense>(DenseOptions{.units = 10, .activation = "softmax"})};
}

std::vector<LayerPtr> conv1d_net() {
  return {Input({64, 1}),
          std::make_shared<Conv1D>(ConvOptions{
              .filters = 16, .kernel_size = {5}, .padding = "same", .activation = "relu"}),
          std::make_shared<MaxPooling1D>(PoolOptions{.pool_size = {2}}),
          std::make_shared<Conv1D>(
              ConvOptions{.filters = 32, .kernel_size = {3}, .activation = "relu"}),
          std::make_shared<MaxPooling1D>(PoolOptions{.pool_size = {2}}),
          std::make_shared<Flatten>(),
          std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})};
}

struct ModelCase {
  std::string name;
  Shape sample;
  std::size_t classes, batch;
  std::function<std::vector<LayerPtr>()> layers;
};

std::vector<ModelCase> model_cases() {
  return {{"founding_b32", {28, 28, 1}, 10, 32, founding},
          {"founding_b128", {28, 28, 1}, 10, 128, founding},
          {"founding_b512", {28, 28, 1}, 10, 512, founding},
          {"mlp_b128", {784}, 10, 128, mlp},
          {"vgg_b64", {32, 32, 3}, 10, 64, vgg},
          {"conv1d_b32", {64, 1}, 3, 32, conv1d_net}};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  for (std::size_t p = 0; p <= list.size();) {
    const std::size_t q = std::min(list.find(',', p), list.size());
    if (q > p) out.push_back(list.substr(p, q - p));
    p = q + 1;
  }
  return out;
}

// Median train step and inference batch (ms) of one model case; `pool` batches are drawn
// from a fixed set of random samples.
std::pair<double, double> measure(const ModelCase& mc, int steps, bool profile) {
  set_random_seed(1337);
  auto model = std::make_unique<Sequential>(mc.layers());
  model->compile("categorical_crossentropy", "adam", {});
  const auto loss_fn = losses::get("categorical_crossentropy");
  const auto vars = model->trainable_variables();
  Rng rng(7);
  const std::size_t pool = 2048;
  Shape xs{pool};
  xs.insert(xs.end(), mc.sample.begin(), mc.sample.end());
  std::size_t n = 1;
  for (auto e : xs) n *= e;
  std::vector<float> xv(n), yv(pool * mc.classes, 0.f);
  for (float& v : xv) v = rng.uniform();
  for (std::size_t i = 0; i < pool; ++i) yv[i * mc.classes + rng.below(mc.classes)] = 1.f;
  const Tensor x(xs, xv), y(Shape{pool, mc.classes}, yv);
  std::vector<std::size_t> rows(mc.batch);
  auto step = [&] {
    for (auto& r : rows) r = rng.below(pool);
    const Tensor xb = gather_rows(x, rows), yb = gather_rows(y, rows);
    const Tensor yp = (*model)(xb, true);
    Tensor loss = (*loss_fn)(yb, yp);
    for (auto v : vars) v.value.zero_grad();
    loss.backward();
    model->optimizer()->apply(vars);
    volatile double lv = loss.item();
    (void)lv;
  };
  for (int i = 0; i < 5; ++i) step();
  std::vector<double> t;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = clock_type::now();
    step();
    t.push_back(since(t0));
  }
  if (profile)
    xtape::bench::print_profile_table(mc.name + ": per-op time of the training step", steps, step);
  std::vector<double> ti;
  {
    NoGrad no_grad;
    for (std::size_t i = 0; i < mc.batch; ++i) rows[i] = i;
    const Tensor xb = gather_rows(x, rows);
    for (int i = 0; i < steps + 5; ++i) {
      const auto t0 = clock_type::now();
      const Tensor yp = (*model)(xb, false);
      volatile float s = yp.data()[0];
      (void)s;
      if (i >= 5) ti.push_back(since(t0));
    }
  }
  return {median(t) * 1e3, median(ti) * 1e3};
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 30;
  std::vector<int> thread_counts = {1, 2};
  std::vector<std::string> only;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "missing value after " << a << '\n';
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps")
      steps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--threads") {
      thread_counts.clear();
      for (const auto& t : split(next())) thread_counts.push_back(std::atoi(t.c_str()));
    } else if (a == "--only")
      only = split(next());
    else if (a == "--profile")
      profile = true;
    else {
      std::cerr << "usage: " << argv[0]
                << " [--steps N] [--threads 1,2] [--only NAME,...] [--profile]\n";
      return 2;
    }
  }
  const FlushDenormal flush;
  std::printf("xtape models: median training step and inference batch of %d steps\n", steps);
  std::printf("%-16s %8s %10s %10s\n", "model", "threads", "train ms", "infer ms");
  for (int threads : thread_counts) {
    xtape::kernels::set_num_threads(threads);
    for (const ModelCase& mc : model_cases()) {
      if (!only.empty() && std::find(only.begin(), only.end(), mc.name) == only.end()) continue;
      const auto [train, infer] = measure(mc, steps, profile);
      std::printf("%-16s %8d %10.3f %10.3f\n", mc.name.c_str(), threads, train, infer);
      std::printf("RESULT %s %d %.4f %.4f\n", mc.name.c_str(), threads, train, infer);
      std::fflush(stdout);
    }
  }
  return 0;
}
