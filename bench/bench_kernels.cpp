// bench_kernels: throughput of the hot CPU kernels against this machine's own limits.
//
// Measures the FMA peak (an xsimd loop of independent accumulator chains per thread,
// bench/peak.hpp) and a streaming-copy bandwidth, then prints, for 1 and 2 threads, GFLOP/s and the
// fraction of peak for sgemm 1024^3, the three GEMM shapes of conv2, and the founding model's conv
// layers at batch 128 (--batch N: at N):
//   conv2: 13x13x32 -> 11x11x64, 3x3 valid (forward, backward_input, backward_kernel). All
//          three passes run as Winograd F(2x2, 3x3): GFLOP/s counts the direct
//          convolution's FLOPs (effective throughput, which may pass the peak), and the
//          "executed" figure counts the multiply-adds the Winograd GEMMs really do.
//   conv1: 28x28x1 -> 26x26x32, 3x3 valid (forward, backward_kernel; memory-bound, so also
//          the effective bandwidth of its compulsory traffic as a fraction of the copy figure).
//   vgg:   the first layer of a CIFAR-sized VGG (32x32x3 -> 32, 3x3 same, batch 64) beside the
//          wide layers after it (32 -> 32 at 32x32, 64 -> 64 at 16x16, both Winograd).
// Every figure is the median of several repetitions after a warm-up call.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "kernels/isa.hpp"
#include "kernels/threads.hpp"
#include "kernels/winograd.hpp"
#include "peak.hpp"

namespace {

using batch = xsimd::batch<float>;
using xtape::bench::fma_peak;
using xtape::bench::median_time;

// Streaming copy bandwidth in GB/s (bytes read + bytes written) of a 256 MiB buffer.
double copy_bandwidth(int threads) {
  const std::size_t n = std::size_t{1} << 26;
  std::vector<float> src(n, 1.f), dst(n, 0.f);
  auto run = [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::size_t blk = 0; blk < n / 4096; ++blk)
      std::memcpy(dst.data() + blk * 4096, src.data() + blk * 4096, 4096 * sizeof(float));
  };
  const double t = median_time(run, 7);
  return 2.0 * static_cast<double>(n) * sizeof(float) / t / 1e9;
}

