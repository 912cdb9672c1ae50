// Tests for the deferred conv2d and the ops it fuses (autodiff/ops/conv.cpp): `conv2d(...) + bias`
// and relu run in the convolution's epilogue when the intermediate results are not read. The
// fused values and gradients must be bitwise those of the separate ops, intermediate results
// must stay readable, and a write to an input after the call must not change the result.
#include <array>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/ops_normalization.hpp"
#include "optim/optimizers.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

namespace {

using In = const std::vector<Tensor>&;

// The separate ops: reading the conv output first computes it, so nothing fuses after it.
Tensor computed(Tensor t) {
  (void)std::as_const(t).data();
  return t;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct FusionCase {
  const char* name;
  Shape input, kernel;
  Padding padding;
};

// cin = 1 takes the small-patch kernel, cin = 5 the im2col + GEMM path, 1x1 the pointwise GEMM,
// 3x3 with 16 channels in and out the Winograd kernels.
const FusionCase kCases[] = {
    {"3x3 cin 1", {3, 9, 8, 1}, {3, 3, 1, 32}, Padding::valid},
    {"3x3 cin 1 odd filters", {2, 7, 7, 1}, {3, 3, 1, 21}, Padding::same},
    {"3x3 cin 5", {2, 8, 9, 5}, {3, 3, 5, 19}, Padding::same},
    {"1x1 cin 6", {2, 5, 5, 6}, {1, 1, 6, 17}, Padding::valid},
    {"3x3 cin 16 (Winograd)", {2, 8, 9, 16}, {3, 3, 16, 32}, Padding::valid},
};

// x with every 29th element from a random start set to NaN (the NaNs then reach the
// convolution's outputs and its gradients).
Tensor with_nans(Tensor x, Rng& rng) {
  for (std::size_t i = rng.below(17); i < x.size(); i += 29)
    x.data()[i] = std::numeric_limits<float>::quiet_NaN();
  return x;
}

std::size_t count_nans(const Tensor& t) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < t.size(); ++i) n += std::isnan(t.data()[i]);
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fusion)

BOOST_AUTO_TEST_CASE(conv_bias_relu_values_equal_separate_ops_bitwise) {
  Rng rng(11);
  for (const FusionCase& c : kCases) {
    BOOST_TEST_CONTEXT(c.name) {
      const Tensor x = random_tensor(c.input, rng), k = random_tensor(c.kernel, rng);
      const Tensor b = random_tensor({c.kernel[3]}, rng);
      const Tensor b4 = reshape(b, {1, 1, 1, static_cast<long>(c.kernel[3])});
      const Tensor y = conv2d(x, k, {1, 1}, c.padding);
      BOOST_TEST(detail::pending_producer(y) != nullptr);  // deferred until read
      const Tensor plain = computed(conv2d(x, k, {1, 1}, c.padding));
      BOOST_TEST(same_bits(y, plain));
      BOOST_TEST(same_bits(relu(conv2d(x, k, {1, 1}, c.padding) + b), relu(plain + b)));
      BOOST_TEST(same_bits(conv2d(x, k, {1, 1}, c.padding) + b4, plain + b4));
      BOOST_TEST(same_bits(b + conv2d(x, k, {1, 1}, c.padding), b + plain));
      BOOST_TEST(same_bits(relu(conv2d(x, k, {1, 1}, c.padding)), relu(plain)));
    }
  }
}

BOOST_AUTO_TEST_CASE(only_a_per_channel_bias_fuses) {
  Rng rng(12);
  const Tensor x = random_tensor({2, 6, 6, 3}, rng), k = random_tensor({3, 3, 3, 4}, rng);
  const Tensor plain = computed(conv2d(x, k));
  const Tensor full = random_tensor(plain.shape(), rng), per_row = random_tensor({4, 1}, rng);
  const Tensor spatial = random_tensor({4, 4, 1}, rng);
  BOOST_TEST(same_bits(conv2d(x, k) + full, plain + full));
  BOOST_TEST(same_bits(conv2d(x, k) + spatial, plain + spatial));
  BOOST_TEST(same_bits(conv2d(x, k) + 0.5f, plain + 0.5f));
  BOOST_TEST(same_bits(conv2d(x, k) + per_row + per_row, plain + per_row + per_row));
  // A second bias add, or a bias after the relu, is a separate op on the computed values.
  const Tensor b = random_tensor({4}, rng);
  BOOST_TEST(same_bits(conv2d(x, k) + b + b, plain + b + b));
  BOOST_TEST(same_bits(relu(conv2d(x, k)) + b, relu(plain) + b));
}

