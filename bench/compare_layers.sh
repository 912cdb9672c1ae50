#!/bin/bash
# The training step (forward + backward) of each layer type, xtape (bench_layers) against
# PyTorch's equivalent (bench/reference/torch_layers.py) on the same shapes (xtape reads each
# step's output, as a loss would, so deferred forwards are timed too): for each thread
# count, xtape then PyTorch, repeated --runs times (alternating), medians per layer.
# Prints: layer, input shape (Keras layout), threads, xtape ms, torch ms (and the layout it
# ran in), ratio torch / xtape (goal >= 0.83: no layer slower than PyTorch by more than 1.2x),
# and for the normalization layers their cost in elementwise passes (time / time of x * 2 on
# the same shape, which reads and writes the tensor once forward and once backward).
#
# Usage: bash bench/compare_layers.sh [BUILD_DIR] [--runs N] [--steps N] [--threads 1,2]
#                                     [--only PREFIX,...]
# BUILD_DIR defaults to ./build. PyTorch is optional (Debian's python3-torch): without it only
# xtape's column is printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=build
case "${1:-}" in --*|"") ;; *) build=$1; shift ;; esac
runs=2 steps=30 threads=1,2 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "compare_layers.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench="$build/bench/bench_layers"
if [ ! -x "$bench" ]; then
  echo "compare_layers.sh: $bench not found; build first (ninja -C $build bench/bench_layers)" >&2
  exit 2
fi
py=/usr/bin/python3
have_torch=1
"$py" -c 'import torch' >/dev/null 2>&1 || have_torch=0
[ "$have_torch" = 1 ] || echo "PyTorch not installed for $py: xtape only (apt-get install -y python3-torch)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
onlyarg=()
[ -n "$only" ] && onlyarg=(--only "$only")

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "$(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$runs"); do
  for t in ${threads//,/ }; do
    OMP_NUM_THREADS=$t "$bench" --steps "$steps" --threads "$t" --read-output "${onlyarg[@]}" >"$tmp/x.$r.$t" 2>&1
    grep '^RESULT' "$tmp/x.$r.$t" | sed 's/^RESULT/X/' >>"$tmp/all"
    if [ "$have_torch" = 1 ]; then
      OMP_NUM_THREADS=$t "$py" "$here/reference/torch_layers.py" --steps "$steps" --threads "$t" \
        "${onlyarg[@]}" >"$tmp/t.$r.$t" 2>&1
      grep '^RESULT' "$tmp/t.$r.$t" | sed 's/^RESULT/T/' >>"$tmp/all"
      [ -f "$tmp/blas" ] || sed -n 's/.*; BLAS: //p' "$tmp/t.$r.$t" | head -1 >"$tmp/blas"
    fi
    echo "run $r/$runs, $t thread(s) done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
[ -s "$tmp/blas" ] && echo "PyTorch BLAS: $(cat "$tmp/blas")"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# Medians over the runs per (layer, threads); the layout is the one PyTorch chose most often.
awk -v runs="$runs" '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $1 == "X" { k = $2 SUBSEP $3; x[k] = x[k] " " $4; shape[$2] = $5; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
  $1 == "T" { k = $2 SUBSEP $3; t[k] = t[k] " " $4; lay[k] = $5 }
  END {
    printf "%-28s %-14s %3s %9s %9s %-13s %7s\n", "layer", "input", "thr", "xtape ms", "torch ms", "torch layout", "ratio"
    slow = 0
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, SUBSEP)
      xm = median(x[k]); xmed[k] = xm
      if (k in t) {
        tm = median(t[k]); tmed[k] = tm; r = tm / xm
        flag = r < 0.83 ? "  < 0.83" : ""
        if (r < 0.83) slow++
        printf "%-28s %-14s %3s %9.3f %9.3f %-13s %6.2fx%s\n", p[1], shape[p[1]], p[2], xm, tm, lay[k], r, flag
      } else
        printf "%-28s %-14s %3s %9.3f %9s\n", p[1], shape[p[1]], p[2], xm, "-"
    }
    if (length(tmed) > 0) printf "\nrows below 0.83 (slower than PyTorch by more than 1.2x): %d\n", slow
    printf "\nnormalization layers in elementwise passes (time / time of x * 2, same shape; 1 pass = read + write forward and backward):\n"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, SUBSEP)
      if (p[1] !~ /Normalization$/) continue
      ref = (p[1] == "LayerNormalization" ? "scale(rank-3)" : "scale") SUBSEP p[2]
      if (!(ref in xmed)) continue
      line = sprintf("  %-22s %s thr: xtape %.1f passes", p[1], p[2], xmed[k] / xmed[ref])
      if ((k in tmed) && (ref in tmed)) line = line sprintf(", torch %.1f", tmed[k] / tmed[ref])
      print line
    }
  }' "$tmp/all"
