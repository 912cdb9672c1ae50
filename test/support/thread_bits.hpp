#pragma once
/// @file thread_bits.hpp
/// Checks that a computation gives the same bits on 1 and on 2 threads.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "kernels/threads.hpp"

namespace xtape::testing {

/// Runs f on 1 and then 2 threads (the load guard off, so that 2 threads really run) and checks
/// that every tensor it returns has the same bits.
inline void check_thread_independent(const std::string& label,
                                     const std::function<std::vector<Tensor>()>& f) {
  const int before = kernels::num_threads();
  const bool guard = kernels::load_guard();
  kernels::set_load_guard(false);
  kernels::set_num_threads(1);
  const std::vector<Tensor> one = f();
  kernels::set_num_threads(2);
  const std::vector<Tensor> two = f();
  kernels::set_num_threads(before);
  kernels::set_load_guard(guard);
  BOOST_TEST_CONTEXT(label) {
    BOOST_TEST_REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
      const std::vector<float> a = one[i].to_vector(), b = two[i].to_vector();
      BOOST_TEST_REQUIRE(a.size() == b.size());
      BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace xtape::testing