BOOST_AUTO_TEST_CASE(intermediate_results_stay_readable) {
  Rng rng(13);
  const Tensor x = random_tensor({2, 7, 7, 1}, rng), k = random_tensor({3, 3, 1, 8}, rng);
  const Tensor b = random_tensor({8}, rng);
  const Tensor plain = computed(conv2d(x, k));
  const Tensor c = conv2d(x, k);
  const Tensor cb = c + b;
  const Tensor y = relu(cb);
  BOOST_TEST(same_bits(y, relu(plain + b)));
  BOOST_TEST(detail::pending_producer(c) != nullptr);  // reading y did not compute c or cb
  BOOST_TEST(detail::pending_producer(cb) != nullptr);
  BOOST_TEST(same_bits(cb, plain + b));
  BOOST_TEST(same_bits(c, plain));
}

BOOST_AUTO_TEST_CASE(writes_after_the_call_do_not_reach_a_deferred_result) {
  Rng rng(14);
  Tensor x = random_tensor({2, 6, 6, 2}, rng), k = random_tensor({3, 3, 2, 5}, rng);
  Tensor b = random_tensor({5}, rng);
  const Tensor expected = relu(computed(conv2d(x, k)) + b);
  const Tensor y = relu(conv2d(x, k) + b);
  // In-place writes to every input, as an optimizer step or a refilled batch buffer does.
  k.data()[0] += 1.f;
  b.data()[1] -= 2.f;
  x.data()[3] *= -4.f;
  BOOST_TEST(same_bits(y, expected));
  // assign() writes too.
  const Tensor y2 = conv2d(x, k) + b;
  const Tensor expected2 = computed(conv2d(x, k)) + b;
  x.assign(Tensor::zeros(x.shape()));
  BOOST_TEST(same_bits(y2, expected2));
}

BOOST_AUTO_TEST_CASE(fused_gradients_equal_separate_ops_bitwise) {
  Rng rng(15);
  for (const FusionCase& c : kCases) {
    BOOST_TEST_CONTEXT(c.name) {
      Tensor x = random_tensor(c.input, rng).set_requires_grad(),
             k = random_tensor(c.kernel, rng).set_requires_grad();
      Tensor b = random_tensor({c.kernel[3]}, rng).set_requires_grad();
      const Tensor w = random_tensor(conv2d(x, k, {1, 1}, c.padding).shape(), rng);
      auto grads = [&](bool fuse) {
        for (Tensor* t : {&x, &k, &b}) t->zero_grad();
        Tensor conv = conv2d(x, k, {1, 1}, c.padding);
        if (!fuse) conv = computed(conv);
        sum(relu(conv + b) * w).backward();
        return std::vector<Tensor>{x.grad().clone(), k.grad().clone(), b.grad().clone()};
      };
      const auto fused = grads(true), separate = grads(false);
      for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(same_bits(fused[i], separate[i]));
    }
  }
}

BOOST_AUTO_TEST_CASE(conv_bias_gradients_against_finite_differences) {
  Rng rng(16);
  gradcheck("conv2d + bias (fused)",
            [](In in) {
              return conv2d(in[0], in[1], {1, 1}, Padding::same) + in[2];
            },
            {random_tensor({2, 5, 5, 1}, rng), random_tensor({3, 3, 1, 6}, rng),
             random_tensor({6}, rng)});
  gradcheck("conv2d + bias (fused, im2col path)",
            [](In in) {
              return in[2] + conv2d(in[0], in[1], {2, 1}, Padding::valid);
            },
            {random_tensor({2, 7, 6, 3}, rng), random_tensor({3, 2, 3, 4}, rng),
             random_tensor({1, 1, 1, 4}, rng)});
  gradcheck(
      "conv1d + bias (fused through the reshape)",
      [](In in) { return conv1d(in[0], in[1], 1, Padding::valid) + in[2]; },
      {random_tensor({2, 9, 2}, rng), random_tensor({3, 2, 5}, rng), random_tensor({5}, rng)});
}

