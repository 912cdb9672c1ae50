// The Boost.Test entry point of every suite executable (one per source folder).
#define BOOST_TEST_MODULE xtape
#include <boost/test/unit_test.hpp>

#include "kernels/threads.hpp"

// The tests that compare thread counts take the parallel paths whatever else the machine
// runs: the load guard (threads.hpp) would run them on one thread when every core is busy.
struct NoLoadGuard {
  NoLoadGuard() { xtape::kernels::set_load_guard(false); }
};
BOOST_TEST_GLOBAL_FIXTURE(NoLoadGuard);
