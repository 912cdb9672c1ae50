#!/bin/sh
# Training inside a cgroup with a CPU limit (a container's `docker --cpus`, a Kubernetes CPU
# limit, systemd's CPUQuota), as bench_threads --configured times it: the founding model at
# batch 32 and the Conv1D classifier, each with the thread count the library chooses there
# (capped by the limit: kernels/cpu_quota.hpp) and forced to 1 and to 2 (XTAPE_NUM_THREADS),
# for limits of 1 and 1.5 CPUs. Prints the median fit times and ratios against 1 thread.
# Needs root and the cgroup cpu controller (v2's cpu.max or v1's cpu.cfs_quota_us); removes
# the cgroup it makes.
#
# Usage: bench/cpu_quota.sh [BUILD_DIR] [--runs N]
set -u
build=build
case "${1:-}" in --*|"") ;; *) build=$1; shift ;; esac
runs=3
[ "${1:-}" = "--runs" ] && runs=$2
bench="$build/bench/bench_threads"
[ -x "$bench" ] || { echo "cpu_quota.sh: $bench not found; build first" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "cpu_quota.sh: needs root to make a cgroup" >&2; exit 2; }
name=xtape_quota_$$
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
  grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
  dir=/sys/fs/cgroup/$name; v2=1
elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  dir=/sys/fs/cgroup/cpu/$name; v2=0
elif [ -f /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us ]; then
  dir=/sys/fs/cgroup/cpu,cpuacct/$name; v2=0
else
  echo "cpu_quota.sh: no cgroup cpu controller found" >&2; exit 2
fi
mkdir "$dir" || exit 2
trap 'rmdir "$dir" 2>/dev/null' EXIT
limit() {  # $1: quota in microseconds per 100 ms period
  if [ "$v2" = 1 ]; then echo "$1 100000" >"$dir/cpu.max"
  else echo 100000 >"$dir/cpu.cfs_period_us"; echo "$1" >"$dir/cpu.cfs_quota_us"; fi
}
run() {  # $1: XTAPE_NUM_THREADS value or "default"; prints "<model> <threads> <seconds>" lines
  if [ "$1" = default ]; then env_set="-u XTAPE_NUM_THREADS"; else env_set="XTAPE_NUM_THREADS=$1"; fi
  sh -c "echo \$\$ >'$dir/cgroup.procs' && exec env -u OMP_NUM_THREADS $env_set '$bench' --configured --runs $runs" |
    awk '/^RESULT/ {print $2, $4, $5}'
}
echo "machine: $(nproc) CPUs; cgroup $dir (v$([ "$v2" = 1 ] && echo 2 || echo 1)); medians of $runs fits"
printf '%-10s %-10s %12s %12s %12s %14s %14s\n' limit model "1 thread s" "2 threads s" "default s" "2t / 1t" "default / 1t"
for quota in 100000 150000; do
  limit $quota
  r1=$(run 1); r2=$(run 2); rd=$(run default)
  for model in conv1d founding; do
    t1=$(echo "$r1" | awk -v m=$model '$1 == m {print $3}')
    t2=$(echo "$r2" | awk -v m=$model '$1 == m {print $3}')
    td=$(echo "$rd" | awk -v m=$model '$1 == m {print $3}')
    nd=$(echo "$rd" | awk -v m=$model '$1 == m {print $2}')
    awk -v q=$quota -v m=$model -v a="$t1" -v b="$t2" -v c="$td" -v n="$nd" 'BEGIN {
      printf "%-10s %-10s %12.3f %12.3f %9.3f (%dt) %13.2fx %13.2fx\n", q / 100000 " CPUs", m, a, b, c, n, b / a, c / a }'
  done
done
