// Regular-file reading, atomic writing with stale-temporary clean-up, and message quoting.
#include "io/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace xtape::io {

namespace {

constexpr std::size_t k_max_read = std::size_t{1} << 30;

void append_hex(std::string& out, const char* prefix, std::uint32_t v, int digits) {
  static const char* hex = "0123456789abcdef";
  out += prefix;
  for (int d = digits - 1; d >= 0; --d) out += hex[(v >> (4 * d)) & 0xF];
}

// Length of the valid UTF-8 sequence of at least two bytes at s[i] (0 when invalid), and its
// code point: shortest form only, no surrogates, at most U+10FFFF.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len;
  std::uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Code points a terminal acts on or that reorder or break the line: C1 controls, zero-width and
// directional marks, line and paragraph separators, directional embeddings and isolates, BOM.
bool invisible(std::uint32_t cp) {
  return cp < 0xA0 || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

bool is_temp_suffix(std::string_view s) {
  return s.size() == 6 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
         });
}

}  // namespace

std::string quoted(std::string_view text, std::size_t max_bytes) {
  std::string out = "'";
  std::size_t i = 0;
  while (i < text.size() && i < max_bytes) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\'' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7F) {
        append_hex(out, "\\x", c, 2);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t len = utf8_sequence(text, i, cp);
    if (len == 0) {
      append_hex(out, "\\x", c, 2);
      ++i;
    } else if (invisible(cp)) {
      append_hex(out, "\\u", cp, 4);
      i += len;
    } else {
      if (i + len > max_bytes) break;  // a character is shown whole or not at all
      out.append(text.substr(i, len));
      i += len;
    }
  }
  out += '\'';
  if (i < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

void fail(std::string_view who, std::string_view path, const std::string& problem) {
  throw std::runtime_error(std::string(who) + ": " + io::quoted(path, k_path_quote_max) + ": " +
                           problem);
}

std::uint64_t memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

void check_memory(std::string_view who, std::string_view path, std::uint64_t bytes,
                  std::string_view what) {
  const std::uint64_t limit = memory_limit();
  if (bytes > limit) {
    fail(who, path,
         std::string(what) + " needs " + std::to_string(bytes) +
             " bytes, more than this machine's memory (" + std::to_string(limit) + " bytes)");
  }
}

InputFile::InputFile(std::string path, std::string who, std::string_view expected)
    : path_(std::move(path)), who_(std::move(who)) {
  auto refuse = [&](mode_t mode) {
    fail(std::string("is ") + kind_of(mode) + ", expected " + std::string(expected));
  };
  auto open_error = [&](int err) {
    fail(err == ENOENT ? std::string("no such file")
                       : std::string("cannot open: ") + std::strerror(err));
  };
  // stat first, so that a device or FIFO is never opened; O_NONBLOCK and fstat close the race
  // with a FIFO created in between (opening one for reading would block until a writer comes).
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) open_error(errno);
  if (!S_ISREG(st.st_mode)) refuse(st.st_mode);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd_ < 0) open_error(errno);
  auto close_and = [&](auto&& f) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    f(err);
  };
  if (::fstat(fd_, &st) != 0) {
    close_and([&](int err) { fail(std::string("cannot stat: ") + std::strerror(err)); });
  }
  if (!S_ISREG(st.st_mode)) close_and([&](int) { refuse(st.st_mode); });
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    close_and([&](int err) { fail(std::string("cannot open: ") + std::strerror(err)); });
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t InputFile::read(void* dst, std::size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::read(fd_, out + done, std::min(n - done, k_max_read));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(std::string("read error: ") + std::strerror(errno));
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

void InputFile::fail(const std::string& problem) const { io::fail(who_, path_, problem); }

std::size_t remove_stale_temporaries(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  const pid_t self = ::getpid();
  std::size_t removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) continue;
    const std::string_view rest = name.substr(prefix.size());  // "<pid>.XXXXXX"
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos || dot > 10 ||
        !is_temp_suffix(rest.substr(dot + 1)))
      continue;
    const std::string_view digits = rest.substr(0, dot);
    if (digits[0] == '0' ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const long pid = std::stol(std::string(digits));
    if (pid == self || pid > std::numeric_limits<pid_t>::max()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours)
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

void write_file_atomic(const std::string& path, std::initializer_list<std::string_view> pieces,
                       std::string_view who) {
  auto sys_fail = [&](const std::string& what, int err) {
    fail(who, path, what + ": " + std::strerror(err));
  };
  remove_stale_temporaries(path);
  std::string tmp = path + ".tmp" + std::to_string(::getpid()) + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) sys_fail("cannot create a temporary file in the target's directory", errno);
  auto abandon = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    sys_fail(what, err);
  };
  for (const std::string_view bytes : pieces) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t put =
          ::write(fd, bytes.data() + done, std::min(bytes.size() - done, k_max_read));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) abandon("cannot write the temporary file " + io::quoted(tmp, k_path_quote_max));
      done += static_cast<std::size_t>(put);
    }
  }
  // mkstemp creates 0600; give the file the usual permissions (0666 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0)
    abandon("cannot set permissions of " + io::quoted(tmp, k_path_quote_max));
  if (::fsync(fd) != 0)
    abandon("cannot fsync the temporary file " + io::quoted(tmp, k_path_quote_max));
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    sys_fail("cannot close the temporary file " + io::quoted(tmp, k_path_quote_max), err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    sys_fail("cannot rename " + io::quoted(tmp, k_path_quote_max) + " over the target", err);
  }
  // Make the rename itself durable.
  const std::size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace xtape::io
