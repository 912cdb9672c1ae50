#pragma once
/// @file cpu_quota.hpp
/// The CPU bandwidth limit of this process's cgroup (a container's CPU limit: `docker --cpus`,
/// a Kubernetes CPU limit, systemd's CPUQuota), which caps num_threads() by default
/// (threads.hpp). Internal to kernels/; the parsers are exposed for the tests.
#include <string>

namespace xtape::kernels::detail {

/// The limit in CPUs (quota / period), the smallest along the chain from this process's
/// cgroup up to the root of its hierarchy: cgroup v2's cpu.max and v1's cpu.cfs_quota_us /
/// cpu.cfs_period_us, both when both hierarchies are mounted. 0 when there is none or it
/// cannot be read. Read once, at the first call.
double cgroup_cpu_limit();

/// The same from given sources: the texts of /proc/self/mountinfo and /proc/self/cgroup, and
/// `root` prepended to each mount point (the directory the file system is under; "" for /).
double cgroup_cpu_limit_from(const std::string& mountinfo, const std::string& self_cgroup,
                             const std::string& root);

/// The limit of one cgroup v2 cpu.max line ("150000 100000": 1.5; "max 100000": none, 0),
/// and of a v1 quota and period in microseconds (quota -1: none). 0 for an unreadable value.
double cpu_max_limit(const std::string& cpu_max);
double cfs_limit(const std::string& quota_us, const std::string& period_us);

/// Threads for a limit of `cpus`: rounded to the nearest, at least 1 (a thread beyond the
/// limit would spend the quota the others need and stall every join while the group is
/// throttled); no cap (INT_MAX) for 0.
int threads_for_cpu_limit(double cpus);

}  // namespace xtape::kernels::detail
