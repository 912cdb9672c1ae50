#pragma once
/// @file fp_mode.hpp
/// The floating-point mode of the threads that run the kernels: whether denormal (subnormal)
/// floats are flushed to zero. On x86 this is two bits of each thread's MXCSR register: FTZ
/// (denormal results become 0) and DAZ (denormal inputs read as 0). With them off, every
/// arithmetic instruction that meets a denormal takes a microcode assist costing about a
/// hundred cycles; a softmax gradient of a confident model is full of such values
/// (exp(-90) ~ 1e-39), and it flows back through every layer.
namespace xtape::kernels {

/// True when this build can flush denormals (x86 with SSE); elsewhere the calls below change
/// nothing and report false.
bool denormal_flush_supported();

/// Whether the calling thread flushes denormals (FTZ and DAZ both set).
bool thread_flushes_denormals();

/// Sets or clears FTZ and DAZ on the calling thread only. Returns denormal_flush_supported().
bool set_thread_flush_denormals(bool on);

/// Sets or clears FTZ and DAZ on the calling thread and on every thread of the OpenMP team it
/// would start now (num_threads() threads, threads.hpp), so the kernels' parallel regions compute
/// in one mode whatever the thread count. Threads OpenMP creates later inherit the calling
/// thread's mode. Called inside a parallel region, only the calling thread changes. Returns
/// denormal_flush_supported().
bool set_team_flush_denormals(bool on);

}  // namespace xtape::kernels
