// The OpenMP wait policy of programs linked with xtape (see threads.hpp). Idle OpenMP threads
// spin for a while by default (libgomp: 300,000 iterations, milliseconds) before they sleep;
// when another process holds a core, the spinning thread takes turns with the thread that has
// work, and two threads end up slower than one. Sleeping at once (passive waiting) costs a
// wake-up per parallel region instead, and a wake-up is cheap on bare metal (a few
// microseconds) but not in a virtual machine, where waking a halted vCPU took 60-150 us on a
// KVM guest (as much as the work of a small region). So idle threads spin for about 200 us,
// which covers the gaps between the regions of one training step or one batch, and then sleep:
// a spin count of 200 us over the measured cost of one iteration of libgomp's spin loop (a
// pause instruction: 17 ns on a Sapphire Rapids-class Xeon, 40-50 ns on Skylake-SP). Under load
// the load guard (threads.cpp) keeps regions serial, so no thread is woken to spin.
//
// libgomp reads its settings once, in its own constructor, before the constructor of any
// library that depends on it (libxtape) runs, so the library cannot set them. This object goes
// into each executable instead (meson's xtape_dep and the pkg-config file link it whole): its
// .preinit_array entry runs before every shared library's constructor. setenv cannot be used
// there (libc's own constructor, which runs next, resets environ to the array the kernel
// passed), so the entry lends one slot of that array: "_" (the shell's last-argument
// variable, which no library reads) becomes GOMP_SPINCOUNT=<count> until the executable's
// own constructor, after every library's, puts it back. A policy the user set is kept
// (OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME present), and nothing happens without "_".
#include <time.h>

#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

extern char** environ;

namespace {

char spin_setting[40] = "GOMP_SPINCOUNT=";
char** lent_slot = nullptr;  // the envp entry lent, and what it held
char* lent_value = nullptr;

bool has(char** envp, const char* prefix) {
  const std::size_t n = std::strlen(prefix);
  for (char** e = envp; *e != nullptr; ++e)
    if (std::strncmp(*e, prefix, n) == 0) return true;
  return false;
}

std::int64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// libgomp's spin loop is a relaxed load and a pause (x86) per iteration: time 1024 pauses,
// the fastest of three rounds (about 20-150 us in all).
std::int64_t spin_count() {
  constexpr std::int64_t target_ns = 200'000, fallback = 10'000;
#if defined(__x86_64__) || defined(__i386__)
  std::int64_t best = INT64_MAX;
  for (int round = 0; round < 3; ++round) {
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < 1024; ++i) _mm_pause();
    const std::int64_t dt = now_ns() - t0;
    if (dt > 0 && dt < best) best = dt;
  }
  if (best == INT64_MAX) return fallback;
  const std::int64_t count = target_ns * 1024 / best;
  return count < 1'000 ? 1'000 : count > 100'000 ? 100'000 : count;
#else
  return fallback;
#endif
}

// Appends the decimal digits of v to s (no libc formatting before libc's constructor).
void append_decimal(char* s, std::int64_t v) {
  char digits[24];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + v % 10), v /= 10;
  while (v > 0);
  s += std::strlen(s);
  while (n > 0) *s++ = digits[--n];
  *s = '\0';
}

void lend_slot(int, char**, char** envp) {
  if (envp == nullptr || has(envp, "OMP_WAIT_POLICY=") || has(envp, "GOMP_SPINCOUNT=") ||
      has(envp, "KMP_BLOCKTIME="))
    return;
  for (char** e = envp; *e != nullptr; ++e)
    if ((*e)[0] == '_' && (*e)[1] == '=') {
      append_decimal(spin_setting, spin_count());
      lent_slot = e, lent_value = *e;
      *e = spin_setting;
      return;
    }
}

__attribute__((constructor)) void return_slot() {
  if (lent_slot == nullptr) return;
  *lent_slot = lent_value;  // the kernel's array; a copy setenv made in between holds it too
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (*e == spin_setting) *e = lent_value;
  lent_slot = nullptr;
}

}  // namespace

// Only for libgomp (GCC builds). clang builds link libomp, which reads its settings later and
// differently; lending the slot there leaves it lent.
#if !defined(__clang__)
__attribute__((section(".preinit_array"),
               used)) static void (*const xtape_preinit)(int, char**, char**) = lend_slot;
#endif
