// bench_model: the founding model (examples/standardized_conv2d_mnist.cpp) end to end.
//
// For 1 and 2 threads it measures, at batch 128:
//   - the median training step (gather the batch, forward in training mode, loss, zero_grad,
//     backward, Adam apply, loss.item(), accuracy: the work of one step of Sequential::fit, in
//     fit's floating-point mode, denormals flushed),
//     and the projected epoch (422 steps = 54,000 samples);
//   - optionally (--epoch) the wall time of one real Sequential::fit epoch over 54,000 samples;
//   - inference per sample under NoGrad (forward + loss, as evaluate) against training per
//     sample, and Sequential::evaluate over 6,000 samples;
//   - system allocations and cache hits of the tensor allocator per steady-state step;
//   - peak RSS (getrusage) of the process.
// Data: MNIST from the usual cache directory when present, synthetic otherwise (--synthetic
// forces it). The last lines ("RESULT key value") are read by bench/compare.sh.
//
// --profile adds a per-op table of the training step (the tape profiler, autodiff/profiler.hpp).
//
// Usage: bench_model [--steps N] [--threads 1,2] [--epoch] [--profile] [--synthetic] [--seed S]
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "autodiff/storage.hpp"
#include "profile_table.hpp"
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

std::unique_ptr<Sequential> make_model() {
  const std::size_t num_classes = 10;
  auto model = std::make_unique<Sequential>(std::vector<std::shared_ptr<Layer>>{
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
  model->compile("categorical_crossentropy", "adam", {"accuracy"});
  return model;
}

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

double current_rss_mb() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0);
}

struct Data {
  Tensor x, y;  // (n, 28, 28, 1), one-hot (n, 10)
  bool real = false;
};

Data load(bool synthetic, std::uint64_t seed) {
  Data d;
  if (!synthetic) {
    try {
      auto [train, test] = datasets::mnist::load_data();
      d.x = reshape(datasets::to_float(train.first, 1.f / 255.f), {-1, 28, 28, 1});
      d.y = datasets::to_categorical(train.second, 10);
      d.real = true;
      return d;
    } catch (const std::exception& e) {
      std::cerr << "MNIST not found (" << e.what() << "); using synthetic data\n";
    }
  }
  // Synthetic: 60,000 random images in [0, 1) and random labels.
  const std::size_t n = 60000;
  Rng rng(seed);
  d.x = Tensor::empty({n, 28, 28, 1});
  for (std::size_t i = 0; i < d.x.size(); ++i) d.x.data()[i] = rng.uniform();
  d.y = Tensor::zeros({n, 10});
  for (std::size_t i = 0; i < n; ++i) d.y.data()[i * 10 + rng.below(10)] = 1.f;
  return d;
}

struct Figures {
  int threads = 0;
  double step_ms = 0, infer_batch_ms = 0, evaluate_ms_per_sample = 0, epoch_s = -1;
  double sys_allocs_per_step = 0, cache_hits_per_step = 0;
};

