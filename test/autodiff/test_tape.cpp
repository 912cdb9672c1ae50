// Tests for the tape in autodiff/tensor.cpp: accumulation, deep graphs, repeated backward, errors,
// graphs recorded and back-propagated on different threads, concurrent backward() calls, and that
// training steps neither grow the tape nor the memory in use.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <latch>
#include <stdexcept>
#include <thread>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/profiler.hpp"
#include "autodiff/storage.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;
using xtape::testing::gradcheck;
using xtape::testing::random_tensor;

BOOST_AUTO_TEST_SUITE(tape)

BOOST_AUTO_TEST_CASE(accumulates_when_a_tensor_is_used_several_times) {
  Tensor x({3}, {-1.f, 0.5f, 2.f});
  x.set_requires_grad();
  Tensor y = sum(x * x + x);
  y.backward();
  // d/dx (x^2 + x) = 2x + 1
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{-1.f, 2.f, 5.f}));
  BOOST_TEST(tape_size() == 0u);

  // A diamond: a feeds two branches that meet again.
  Tensor z({2}, {0.3f, -0.7f});
  z.set_requires_grad();
  Tensor a = z * 2.f;
  Tensor b = a * a + a * 3.f;  // 4z^2 + 6z -> 8z + 6
  sum(b).backward();
  BOOST_TEST(z.grad().data()[0] == 8.f * 0.3f + 6.f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(z.grad().data()[1] == 8.f * -0.7f + 6.f, boost::test_tools::tolerance(1e-6f));

  Rng rng(3);
  gradcheck("x*x + x*y + x", [](const std::vector<Tensor>& in) { return in[0] * in[0] + in[0] * in[1] + in[0]; },
            {random_tensor({4, 3}, rng), random_tensor({4, 3}, rng)});
  // The same tensor as both operands of one op.
  gradcheck("x * x * exp(x)", [](const std::vector<Tensor>& in) { return in[0] * in[0] * exp(in[0]); },
            {random_tensor({5}, rng)});
}

BOOST_AUTO_TEST_CASE(deep_chain_without_stack_overflow) {
  constexpr int depth = 100000;
  Tensor x({2}, {1.f, 2.f});
  x.set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < depth; ++i) y = (i % 2 == 0) ? y + 1e-3f : y * 1.f;
  BOOST_TEST(tape_size() == static_cast<std::size_t>(depth));
  sum(y).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{1.f, 1.f}));
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(deep_chain_dropped_without_backward) {
  // An abandoned graph frees itself (the tape holds records weakly); freeing a 100000-deep chain
  // of records must not recurse once per record. Run in a child process so that a stack
  // overflow fails this test case instead of aborting the whole suite. (Small tensors: the
  // elementwise kernels stay single-threaded, so no OpenMP team is used after fork().)
  constexpr int depth = 100000;
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = fork();
  BOOST_TEST_REQUIRE(pid >= 0, "fork failed");
  if (pid == 0) {
    // Let a crash kill the child: Boost.Test's handlers would resume the test tree here.
    std::signal(SIGSEGV, SIG_DFL);
    std::signal(SIGBUS, SIG_DFL);
    std::signal(SIGABRT, SIG_DFL);
    Tensor x({2}, {1.f, 2.f});
    x.set_requires_grad();
    {
      Tensor y = x;
      for (int i = 0; i < depth; ++i) y = y + 1e-3f;
      if (tape_size() != static_cast<std::size_t>(depth)) _exit(2);
    }
    _exit(tape_size() == 0u ? 0 : 3);
  }
  int status = 0;
  BOOST_TEST_REQUIRE(waitpid(pid, &status, 0) == pid);
  BOOST_TEST(!WIFSIGNALED(status), "freeing a " << depth << "-deep unconsumed graph killed the process "
                                                << "with signal " << WTERMSIG(status)
                                                << " (recursive destruction: stack overflow)");
  if (WIFEXITED(status))
    BOOST_TEST(WEXITSTATUS(status) == 0, "child exit code " << WEXITSTATUS(status)
                                                            << " (2: tape size wrong, 3: tape not emptied)");
}

