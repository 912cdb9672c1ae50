#pragma once
/// @file files.hpp
/// What every file reader and writer of xtape shares (datasets/ and layers/ build on it; it
/// knows neither): opening only regular files, reading in bounded pieces, the memory limit of
/// a read, atomic writes that clean up after killed writers, and quoting of text that came
/// from a file before it goes into a message.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace xtape::io {

/// Longest piece of file-provided text (a tensor name, a metadata value) that a message echoes,
/// in bytes of the original; longer text is cut and the message gives its full length.
inline constexpr std::size_t k_quote_max = 120;

/// Longest path a message echoes whole, in bytes (paths are the caller's, not the file's).
inline constexpr std::size_t k_path_quote_max = 4096;

/// `text` between single quotes, safe to print on a terminal and on one line: printable ASCII
/// and valid UTF-8 stay as they are; `'` and `\` are escaped, \n \r \t spelt so, other control
/// bytes, DEL and invalid UTF-8 bytes as \xNN; C1 controls, line separators and bidirectional
/// overrides as \uNNNN. When `text` is longer than `max_bytes`, only its first `max_bytes`
/// bytes (up to a character boundary) are shown, followed by "... (N bytes)".
std::string quoted(std::string_view text, std::size_t max_bytes = k_quote_max);

/// Throws std::runtime_error "<who>: '<path>': <problem>" (the path quoted as by quoted()).
[[noreturn]] void fail(std::string_view who, std::string_view path, const std::string& problem);

/// The most bytes a reader holds in memory for one file: the machine's physical memory
/// (sysconf). Readers refuse larger contents before allocating anything.
std::uint64_t memory_limit();

/// Throws (see fail) when `bytes` exceeds memory_limit(): "<what> needs N bytes, more than
/// this machine's memory (M bytes)".
void check_memory(std::string_view who, std::string_view path, std::uint64_t bytes,
                  std::string_view what);

/// A regular file opened for reading. Non-regular files are refused before they are opened
/// (stat), and the open itself (O_NONBLOCK, then fstat) cannot block on a FIFO that appears in
/// between.
class InputFile {
 public:
  /// Opens `path`. Throws std::runtime_error "<who>: '<path>': <problem>" where the problem is
  /// "no such file", "is a directory, expected <expected>", "is a FIFO (named pipe) / socket /
  /// character device / block device, expected <expected>", or "cannot open: <strerror>"
  /// (permission denied, a symbolic link loop, a path component that is not a directory...).
  InputFile(std::string path, std::string who, std::string_view expected);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// The file's size in bytes when it was opened.
  std::uint64_t size() const { return size_; }
  /// The path given to the constructor.
  const std::string& path() const { return path_; }
  /// Reads up to `n` bytes at the current position into `dst`, in pieces of at most 1 GiB;
  /// returns fewer than `n` only at the end of the file. Throws std::runtime_error naming the
  /// file on a read error.
  std::size_t read(void* dst, std::size_t n);
  /// Throws std::runtime_error "<who>: '<path>': <problem>".
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  std::string path_, who_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

/// Writes the concatenation of `pieces` to `path` atomically: a new temporary file in the same
/// directory ("<path>.tmp<pid>.XXXXXX"), fully written, fsync'ed, renamed over `path`, then the
/// directory fsync'ed. A crash or kill at any moment leaves either the old file or the new one.
/// Before writing, removes stale temporary files of `path` left by processes that no longer
/// exist (see remove_stale_temporaries). Throws std::runtime_error "<who>: '<path>': ..."
/// naming the system error; the temporary file is removed on failure.
void write_file_atomic(const std::string& path, std::initializer_list<std::string_view> pieces,
                       std::string_view who = "write_file_atomic");

/// Removes the temporary files write_file_atomic left for `path` when its process was killed:
/// regular files in the same directory named exactly "<name>.tmp<pid>.<6 letters or digits>"
/// whose pid is not this process and names no live process (kill(pid, 0) fails with ESRCH).
/// Best effort: errors are ignored. Returns how many files were removed. (A writer in another
/// PID namespace sharing the directory is invisible here and would count as dead.)
std::size_t remove_stale_temporaries(const std::string& path);

}  // namespace xtape::io
