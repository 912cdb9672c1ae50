// A tour of the tape: gradients of a custom op written without gradient code, checked against a
// finite difference, then a tiny regression trained with plain gradient descent.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "xtape.hpp"

using namespace xtape;

int main() {
  // 1. A standardized kernel, as in the founding example: no backward code anywhere.
  Rng rng(42);
  Tensor k = Tensor::empty({3, 3, 1, 4});
  for (std::size_t i = 0; i < k.size(); ++i) k.data()[i] = rng.normal();
  k.set_requires_grad();
  Tensor x = Tensor::empty({2, 6, 6, 1});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
  auto f = [&](const Tensor& kernel) {
    auto [mean, var] = moments(kernel, {0, 1, 2}, true);
    return sum(square(conv2d(x, (kernel - mean) / sqrt(var + 1e-10f))));
  };
  Tensor y = f(k);
  y.backward();
  // Central difference on one element, in double.
  const float h = 1e-2f, saved = k.data()[5];
  double up, down;
  {
    NoGrad ng;
    k.data()[5] = saved + h;
    up = f(k).item();
    k.data()[5] = saved - h;
    down = f(k).item();
    k.data()[5] = saved;
  }
  std::printf("standardized conv: loss %.5f, d loss/d k[5]: tape %.5f, finite difference %.5f\n", y.item(),
              k.grad().data()[5], (up - down) / (2 * h));

  // 2. Fit y = 3x - 2 with a 1x1 "dense" layer by hand-written gradient descent.
  Tensor w = Tensor::zeros({1, 1}).set_requires_grad();
  Tensor b = Tensor::zeros({1}).set_requires_grad();
  Tensor xs = Tensor::empty({64, 1}), ys = Tensor::empty({64, 1});
  for (std::size_t i = 0; i < 64; ++i) {
    xs.data()[i] = rng.uniform(-1.f, 1.f);
    ys.data()[i] = 3.f * xs.data()[i] - 2.f + 0.01f * rng.normal();
  }
  for (int step = 0; step <= 200; ++step) {
    Tensor loss = mean(square(matmul(xs, w) + b - ys));
    w.zero_grad();
    b.zero_grad();
    loss.backward();
    {
      NoGrad ng;
      w.assign(w - w.grad() * 0.3f);
      b.assign(b - b.grad() * 0.3f);
    }
    if (step % 50 == 0)
      std::printf("step %3d  loss %.6f  w %.4f  b %.4f  (tape records alive: %zu)\n", step, loss.item(),
                  w.data()[0], b.data()[0], tape_size());
  }
  return std::abs(w.data()[0] - 3.f) < 0.05f && std::abs(b.data()[0] + 2.f) < 0.05f ? 0 : 1;
}