BOOST_AUTO_TEST_CASE(max_pool_of_a_pending_conv_pools_per_image_bitwise) {
  Rng rng(17);
  struct PoolCase {
    std::array<int, 2> size, strides;
    Padding padding;
  };
  const PoolCase pools[] = {{{2, 2}, {2, 2}, Padding::valid},
                            {{3, 3}, {2, 2}, Padding::same},
                            {{2, 3}, {1, 2}, Padding::valid}};
  for (const FusionCase& c : kCases)
    for (const PoolCase& pc : pools) {
      BOOST_TEST_CONTEXT(c.name << ", pool " << pc.size[0] << "x" << pc.size[1]) {
        Tensor x = random_tensor(c.input, rng).set_requires_grad(),
               k = random_tensor(c.kernel, rng).set_requires_grad();
        Tensor b = random_tensor({c.kernel[3]}, rng).set_requires_grad();
        const Tensor w = random_tensor(
            max_pool2d(computed(conv2d(x, k, {1, 1}, c.padding)), pc.size, pc.strides, pc.padding)
                .shape(),
            rng);
        auto run = [&](bool fuse, bool with_relu) {
          for (Tensor* t : {&x, &k, &b}) t->zero_grad();
          Tensor conv = conv2d(x, k, {1, 1}, c.padding);
          if (!fuse) conv = computed(conv);
          Tensor pre = conv + b;
          if (with_relu) pre = relu(pre);
          const Tensor pooled = max_pool2d(pre, pc.size, pc.strides, pc.padding);
          const bool deferred = detail::pending_producer(pre) != nullptr;
          sum(pooled * w).backward();
          return std::make_tuple(pooled.clone(), x.grad().clone(), k.grad().clone(),
                                 b.grad().clone(), deferred);
        };
        for (bool with_relu : {false, true}) {
          const auto fused = run(true, with_relu), separate = run(false, with_relu);
          BOOST_TEST(same_bits(std::get<0>(fused), std::get<0>(separate)));
          BOOST_TEST(same_bits(std::get<1>(fused), std::get<1>(separate)));
          BOOST_TEST(same_bits(std::get<2>(fused), std::get<2>(separate)));
          BOOST_TEST(same_bits(std::get<3>(fused), std::get<3>(separate)));
          // Without relu nothing keeps the pre-pool values, so they are never computed; relu
          // keeps its output for backward, so the pool reads the computed values instead.
          BOOST_TEST(std::get<4>(fused) == !with_relu);
        }
      }
    }
  // Under NoGrad (inference) the same fusion, without argmax.
  NoGrad no_grad;
  const Tensor x = random_tensor({3, 10, 10, 1}, rng), k = random_tensor({3, 3, 1, 16}, rng),
               b = random_tensor({16}, rng);
  BOOST_TEST(same_bits(max_pool2d(conv2d(x, k) + b, {2, 2}),
                       max_pool2d(computed(conv2d(x, k)) + b, {2, 2})));
}

