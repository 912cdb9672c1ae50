// Tests for autodiff/tensor.hpp: construction, access, detach/clone, xtensor interop,
// requires_grad propagation, NoGrad and FlushDenormal.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <sstream>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/xtensor_interop.hpp"
#include "support/gradcheck.hpp"

using namespace xtape;
using xtape::testing::check_throws;

BOOST_AUTO_TEST_SUITE(tensor)

BOOST_AUTO_TEST_CASE(construction_and_shape) {
  Tensor undefined;
  BOOST_TEST(!undefined.defined());
  BOOST_CHECK_THROW(undefined.shape(), std::logic_error);

  Tensor filled({2, 3}, 1.5f);
  BOOST_TEST(filled.defined());
  BOOST_TEST((filled.shape() == Shape{2, 3}));
  BOOST_TEST(filled.ndim() == 2u);
  BOOST_TEST(filled.size() == 6u);
  BOOST_TEST(filled.dim(0) == 2u);
  BOOST_TEST(filled.dim(-1) == 3u);
  BOOST_CHECK_THROW(filled.dim(2), std::out_of_range);
  BOOST_CHECK_THROW(filled.dim(-3), std::out_of_range);
  for (float v : filled.to_vector()) BOOST_TEST(v == 1.5f);

  Tensor values({2, 2}, {1.f, 2.f, 3.f, 4.f});
  BOOST_TEST((values.to_vector() == std::vector<float>{1.f, 2.f, 3.f, 4.f}));
  check_throws<std::invalid_argument>("Tensor with 3 values for (2, 2)",
                                      [] {
                                        Tensor t({2, 2}, {1.f, 2.f, 3.f});
                                      },
                                      {"(2, 2)", "3"});

  BOOST_TEST(Tensor::zeros({3}).to_vector() == std::vector<float>(3, 0.f),
             boost::test_tools::per_element());
  BOOST_TEST(Tensor::ones({3}).to_vector() == std::vector<float>(3, 1.f),
             boost::test_tools::per_element());
  BOOST_TEST(Tensor::full({2}, -2.f).to_vector() == std::vector<float>(2, -2.f),
             boost::test_tools::per_element());
  Tensor s = Tensor::scalar(4.f);
  BOOST_TEST(s.ndim() == 0u);
  BOOST_TEST(s.size() == 1u);
  BOOST_TEST(s.item() == 4.f);
  BOOST_TEST(Tensor::empty({4, 5}).size() == 20u);

  // A zero-extent shape is legal and empty.
  BOOST_TEST(Tensor::zeros({0, 3}).size() == 0u);
}

BOOST_AUTO_TEST_CASE(element_access) {
  Tensor t({2, 3, 4}, 0.f);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i);
  BOOST_TEST(t.at({0, 0, 0}) == 0.f);
  BOOST_TEST(t.at({1, 2, 3}) == 23.f);
  BOOST_TEST(t.at({1, 0, 2}) == 14.f);
  t.at({0, 1, 1}) = -7.f;
  BOOST_TEST(t.data()[5] == -7.f);
  const Tensor& ct = t;
  BOOST_TEST(ct.at({0, 1, 1}) == -7.f);
  check_throws<std::out_of_range>("at with a bad index",
                                  [&] {
                                    (void)ct.at({2, 0, 0});
                                  },
                                  {"(2, 3, 4)"});
  check_throws<std::out_of_range>("at with a bad rank",
                                  [&] {
                                    (void)ct.at({0, 0});
                                  },
                                  {"(2, 3, 4)"});

  BOOST_TEST(Tensor({1, 1}, {3.f}).item() == 3.f);
  check_throws<std::invalid_argument>("item of many elements", [&] { (void)t.item(); },
                                      {"(2, 3, 4)"});

  std::ostringstream os;
  os << Tensor({2, 2}, {1.f, 2.f, 3.f, 4.f});
  BOOST_TEST(os.str() == "Tensor(shape=(2, 2), [1, 2, 3, 4])");
  BOOST_TEST(shape_str({}) == "()");
  BOOST_TEST(shape_str({5}) == "(5,)");
  BOOST_TEST(shape_str({1, 28, 28, 3}) == "(1, 28, 28, 3)");
  BOOST_TEST(shape_size({}) == 1u);
  BOOST_TEST(shape_size({2, 0, 3}) == 0u);
}

BOOST_AUTO_TEST_CASE(detach_shares_data_without_grad) {
  Tensor x({3}, {1.f, 2.f, 3.f});
  x.set_requires_grad();
  Tensor y = x * 2.f;
  BOOST_TEST(y.requires_grad());
  BOOST_TEST(!y.is_leaf());

  Tensor d = y.detach();
  BOOST_TEST(!d.requires_grad());
  BOOST_TEST(d.is_leaf());
  BOOST_TEST(!d.grad().defined());
  BOOST_TEST(d.data() == y.data());  // same buffer
  BOOST_TEST(d.id() != y.id());      // different node
  d.data()[0] = 10.f;
  BOOST_TEST(y.data()[0] == 10.f);

  Tensor dx = x.detach();
  BOOST_TEST(dx.data() == x.data());
  BOOST_TEST(!dx.requires_grad());
  // Ops on a detached tensor record nothing.
  Tensor z = dx * dx;
  BOOST_TEST(!z.requires_grad());
}

