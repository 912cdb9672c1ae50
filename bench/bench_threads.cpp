// Threads against one thread on small and mid-sized training work, idle and under load
// (issue 16): the small Conv1D classifier (input (64, 1); Conv1D(16, 5, 'same', relu),
// MaxPooling1D(2), Conv1D(32, 3, relu), MaxPooling1D(2), Flatten, Dense(3, softmax); 3,000
// synthetic samples, batch 32, 2 epochs of fit) and the founding model at batch 32 (fit over
// 3,200 synthetic 28x28 images, one epoch: 100 steps). Each is timed with 1 and 2 threads
// (xtape::set_num_threads), on a quiet machine and while a child process spins on a core, in
// alternating order, `--runs` times; the table gives medians and the ratios 2 threads / 1.
// Absolute figures depend on what else the machine runs: the load average is printed.
//
// With --configured, each workload is timed instead with the thread count the library chose
// from its environment (no set_num_threads call: XTAPE_NUM_THREADS, OMP_NUM_THREADS, the
// cgroup's CPU limit), which bench/cpu_quota.sh uses inside a cgroup with a CPU limit.
//
// Usage: bench_threads [--runs N] [--model conv1d|founding|both] [--configured]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// A child process that keeps one core busy until it is killed.
class BusyCore {
 public:
  BusyCore() {
    pid_ = fork();
    if (pid_ == 0) {
      volatile unsigned long x = 0;
      for (;;) x = x + 1;
    }
  }
  ~BusyCore() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  BusyCore(const BusyCore&) = delete;
  BusyCore& operator=(const BusyCore&) = delete;

 private:
  pid_t pid_ = -1;
};

// The same layers as the founding example (the standardized convolutions of its recipe).
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

struct Workload {
  std::string key, name;
  std::function<std::unique_ptr<Sequential>()> make;
  Tensor x, y;
  int epochs = 1;
};

Tensor uniform(std::vector<std::size_t> shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = rng.uniform();
  return t;
}

Tensor one_hot(std::size_t n, std::size_t classes, Rng& rng) {
  Tensor t = Tensor::zeros({n, classes});
  for (std::size_t i = 0; i < n; ++i) t.data()[i * classes + rng.below(classes)] = 1.f;
  return t;
}

Workload conv1d_workload() {
  Rng rng(7);
  Workload w;
  w.key = "conv1d";
  w.name = "conv1d classifier (3000 x (64, 1), batch 32, 2 epochs)";
  w.make = [] {
    auto m = std::make_unique<Sequential>(std::vector<std::shared_ptr<Layer>>{
        Input({64, 1}),
        std::make_shared<Conv1D>(ConvOptions{
            .filters = 16, .kernel_size = {5}, .padding = "same", .activation = "relu"}),
        std::make_shared<MaxPooling1D>(PoolOptions{.pool_size = {2}}),
        std::make_shared<Conv1D>(
            ConvOptions{.filters = 32, .kernel_size = {3}, .activation = "relu"}),
        std::make_shared<MaxPooling1D>(PoolOptions{.pool_size = {2}}),
        std::make_shared<Flatten>(),
        std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"}),
    });
    m->compile("categorical_crossentropy", "adam", {"accuracy"});
    return m;
  };
  w.x = uniform({3000, 64, 1}, rng);
  w.y = one_hot(3000, 3, rng);
  w.epochs = 2;
  return w;
}

Workload founding_workload() {
  Rng rng(11);
  Workload w;
  w.key = "founding";
  w.name = "founding model (3200 x (28, 28, 1), batch 32, 1 epoch)";
  w.make = [] {
    auto m = std::make_unique<Sequential>(std::vector<std::shared_ptr<Layer>>{
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
    m->compile("categorical_crossentropy", "adam", {"accuracy"});
    return m;
  };
  w.x = uniform({3200, 28, 28, 1}, rng);
  w.y = one_hot(3200, 10, rng);
  return w;
}

// Wall time of model construction and fit, in seconds; threads 0 keeps the configured count.
double time_fit(const Workload& w, int threads) {
  if (threads > 0) set_num_threads(threads);
  set_random_seed(1);
  const auto t0 = clock_type::now();
  auto model = w.make();
  model->fit(w.x, w.y, {.batch_size = 32, .epochs = w.epochs, .verbose = 0});
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::string which = "both";
  bool configured = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--model" && i + 1 < argc)
      which = argv[++i];
    else if (a == "--configured")
      configured = true;
    else {
      std::fprintf(stderr, "usage: %s [--runs N] [--model conv1d|founding|both] [--configured]\n",
                   argv[0]);
      return 2;
    }
  }
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("load average at start: %s; OMP_WAIT_POLICY in the environment: %s\n",
              load_average().c_str(),
              policy ? policy : "(unset: xtape's default, a spin of about 200 us)");
  std::vector<Workload> loads;
  if (which == "conv1d" || which == "both") loads.push_back(conv1d_workload());
  if (which == "founding" || which == "both") loads.push_back(founding_workload());
  if (loads.empty()) {
    std::fprintf(stderr, "unknown --model %s\n", which.c_str());
    return 2;
  }
  if (configured) {
    std::printf("threads as configured: %d\n", num_threads());
    for (const auto& w : loads) {
      time_fit(w, 0);  // warm-up
      std::vector<double> t;
      for (int r = 0; r < runs; ++r) t.push_back(time_fit(w, 0));
      std::printf("%s, median of %d runs: %.3f s\n", w.name.c_str(), runs, median(t));
      std::printf("RESULT %s configured %d %.4f\n", w.key.c_str(), num_threads(), median(t));
    }
    return 0;
  }
  for (const auto& w : loads) {
    time_fit(w, 1);  // warm-up: allocator cache, libgomp's pool
    time_fit(w, 2);
    // t[loaded][threads - 1]
    std::vector<double> t[2][2];
    for (int r = 0; r < runs; ++r)
      for (int loaded = 0; loaded < 2; ++loaded) {
        std::unique_ptr<BusyCore> busy;
        if (loaded) busy = std::make_unique<BusyCore>();
        // Alternate which thread count goes first.
        const int first = 1 + (r + loaded) % 2, second = 3 - first;
        t[loaded][first - 1].push_back(time_fit(w, first));
        t[loaded][second - 1].push_back(time_fit(w, second));
      }
    std::printf("\n%s, median of %d runs\n", w.name.c_str(), runs);
    std::printf("%-28s %10s %10s %10s\n", "", "1 thread", "2 threads", "2t / 1t");
    const char* label[2] = {"idle (s)", "one core busy (s)"};
    for (int loaded = 0; loaded < 2; ++loaded) {
      const double t1 = median(t[loaded][0]), t2 = median(t[loaded][1]);
      std::printf("%-28s %10.3f %10.3f %9.2fx\n", label[loaded], t1, t2, t2 / t1);
      std::printf("RESULT %s %s t1 %.4f t2 %.4f ratio %.3f\n", w.key.c_str(),
                  loaded ? "loaded" : "idle", t1, t2, t2 / t1);
    }
  }
  std::printf("\nload average at end: %s\n", load_average().c_str());
  return 0;
}
