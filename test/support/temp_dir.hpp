#pragma once
/// @file temp_dir.hpp
/// A fresh directory under the system's temporary directory for one test, removed with
/// everything in it when the object goes out of scope.
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace xtape::testing {

class TempDir {
 public:
  /// Creates <tmp>/xtape-<tag>-XXXXXX (mkdtemp: a new name each time, mode 0700).
  explicit TempDir(const std::string& tag = "test") {
    std::string name = "xtape-";  // appended piecewise: GCC 12 warns (-Wrestrict) on a + b + c
    name += tag;
    name += "-XXXXXX";
    std::string pattern = (std::filesystem::temp_directory_path() / name).string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::string message = "TempDir: mkdtemp failed for ";
      message += pattern;
      throw std::runtime_error(message);
    }
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

}  // namespace xtape::testing
