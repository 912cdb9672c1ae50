// The parts of every communicator that are compositions of its collectives, the single-process
// group, and world() when the library is built without MPI.
#include "distributed/communicator.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

namespace xtape::distributed {

void Communicator::broadcast(std::string& text, int root) {
  std::uint64_t n = text.size();
  broadcast(&n, sizeof n, root);
  text.resize(n);
  if (n) broadcast(text.data(), n, root);
}

bool Communicator::all_true(bool value) {
  double failed = value ? 0.0 : 1.0;
  allreduce_sum(&failed, 1);
  return failed == 0.0;
}

void SingleProcess::broadcast(void*, std::size_t, int root) {
  if (root != 0)
    throw std::invalid_argument("SingleProcess::broadcast: root must be 0, got " +
                                std::to_string(root));
}

void SingleProcess::allgather(const void* data, std::size_t bytes, void* out) {
  if (bytes) std::memmove(out, data, bytes);
}

void SingleProcess::abort(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::exit(code);
}

#ifndef XTAPE_HAVE_MPI
bool mpi_available() { return false; }

std::shared_ptr<Communicator> mpi_world() {
  throw std::runtime_error(
      "distributed::mpi_world: xtape was built without MPI (install libopenmpi-dev and "
      "reconfigure)");
}

std::shared_ptr<Communicator> world() {
  // Under mpirun every process would otherwise train alone, silently.
  if (const char* n = std::getenv("OMPI_COMM_WORLD_SIZE"); n && std::atoi(n) > 1)
    throw std::runtime_error(std::string("distributed::world: started by mpirun on ") + n +
                             " ranks, but xtape was built without MPI (install libopenmpi-dev and "
                             "reconfigure)");
  static const std::shared_ptr<Communicator> w = std::make_shared<SingleProcess>();
  return w;
}
#endif

}  // namespace xtape::distributed