BOOST_AUTO_TEST_CASE(abandoned_graph_leaves_the_tape) {
  Tensor x({4}, 0.5f);
  x.set_requires_grad();
  {
    Tensor y = exp(x) * x;
    BOOST_TEST(tape_size() == 2u);
  }
  BOOST_TEST(tape_size() == 0u);
  // A new graph still works after the abandoned one.
  Tensor y = sum(x * 3.f);
  y.backward();
  BOOST_TEST(x.grad().to_vector() == std::vector<float>(4, 3.f), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(leaves_accumulate_across_backward_calls) {
  Tensor x({3}, {1.f, 2.f, 3.f});
  x.set_requires_grad();
  sum(x * x).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{2.f, 4.f, 6.f}));
  sum(x * 5.f).backward();  // a second graph adds into the same gradient
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{7.f, 9.f, 11.f}));
  x.zero_grad();
  sum(x).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{1.f, 1.f, 1.f}));
}

BOOST_AUTO_TEST_CASE(seeded_backward_of_a_non_scalar) {
  Tensor x({2, 2}, {1.f, 2.f, 3.f, 4.f});
  x.set_requires_grad();
  Tensor y = x * x;
  y.backward(Tensor({2, 2}, {1.f, 0.f, -1.f, 2.f}));
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{2.f, 0.f, -6.f, 16.f}));
}

BOOST_AUTO_TEST_CASE(backward_errors) {
  Tensor x({2, 3}, 1.f);
  x.set_requires_grad();
  Tensor y = x * 2.f;
  check_throws<std::logic_error>("backward() on a non-scalar", [&] { y.backward(); }, {"(2, 3)"});
  check_throws<std::invalid_argument>("backward with a seed of the wrong shape",
                                      [&] { y.backward(Tensor({3, 2}, 1.f)); }, {"(3, 2)", "(2, 3)"});

  Tensor loss = sum(y);
  loss.backward();
  check_throws<std::logic_error>("backward twice on the same graph", [&] { loss.backward(); });
  // A graph sharing already-consumed records with the first one cannot go through them again.
  Tensor loss2 = sum(y * 3.f);
  check_throws<std::logic_error>("backward through a consumed record", [&] { loss2.backward(); });

  Tensor c({2}, 1.f);
  check_throws<std::logic_error>("backward on a tensor that needs no gradient",
                                 [&] { sum(c).backward(); });
  Tensor z;
  {
    NoGrad guard;
    z = sum(x * x);
  }
  check_throws<std::logic_error>("backward on a result computed under NoGrad", [&] { z.backward(); });
}

BOOST_AUTO_TEST_CASE(training_does_not_grow_tape_or_memory) {
  // A small classifier: x (32, 10) -> dense 16 + relu -> dense 4 -> softmax -> cross-entropy.
  Rng rng(11);
  const std::size_t n = 32, d = 10, h = 16, k = 4;
  Tensor x = random_tensor({n, d}, rng);
  Tensor y({n, k}, 0.f);
  for (std::size_t i = 0; i < n; ++i) y.at({i, rng.below(k)}) = 1.f;
  Tensor w1 = random_tensor({d, h}, rng, -0.5f, 0.5f).set_requires_grad();
  Tensor b1 = Tensor::zeros({h}).set_requires_grad();
  Tensor w2 = random_tensor({h, k}, rng, -0.5f, 0.5f).set_requires_grad();
  Tensor b2 = Tensor::zeros({k}).set_requires_grad();
  std::vector<Tensor> params{w1, b1, w2, b2};
  const float lr = 0.1f;

  auto step = [&] {
    Tensor hidden = relu(matmul(x, w1) + b1);
    Tensor probs = softmax(matmul(hidden, w2) + b2);
    Tensor loss = mean(categorical_crossentropy(y, probs));
    const float value = loss.item();
    loss.backward();
    {
      NoGrad guard;
      for (Tensor& p : params) {
        p.assign(p - p.grad() * lr);
        p.zero_grad();
      }
    }
    return value;
  };

  const float first = step();
  detail::AllocatorStats settled{};
  float last = first;
  for (int i = 1; i < 1000; ++i) {
    last = step();
    if (tape_size() != 0u) {
      BOOST_ERROR("step " << i << ": " << tape_size() << " records left on the tape");
      break;
    }
    if (i == 10) settled = detail::allocator_stats();
    if (i > 10) {
      const detail::AllocatorStats now = detail::allocator_stats();
      if (now.live_bytes != settled.live_bytes || now.system_allocations != settled.system_allocations) {
        BOOST_ERROR("step " << i << ": live bytes " << settled.live_bytes << " -> " << now.live_bytes
                            << ", system allocations " << settled.system_allocations << " -> "
                            << now.system_allocations);
        break;
      }
    }
  }
  BOOST_TEST(tape_size() == 0u);
  BOOST_TEST(std::isfinite(last));
  BOOST_TEST(last < 0.5f * first, "loss " << first << " -> " << last);  // it did learn
}

