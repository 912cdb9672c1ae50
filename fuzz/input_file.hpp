#pragma once
// The fuzz targets' input file: readers take a path, so each input is written to an in-memory
// file (memfd) reached through /proc/self/fd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace xtape::fuzzing {

/// The path of this process's input file `name`, created on first use.
inline const std::string& input_path(const char* name) {
  static const std::string path = [name] {
    const int fd = memfd_create(name, 0);
    if (fd < 0) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

/// Replaces the contents of the input file at `path` by `size` bytes at `data`.
inline void write_input(const std::string& path, const void* data, std::size_t size) {
  const int fd = std::stoi(path.substr(path.rfind('/') + 1));
  if (ftruncate(fd, 0) != 0) std::abort();
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t put = pwrite(fd, bytes + done, size - done, static_cast<off_t>(done));
    if (put <= 0) std::abort();
    done += static_cast<std::size_t>(put);
  }
}

}  // namespace xtape::fuzzing
