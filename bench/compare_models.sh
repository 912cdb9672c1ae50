#!/bin/bash
# The models of issue 16, xtape (bench_models) against PyTorch (bench/reference/torch_models.py):
# the founding model at batch 32/128/512, the MLP 784-512-512-10 (batch 128), the CIFAR-sized VGG
# (batch 64) and the small Conv1D classifier (batch 32); training step and inference batch, 1 and
# 2 threads. Each run does, per thread count, xtape then PyTorch (alternating); the table shows
# medians over the runs, the ratios torch / xtape and each library's 1 -> 2 thread speed-up.
# With --loaded, everything is measured again while a busy loop (started and stopped here) keeps
# one core busy.
#
# Usage: bash bench/compare_models.sh [BUILD_DIR] [--runs N] [--steps N] [--threads 1,2]
#                                     [--only founding_b32,...] [--loaded]
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=build
case "${1:-}" in --*|"") ;; *) build=$1; shift ;; esac
runs=2 steps=10 threads=1,2 only="" loaded=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --loaded) loaded=1; shift ;;
    *) echo "compare_models.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench="$build/bench/bench_models"
if [ ! -x "$bench" ]; then
  echo "compare_models.sh: $bench not found; build first (ninja -C $build bench/bench_models)" >&2
  exit 2
fi
py=/usr/bin/python3
have_torch=1
"$py" -c 'import torch' >/dev/null 2>&1 || have_torch=0
. "$here/openblas_core.sh"
[ "$have_torch" = 1 ] && openblas_core_check
[ "$have_torch" = 1 ] || echo "PyTorch not installed for $py: xtape only (apt-get install -y python3-torch)"
tmp=$(mktemp -d)
busy=""
cleanup() { [ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
onlyarg=()
[ -n "$only" ] && onlyarg=(--only "$only")

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "$(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# The FMA peaks of 1 and 2 threads (bench_gemm --peak): on a VM the two vCPUs may share one
# physical core for a while, and then the 2-thread peak is the 1-thread one. Printed at the
# start and end of each set and before each idle run.
peaks() {
  [ -x "$build/bench/bench_gemm" ] || return 0
  echo "  FMA peak, GFLOP/s: $("$build/bench/bench_gemm" --peak | awk '{printf "%s%s thread(s) %s", (NR > 1 ? ", " : ""), $2, $3}')"
}

measure() {  # $1: label (idle / loaded); appends "X|T model threads train infer [layout]" to $tmp/$1
  for r in $(seq 1 "$runs"); do
    # The peaks before each run: which runs had the two vCPUs on one physical core.
    [ "$1" = idle ] && [ -x "$build/bench/bench_gemm" ] &&
      echo "  idle run $r/$runs: FMA peak, GFLOP/s, $("$build/bench/bench_gemm" --peak | awk '{printf "%s%s thread(s) %s", (NR > 1 ? ", " : ""), $2, $3}')"
    for t in ${threads//,/ }; do
      OMP_NUM_THREADS=$t "$bench" --steps "$steps" --threads "$t" "${onlyarg[@]}" >"$tmp/x.$1.$r.$t" 2>&1
      grep '^RESULT' "$tmp/x.$1.$r.$t" | sed 's/^RESULT/X/' >>"$tmp/$1"
      if [ "$have_torch" = 1 ]; then
        OMP_NUM_THREADS=$t "$py" "$here/reference/torch_models.py" --steps "$steps" --threads "$t" \
          "${onlyarg[@]}" >"$tmp/t.$1.$r.$t" 2>&1
        grep '^RESULT' "$tmp/t.$1.$r.$t" | sed 's/^RESULT/T/' >>"$tmp/$1"
        [ -f "$tmp/blas" ] || sed -n 's/.*; BLAS: //p' "$tmp/t.$1.$r.$t" | head -1 >"$tmp/blas"
      fi
      echo "  $1 run $r/$runs, $t thread(s) done (load $(cut -d' ' -f1 /proc/loadavg))"
    done
  done
}

report() {  # $1: label
  awk '
    function median(s,   a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $1 == "X" { k = $2 SUBSEP $3; xt[k] = xt[k] " " $4; xi[k] = xi[k] " " $5; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
                if (!($2 in mseen)) { mseen[$2] = 1; models[++nm] = $2 } }
    $1 == "T" { k = $2 SUBSEP $3; tt[k] = tt[k] " " $4; ti[k] = ti[k] " " $5; lay[k] = $6 }
    END {
      printf "%-14s %3s %10s %10s %7s   %10s %10s %7s  %s\n", "model", "thr", "xtape trn", "torch trn", "ratio", "xtape inf", "torch inf", "ratio", "torch layout"
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, SUBSEP)
        a = median(xt[k]); b = median(xi[k]); X[k] = a
        if (k in tt) {
          c = median(tt[k]); d = median(ti[k]); T[k] = c
          printf "%-14s %3s %10.3f %10.3f %6.2fx   %10.3f %10.3f %6.2fx  %s\n", p[1], p[2], a, c, c / a, b, d, d / b, lay[k]
        } else
          printf "%-14s %3s %10.3f %10s %7s   %10.3f\n", p[1], p[2], a, "-", "", b
      }
      printf "\ntraining step speed-up from 1 to 2 threads (goal: never below 1.0):\n"
      for (i = 1; i <= nm; i++) {
        m = models[i]; k1 = m SUBSEP 1; k2 = m SUBSEP 2
        if (!((k1 in X) && (k2 in X))) continue
        line = sprintf("  %-14s xtape %.2fx", m, X[k1] / X[k2])
        if ((k1 in T) && (k2 in T)) line = line sprintf(", torch %.2fx", T[k1] / T[k2])
        print line
      }
      print "goals (issue 16, 2 threads, torch / xtape): founding >= 3x, VGG >= 2x, MLP training and inference >= 1.5x"
    }' "$tmp/$1"
}

echo "== idle (load average at start: $(cut -d' ' -f1-3 /proc/loadavg)) =="
peaks
measure idle
peaks
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -s "$tmp/blas" ] && echo "PyTorch BLAS: $(cat "$tmp/blas")"
report idle
if [ "$loaded" = 1 ]; then
  echo
  sh -c 'while :; do :; done' &
  busy=$!
  echo "== loaded: a busy loop (pid $busy) keeps one core busy; load average $(cut -d' ' -f1-3 /proc/loadavg) =="
  measure loaded
  kill "$busy" 2>/dev/null
  busy=""
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  report loaded
fi
