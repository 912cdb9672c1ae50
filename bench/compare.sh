#!/bin/sh
# Runs xtape's bench_model and the PyTorch reference one after the other on the same data and
# prints the ratio torch_time / xtape_time (median training step, 2 threads).
#
# Usage: bench/compare.sh [BUILD_DIR] [extra bench_model args, e.g. --epoch --steps 100]
#   BUILD_DIR defaults to ./build. The torch part is optional: skipped with a message when
#   Debian's python3-torch is missing (apt-get install -y python3-torch).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
bench="$build/bench/bench_model"
if [ ! -x "$bench" ]; then
  echo "compare.sh: $bench not found; build first (meson setup $build && ninja -C $build)" >&2
  exit 2
fi
export XTAPE_DATA_DIR="${XTAPE_DATA_DIR:-$HOME/.cache/xtape}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== xtape (bench_model) =="
"$bench" "$@" | tee "$tmp/xtape.txt"

echo
echo "== PyTorch (bench/reference/torch_seed.py) =="
py=/usr/bin/python3
torch_args=""
for a in "$@"; do
  case "$a" in --epoch|--synthetic) torch_args="$torch_args $a" ;; esac
done
steps=$(printf '%s\n' "$@" | awk 'prev=="--steps"{print; exit} {prev=$0}')
[ -n "$steps" ] && torch_args="$torch_args --steps $steps"
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
  echo "PyTorch not installed for $py: skipping the comparison (apt-get install -y python3-torch)."
  exit 0
fi
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 \
  OMP_NUM_THREADS=2 "$py" "$here/reference/torch_seed.py" --threads 2 $torch_args | tee "$tmp/torch.txt"

get() { awk -v k="$1" '$1=="RESULT" && $2==k {print $3}' "$2"; }
x2=$(get step_ms_2t "$tmp/xtape.txt")
x1=$(get step_ms_1t "$tmp/xtape.txt")
t=$(get torch_step_ms "$tmp/torch.txt")
echo
echo "== comparison (median training step, batch 128) =="
if [ -n "$x2" ] && [ -n "$t" ]; then
  awk -v x="$x2" -v t="$t" 'BEGIN { printf "torch %.2f ms / xtape (2 threads) %.2f ms = %.2fx (goal >= 3)\n", t, x, t / x }'
fi
if [ -n "$x1" ] && [ -n "$x2" ]; then
  awk -v a="$x1" -v b="$x2" 'BEGIN { printf "xtape 1 thread %.2f ms / 2 threads %.2f ms = %.2fx (goal >= 1.8)\n", a, b, a / b }'
fi
xe=$(get epoch_s_2t "$tmp/xtape.txt")
te=$(get torch_epoch_s "$tmp/torch.txt")
if [ -n "$xe" ] && [ -n "$te" ]; then
  awk -v x="$xe" -v t="$te" 'BEGIN { printf "epoch: torch %.2f s / xtape %.2f s = %.2fx\n", t, x, t / x }'
fi
xr=$(get peak_rss_mb "$tmp/xtape.txt")
tr=$(get torch_peak_rss_mb "$tmp/torch.txt")
[ -n "$xr" ] && [ -n "$tr" ] && echo "peak RSS: xtape $xr MB, torch $tr MB"
exit 0
