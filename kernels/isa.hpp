#pragma once
/// @file isa.hpp
/// Which instruction set the loaded kernels library was compiled for. A native build compiles
/// it for the build machine; a portable build (-Dportable=true) installs it for x86-64-v2, -v3
/// and -v4, and the dynamic loader maps the best one this CPU runs (glibc-hwcaps).
#include <cstddef>

namespace xtape::kernels {

/// xsimd's name of the kernels' SIMD target: "avx512bw", "fma3+avx2", "sse4.2", ...
const char* isa();
/// Floats per SIMD register in the kernels (16 for AVX-512, 8 for AVX2, 4 for SSE).
std::size_t simd_floats();

}  // namespace xtape::kernels