BOOST_AUTO_TEST_CASE(deferred_pool_gradients_equal_dense_gradients_bitwise) {
  // Backward through max_pool2d hands relu and the bias add a deferred scatter (masked and
  // summed in pooled form). Multiplying by 1 after the relu makes its backward read the
  // gradient densely instead: the same bits must come out.
  Rng rng(19);
  for (const FusionCase& c : kCases)
    for (bool with_relu : {false, true}) {
      BOOST_TEST_CONTEXT(c.name << (with_relu ? ", relu" : "")) {
        Tensor x = random_tensor(c.input, rng).set_requires_grad(),
               k = random_tensor(c.kernel, rng).set_requires_grad();
        Tensor b = random_tensor({c.kernel[3]}, rng).set_requires_grad();
        Tensor w;
        auto run = [&](bool dense) {
          for (Tensor* t : {&x, &k, &b}) t->zero_grad();
          Tensor pre = conv2d(x, k, {1, 1}, c.padding) + b;
          if (with_relu) pre = relu(pre);
          if (dense) pre = pre * 1.f;
          const Tensor pooled = max_pool2d(pre, {2, 2});
          if (!w.defined()) w = random_tensor(pooled.shape(), rng);
          sum(pooled * w).backward();
          return std::vector<Tensor>{x.grad().clone(), k.grad().clone(), b.grad().clone()};
        };
        const auto deferred = run(false), dense = run(true);
        for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(same_bits(deferred[i], dense[i]));
      }
    }
}

BOOST_AUTO_TEST_CASE(a_held_pending_conv_is_not_pooled_in_place_of_its_values) {
  // A second handle to the same storage (as a saved copy) means the values will be read later:
  // the pool then computes them once and reads them.
  Rng rng(18);
  const Tensor x = random_tensor({2, 8, 8, 1}, rng), k = random_tensor({3, 3, 1, 4}, rng);
  const Tensor c = conv2d(x, k);
  const Tensor alias = c.detach();
  const Tensor pooled = max_pool2d(c, {2, 2});
  BOOST_TEST(detail::pending_producer(c) == nullptr);
  BOOST_TEST(same_bits(pooled, max_pool2d(computed(conv2d(x, k)), {2, 2})));
}

BOOST_AUTO_TEST_CASE(threads_share_weights_and_pending_results) {
  // Weights shared by threads (each deferred conv registers itself as a reader of them), and one
  // pending result read by several threads at once: computed once, the same bits everywhere.
  Rng rng(20);
  const Tensor k = random_tensor({3, 3, 1, 16}, rng), b = random_tensor({16}, rng);
  const int threads = 4, iterations = 60;
  std::vector<Tensor> inputs, expected;
  for (int t = 0; t < threads; ++t) {
    inputs.push_back(random_tensor({2, 9, 9, 1}, rng));
    expected.push_back(max_pool2d(relu(computed(conv2d(inputs.back(), k)) + b), {2, 2}));
  }
  std::atomic<int> mismatches{0};
  {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int i = 0; i < iterations; ++i) {
          const Tensor y =
              max_pool2d(relu(conv2d(inputs[static_cast<std::size_t>(t)], k) + b), {2, 2});
          if (!same_bits(y, expected[static_cast<std::size_t>(t)])) ++mismatches;
        }
      });
    for (auto& th : pool) th.join();
  }
  BOOST_TEST(mismatches.load() == 0);
  const Tensor reference = computed(conv2d(inputs[0], k)) + b;
  for (int round = 0; round < 20; ++round) {
    const Tensor shared = conv2d(inputs[0], k) + b;  // pending
    std::vector<std::thread> readers;
    for (int t = 0; t < threads; ++t)
      readers.emplace_back([&] {
        if (!same_bits(shared, reference)) ++mismatches;
      });
    for (auto& th : readers) th.join();
  }
  BOOST_TEST(mismatches.load() == 0);
}

