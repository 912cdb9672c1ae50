// Per-thread denormal flushing (see fp_mode.hpp): the FTZ (bit 15) and DAZ (bit 6) bits of MXCSR.
#include "kernels/fp_mode.hpp"

#include <omp.h>

#include "kernels/threads.hpp"

#if defined(__SSE2__) || defined(__x86_64__)
#include <xmmintrin.h>
#define XTAPE_HAS_MXCSR 1
#else
#define XTAPE_HAS_MXCSR 0
#endif

namespace xtape::kernels {

namespace {
#if XTAPE_HAS_MXCSR
constexpr unsigned ftz_daz = 0x8040u;
#endif
}  // namespace

bool denormal_flush_supported() { return XTAPE_HAS_MXCSR != 0; }

bool thread_flushes_denormals() {
#if XTAPE_HAS_MXCSR
  return (_mm_getcsr() & ftz_daz) == ftz_daz;
#else
  return false;
#endif
}

bool set_thread_flush_denormals(bool on) {
#if XTAPE_HAS_MXCSR
  const unsigned csr = _mm_getcsr();
  const unsigned want = on ? (csr | ftz_daz) : (csr & ~ftz_daz);
  if (want != csr) _mm_setcsr(want);
  return true;
#else
  (void)on;
  return false;
#endif
}

bool set_team_flush_denormals(bool on) {
  set_thread_flush_denormals(on);
  const int team = num_threads();
  if (!omp_in_parallel() && team > 1) {
#pragma omp parallel num_threads(team)
    set_thread_flush_denormals(on);
  }
  return denormal_flush_supported();
}

}  // namespace xtape::kernels