BOOST_AUTO_TEST_CASE(profiler_counts_ops_and_their_backward_rules) {
  Tensor w = Tensor::full({64, 64}, 0.01f).set_requires_grad();
  const Tensor x = Tensor::full({32, 64}, 1.f);
  profiler_start();
  for (int step = 0; step < 3; ++step) {
    profiler_mark();
    Tensor y = relu(matmul(x, w));
    sum(y * y).backward();
  }
  // Not recorded: no input requires a gradient.
  (void)(x + x);
  const auto ops = profiler_stop();
  auto find = [&](const std::string& name) -> const OpTime* {
    for (const auto& o : ops)
      if (o.op == name) return &o;
    return nullptr;
  };
  for (const char* name : {"matmul", "relu", "multiply", "sum"}) {
    const OpTime* t = find(name);
    BOOST_TEST_REQUIRE(t != nullptr, name);
    BOOST_TEST(t->forward_calls == 3u, name);
    BOOST_TEST(t->backward_calls == 3u, name);
    BOOST_TEST(t->forward_ms >= 0.0);
    BOOST_TEST(t->backward_ms >= 0.0);
  }
  BOOST_TEST(find("add") == nullptr);
  for (std::size_t i = 1; i < ops.size(); ++i)  // largest total first
    BOOST_TEST(ops[i - 1].forward_ms + ops[i - 1].backward_ms >= ops[i].forward_ms + ops[i].backward_ms);
  // Stopped: nothing more is collected, and a restart starts from zero.
  sum(relu(matmul(x, w))).backward();
  profiler_start();
  BOOST_TEST(profiler_stop().empty());
  // By shape: the same op at two output shapes is two rows, named with the shape.
  profiler_start(/*by_shape=*/true);
  (sum(relu(matmul(x, w))) + sum(relu(matmul(Tensor::full({8, 64}, 1.f), w)))).backward();
  const auto shaped = profiler_stop();
  std::vector<std::string> relus;
  for (const auto& o : shaped)
    if (o.op.rfind("relu", 0) == 0) relus.push_back(o.op);
  std::sort(relus.begin(), relus.end());
  BOOST_TEST(relus == (std::vector<std::string>{"relu(32, 64)", "relu(8, 64)"}), boost::test_tools::per_element());
}

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs fn on a new thread and waits for it.
template <class F>
void on_thread(F&& fn) {
  std::thread t(std::forward<F>(fn));
  t.join();
}

}  // namespace

BOOST_AUTO_TEST_CASE(backward_on_another_thread_than_the_recording_one) {
  // The records belong to the graph, not to the thread that recorded them.
  Tensor w({3}, {1.f, 2.f, 3.f});
  w.set_requires_grad();
  Tensor loss;
  on_thread([&] { loss = sum(w * w * 2.f + w); });  // d/dw = 4w + 1
  loss.backward();
  BOOST_TEST((w.grad().to_vector() == std::vector<float>{5.f, 9.f, 13.f}));
  BOOST_TEST(tape_size() == 0u);

  // Recorded here, back-propagated on a worker thread.
  w.zero_grad();
  Tensor loss2 = sum(exp(w) * 0.f + w * 3.f);
  on_thread([&] { loss2.backward(); });
  BOOST_TEST((w.grad().to_vector() == std::vector<float>{3.f, 3.f, 3.f}));
  BOOST_TEST(tape_size() == 0u);
  check_throws<std::logic_error>("backward twice, from another thread", [&] { loss.backward(); },
                                 {"consumed"});
}

