// bench_volume: one training step (forward, sum loss, zero_grad, backward) of a Conv3D + relu
// layer followed by MaxPooling3D on a fixed NDHWC volume, median over --steps steps, for the
// thread counts of --threads. bench/reference/torch_volume.py times the same step in PyTorch.
//
// --input-grad 1 also computes the input's gradient (a layer inside a network).
//
// Usage: bench_volume [--steps N] [--threads 1,2] [--shape n,d,h,w,c] [--filters F] [--kernel K]
//                     [--input-grad 0|1]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {
std::vector<int> ints(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');) v.push_back(std::stoi(t));
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  int steps = 10, filters = 16, k = 3, input_grad = 0;
  std::vector<int> threads{1, 2}, shape{4, 16, 32, 32, 8};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--steps")
      steps = std::stoi(v);
    else if (a == "--threads")
      threads = ints(v);
    else if (a == "--shape")
      shape = ints(v);
    else if (a == "--filters")
      filters = std::stoi(v);
    else if (a == "--kernel")
      k = std::stoi(v);
    else if (a == "--input-grad")
      input_grad = std::stoi(v);
    else {
      std::fprintf(
          stderr,
          "usage: %s [--steps N] [--threads 1,2] [--shape n,d,h,w,c] [--filters F] [--kernel K] "
          "[--input-grad 0|1]\n",
          argv[0]);
      return 2;
    }
  }
  Rng rng(1);
  const Shape xs(shape.begin(), shape.end());
  std::vector<float> v(shape_size(xs));
  for (float& e : v) e = rng.uniform(-1.f, 1.f);
  Tensor x(xs, v);
  if (input_grad) x.set_requires_grad(true);
  Conv3D conv({.filters = static_cast<std::size_t>(filters),
               .kernel_size = {k},
               .padding = "same",
               .activation = "relu"});
  MaxPooling3D pool;
  std::printf("Conv3D(%d, %d, same, relu) + MaxPooling3D(2) on (%d, %d, %d, %d, %d), %d steps%s\n",
              filters, k, shape[0], shape[1], shape[2], shape[3], shape[4], steps,
              input_grad ? ", input gradient too" : "");
  for (int t : threads) {
    omp_set_num_threads(t);
    std::vector<double> ms;
    for (int s = 0; s < steps + 2; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      for (auto w : conv.weights()) w.value.zero_grad();
      if (input_grad) x.zero_grad();
      Tensor loss = sum(pool(conv(x, true), true));
      loss.backward();
      (void)conv.kernel().grad().data()[0];
      const auto t1 = std::chrono::steady_clock::now();
      if (s >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("RESULT step_ms_%dthreads %.2f\n", t, ms[ms.size() / 2]);
  }
  return 0;
}