BOOST_AUTO_TEST_CASE(pointers_taken_before_the_call_do_not_reach_a_deferred_result) {
  // The case: ones through a 3x3 kernel of ones give 9; a write through a pointer taken
  // before conv2d must not turn it into 108.
  {
    Tensor x(Shape{1, 3, 3, 1}, 1.f), k(Shape{3, 3, 1, 1}, 1.f);
    float* px = x.data();
    const Tensor y = conv2d(x, k);
    px[0] = 100.f;
    BOOST_TEST(y.item() == 9.f);
  }
  // Every input of the fused chain, reached through data(), at(), a detached handle or a
  // reshaped view, written after the call; the expected bits are the eager ones.
  Rng rng(21);
  enum class Way { data, at, detached, reshaped };
  for (Way way : {Way::data, Way::at, Way::detached, Way::reshaped})
    for (int target = 0; target < 3; ++target) {
      BOOST_TEST_CONTEXT("way " << static_cast<int>(way) << ", input " << target) {
        Tensor x = random_tensor({2, 6, 6, 2}, rng), k = random_tensor({3, 3, 2, 5}, rng);
        Tensor b = random_tensor({5}, rng);
        const Tensor expected_conv = computed(conv2d(x, k));
        const Tensor expected = relu(expected_conv + b);
        const Tensor expected_pool = max_pool2d(expected, {2, 2});
        Tensor& t = target == 0 ? x : target == 1 ? k : b;
        float* p = nullptr;
        switch (way) {
          case Way::data:
            p = t.data();
            break;
          case Way::at:
            p = target == 2 ? &t.at({0}) : &t.at({0, 0, 0, 0});
            break;
          case Way::detached:
            p = t.detach().data();
            break;
          case Way::reshaped:
            p = reshape(t, {-1}).data();
            break;
        }
        const Tensor conv = conv2d(x, k);
        const Tensor y = relu(conv2d(x, k) + b);
        const Tensor pooled = max_pool2d(relu(conv2d(x, k) + b), {2, 2});
        p[0] += 3.f;
        BOOST_TEST(same_bits(y, expected));
        BOOST_TEST(same_bits(conv, expected_conv));
        BOOST_TEST(same_bits(pooled, expected_pool));
      }
    }
}

BOOST_AUTO_TEST_CASE(fused_relu_keeps_nan_for_every_filter_count) {
  // relu(conv2d(x)) with NaNs in x: the fused epilogue gives NaN exactly where the convolution
  // does (it gave 0 in the vector lanes and NaN in the scalar tail), the bits of relu of the
  // computed convolution, for each kernel path and filter counts filling vectors or not.
  Rng rng(21);
  struct PathCase {
    const char* name;
    Shape input, kernel;  // kernel's last extent replaced by the filter count
    Padding padding;
  };
  const PathCase paths[] = {
      {"3x3 cin 1 valid", {2, 9, 8, 1}, {3, 3, 1, 0}, Padding::valid},
      {"3x3 cin 1 same", {2, 7, 7, 1}, {3, 3, 1, 0}, Padding::same},
      {"3x3 cin 5 same", {2, 6, 7, 5}, {3, 3, 5, 0}, Padding::same},
      {"1x1 cin 6", {2, 5, 5, 6}, {1, 1, 6, 0}, Padding::valid},
      {"3x3 cin 16", {1, 6, 6, 16}, {3, 3, 16, 0}, Padding::valid},
  };
  for (const PathCase& c : paths)
    for (std::size_t filters : {1, 5, 16, 17, 31, 32, 33, 48, 64}) {
      BOOST_TEST_CONTEXT(c.name << ", " << filters << " filters") {
        Shape ks = c.kernel;
        ks[3] = filters;
        const Tensor x = with_nans(random_tensor(c.input, rng), rng), k = random_tensor(ks, rng);
        const Tensor b = random_tensor({filters}, rng);
        const Tensor plain = computed(conv2d(x, k, {1, 1}, c.padding));
        BOOST_TEST_REQUIRE(count_nans(plain) > 0u);
        const Tensor fused = relu(conv2d(x, k, {1, 1}, c.padding));
        BOOST_TEST(count_nans(fused) == count_nans(plain));
        BOOST_TEST(same_bits(fused, relu(plain)));
        BOOST_TEST(same_bits(relu(conv2d(x, k, {1, 1}, c.padding) + b), relu(plain + b)));
      }
    }
}

BOOST_AUTO_TEST_CASE(a_pointer_to_the_seed_does_not_reach_a_deferred_pool_gradient) {
  // max_pool2d's input gradient is a deferred scatter of the seed: a write through a pointer
  // to the seed, taken before backward(), must not reach the leaf's gradient.
  Rng rng(22);
  Tensor x = random_tensor({2, 4, 4, 3}, rng).set_requires_grad();
  const Tensor seed = random_tensor({2, 2, 2, 3}, rng);
  max_pool2d(x, {2, 2}).backward(seed);
  const Tensor expected = x.grad().clone();
  x.zero_grad();
  Tensor written = seed.clone();
  float* p = written.data();
  max_pool2d(x, {2, 2}).backward(written);
  p[0] += 5.f;
  BOOST_TEST(same_bits(x.grad(), expected));
}