BOOST_AUTO_TEST_CASE(graph_built_on_several_threads) {
  // A graph built in three parts on three threads gives the bits of the same graph built on one.
  Rng rng(21);
  Tensor a = random_tensor({4, 5}, rng).set_requires_grad();
  Tensor b = random_tensor({5, 3}, rng).set_requires_grad();
  Tensor c = random_tensor({3}, rng).set_requires_grad();
  auto part1 = [&] { return tanh(matmul(a, b)); };
  auto part2 = [&](const Tensor& h) { return h * c + exp(h) * a.dim(0); };
  auto part3 = [&](const Tensor& h, const Tensor& h2) { return mean(square(h2 - h) + h2 * c); };
  auto grads = [&] {
    return std::vector<Tensor>{a.grad().clone(), b.grad().clone(), c.grad().clone()};
  };
  auto reset = [&] {
    for (Tensor* t : {&a, &b, &c}) t->zero_grad();
  };

  const Tensor h_ref = part1();
  part3(h_ref, part2(h_ref)).backward();
  const auto expected = grads();
  reset();

  Tensor h, h2;
  on_thread([&] { h = part1(); });
  on_thread([&] { h2 = part2(h); });
  Tensor loss = part3(h, h2);
  loss.backward();
  const auto got = grads();
  for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(same_bits(got[i], expected[i]), "input " << i);
  BOOST_TEST(tape_size() == 0u);

  // Back-propagated on a fourth thread.
  reset();
  on_thread([&] { h = part1(); });
  on_thread([&] { h2 = part2(h); });
  loss = part3(h, h2);
  on_thread([&] { loss.backward(); });
  const auto got2 = grads();
  for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(same_bits(got2[i], expected[i]), "input " << i);
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(concurrent_backward_into_one_shared_leaf) {
  // Threads run backward() at the same time on their own graphs, all ending in one shared leaf:
  // no contribution may be lost. Every value is a small integer, so the sum is exact in any order.
  constexpr int threads = 4, iterations = 400;
  Tensor w = Tensor::zeros({64}).set_requires_grad();
  Tensor v = Tensor::ones({64}).set_requires_grad();  // a second shared leaf, used twice per graph
  std::barrier start(threads);
  {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const float k = static_cast<float>(t + 1);
        start.arrive_and_wait();
        for (int i = 0; i < iterations; ++i) sum(w * k + v * v).backward();  // d/dw = k, d/dv = 2v
      });
    for (auto& th : pool) th.join();
  }
  const float per_thread = iterations * (1 + 2 + 3 + 4);
  BOOST_TEST(w.grad().to_vector() == std::vector<float>(64, per_thread),
             boost::test_tools::per_element());
  BOOST_TEST(v.grad().to_vector() == std::vector<float>(64, 2.f * threads * iterations),
             boost::test_tools::per_element());
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_CASE(concurrent_backward_through_a_shared_record_is_refused) {
  // Two losses share a record; while one thread's backward() is inside that record's rule
  // (held there by a latch, no timing), a second backward() through it refuses to start, with
  // nothing computed, and the first one completes.
  Tensor x({3}, {1.f, 2.f, 3.f});
  x.set_requires_grad();
  std::latch built_a(1), built_b(1), entered(1), release(1);
  Tensor shared, loss_a, loss_b;
  std::thread a([&] {
    // d/dx: identity; the rule waits until the main thread has tried its own backward().
    shared = detail::record("blocking_identity", x * 1.f, {x},
                            [&](const Tensor& g, detail::Grads& grads) {
                              entered.count_down();
                              release.wait();
                              grads.add(0, g);
                            });
    loss_a = sum(shared * 2.f);
    built_a.count_down();
    built_b.wait();
    loss_a.backward();
  });
  built_a.wait();
  loss_b = sum(shared * 3.f);
  built_b.count_down();
  entered.wait();
  check_throws<std::logic_error>("backward through a record another thread is back-propagating",
                                 [&] { loss_b.backward(); },
                                 {"another thread", "blocking_identity"});
  release.count_down();
  a.join();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{2.f, 2.f, 2.f}));
  // The shared record is consumed now: loss_b's graph is refused for that reason.
  check_throws<std::logic_error>("backward through the consumed record", [&] { loss_b.backward(); },
                                 {"consumed"});
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{2.f, 2.f, 2.f}));  // nothing was added
}

BOOST_AUTO_TEST_CASE(deep_graph_built_across_threads) {
  // 100000 chained ops, a quarter recorded on each of four threads, back-propagated on this one:
  // the walk is iterative and the records are freed as they are consumed.
  constexpr int depth = 100000, parts = 4;
  Tensor x({2}, {1.f, 2.f});
  x.set_requires_grad();
  Tensor y = x;
  for (int p = 0; p < parts; ++p)
    on_thread([&] {
      for (int i = 0; i < depth / parts; ++i) y = (i % 2 == 0) ? y + 1e-3f : y * 1.f;
    });
  BOOST_TEST(tape_size() == static_cast<std::size_t>(depth));
  sum(y).backward();
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{1.f, 1.f}));
  BOOST_TEST(tape_size() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
