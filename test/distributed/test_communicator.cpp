// The communicators: every collective on the group this suite runs on (2 ranks under mpirun,
// 1 without MPI), and the single-process group.
#include <boost/test/unit_test.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "distributed/communicator.hpp"

using namespace xtape::distributed;

BOOST_AUTO_TEST_SUITE(communicator)

BOOST_AUTO_TEST_CASE(world_is_mpi_under_mpirun) {
  auto w = world();
  BOOST_TEST(w.get() == world().get());
  BOOST_TEST(w->size() >= 1);
  BOOST_TEST(w->rank() >= 0);
  BOOST_TEST(w->rank() < w->size());
  BOOST_TEST(w->is_chief() == (w->rank() == 0));
  if (std::getenv("OMPI_COMM_WORLD_SIZE") && mpi_available()) {
    BOOST_TEST(w->name() == "mpi");
    BOOST_TEST(w->size() == std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")));
  } else {
    BOOST_TEST(w->name() == "single-process");
  }
}

BOOST_AUTO_TEST_CASE(allreduce_sums_floats_and_doubles_in_place) {
  auto w = world();
  const int p = w->size(), r = w->rank();
  // Sizes around the block split (n < p, n not a multiple of p) and several pieces.
  for (std::size_t n : {std::size_t(1), std::size_t(3), std::size_t(1000), std::size_t(4097)}) {
    std::vector<float> f(n);
    std::vector<double> d(n);
    for (std::size_t i = 0; i < n; ++i) {
      f[i] = float(i % 97) + 0.25f * float(r + 1);
      d[i] = double(i) * 1e-3 + double(r);
    }
    w->allreduce_sum(f.data(), n);
    w->allreduce_sum(d.data(), n);
    const float fr = 0.25f * float(p * (p + 1) / 2);
    const double dr = double(p * (p - 1) / 2);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      bad += f[i] != float(p) * float(i % 97) + fr;
      bad += d[i] != double(p) * (double(i) * 1e-3) + dr &&
             std::abs(d[i] - (double(p) * (double(i) * 1e-3) + dr)) > 1e-12;
    }
    BOOST_TEST(bad == 0u, "n = " << n);
    // Every rank holds the same bits.
    std::vector<float> all(n * std::size_t(p));
    w->allgather(f.data(), n * sizeof(float), all.data());
    for (int k = 0; k < p; ++k)
      BOOST_TEST(std::equal(f.begin(), f.end(), all.begin() + long(k * n)), "rank " << k);
  }
}

BOOST_AUTO_TEST_CASE(broadcast_allgather_barrier_all_true) {
  auto w = world();
  const int p = w->size(), r = w->rank();
  int value = r == 0 ? 42 : -1;
  w->broadcast(&value, sizeof value, 0);
  BOOST_TEST(value == 42);
  std::string text = r == 0 ? std::string(100000, 'x') + "end" : "short";
  w->broadcast(text, 0);
  BOOST_TEST(text.size() == 100003u);
  BOOST_TEST(text.substr(text.size() - 3) == "end");
  std::vector<int> ranks(static_cast<std::size_t>(p), -1);
  w->allgather(&r, sizeof r, ranks.data());
  for (int k = 0; k < p; ++k) BOOST_TEST(ranks[std::size_t(k)] == k);
  w->barrier();
  BOOST_TEST(w->all_true(true));
  BOOST_TEST(!w->all_true(r != p - 1));  // false on one rank: false everywhere
  BOOST_CHECK_THROW(w->broadcast(&value, sizeof value, p), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(single_process_is_the_identity) {
  SingleProcess s;
  BOOST_TEST(s.rank() == 0);
  BOOST_TEST(s.size() == 1);
  float f[3] = {1.f, 2.f, 3.f};
  s.allreduce_sum(f, 3);
  BOOST_TEST(f[2] == 3.f);
  double g[4] = {0};
  const double in[2] = {1.5, 2.5};
  s.allgather(in, sizeof in, g);
  BOOST_TEST(g[1] == 2.5);
  std::string t = "abc";
  s.broadcast(t, 0);
  BOOST_TEST(t == "abc");
  BOOST_CHECK_THROW(s.broadcast(f, sizeof f, 1), std::invalid_argument);
  BOOST_TEST(!s.all_true(false));
}

BOOST_AUTO_TEST_SUITE_END()
