// bench_gemm: sgemm GFLOP/s of xtape's kernels/gemm against OpenBLAS's cblas_sgemm (when the
// build found Debian's libopenblas-dev: meson's dependency('openblas', required: false), bench/
// only; the library keeps its own kernels), next to the machine's measured FMA peak.
//
// Shapes (row-major C = op(A) op(B), M x N x K):
//   large:  1024^3 and 2048^3 (NN);
//   dense layers: M = 1, 8, 32, 128 rows (a batch) times K x N = 512 x 512 and 784 x 512 (NN,
//   the forward pass), and at M = 128 the two backward products: the kernel gradient
//   X^T G (K x N x M, TN) and the input gradient G W^T (M x K x N, NT).
// For each thread count, every shape runs xtape then OpenBLAS; a figure is the median of
// several repetitions, each a loop of calls lasting about 20 ms or more.
// Prints "RESULT <shape> <threads> <xtape GFLOP/s> <openblas GFLOP/s or -> <peak>" lines.
//
// Usage: bench_gemm [--threads 1,2] [--quick] [--peak]
//   --quick: fewer repetitions, no 2048^3; --peak: only the FMA peak of each thread count
//   ("PEAK <threads> <GFLOP/s>" lines; on a VM whose two vCPUs may share one physical core,
//   the 2-thread peak says which placement a measurement had).
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/isa.hpp"
#include "kernels/threads.hpp"
#include "peak.hpp"

#ifdef XTAPE_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace {

struct GemmShape {
  std::string name;
  bool ta, tb;
  std::int64_t m, n, k;
};

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  bool quick = false, peak_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      thread_counts.clear();
      const std::string list = argv[++i];
      for (std::size_t p = 0; p < list.size();) {
        const std::size_t q = list.find(',', p);
        thread_counts.push_back(std::atoi(list.substr(p, q - p).c_str()));
        p = q == std::string::npos ? list.size() : q + 1;
      }
    } else if (a == "--quick")
      quick = true;
    else if (a == "--peak")
      peak_only = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads 1,2] [--quick] [--peak]\n", argv[0]);
      return 2;
    }
  }
  if (peak_only) {
    for (int threads : thread_counts)
      std::printf("PEAK %d %.1f\n", threads, xtape::bench::fma_peak(threads));
    return 0;
  }
  std::vector<GemmShape> shapes = {{"1024^3", false, false, 1024, 1024, 1024}};
  if (!quick) shapes.push_back({"2048^3", false, false, 2048, 2048, 2048});
  for (std::int64_t k : {512, 784})
    for (std::int64_t m : {1, 8, 32, 128})
      shapes.push_back(
          {std::to_string(m) + "x512x" + std::to_string(k) + "_NN", false, false, m, 512, k});
  for (std::int64_t k : {512, 784}) {
    shapes.push_back({std::to_string(k) + "x512x128_TN", true, false, k, 512, 128});       // X^T G
    shapes.push_back({"128x" + std::to_string(k) + "x512_NT", false, true, 128, k, 512});  // G W^T
  }
  // 10-class output layers (the founding model's 1600 -> 10 at batch 32, the MLP's 512 -> 10
  // at batch 128): forward, kernel gradient X^T G, input gradient G W^T.
  for (const auto& [m, k] : {std::pair<std::int64_t, std::int64_t>{32, 1600}, {128, 512}}) {
    const std::string mk = std::to_string(m), kk = std::to_string(k);
    shapes.push_back({mk + "x10x" + kk + "_NN", false, false, m, 10, k});
    shapes.push_back({kk + "x10x" + mk + "_TN", true, false, k, 10, m});
    shapes.push_back({mk + "x" + kk + "x10_NT", false, true, m, k, 10});
  }
#ifdef XTAPE_BENCH_OPENBLAS
  std::printf("OpenBLAS: %s\n", openblas_get_config());
#else
  std::printf(
      "OpenBLAS: not found at configure time (apt-get install libopenblas-dev, then "
      "reconfigure)\n");
#endif
  std::printf("kernels %s (%zu floats a vector); peak loop %s\n", xtape::kernels::isa(),
              xtape::kernels::simd_floats(), xsimd::default_arch::name());
  const xtape::kernels::SgemmBlocking blocking = xtape::kernels::sgemm_blocking();
  std::printf("blocking from a %lld KiB L2: MC %lld rows, KC %lld, NC %lld micro-panels\n",
              static_cast<long long>(blocking.l2_bytes / 1024), static_cast<long long>(blocking.mc),
              static_cast<long long>(blocking.kc), static_cast<long long>(blocking.nc_panels));
  const int reps = quick ? 5 : 9;
  std::printf("%-18s %4s %12s %12s %8s %10s %10s\n", "shape (MxNxK)", "thr", "xtape GF/s",
              "OpenBLAS GF/s", "x/blas", "xtape/pk", "blas/pk");
  for (int threads : thread_counts) {
    const double peak = xtape::bench::fma_peak(threads);
    std::printf("FMA peak, %d thread(s): %.1f GFLOP/s\n", threads, peak);
    xtape::kernels::set_num_threads(threads);
#ifdef XTAPE_BENCH_OPENBLAS
    openblas_set_num_threads(threads);
#endif
    for (const GemmShape& s : shapes) {
      const std::int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
      const auto a = random_vector(static_cast<std::size_t>(s.m * s.k), 1);
      const auto b = random_vector(static_cast<std::size_t>(s.k * s.n), 2);
      std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
      const double flops = 2.0 * s.m * s.n * s.k;
      const int inner = static_cast<int>(std::max(1.0, std::ceil(2e-2 * 50e9 / flops)));
      auto gflops = [&](auto&& call) {
        const double t = xtape::bench::median_time(
            [&] {
              for (int i = 0; i < inner; ++i) call();
            },
            reps);
        return flops * inner / t / 1e9;
      };
      const double x = gflops([&] {
        xtape::kernels::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), ldb, 0.f,
                              c.data(), s.n);
      });
      double o = -1;
#ifdef XTAPE_BENCH_OPENBLAS
      o = gflops([&] {
        cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans,
                    s.tb ? CblasTrans : CblasNoTrans, static_cast<int>(s.m), static_cast<int>(s.n),
                    static_cast<int>(s.k), 1.f, a.data(), static_cast<int>(lda), b.data(),
                    static_cast<int>(ldb), 0.f, c.data(), static_cast<int>(s.n));
      });
      // OpenBLAS's workers spin for about 2^28 cycles after a call (0.1 s at 2.7 GHz); while
      // they do, xtape's load guard sees the second core taken and runs on one thread. Let
      // them sleep before xtape's next shape.
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
#endif
      if (o > 0)
        std::printf("%-18s %4d %12.1f %12.1f %7.2fx %9.0f%% %9.0f%%\n", s.name.c_str(), threads, x,
                    o, x / o, 100 * x / peak, 100 * o / peak);
      else
        std::printf("%-18s %4d %12.1f %12s %8s %9.0f%%\n", s.name.c_str(), threads, x, "-", "",
                    100 * x / peak);
      std::printf("RESULT %s %d %.2f %s %.1f\n", s.name.c_str(), threads, x,
                  o > 0 ? std::to_string(o).c_str() : "-", peak);
      std::fflush(stdout);
    }
  }
  return 0;
}
