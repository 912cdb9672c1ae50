#!/usr/bin/env bash
# Epoch time of the founding model, data-parallel on 2 ranks x 1 thread against 1 rank x 2
# threads on this machine, alternating, and the bytes all-reduced per step.
#   bench/data_parallel.sh [build dir] [runs] [extra bench_data_parallel arguments]
set -euo pipefail
BUILD="${1:-build}"
RUNS="${2:-3}"
shift 2 || shift $# || true
EXE="$BUILD/bench/bench_data_parallel"
for ((i = 1; i <= RUNS; ++i)); do
  echo "run $i: 1 rank x 2 threads"
  OMP_NUM_THREADS=2 timeout 1800 "$EXE" "$@" | grep -v '^RESULT'
  echo "run $i: 2 ranks x 1 thread"
  OMP_NUM_THREADS=1 timeout 1800 mpirun --allow-run-as-root --oversubscribe -np 2 \
    -x OMP_NUM_THREADS=1 "$EXE" "$@" | grep -v '^RESULT'
done
