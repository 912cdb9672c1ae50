#!/bin/sh
# Runs xtape's bench_model and the PyTorch reference one after the other on the same data, N
# times alternately (--runs N, default 1), and prints per run and as medians:
#   the ratio torch_time / xtape_time (median training step, 2 threads; epochs with --epoch),
#   xtape's 1-thread / 2-thread speed-up, and both peak RSS figures.
#
# Usage: bench/compare.sh [BUILD_DIR] [--runs N] [extra bench_model args, e.g. --epoch --steps 100]
#   BUILD_DIR defaults to ./build. The torch part is optional: skipped with a message when
#   Debian's python3-torch is missing (apt-get install -y python3-torch).
#
#        bench/compare.sh [BUILD_DIR] --models [compare_models.sh args: --runs N --steps N --loaded]
#   instead runs bench/compare_models.sh: the models of issue 16 (founding at batch 32/128/512,
#   MLP, VGG, Conv1D), 1 and 2 threads, against PyTorch;
#        bench/compare.sh [BUILD_DIR] --gemm [--quick]
#   runs bench_gemm: sgemm GFLOP/s against OpenBLAS and the measured FMA peak.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/openblas_core.sh"
build=build
case "${1:-}" in --*|"") ;; *) build=$1; shift ;; esac
case "${1:-}" in
  --models) shift; exec bash "$here/compare_models.sh" "$build" "$@" ;;
  --gemm)
    shift
    [ -x "$build/bench/bench_gemm" ] || { echo "compare.sh: $build/bench/bench_gemm not found" >&2; exit 2; }
    openblas_core_check
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$build/bench/bench_gemm" "$@" | grep -v '^RESULT'
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0 ;;
esac
runs=1
args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    *) args="$args $1"; shift ;;
  esac
done
bench="$build/bench/bench_model"
if [ ! -x "$bench" ]; then
  echo "compare.sh: $bench not found; build first (meson setup $build && ninja -C $build)" >&2
  exit 2
fi
export XTAPE_DATA_DIR="${XTAPE_DATA_DIR:-$HOME/.cache/xtape}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

py=/usr/bin/python3
have_torch=1
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
  have_torch=0
fi
[ "$have_torch" = 1 ] && openblas_core_check
torch_args=""
prev=""
for a in $args; do
  case "$a" in --epoch|--synthetic) torch_args="$torch_args $a" ;; esac
  [ "$prev" = "--steps" ] && torch_args="$torch_args --steps $a"
  prev=$a
done

get() { awk -v k="$1" '$1=="RESULT" && $2==k {print $3}' "$2"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) exit; print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }

i=1
while [ "$i" -le "$runs" ]; do
  echo "== run $i/$runs: xtape (bench_model) =="
  # shellcheck disable=SC2086
  "$bench" $args | tee "$tmp/xtape.$i.txt"
  echo
  if [ "$have_torch" = 1 ]; then
    echo "== run $i/$runs: PyTorch (bench/reference/torch_seed.py) =="
    # shellcheck disable=SC2086
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 \
      OMP_NUM_THREADS=2 "$py" "$here/reference/torch_seed.py" --threads 2 $torch_args | tee "$tmp/torch.$i.txt"
    echo
  else
    echo "PyTorch not installed for $py: skipping the comparison (apt-get install -y python3-torch)."
  fi
  i=$((i + 1))
done

echo "== comparison (batch 128; median training step of each run) =="
i=1
: >"$tmp/ratio" ; : >"$tmp/scale" ; : >"$tmp/eratio"
while [ "$i" -le "$runs" ]; do
  x2=$(get step_ms_2t "$tmp/xtape.$i.txt"); x1=$(get step_ms_1t "$tmp/xtape.$i.txt")
  xe=$(get epoch_s_2t "$tmp/xtape.$i.txt"); xr=$(get peak_rss_mb "$tmp/xtape.$i.txt")
  t=""; te=""; tr=""
  if [ -f "$tmp/torch.$i.txt" ]; then
    t=$(get torch_step_ms "$tmp/torch.$i.txt"); te=$(get torch_epoch_s "$tmp/torch.$i.txt")
    tr=$(get torch_peak_rss_mb "$tmp/torch.$i.txt")
  fi
  line="run $i:"
  if [ -n "$x2" ] && [ -n "$t" ]; then
    r=$(awk -v x="$x2" -v t="$t" 'BEGIN { printf "%.2f", t / x }')
    echo "$r" >>"$tmp/ratio"
    line="$line step torch $t ms / xtape $x2 ms = ${r}x;"
  fi
  if [ -n "$x1" ] && [ -n "$x2" ]; then
    sc=$(awk -v a="$x1" -v b="$x2" 'BEGIN { printf "%.2f", a / b }')
    echo "$sc" >>"$tmp/scale"
    line="$line 1 thread $x1 ms / 2 threads = ${sc}x;"
  fi
  if [ -n "$xe" ] && [ -n "$te" ]; then
    er=$(awk -v x="$xe" -v t="$te" 'BEGIN { printf "%.2f", t / x }')
    echo "$er" >>"$tmp/eratio"
    line="$line epoch torch $te s / xtape $xe s = ${er}x;"
  fi
  [ -n "$xr" ] && line="$line peak RSS xtape $xr MB${tr:+, torch $tr MB}"
  echo "$line"
  i=$((i + 1))
done
m=$(median <"$tmp/ratio"); [ -n "$m" ] && echo "median step ratio torch / xtape (2 threads): ${m}x (goal >= 3)"
m=$(median <"$tmp/eratio"); [ -n "$m" ] && echo "median epoch ratio torch / xtape (2 threads): ${m}x (goal >= 3)"
m=$(median <"$tmp/scale"); [ -n "$m" ] && echo "median speed-up xtape 1 -> 2 threads: ${m}x (goal >= 1.8)"
exit 0