BOOST_AUTO_TEST_CASE(clone_copies) {
  Tensor x({2, 2}, {1.f, 2.f, 3.f, 4.f});
  x.set_requires_grad();
  Tensor y = x + 1.f;
  Tensor c = y.clone();
  BOOST_TEST(c.data() != y.data());
  BOOST_TEST(c.to_vector() == y.to_vector(), boost::test_tools::per_element());
  BOOST_TEST((c.shape() == y.shape()));
  BOOST_TEST(!c.requires_grad());
  BOOST_TEST(c.is_leaf());
  c.data()[0] = 100.f;
  BOOST_TEST(y.data()[0] == 2.f);

  // assign copies values into an existing buffer (same element count, any shape).
  Tensor target({4}, 0.f);
  target.assign(c);
  BOOST_TEST((target.to_vector() == std::vector<float>{100.f, 3.f, 4.f, 5.f}));
  check_throws<std::invalid_argument>("assign of a different size",
                                      [&] { target.assign(Tensor({3}, 0.f)); }, {"(3,)", "(4,)"});
}

BOOST_AUTO_TEST_CASE(xtensor_round_trip) {
  Tensor t({2, 3, 2}, 0.f);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = 0.5f * static_cast<float>(i) - 2.f;
  xt::xarray<float> a = to_xarray(t);
  BOOST_TEST(a.dimension() == 3u);
  BOOST_TEST(a.shape()[0] == 2u);
  BOOST_TEST(a.shape()[1] == 3u);
  BOOST_TEST(a.shape()[2] == 2u);
  BOOST_TEST(a(1, 2, 1) == t.at({1, 2, 1}));
  BOOST_TEST(a(0, 1, 0) == t.at({0, 1, 0}));
  // to_xarray is a copy.
  a(0, 0, 0) = 42.f;
  BOOST_TEST(t.at({0, 0, 0}) == -2.f);

  Tensor back = from_xarray(a);
  BOOST_TEST((back.shape() == t.shape()));
  BOOST_TEST(back.at({0, 0, 0}) == 42.f);
  for (std::size_t i = 1; i < t.size(); ++i) BOOST_TEST(back.data()[i] == t.data()[i]);
  BOOST_TEST(back.is_leaf());
  BOOST_TEST(!back.requires_grad());

  // A transposed (non-contiguous) xtensor expression is copied in row-major order.
  xt::xarray<float> m = {{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}};
  xt::xarray<float> mt = xt::transpose(m);
  Tensor tt = from_xarray(mt);
  BOOST_TEST((tt.shape() == Shape{3, 2}));
  BOOST_TEST((tt.to_vector() == std::vector<float>{1.f, 4.f, 2.f, 5.f, 3.f, 6.f}));
}

BOOST_AUTO_TEST_CASE(requires_grad_propagation) {
  Tensor a({2}, {1.f, 2.f});
  Tensor b({2}, {3.f, 4.f});
  BOOST_TEST(!a.requires_grad());
  BOOST_TEST(!(a * b).requires_grad());
  BOOST_TEST((a * b).is_leaf());
  BOOST_TEST(tape_size() == 0u);

  a.set_requires_grad();
  BOOST_TEST(a.requires_grad());
  BOOST_TEST(a.is_leaf());
  Tensor c = a * b;
  BOOST_TEST(c.requires_grad());
  BOOST_TEST(!c.is_leaf());
  BOOST_TEST(exp(b + c).requires_grad());
  BOOST_TEST(!exp(b + b).requires_grad());
  check_throws<std::logic_error>("set_requires_grad on a non-leaf", [&] { c.set_requires_grad(); },
                                 {"multiply"});

  a.set_requires_grad(false);
  BOOST_TEST(!(a * b).requires_grad());
}

BOOST_AUTO_TEST_CASE(no_grad_disables_recording) {
  Tensor x({3}, {1.f, 2.f, 3.f});
  x.set_requires_grad();
  const std::size_t before = tape_size();
  BOOST_TEST(grad_enabled());
  {
    NoGrad guard;
    BOOST_TEST(!grad_enabled());
    Tensor y = x * x + x;
    BOOST_TEST(!y.requires_grad());
    BOOST_TEST(y.is_leaf());
    BOOST_TEST(tape_size() == before);
    BOOST_TEST((y.to_vector() == std::vector<float>{2.f, 6.f, 12.f}));
    {
      NoGrad nested;
      BOOST_TEST(!grad_enabled());
    }
    BOOST_TEST(!grad_enabled());  // the inner guard restores the outer state
  }
  BOOST_TEST(grad_enabled());
  Tensor y = x * x;
  BOOST_TEST(y.requires_grad());
  BOOST_TEST(tape_size() == before + 1);
}

