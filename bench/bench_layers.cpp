// bench_layers: the training step (forward in training mode + backward of a fixed random output
// gradient, input gradient included) of each layer type, one layer at a time, on the shapes of
// bench/reference/torch_layers.py (which times PyTorch's equivalents).
//
// For each case and thread count it prints the median over --steps timed steps after --warmup
// untimed ones, and a line "RESULT <case> <threads> <ms> <shape>" read by
// bench/compare_layers.sh. A step zeroes the weights' and the input's gradients first, as
// PyTorch's zero_grad does. Denormals are flushed, as Model::fit runs.
//
// "scale" (x * 2) is one elementwise pass forward and one backward: the unit in which the
// compare script expresses the normalization layers' cost.
//
// Usage: bench_layers [--steps N] [--warmup N] [--threads 1,2] [--only PREFIX[,PREFIX...]]
//                     [--profile]   (adds the per-op table of each case, autodiff/profiler.hpp)
//                     [--read-output] (reads each step's output, as a loss would: a deferred
//                                      forward, conv2d's or depthwise_conv2d's, is then computed)
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

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

using clock_type = std::chrono::steady_clock;
using LayerPtr = std::shared_ptr<Layer>;

struct Case {
  std::string name;
  Shape input;                                  // with the batch axis
  std::function<std::vector<LayerPtr>()> make;  // applied in order
};

template <class L, class... A>
std::function<std::vector<LayerPtr>()> one(A... args) {
  return [=] { return std::vector<LayerPtr>{std::make_shared<L>(args...)}; };
}

std::function<std::vector<LayerPtr>()> act(const std::string& name) {
  return [=] { return std::vector<LayerPtr>{std::make_shared<Activation>(name)}; };
}

// The cases; names and shapes must match bench/reference/torch_layers.py.
std::vector<Case> cases() {
  const Shape img{32, 28, 28, 32}, small_img{32, 14, 14, 32}, seq{32, 64, 256}, s1d{32, 128, 64};
  std::vector<Case> c;
  auto scale = [] {
    return std::vector<LayerPtr>{std::make_shared<Lambda>([](const Tensor& x) { return x * 2.f; })};
  };
  c.push_back({"scale", img, scale});
  c.push_back({"scale(rank-3)", seq, scale});
  c.push_back({"BatchNormalization", img, one<BatchNormalization>(BatchNormalizationOptions{})});
  c.push_back({"Conv2D+BN+relu", img, [] {
                 return std::vector<LayerPtr>{
                     std::make_shared<Conv2D>(
                         ConvOptions{.filters = 32, .kernel_size = {3}, .padding = "same"}),
                     std::make_shared<BatchNormalization>(BatchNormalizationOptions{}),
                     std::make_shared<Activation>("relu")};
               }});
  c.push_back({"Conv2D(3x3,same)", img,
               one<Conv2D>(ConvOptions{.filters = 32, .kernel_size = {3}, .padding = "same"})});
  c.push_back({"LayerNormalization", seq, one<LayerNormalization>(LayerNormalizationOptions{})});
  c.push_back(
      {"GroupNormalization", img, one<GroupNormalization>(GroupNormalizationOptions{.groups = 8})});
  c.push_back({"Conv2DTranspose", small_img,
               one<Conv2DTranspose>(ConvOptions{
                   .filters = 32, .kernel_size = {3}, .strides = {2}, .padding = "same"})});
  c.push_back({"DepthwiseConv2D", img,
               one<DepthwiseConv2D>(ConvOptions{.kernel_size = {3}, .padding = "same"})});
  c.push_back(
      {"SeparableConv2D", img,
       one<SeparableConv2D>(ConvOptions{.filters = 64, .kernel_size = {3}, .padding = "same"})});
  c.push_back({"Conv1D(groups=4)", s1d,
               one<Conv1D>(ConvOptions{
                   .filters = 64, .kernel_size = {3}, .padding = "same", .groups = 4})});
  c.push_back({"Conv1DTranspose", Shape{32, 64, 32},
               one<Conv1DTranspose>(ConvOptions{
                   .filters = 32, .kernel_size = {3}, .strides = {2}, .padding = "same"})});
  c.push_back({"AveragePooling1D", s1d, one<AveragePooling1D>(PoolOptions{.pool_size = {2}})});
  c.push_back({"AveragePooling2D", img, one<AveragePooling2D>(PoolOptions{.pool_size = {2}})});
  c.push_back({"MaxPooling2D", img, one<MaxPooling2D>(PoolOptions{.pool_size = {2}})});
  c.push_back({"GlobalAveragePooling2D", img, one<GlobalAveragePooling2D>(GlobalPoolOptions{})});
  c.push_back(
      {"UpSampling2D(nearest)", small_img,
       one<UpSampling2D>(std::array<std::size_t, 2>{2, 2}, std::string("nearest"), std::string())});
  c.push_back({"UpSampling2D(bilinear)", small_img,
               one<UpSampling2D>(std::array<std::size_t, 2>{2, 2}, std::string("bilinear"),
                                 std::string())});
  c.push_back({"ZeroPadding2D", img,
               one<ZeroPadding2D>(std::array<std::array<std::size_t, 2>, 2>{{{1, 1}, {1, 1}}},
                                  std::string())});
  c.push_back({"Dense(rank-3)", seq, one<Dense>(DenseOptions{.units = 256})});
  c.push_back({"EinsumDense(abc,cd->abd)", seq,
               one<EinsumDense>(EinsumDenseOptions{
                   .equation = "abc,cd->abd", .output_shape = {64, 256}, .bias_axes = "d"})});
  c.push_back({"EinsumDense(abc,cde->abde)", seq,
               one<EinsumDense>(EinsumDenseOptions{
                   .equation = "abc,cde->abde", .output_shape = {64, 8, 32}, .bias_axes = "de"})});
  for (const char* a :
       {"relu", "gelu", "silu", "mish", "elu", "leaky_relu", "softplus", "sigmoid", "tanh"})
    c.push_back({std::string("Activation(") + a + ")", seq, act(a)});
  c.push_back({"Softmax", seq, one<Softmax>(SoftmaxOptions{})});
  c.push_back({"Dropout(0.5)", seq, one<Dropout>(DropoutOptions{.rate = 0.5f, .seed = 3})});
  c.push_back(
      {"GaussianNoise(0.1)", seq, one<GaussianNoise>(NoiseOptions{.stddev = 0.1f, .seed = 3})});
  return c;
}

