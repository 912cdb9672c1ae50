// The entry point of the distributed suite: MPI starts before Boost.Test (under mpirun); ranks
// other than 0 write their report to test-report-<suite>-rank<r>.xml, which
// tools/summarize_tests.py merges (a case failed on any rank fails). With XTAPE_DP_WORKER set
// it is instead the worker of test_failures.cpp.
#define BOOST_TEST_MODULE xtape_distributed
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "distributed/data_parallel.hpp"
#include "layers/core.hpp"
#include "models/sequential.hpp"
#include "support/synthetic.hpp"
#include "training/callbacks.hpp"

using namespace xtape;
using namespace xtape::layers;

namespace {

// Two ranks train; in mode "throw" rank 1 throws at its third step, in "die" it exits at once
// without MPI_Finalize (as a crash would), in "hang" it sleeps for an hour, in "ok" both finish.
int worker(const std::string& mode) {
  auto comm = distributed::world();
  auto [x, y] = xtape::testing::blobs(400, 3);
  set_random_seed(1);
  Sequential m({Input({2}), std::make_shared<Dense>(DenseOptions{.units = 8, .activation = "relu"}),
                std::make_shared<Dense>(DenseOptions{.units = 3, .activation = "softmax"})});
  m.compile("categorical_crossentropy", "adam");
  auto fail = std::make_shared<LambdaCallback>(
      LambdaCallbackOptions{.on_batch_end = [&](std::size_t step, const Logs&) {
        if (comm->rank() != 1 || step != 2) return;
        if (mode == "throw") throw std::runtime_error("worker: rank 1 fails at step 3");
        if (mode == "die") std::_Exit(3);
        if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
      }});
  (void)m.fit(x, y,
              {.batch_size = 8,
               // The failing modes would train long if the failure did not stop them; "ok"
               // trains 2 epochs, inside the job's timeout even sanitized on a loaded machine.
               .epochs = mode == "ok" ? 2 : 50,
               .verbose = 0,
               .callbacks = {fail},
               .distribute = std::make_shared<distributed::DataParallel>()});
  std::cout << "rank " << comm->rank() << " finished" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* mode = std::getenv("XTAPE_DP_WORKER")) return worker(mode);
  const auto comm = xtape::distributed::world();
  std::vector<std::string> args(argv, argv + argc);
  if (comm->rank() != 0)
    for (auto& a : args)
      if (a.rfind("--report_sink=", 0) == 0 && a.size() > 4 && a.substr(a.size() - 4) == ".xml")
        a = a.substr(0, a.size() - 4) + "-rank" + std::to_string(comm->rank()) + ".xml";
  std::vector<char*> ptrs;
  for (auto& a : args) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  return boost::unit_test::unit_test_main(&init_unit_test, argc, ptrs.data());
}
