// A rank that throws or dies stops the whole job: each case starts a 2-rank job of this
// executable in worker mode (XTAPE_DP_WORKER) under `timeout` and mpirun, and checks that it
// ended with an error well before the timeout would have killed it (status 124).
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "distributed/communicator.hpp"

namespace {

struct Job {
  int status = -1;  // the exit status of `timeout`
  std::string output;
};

Job run_job(const std::string& mode, const std::string& env = "") {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string log =
      (std::filesystem::temp_directory_path() / ("xtape-dp-" + mode + ".log")).string();
  // 120 s bounds the job; the failing rank stops the other within a second or two.
  const std::string cmd =
      env + " XTAPE_DP_WORKER=" + mode + " OMP_NUM_THREADS=1 timeout 120 mpirun " +
      "--allow-run-as-root --oversubscribe -np 2 '" + exe + "' > '" + log + "' 2>&1 < /dev/null";
  const int rc = std::system(cmd.c_str());
  Job j;
  j.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  j.output = ss.str();
  std::filesystem::remove(log);
  return j;
}

bool mpi_job_possible() {
  return xtape::distributed::mpi_available() && std::system("command -v mpirun > /dev/null") == 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(failures,
                      *boost::unit_test::precondition([](auto) { return mpi_job_possible(); }))

BOOST_AUTO_TEST_CASE(a_rank_that_throws_stops_the_other) {
  const Job j = run_job("throw");
  BOOST_TEST_MESSAGE("job output:\n" << j.output);
  BOOST_TEST(j.status != 0);
  BOOST_TEST(j.status != 124);  // not ended by the timeout
  BOOST_TEST(j.output.find("rank 1 of 2 failed: worker: rank 1 fails at step 3") !=
             std::string::npos);
  BOOST_TEST(j.output.find("finished") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_rank_that_dies_stops_the_other) {
  const Job j = run_job("die");
  BOOST_TEST_MESSAGE("job output:\n" << j.output);
  BOOST_TEST(j.status != 0);
  BOOST_TEST(j.status != 124);
  BOOST_TEST(j.output.find("finished") == std::string::npos);
}

// Rank 1 sleeps in a callback; rank 0 waits in the step's collective until
// XTAPE_COLLECTIVE_TIMEOUT (5 s) and exits, and mpirun ends rank 1.
BOOST_AUTO_TEST_CASE(a_rank_that_hangs_is_stopped_by_the_collective_timeout) {
  const Job j = run_job("hang", "XTAPE_COLLECTIVE_TIMEOUT=5");
  BOOST_TEST_MESSAGE("job output:\n" << j.output);
  BOOST_TEST(j.status != 0);
  BOOST_TEST(j.status != 124);
  BOOST_TEST(j.output.find("xtape: rank 0 waited more than 5 s in MPI_") != std::string::npos);
  BOOST_TEST(j.output.find("finished") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_healthy_job_finishes) {
  const Job j = run_job("ok");
  BOOST_TEST(j.status == 0, j.output);
  BOOST_TEST(j.output.find("rank 0 finished") != std::string::npos);
  BOOST_TEST(j.output.find("rank 1 finished") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