BOOST_AUTO_TEST_CASE(library_writes_keep_fusion) {
  // The optimizer's in-place update, assign() and the constructors write without exposing a
  // buffer: a training step's convolution still fuses its bias and relu (and pool) afterwards.
  Rng rng(23);
  const Tensor x = random_tensor({2, 8, 8, 1}, rng);
  Tensor k = random_tensor({3, 3, 1, 4}, rng).set_requires_grad();
  Tensor b = Tensor::zeros({4}).set_requires_grad();
  optim::Adam adam;
  for (int step = 0; step < 3; ++step) {
    const Tensor pre = relu(conv2d(x, k) + b);
    BOOST_TEST(detail::pending_producer(pre) != nullptr, "step " << step);
    sum(max_pool2d(pre, {2, 2})).backward();
    adam.apply({{"k", k}, {"b", b}});
    k.zero_grad();
    b.zero_grad();
  }
  b.assign(Tensor({4}, {0.1f, 0.2f, 0.3f, 0.4f}));
  BOOST_TEST(detail::pending_producer(relu(conv2d(x, k) + b)) != nullptr);
  // A user pointer, from then on, makes ops on that buffer compute at once.
  (void)b.data();
  BOOST_TEST(detail::pending_producer(relu(conv2d(x, k) + b)) == nullptr);
  BOOST_TEST(detail::pending_producer(conv2d(x, k)) != nullptr);  // x and k are still unexposed
}