std::vector<float> random_vector(std::size_t n) {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

xtape::kernels::Conv2DGeometry valid_3x3(std::int64_t n, std::int64_t hw, std::int64_t cin,
                                         std::int64_t cout) {
  xtape::kernels::Conv2DGeometry g;
  g.n = n, g.h = hw, g.w = hw, g.cin = cin, g.kh = 3, g.kw = 3, g.cout = cout;
  g.out_h = hw - 2, g.out_w = hw - 2;
  return g;
}

xtape::kernels::Conv2DGeometry same_3x3(std::int64_t n, std::int64_t hw, std::int64_t cin,
                                        std::int64_t cout) {
  xtape::kernels::Conv2DGeometry g = valid_3x3(n, hw, cin, cout);
  g.pad_top = g.pad_left = 1, g.out_h = hw, g.out_w = hw;
  return g;
}

struct ConvBuffers {
  xtape::kernels::Conv2DGeometry g;
  std::vector<float> x, k, y, gx, gk;
  explicit ConvBuffers(const xtape::kernels::Conv2DGeometry& geo)
      : g(geo),
        x(random_vector(static_cast<std::size_t>(g.n * g.h * g.w * g.cin))),
        k(random_vector(static_cast<std::size_t>(g.kh * g.kw * g.cin * g.cout))),
        y(random_vector(static_cast<std::size_t>(g.n * g.out_h * g.out_w * g.cout))),
        gx(x.size()),
        gk(k.size()) {}
  double flops() const { return 2.0 * g.n * g.out_h * g.out_w * g.kh * g.kw * g.cin * g.cout; }
};

// FLOPs of the 16 GEMMs of a Winograd F(2x2, 3x3) convolution with geometry g (0 when g does
// not take that path).
double winograd_flops(const xtape::kernels::Conv2DGeometry& g) {
  if (!xtape::kernels::winograd::supported(g)) return 0;
  return 2.0 * 16 * g.n * ((g.out_h + 1) / 2) * ((g.out_w + 1) / 2) * g.cin * g.cout;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = 9;
  // --batch N: the founding model's layers (conv1, conv2) at batch N instead of 128.
  std::int64_t batch_size = 128;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
      batch_size = std::max<std::int64_t>(1, std::atoll(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--batch N]\n", argv[0]);
      return 2;
    }
  }
  std::printf("kernels %s (%zu floats a vector); peak loop %s; omp max threads %d\n",
              xtape::kernels::isa(), xtape::kernels::simd_floats(), xsimd::default_arch::name(),
              omp_get_max_threads());
  const double peak[2] = {fma_peak(1), fma_peak(2)};
  const double bw[2] = {copy_bandwidth(1), copy_bandwidth(2)};
  std::printf("FMA peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)\n", peak[0], peak[1]);
  std::printf("copy bandwidth (read + write): %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n\n",
              bw[0], bw[1]);

  const std::int64_t s = 1024;
  const auto a = random_vector(static_cast<std::size_t>(s * s)),
             b = random_vector(static_cast<std::size_t>(s * s));
  std::vector<float> c(static_cast<std::size_t>(s * s));
  // The GEMMs inside conv2 at batch 128 (M = 128*11*11 output pixels, K = 3*3*32, N = 64), as
  // plain sgemm calls on data that is not in cache.
  const std::int64_t cm = 15488, ck = 288, cn = 64;
  const auto ca = random_vector(static_cast<std::size_t>(cm * ck)),
             cb = random_vector(static_cast<std::size_t>(cm * cn));
  const auto cw = random_vector(static_cast<std::size_t>(ck * cn));
  std::vector<float> cc(static_cast<std::size_t>(cm * ck));
  ConvBuffers conv2(valid_3x3(batch_size, 13, 32, 64)), conv1(valid_3x3(batch_size, 28, 1, 32));
  ConvBuffers vgg_first(same_3x3(64, 32, 3, 32)), vgg_wide(same_3x3(64, 32, 32, 32)),
      vgg_deep(same_3x3(64, 16, 64, 64));
  // Compulsory traffic of conv1 (bytes): forward reads x and writes y; backward_kernel reads both.
  const double conv1_bytes =
      (static_cast<double>(conv1.x.size()) + static_cast<double>(conv1.y.size())) * 4.0;

  std::printf("%-34s %8s %10s %8s %10s %8s\n", "kernel", "threads", "time ms", "GFLOP/s", "of peak",
              "GB/s");
  for (int threads : {1, 2}) {
    xtape::kernels::set_num_threads(threads);
    const double pk = peak[threads - 1];
    auto row = [&](const char* name, double flops, double t, double bytes, double executed = 0) {
      std::printf("%-34s %8d %10.3f %8.1f %9.1f%%", name, threads, t * 1e3, flops / t / 1e9,
                  100.0 * flops / t / 1e9 / pk);
      if (bytes > 0)
        std::printf(" %8.1f (%.0f%% of copy)", bytes / t / 1e9,
                    100.0 * bytes / t / 1e9 / bw[threads - 1]);
      if (executed > 0)
        std::printf("   Winograd, executed %.1f GFLOP/s (%.1f%% of peak)", executed / t / 1e9,
                    100.0 * executed / t / 1e9 / pk);
      std::printf("\n");
    };
    row("sgemm 1024^3", 2.0 * s * s * s,
        median_time(
            [&] {
              xtape::kernels::sgemm(false, false, s, s, s, 1.f, a.data(), s, b.data(), s, 0.f,
                                    c.data(), s);
            },
            reps),
        0);
    const double conv_gemm_flops = 2.0 * cm * ck * cn;
    row("sgemm 15488x64x288 NN", conv_gemm_flops,
        median_time(
            [&] {
              xtape::kernels::sgemm(false, false, cm, cn, ck, 1.f, ca.data(), ck, cw.data(), cn,
                                    0.f, cc.data(), cn);
            },
            reps),
        0);
    row("sgemm 288x64x15488 TN", conv_gemm_flops,
        median_time(
            [&] {
              xtape::kernels::sgemm(true, false, ck, cn, cm, 1.f, ca.data(), ck, cb.data(), cn, 0.f,
                                    cc.data(), cn);
            },
            reps),
        0);
    row("sgemm 15488x288x64 NT", conv_gemm_flops,
        median_time(
            [&] {
              xtape::kernels::sgemm(false, true, cm, ck, cn, 1.f, cb.data(), cn, cw.data(), cn, 0.f,
                                    cc.data(), ck);
            },
            reps),
        0);
    row("conv2 forward", conv2.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_forward(conv2.g, conv2.x.data(), conv2.k.data(),
                                             conv2.y.data());
            },
            reps),
        0, winograd_flops(conv2.g));
    row("conv2 backward_input", conv2.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_backward_input(conv2.g, conv2.y.data(), conv2.k.data(),
                                                    conv2.gx.data());
            },
            reps),
        0, winograd_flops(xtape::kernels::winograd::input_grad_geometry(conv2.g)));
    row("conv2 backward_kernel", conv2.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_backward_kernel(conv2.g, conv2.x.data(), conv2.y.data(),
                                                     conv2.gk.data());
            },
            reps),
        0, winograd_flops(conv2.g));
    // Both gradients in one region (conv2d_backward, as a training step calls it): against
    // the sum of the two rows above.
    row("conv2 backward (both, one region)", 2.0 * conv2.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_backward(conv2.g, conv2.x.data(), conv2.y.data(),
                                              conv2.k.data(), conv2.gx.data(), conv2.gk.data());
            },
            reps),
        0,
        winograd_flops(conv2.g) +
            winograd_flops(xtape::kernels::winograd::input_grad_geometry(conv2.g)));
    row("conv1 forward", conv1.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_forward(conv1.g, conv1.x.data(), conv1.k.data(),
                                             conv1.y.data());
            },
            reps),
        conv1_bytes);
    {
      // conv1 + bias, then 2x2 max pool (argmax kept for backward): as two passes over the
      // 11 MB activation, and fused per image (the activation never leaves the cache).
      xtape::kernels::Pool2DGeometry pg;
      pg.n = conv1.g.n, pg.h = conv1.g.out_h, pg.w = conv1.g.out_w, pg.c = conv1.g.cout;
      pg.pool_h = pg.pool_w = pg.stride_h = pg.stride_w = 2;
      pg.out_h = pg.h / 2, pg.out_w = pg.w / 2;
      std::vector<float> pooled(static_cast<std::size_t>(pg.n * pg.out_h * pg.out_w * pg.c));
      std::vector<std::int32_t> argmax(pooled.size());
      const auto bias = random_vector(static_cast<std::size_t>(conv1.g.cout));
      const xtape::kernels::ConvEpilogue ep{bias.data(), false};
      // Compulsory traffic when fused: x in, pooled values and argmax out.
      const double fused_bytes =
          (static_cast<double>(conv1.x.size()) + 2.0 * static_cast<double>(pooled.size())) * 4.0;
      row("conv1+bias, pool (2 passes)", conv1.flops(),
          median_time(
              [&] {
                xtape::kernels::conv2d_forward(conv1.g, conv1.x.data(), conv1.k.data(),
                                               conv1.y.data(), ep);
                xtape::kernels::max_pool2d_forward(pg, conv1.y.data(), pooled.data(),
                                                   argmax.data());
              },
              reps),
          fused_bytes);
      row("conv1+bias+pool fused", conv1.flops(),
          median_time(
              [&] {
                xtape::kernels::conv2d_max_pool2d_forward(conv1.g, conv1.x.data(), conv1.k.data(),
                                                          ep, pg, pooled.data(), argmax.data());
              },
              reps),
          fused_bytes);
    }
    row("conv1 backward_kernel", conv1.flops(),
        median_time(
            [&] {
              xtape::kernels::conv2d_backward_kernel(conv1.g, conv1.x.data(), conv1.y.data(),
                                                     conv1.gk.data());
            },
            reps),
        conv1_bytes);
    // The first layer of a CIFAR-sized VGG (32x32x3 images, 'same' 3x3, batch 64) against the
    // wide layer after it (32 -> 32 channels) and a deeper one (64 -> 64 at 16x16): the
    // passes of a training step (the first layer has no input gradient).
    for (ConvBuffers* cb : {&vgg_first, &vgg_wide, &vgg_deep}) {
      const std::string name = "vgg " + std::to_string(cb->g.cin) + "->" +
                               std::to_string(cb->g.cout) + " " + std::to_string(cb->g.h) + "x" +
                               std::to_string(cb->g.w);
      row((name + " forward").c_str(), cb->flops(),
          median_time(
              [&] {
                xtape::kernels::conv2d_forward(cb->g, cb->x.data(), cb->k.data(), cb->y.data());
              },
              reps),
          0, winograd_flops(cb->g));
      row((name + " backward_kernel").c_str(), cb->flops(),
          median_time(
              [&] {
                xtape::kernels::conv2d_backward_kernel(cb->g, cb->x.data(), cb->y.data(),
                                                       cb->gk.data());
              },
              reps),
          0, winograd_flops(cb->g));
      if (cb != &vgg_first)
        row((name + " backward_input").c_str(), cb->flops(),
            median_time(
                [&] {
                  xtape::kernels::conv2d_backward_input(cb->g, cb->y.data(), cb->k.data(),
                                                        cb->gx.data());
                },
                reps),
            0, winograd_flops(xtape::kernels::winograd::input_grad_geometry(cb->g)));
      if (cb != &vgg_first)
        row((name + " backward (both)").c_str(), 2.0 * cb->flops(),
            median_time(
                [&] {
                  xtape::kernels::conv2d_backward(cb->g, cb->x.data(), cb->y.data(), cb->k.data(),
                                                  cb->gx.data(), cb->gk.data());
                },
                reps),
            0,
            winograd_flops(cb->g) +
                winograd_flops(xtape::kernels::winograd::input_grad_geometry(cb->g)));
    }
  }
  return 0;
}
