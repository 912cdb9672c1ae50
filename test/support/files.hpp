#pragma once
/// @file files.hpp
/// Hostile paths for the file readers' tests (IDX and safetensors): a FIFO, a symlink loop, a
/// file reached through a directory its reader may not search, and sparse files. A test running
/// as root (CI does) checks the permission case in a child process that drops to an
/// unprivileged user, so it tests the same thing under any account.
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>

// 1 in a build with AddressSanitizer, whose allocator aborts on a failed allocation instead of
// throwing std::bad_alloc (tests of that path are left out there).
#if defined(__SANITIZE_ADDRESS__)
#define XTAPE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XTAPE_TEST_ASAN 1
#endif
#endif
#ifndef XTAPE_TEST_ASAN
#define XTAPE_TEST_ASAN 0
#endif

namespace xtape::testing {

/// A FIFO called `name` in `dir`; returns its path.
inline std::string make_fifo(const std::string& dir, const std::string& name = "fifo") {
  const std::string path = dir + "/" + name;
  BOOST_REQUIRE_MESSAGE(::mkfifo(path.c_str(), 0600) == 0, "mkfifo: " << std::strerror(errno));
  return path;
}

/// Two symbolic links pointing at each other; returns the path of one of them.
inline std::string make_symlink_loop(const std::string& dir) {
  const std::string a = dir + "/loop_a", b = dir + "/loop_b";
  BOOST_REQUIRE(::symlink(b.c_str(), a.c_str()) == 0);
  BOOST_REQUIRE(::symlink(a.c_str(), b.c_str()) == 0);
  return a;
}

/// A file of `size` bytes that starts with `prefix` and is a hole after it (nothing on disk).
inline void make_sparse_file(const std::string& path, const std::string& prefix,
                             std::uint64_t size) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
    BOOST_REQUIRE(out.good());
  }
  BOOST_REQUIRE_MESSAGE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0,
                        "truncate to " << size << ": " << std::strerror(errno));
}

/// The machine's physical memory in bytes.
inline std::uint64_t physical_memory() {
  return static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
         static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

/// Runs `f` in a child process (optionally after `prepare`, e.g. dropping privileges or
/// lowering a limit) and returns what it threw: "runtime_error: <what>", "other: <what>",
/// "no exception", or "failed: <why>" when `prepare` failed. Only the library call runs in the
/// child; Boost.Test is used by the parent alone.
inline std::string outcome_in_child(const std::function<void()>& f,
                                    const std::function<std::string()>& prepare = {}) {
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    const std::string problem = prepare ? prepare() : std::string();
    if (!problem.empty()) {
      out = "failed: " + problem;
    } else {
      try {
        f();
        out = "no exception";
      } catch (const std::runtime_error& e) {
        out = std::string("runtime_error: ") + e.what();
      } catch (const std::exception& e) {
        out = std::string("other: ") + e.what();
      }
    }
    for (std::size_t done = 0; done < out.size();) {
      const ssize_t put = ::write(fds[1], out.data() + done, out.size() - done);
      if (put <= 0) break;
      done += static_cast<std::size_t>(put);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, got);
  ::close(fds[0]);
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  BOOST_REQUIRE_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                        "the child process died (status " << status << ")");
  return out;
}

/// Drops a root process to the unprivileged user and group 65534 (nobody); a no-op for other
/// users. Returns "" on success, else the reason.
inline std::string drop_root() {
  if (::geteuid() != 0) return "";
  if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)
    return std::string("cannot drop root: ") + std::strerror(errno);
  if (::geteuid() == 0) return "still root after setuid";
  return "";
}

/// Caps the address space of the calling process at its current size plus `extra` bytes, so
/// that a larger allocation fails (for a child of outcome_in_child). Returns "" or the reason.
inline std::string cap_address_space(std::uint64_t extra) {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0;
  if (!(statm >> pages)) return "cannot read /proc/self/statm";
  const rlim_t cap = pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) + extra;
  const rlimit limit{cap, cap};
  if (::setrlimit(RLIMIT_AS, &limit) != 0) return std::string("setrlimit: ") + std::strerror(errno);
  return "";
}

/// `read(path)` for a file `contents` inside `dir`/locked, a directory nobody may search (mode
/// 0000), run unprivileged; returns the outcome (see outcome_in_child). `dir` must be searchable
/// by everyone (it is made mode 0755 here).
inline std::string outcome_without_permission(const std::string& dir, const std::string& contents,
                                              const std::function<void(const std::string&)>& read,
                                              std::string* path_out = nullptr) {
  const std::string locked = dir + "/locked", path = locked + "/file";
  BOOST_REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  BOOST_REQUIRE(::mkdir(locked.c_str(), 0700) == 0);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  }
  BOOST_REQUIRE(::chmod(locked.c_str(), 0) == 0);
  const std::string outcome = outcome_in_child([&] { read(path); }, drop_root);
  ::chmod(locked.c_str(), 0700);  // so that the test's directory can be removed
  if (path_out) *path_out = path;
  return outcome;
}

}  // namespace xtape::testing
