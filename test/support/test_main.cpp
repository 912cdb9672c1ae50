// The Boost.Test entry point of every suite executable (one per source folder).
#define BOOST_TEST_MODULE xtape
#include <boost/test/unit_test.hpp>
