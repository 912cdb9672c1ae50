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
/// omp_get_max_threads() of the calling thread (OMP_NUM_THREADS, omp_set_num_threads). When
/// that is OpenMP's default (OMP_NUM_THREADS unset, a count of the CPUs the process may run
/// on), the CPU limit of the process's cgroup caps it, rounded to the nearest CPU, at least 1:
/// a container given 1 CPU of 2 (`docker --cpus=1`, a Kubernetes limit, systemd's CPUQuota)
/// gets 1 thread, as a second would spend the same quota and stall every join while the group
/// is throttled.
int num_threads();

/// Turns the load guard on or off (on by default; XTAPE_LOAD_GUARD=0 in the environment turns
/// it off). With it, a parallel region uses no more threads than the cores other processes
/// leave free on the CPUs this process may run on (their CPU time there, sampled every
/// 20 ms): on a machine whose cores are all busy, the kernels run on the calling thread
/// rather than wait at every join for a thread that gets a share of a core. Results do not
/// depend on it.
void set_load_guard(bool on);

/// Whether the load guard is on.
bool load_guard();

}  // namespace xtape::kernels
