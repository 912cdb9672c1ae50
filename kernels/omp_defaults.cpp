// The OpenMP wait policy of programs linked with xtape (see threads.hpp). Idle OpenMP threads
// spin for a while by default (libgomp: 300,000 iterations, milliseconds) before they sleep;
// when another process holds a core, the spinning thread takes turns with the thread that has
// work, and two threads end up slower than one. Passive waiting (sleep at once) costs a
// wake-up per parallel region, which the kernels' grain size (parallel.hpp) keeps small
// against the region's work.
//
// libgomp reads OMP_WAIT_POLICY once, in its own constructor, before the constructor of any
// library that depends on it (libxtape) runs, so the library cannot set it. This object goes
// into each executable instead (meson's xtape_dep and the pkg-config file link it whole): its
// .preinit_array entry runs before every shared library's constructor. setenv cannot be used
// there (libc's own constructor, which runs next, resets environ to the array the kernel
// passed), so the entry lends one slot of that array: "_" (the shell's last-argument
// variable, which no library reads) becomes OMP_WAIT_POLICY=passive until the executable's
// own constructor, after every library's, puts it back. A policy the user set is kept
// (OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME present), and nothing happens without "_".
#include <cstring>

extern char** environ;

namespace {

char passive[] = "OMP_WAIT_POLICY=passive";
char** lent_slot = nullptr;  // the envp entry lent, and what it held
char* lent_value = nullptr;

bool has(char** envp, const char* prefix) {
  const std::size_t n = std::strlen(prefix);
  for (char** e = envp; *e != nullptr; ++e)
    if (std::strncmp(*e, prefix, n) == 0) return true;
  return false;
}

void lend_slot(int, char**, char** envp) {
  if (envp == nullptr || has(envp, "OMP_WAIT_POLICY=") || has(envp, "GOMP_SPINCOUNT=") ||
      has(envp, "KMP_BLOCKTIME="))
    return;
  for (char** e = envp; *e != nullptr; ++e)
    if ((*e)[0] == '_' && (*e)[1] == '=') {
      lent_slot = e, lent_value = *e;
      *e = passive;
      return;
    }
}

__attribute__((constructor)) void return_slot() {
  if (lent_slot == nullptr) return;
  *lent_slot = lent_value;  // the kernel's array; a copy setenv made in between holds it too
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (*e == passive) *e = lent_value;
  lent_slot = nullptr;
}

}  // namespace

// Only for libgomp (GCC builds). clang builds link libomp, which reads its settings later and
// differently; lending the slot there leaves it lent.
#if !defined(__clang__)
__attribute__((section(".preinit_array"),
               used)) static void (*const xtape_preinit)(int, char**, char**) = lend_slot;
#endif