BOOST_AUTO_TEST_CASE(nan_takes_the_same_paths_through_fused_and_deferred_pooling) {
  // NaN inputs through conv2d (+ bias) (relu) max_pool2d: the fused per-image pooling, the
  // deferred pooled gradients (relu's mask, the bias sums, the thin kernel's gradient) give
  // the bits of the separate dense ops, and the NaN windows pool to NaN.
  Rng rng(22);
  for (const FusionCase& c : kCases)
    for (bool with_relu : {false, true}) {
      BOOST_TEST_CONTEXT(c.name << (with_relu ? ", relu" : "")) {
        Tensor x = with_nans(random_tensor(c.input, rng), rng).set_requires_grad();
        Tensor k = random_tensor(c.kernel, rng).set_requires_grad();
        Tensor b = random_tensor({c.kernel[3]}, rng).set_requires_grad();
        Tensor w;
        // mode 0: fused conv + pool, deferred pooled gradients; 1: computed conv (separate
        // forward); 2: a dense gradient (pre * 1 reads it densely).
        auto run = [&](int mode) {
          for (Tensor* t : {&x, &k, &b}) t->zero_grad();
          Tensor conv = conv2d(x, k, {1, 1}, c.padding);
          if (mode == 1) conv = computed(conv);
          Tensor pre = conv + b;
          if (with_relu) pre = relu(pre);
          if (mode == 2) pre = pre * 1.f;
          const Tensor pooled = max_pool2d(pre, {2, 2});
          if (!w.defined()) w = random_tensor(pooled.shape(), rng);
          sum(pooled * w).backward();
          return std::vector<Tensor>{pooled.clone(), x.grad().clone(), k.grad().clone(),
                                     b.grad().clone()};
        };
        const auto fused = run(0), separate = run(1), dense = run(2);
        BOOST_TEST(count_nans(fused[0]) > 0u);
        for (std::size_t i = 0; i < 4; ++i) {
          BOOST_TEST(same_bits(fused[i], separate[i]), "output " << i << ": fused vs separate");
          BOOST_TEST(same_bits(fused[i], dense[i]),
                     "output " << i << ": deferred vs dense gradient");
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(batch_normalization_in_inference_folds_into_the_conv_epilogue) {
  // x * scale + shift per channel (what BatchNormalization computes in inference) on a conv
  // result not read yet runs in the convolution's epilogue, after the bias and before relu and
  // max pooling: the same bits as the separate passes, on every kernel path, and still deferred.
  Rng rng(31);
  for (const FusionCase& c : kCases) {
    BOOST_TEST_CONTEXT(c.name) {
      const long n = static_cast<long>(c.kernel[3]);
      const Tensor x = random_tensor(c.input, rng), k = random_tensor(c.kernel, rng);
      const Tensor b = random_tensor({c.kernel[3]}, rng);
      const Tensor sc = reshape(random_tensor({c.kernel[3]}, rng, 0.5f, 2.f), {1, 1, 1, n});
      const Tensor sh = reshape(random_tensor({c.kernel[3]}, rng), {1, 1, 1, n});
      const Tensor plain = computed(conv2d(x, k, {1, 1}, c.padding));
      const Tensor folded = scale_shift(conv2d(x, k, {1, 1}, c.padding), sc, sh);
      BOOST_TEST(detail::pending_producer(folded) != nullptr);
      BOOST_TEST(same_bits(folded, scale_shift(plain, sc, sh)));
      const Tensor with_bias = relu(scale_shift(conv2d(x, k, {1, 1}, c.padding) + b, sc, sh));
      BOOST_TEST(detail::pending_producer(with_bias) != nullptr);
      BOOST_TEST(same_bits(with_bias, relu(scale_shift(plain + b, sc, sh))));
      // A vector of shape (channels,) folds too; relu first, then scale-shift, does not fold.
      const Tensor sc1 = reshape(sc, {n}), sh1 = reshape(sh, {n});
      BOOST_TEST(same_bits(scale_shift(conv2d(x, k, {1, 1}, c.padding), sc1, sh1),
                           scale_shift(plain, sc1, sh1)));
      BOOST_TEST(same_bits(scale_shift(relu(conv2d(x, k, {1, 1}, c.padding)), sc, sh),
                           scale_shift(relu(plain), sc, sh)));
      if (c.input[1] >= 2 && c.input[2] >= 2)
        BOOST_TEST(same_bits(
            max_pool2d(relu(scale_shift(conv2d(x, k, {1, 1}, c.padding) + b, sc, sh)), {2, 2}),
            max_pool2d(relu(scale_shift(plain + b, sc, sh)), {2, 2})));
    }
  }
}

BOOST_AUTO_TEST_CASE(folded_scale_shift_gradients_equal_the_separate_ops) {
  Rng rng(32);
  const Tensor x0 = random_tensor({2, 7, 6, 3}, rng), k0 = random_tensor({3, 3, 3, 8}, rng);
  const Tensor b0 = random_tensor({8}, rng), s0 = random_tensor({1, 1, 1, 8}, rng, 0.5f, 2.f);
  const Tensor t0 = random_tensor({1, 1, 1, 8}, rng), seed = random_tensor({2, 5, 4, 8}, rng);
  auto run = [&](bool fold) {
    std::vector<Tensor> v;
    for (const Tensor& t : {x0, k0, b0, s0, t0}) v.push_back(t.clone().set_requires_grad(true));
    Tensor c = conv2d(v[0], v[1]) + v[2];
    if (!fold) c = computed(c);
    Tensor y = relu(scale_shift(c, v[3], v[4]));
    y.backward(seed);
    std::vector<Tensor> out{y.detach()};
    for (const Tensor& t : v) out.push_back(t.grad());
    return out;
  };
  const auto fused = run(true), separate = run(false);
  for (std::size_t i = 0; i < fused.size(); ++i) BOOST_TEST(same_bits(fused[i], separate[i]), i);
  // The folded chain's own gradient (no relu: its kinks would defeat finite differences).
  gradcheck("conv + bias -> scale_shift",
            [](In in) { return scale_shift(conv2d(in[0], in[1]) + in[2], in[3], in[4]); },
            {x0, k0, b0, s0, t0});
}

BOOST_AUTO_TEST_SUITE_END()
