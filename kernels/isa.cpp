#include "kernels/isa.hpp"

#include <xsimd/xsimd.hpp>

namespace xtape::kernels {

const char* isa() { return xsimd::default_arch::name(); }

std::size_t simd_floats() { return xsimd::batch<float>::size; }

}  // namespace xtape::kernels
