# Sourced by the compare scripts. OpenBLAS 0.3.21 (Debian 12) picks its kernels from the CPU
# model; on CPUs newer than it knows (a Sapphire Rapids-class Xeon, for one) DYNAMIC_ARCH falls
# back to Prescott, SSE3 kernels at a fifth of the machine's speed. Comparing against that would
# flatter xtape, so when OpenBLAS reports a core older than the CPU's vector units (and the
# caller has not chosen one), OPENBLAS_CORETYPE is set to the newest kernels the CPU can run:
# SkylakeX with AVX-512, Haswell with AVX2 + FMA. Prints what it decided.
openblas_core_check() {
  [ -n "${OPENBLAS_CORETYPE:-}" ] && { echo "OpenBLAS core: $OPENBLAS_CORETYPE (OPENBLAS_CORETYPE set by the caller)"; return; }
  local detected
  detected=$(/usr/bin/python3 -c '
import ctypes
try:
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_corename().decode())
except OSError:
    pass' 2>/dev/null)
  [ -n "$detected" ] || { echo "OpenBLAS core: libopenblas.so.0 not found"; return; }
  local want=""
  if grep -q -w avx512f /proc/cpuinfo && grep -q -w avx512bw /proc/cpuinfo; then
    case "$detected" in SkylakeX|Cooperlake|SapphireRapids) ;; *) want=SkylakeX ;; esac
  elif grep -q -w avx2 /proc/cpuinfo && grep -q -w fma /proc/cpuinfo; then
    case "$detected" in Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Barcelona|Bobcat|Opteron*|Athlon) want=Haswell ;; esac
  fi
  if [ -n "$want" ]; then
    export OPENBLAS_CORETYPE=$want
    echo "OpenBLAS core: $want (OpenBLAS detected $detected, older than this CPU's vector units: OPENBLAS_CORETYPE=$want set)"
  else
    echo "OpenBLAS core: $detected (detected)"
  fi
}