Tensor random_tensor(const Shape& s, Rng& rng) {
  std::size_t n = 1;
  for (auto e : s) n *= e;
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(-1.f, 1.f);
  return Tensor(s, v);
}

std::string dims_str(const Shape& s) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

}  // namespace

int main(int argc, char** argv) {
  int steps = 30, warmup = 5;
  bool profile = false, read_output = false;
  std::vector<int> thread_counts = {1, 2};
  std::vector<std::string> only;
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
    else if (a == "--warmup")
      warmup = std::max(0, std::atoi(next().c_str()));
    else if (a == "--threads") {
      thread_counts.clear();
      for (const auto& t : split(next())) thread_counts.push_back(std::atoi(t.c_str()));
    } else if (a == "--only")
      only = split(next());
    else if (a == "--profile")
      profile = true;
    else if (a == "--read-output")
      read_output = true;
    else {
      std::cerr << "usage: " << argv[0]
                << " [--steps N] [--warmup N] [--threads 1,2] [--only NAME,...] [--profile]"
                   " [--read-output]\n";
      return 2;
    }
  }
  const FlushDenormal flush;
  std::printf("xtape layers: forward (training) + backward, median of %d steps after %d warm-up\n",
              steps, warmup);
  std::printf("%-28s %-16s %8s %10s\n", "layer", "input", "threads", "ms");
  for (int threads : thread_counts) {
    xtape::kernels::set_num_threads(threads);
    for (const Case& c : cases()) {
      if (!only.empty() && std::none_of(only.begin(), only.end(), [&](const std::string& o) {
            return c.name.rfind(o, 0) == 0;
          }))
        continue;
      set_random_seed(5);
      Rng rng(17);
      auto layers = c.make();
      Tensor x = random_tensor(c.input, rng);
      x.set_requires_grad();
      Tensor gy;
      std::vector<optim::Variable> vars;
      auto forward = [&] {
        Tensor y = x;
        for (auto& l : layers) y = (*l)(y, true);
        return y;
      };
      {
        const Tensor y = forward();  // builds the layers
        gy = random_tensor(y.shape(), rng);
        for (auto& l : layers)
          for (auto& v : l->trainable_variables()) vars.push_back(v);
      }
      auto step = [&] {
        for (auto& v : vars) v.value.zero_grad();
        x.zero_grad();
        Tensor y = forward();
        if (read_output) {
          const Tensor& yc = y;
          volatile float r = yc.data()[0];  // as a loss would: computes a deferred forward
          (void)r;
        }
        y.backward(gy);
        const Tensor gx = x.grad();
        volatile float s = gx.data()[0];  // const read: computes a deferred result
        (void)s;
      };
      for (int i = 0; i < warmup; ++i) step();
      std::vector<double> t;
      for (int i = 0; i < steps; ++i) {
        const auto t0 = clock_type::now();
        step();
        t.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
      }
      const double ms = median(t) * 1e3;
      std::printf("%-28s %-16s %8d %10.3f\n", c.name.c_str(), dims_str(c.input).c_str(), threads,
                  ms);
      std::printf("RESULT %s %d %.4f %s\n", c.name.c_str(), threads, ms, dims_str(c.input).c_str());
      if (profile) {
        profiler_start(/*by_shape=*/true);
        for (int i = 0; i < steps; ++i) {
          profiler_mark();
          step();
        }
        for (const auto& o : profiler_stop())
          std::printf("    %-40s fwd %8.3f  bwd %8.3f ms/step\n", o.op.c_str(),
                      o.forward_ms / steps, o.backward_ms / steps);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
