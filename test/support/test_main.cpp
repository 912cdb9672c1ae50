// The Boost.Test entry point of every suite executable; BOOST_TEST_MODULE comes from meson.
#include <boost/test/unit_test.hpp>
