#pragma once
/// @file threads.hpp
/// How many threads xtape's kernels may use, as torch::set_num_threads. Every parallel region
/// of the library runs at most num_threads() threads, and fewer (often one) when its work is
/// too small to pay for a fork and join (see parallel.hpp). Results do not depend on it.
namespace xtape::kernels {

/// Sets the largest number of threads a kernel's parallel region may use, for every thread
/// that calls into xtape (and, through omp_set_num_threads, for the caller's own OpenMP
/// regions). Takes precedence over XTAPE_NUM_THREADS and OMP_NUM_THREADS.
/// @throws std::invalid_argument if n < 1.
void set_num_threads(int n);

/// The largest number of threads a kernel's parallel region may use: the value given to
/// set_num_threads; before any call, XTAPE_NUM_THREADS (a positive integer, read once at the
/// first use; an invalid value is reported on stderr and ignored); otherwise OpenMP's
/// omp_get_max_threads() of the calling thread (OMP_NUM_THREADS, omp_set_num_threads).
int num_threads();

}  // namespace xtape::kernels
