// The cgroup CPU limit behind num_threads()'s default (cpu_quota.hpp).
#include "kernels/cpu_quota.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace xtape::kernels::detail {

namespace {

// The whole of a small file (empty when unreadable).
std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t p = 0;
  while (true) {
    const std::size_t q = s.find(sep, p);
    out.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) return out;
    p = q + 1;
  }
}

bool has_element(const std::string& list, const std::string& name) {
  for (const std::string& e : split(list, ','))
    if (e == name) return true;
  return false;
}

// A positive integer, or -1.
long long parse_count(const std::string& text) {
  const std::string t = first_line(text);
  if (t.empty()) return -1;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (errno != 0 || end == t.c_str()) return -1;
  while (*end == ' ' || *end == '\t' || *end == '\r') ++end;
  return *end == '\0' && v > 0 ? v : -1;
}

// The smaller of two limits, 0 standing for none.
double tighter(double best, double limit) {
  return limit > 0 && (best == 0 || limit < best) ? limit : best;
}

// One hierarchy: where it is mounted, the cgroup directory the mount shows as its root, and
// this process's cgroup in it.
struct Hierarchy {
  std::string mount_point, mount_root, path;
};

// The smallest limit from dir up to the mount point (0: none).
double chain_limit(const Hierarchy& h, const std::string& root, bool v2) {
  std::string rel = h.path;
  if (h.mount_root != "/" && rel.compare(0, h.mount_root.size(), h.mount_root) == 0)
    rel = rel.substr(h.mount_root.size());
  else if (h.mount_root != "/")
    rel.clear();  // the process's cgroup is outside what is mounted: read the mount's root
  if (rel.empty() || rel[0] != '/') rel = "/" + rel;
  double best = 0;
  for (int depth = 0; depth < 64; ++depth) {  // a bound: no cycle can form, but stay safe
    const std::string dir = root + h.mount_point + (rel == "/" ? "" : rel);
    const double limit =
        v2 ? cpu_max_limit(read_text(dir + "/cpu.max"))
           : cfs_limit(read_text(dir + "/cpu.cfs_quota_us"), read_text(dir + "/cpu.cfs_period_us"));
    best = tighter(best, limit);
    if (rel == "/") break;
    const std::size_t slash = rel.find_last_of('/');
    rel = slash == 0 ? "/" : rel.substr(0, slash);
  }
  return best;
}

}  // namespace

double cfs_limit(const std::string& quota_us, const std::string& period_us) {
  const long long quota = parse_count(quota_us), period = parse_count(period_us);
  return quota > 0 && period > 0 ? static_cast<double>(quota) / static_cast<double>(period) : 0;
}

double cpu_max_limit(const std::string& cpu_max) {
  const std::vector<std::string> f = split(first_line(cpu_max), ' ');
  return f.size() == 2 && f[0] != "max" ? cfs_limit(f[0], f[1]) : 0;  // the same quota / period
}

int threads_for_cpu_limit(double cpus) {
  if (!(cpus > 0)) return INT_MAX;
  if (cpus >= static_cast<double>(INT_MAX)) return INT_MAX;
  return std::max(1, static_cast<int>(std::lround(cpus)));
}

double cgroup_cpu_limit_from(const std::string& mountinfo, const std::string& self_cgroup,
                             const std::string& root) {
  // /proc/self/cgroup: "hierarchy-id:controllers:path"; v2 is "0::path", v1's cpu controller
  // is listed among its hierarchy's controllers ("cpu,cpuacct").
  std::string v2_path, v1_path;
  bool have_v2 = false, have_v1 = false;
  for (const std::string& line : split(self_cgroup, '\n')) {
    const std::size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) {
      have_v2 = true, v2_path = path;
    } else if (has_element(controllers, "cpu")) {
      have_v1 = true, v1_path = path;
    }
  }
  // /proc/self/mountinfo: "id parent dev root mount-point options [tags] - type source super".
  Hierarchy v2, v1;
  bool v2_mounted = false, v1_mounted = false;
  for (const std::string& line : split(mountinfo, '\n')) {
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    const std::vector<std::string> head = split(line.substr(0, dash), ' ');
    const std::vector<std::string> tail = split(line.substr(dash + 3), ' ');
    if (head.size() < 5 || tail.size() < 3) continue;
    if (tail[0] == "cgroup2" && have_v2 && !v2_mounted) {
      v2 = {head[4], head[3], v2_path};
      v2_mounted = true;
    } else if (tail[0] == "cgroup" && have_v1 && !v1_mounted && has_element(tail[2], "cpu")) {
      v1 = {head[4], head[3], v1_path};
      v1_mounted = true;
    }
  }
  return tighter(v2_mounted ? chain_limit(v2, root, true) : 0.0,
                 v1_mounted ? chain_limit(v1, root, false) : 0.0);
}

double cgroup_cpu_limit() {
  static std::once_flag once;
  static double limit = 0;
  std::call_once(once, [] {
    limit = cgroup_cpu_limit_from(read_text("/proc/self/mountinfo"), read_text("/proc/self/cgroup"),
                                  "");
  });
  return limit;
}

}  // namespace xtape::kernels::detail