BOOST_AUTO_TEST_CASE(flush_denormal_guard_nests_and_restores) {
  // 1e-20 * 1e-20 is a denormal: computed as such without flushing, as 0 with it.
  Tensor a({2}, {1e-20f, 2.f}), b({2}, {1e-20f, 0.5f});
  const auto product = [&] { return a * b; };
  const bool initial = flush_denormal();
  if (!set_flush_denormal(false)) return;  // NOTE: no such mode on this CPU
  BOOST_TEST(product().data()[0] > 0.f);
  {
    FlushDenormal guard;
    BOOST_TEST(flush_denormal());
    BOOST_TEST(product().data()[0] == 0.f);
    BOOST_TEST(product().data()[1] == 1.f);
    {
      FlushDenormal off(false);
      BOOST_TEST(!flush_denormal());
      BOOST_TEST(product().data()[0] > 0.f);
    }
    BOOST_TEST(flush_denormal());  // the inner guard restores the outer mode
  }
  BOOST_TEST(!flush_denormal());
  set_flush_denormal(initial);
}

BOOST_AUTO_TEST_CASE(element_counts_that_overflow_or_exceed_memory_are_refused) {
  // 2^32 x 2^32 elements wrap to 0 in 64 bits: refused, naming the constructor and the shape.
  const std::size_t big = std::size_t{1} << 32;
  check_throws<std::length_error>("Tensor of 2^64 elements",
                                  [&] {
                                    Tensor t(Shape{big, big});
                                  },
                                  {"Tensor", "(4294967296, 4294967296)"});
  check_throws<std::length_error>("Tensor::empty of 2^64 elements",
                                  [&] {
                                    Tensor::empty({big, big, 2});
                                  },
                                  {"Tensor", "(4294967296, 4294967296, 2)"});
  check_throws<std::length_error>("shape_size of 2^64 elements",
                                  [&] {
                                    shape_size({big, big});
                                  },
                                  {"(4294967296, 4294967296)"});
  // A legal count whose buffer (4 PiB) no machine has: an error naming the op, not bad_alloc.
  check_throws<std::length_error>("Tensor of 4 PiB", [] { Tensor::zeros({std::size_t{1} << 50}); },
                                  {"Tensor", "(1125899906842624,)", "memory"});
  // A zero extent makes the count 0 whatever the others (NumPy): legal and empty.
  const Tensor empty(Shape{std::size_t{1} << 63, 2, 0});
  BOOST_TEST(empty.size() == 0u);
  BOOST_TEST(shape_size({std::size_t{1} << 63, 4, 0, 7}) == 0u);
}

BOOST_AUTO_TEST_CASE(grad_of_a_leaf) {
  Tensor x({2}, {1.f, 2.f});
  x.set_requires_grad();
  BOOST_TEST(!x.grad().defined());
  x.backward(Tensor({2}, {3.f, 4.f}));  // a leaf's gradient is the seed
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{3.f, 4.f}));
  check_throws<std::invalid_argument>("set_grad of the wrong shape",
                                      [&] { x.set_grad(Tensor({3}, 0.f)); }, {"(3,)", "(2,)"});
  x.set_grad(Tensor({2}, {5.f, 6.f}));
  BOOST_TEST((x.grad().to_vector() == std::vector<float>{5.f, 6.f}));
  x.zero_grad();
  BOOST_TEST(!x.grad().defined());
}

namespace {

// A producer that fails its first `failures` runs, then fills ones.
class FlakyProducer : public detail::Producer {
 public:
  FlakyProducer(int failures, std::size_t size) : failures_(failures), size_(size) {}
  void run(float* out) const override {
    ++runs;
    if (runs <= failures_) throw std::runtime_error("flaky: run " + std::to_string(runs));
    std::fill_n(out, size_, 1.f);
  }
  mutable int runs = 0;

 private:
  int failures_;
  std::size_t size_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_deferred_result_whose_producer_throws_stays_pending) {
  // The producer's exception reaches the reader, and the tensor keeps its producer: the next
  // read runs it again (it once was moved out first, so the next read dereferenced null).
  auto p = std::make_shared<FlakyProducer>(1, 4);
  const Tensor t = detail::make_deferred({4}, p, {});
  check_throws<std::runtime_error>("first read", [&] { (void)t.to_vector(); }, {"flaky: run 1"});
  BOOST_TEST(detail::pending_producer(t) != nullptr);
  for (float v : t.to_vector()) BOOST_TEST(v == 1.f);
  BOOST_TEST(p->runs == 2);
  BOOST_TEST(detail::pending_producer(t) == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()