Figures run(const Data& data, int threads, int steps, bool epoch, bool profile,
            std::uint64_t seed) {
  set_num_threads(threads);
  const FlushDenormal flush;  // as Sequential::fit runs
  Figures f;
  f.threads = threads;
  set_random_seed(seed);
  auto model = make_model();
  const std::size_t batch = 128, train_n = 54000;
  const auto loss_fn = losses::get("categorical_crossentropy");
  const auto acc_fn = metrics::get("accuracy", "categorical_crossentropy");
  const auto vars = model->trainable_variables();
  Rng order_rng(seed + 1);
  std::vector<std::size_t> rows(batch);
  // One step of Sequential::fit on a random batch.
  auto step = [&] {
    for (auto& r : rows) r = order_rng.below(train_n);
    const Tensor xb = gather_rows(data.x, rows), yb = gather_rows(data.y, rows);
    const Tensor yp = (*model)(xb, true);
    Tensor loss = (*loss_fn)(yb, yp);
    for (auto v : vars) v.value.zero_grad();
    loss.backward();
    model->optimizer()->apply(vars);
    volatile double lv = loss.item();
    (void)lv;
    acc_fn->update_state(yb, yp);
    volatile double a = acc_fn->result();
    (void)a;
  };
  for (int i = 0; i < 10; ++i) step();  // warm-up: fills the allocator cache and scratch
  const auto s0 = detail::allocator_stats();
  std::vector<double> t;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = clock_type::now();
    step();
    t.push_back(since(t0));
  }
  const auto s1 = detail::allocator_stats();
  f.step_ms = median(t) * 1e3;
  f.sys_allocs_per_step = double(s1.system_allocations - s0.system_allocations) / steps;
  f.cache_hits_per_step = double(s1.cache_hits - s0.cache_hits) / steps;

  if (profile)  // per-op breakdown of the same step (tape profiler)
    xtape::bench::print_profile_table("per-op time, " + std::to_string(threads) + " thread(s)",
                                      steps, step);

  // Inference: forward + loss under NoGrad on a batch of 128 (what evaluate does per batch).
  {
    NoGrad no_grad;
    std::iota(rows.begin(), rows.end(), train_n);
    const Tensor xb = gather_rows(data.x, rows), yb = gather_rows(data.y, rows);
    std::vector<double> ti;
    for (int i = 0; i < steps + 5; ++i) {
      const auto t0 = clock_type::now();
      const Tensor yp = (*model)(xb, false);
      volatile float l = (*loss_fn)(yb, yp).data()[0];
      (void)l;
      if (i >= 5) ti.push_back(since(t0));
    }
    f.infer_batch_ms = median(ti) * 1e3;
  }
  // Sequential::evaluate over the 6,000 held-out samples.
  {
    const Tensor xv = slice_rows(data.x, train_n, 60000), yv = slice_rows(data.y, train_n, 60000);
    model->evaluate(xv, yv, {.batch_size = batch, .verbose = 0});
    std::vector<double> te;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = clock_type::now();
      model->evaluate(xv, yv, {.batch_size = batch, .verbose = 0});
      te.push_back(since(t0));
    }
    f.evaluate_ms_per_sample = median(te) * 1e3 / 6000.0;
  }
  if (epoch) {
    const Tensor xt = slice_rows(data.x, 0, train_n), yt = slice_rows(data.y, 0, train_n);
    const History h = model->fit(xt, yt, {.batch_size = batch, .epochs = 1, .verbose = 0});
    f.epoch_s = h.epoch_seconds.at(0);
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 60;
  bool epoch = false, synthetic = false, profile = false;
  std::uint64_t seed = 1337;
  std::vector<int> thread_counts = {1, 2};
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
    else if (a == "--epoch")
      epoch = true;
    else if (a == "--profile")
      profile = true;
    else if (a == "--synthetic")
      synthetic = true;
    else if (a == "--seed")
      seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--threads") {
      thread_counts.clear();
      const std::string list = next();
      for (std::size_t p = 0; p < list.size();) {
        const std::size_t q = list.find(',', p);
        thread_counts.push_back(std::atoi(list.substr(p, q - p).c_str()));
        p = q == std::string::npos ? list.size() : q + 1;
      }
    } else {
      std::cerr << "usage: " << argv[0]
                << " [--steps N] [--threads 1,2] [--epoch] [--profile] [--synthetic] [--seed S]\n";
      return 2;
    }
  }
  const Data data = load(synthetic, seed);
  const double rss_data = current_rss_mb();
  std::printf("founding model, batch 128, %s data, %d timed steps per thread count\n",
              data.real ? "MNIST" : "synthetic", steps);
  std::printf("RSS after loading data: %.0f MB\n\n", rss_data);

  std::vector<Figures> all;
  for (int t : thread_counts) all.push_back(run(data, t, steps, false, profile, seed));
  // Peak RSS of the step, inference and evaluate measurements, before any --epoch run (whose
  // 54,000-sample slice of the data is a copy made by this benchmark, not by training).
  const double rss_steps = peak_rss_mb();
  if (epoch)
    for (Figures& f : all) {
      std::fprintf(stderr, "timing one fit epoch on %d thread(s)...\n", f.threads);
      f.epoch_s = run(data, f.threads, 1, true, false, seed).epoch_s;
    }

  const double per_epoch_steps = 422;
  std::printf("%-8s %10s %12s %10s %12s %12s %12s %8s %10s %10s\n", "threads", "step ms",
              "epoch s(proj)", "epoch s", "train us/smp", "infer us/smp", "eval us/smp",
              "train/inf", "sys alloc", "cache hit");
  for (const Figures& f : all) {
    char ep[32];
    if (f.epoch_s >= 0)
      std::snprintf(ep, sizeof ep, "%.2f", f.epoch_s);
    else
      std::snprintf(ep, sizeof ep, "-");
    const double train_us = f.step_ms * 1e3 / 128, infer_us = f.infer_batch_ms * 1e3 / 128;
    std::printf("%-8d %10.2f %12.2f %10s %12.1f %12.1f %12.1f %8.1fx %10.2f %10.1f\n", f.threads,
                f.step_ms, f.step_ms * per_epoch_steps / 1e3, ep, train_us, infer_us,
                f.evaluate_ms_per_sample * 1e3, train_us / infer_us, f.sys_allocs_per_step,
                f.cache_hits_per_step);
  }
  const double rss = peak_rss_mb();
  std::printf(
      "\npeak RSS: %.0f MB during the step measurements (data alone: %.0f MB); %.0f MB overall\n",
      rss_steps, rss_data, rss);
  for (std::size_t i = 1; i < all.size(); ++i)
    std::printf("speed-up %d vs %d threads: %.2fx\n", all[i].threads, all[0].threads,
                all[0].step_ms / all[i].step_ms);
  for (const Figures& f : all) {
    std::printf("RESULT step_ms_%dt %.3f\n", f.threads, f.step_ms);
    if (f.epoch_s >= 0) std::printf("RESULT epoch_s_%dt %.3f\n", f.threads, f.epoch_s);
  }
  std::printf("RESULT peak_rss_mb %.0f\n", rss_steps);
  return 0;
}
