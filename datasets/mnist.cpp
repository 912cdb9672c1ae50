// MNIST and Fashion-MNIST loaders: locate the four IDX files, read them, check they fit together.
#include "datasets/mnist.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace xtape::datasets {

namespace {

namespace fs = std::filesystem;

constexpr const char* k_train_images = "train-images-idx3-ubyte";
constexpr const char* k_train_labels = "train-labels-idx1-ubyte";
constexpr const char* k_test_images = "t10k-images-idx3-ubyte";
constexpr const char* k_test_labels = "t10k-labels-idx1-ubyte";

// The value of an environment variable, "" when unset (empty counts as unset).
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string home_dir() {
  std::string home = env("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return ".";
}

// `dir/name` if it exists, else `dir/name.gz` if that exists, else "".
std::string locate(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  for (const fs::path& p : {dir / name, dir / (name + ".gz")}) {
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

struct Source {
  const char* loader;  // "mnist::load_data"
  const char* hint;    // how to get the files
};

Dataset load_four(const std::string& dir, const Source& src) {
  const std::vector<std::string> names{k_train_images, k_train_labels, k_test_images,
                                       k_test_labels};
  std::vector<std::string> paths;
  std::string missing;
  for (const std::string& name : names) {
    paths.push_back(locate(dir, name));
    if (paths.back().empty()) missing += (missing.empty() ? "" : ", ") + name + "[.gz]";
  }
  if (!missing.empty()) {
    throw std::runtime_error(std::string(src.loader) + ": missing file(s) in '" + dir +
                             "': " + missing + ". " + src.hint);
  }
  auto check_images = [&](const Split& s, const std::string& path) {
    const Shape& sh = s.first.shape;
    if (sh.size() != 3 || sh[1] != 28 || sh[2] != 28) {
      throw std::runtime_error(std::string(src.loader) + ": '" + path +
                               "': expected images of shape (n, 28, 28), got " + shape_str(sh));
    }
  };
  Split train = load_split(paths[0], paths[1], 10);
  check_images(train, paths[0]);
  Split test = load_split(paths[2], paths[3], 10);
  check_images(test, paths[2]);
  return {std::move(train), std::move(test)};
}

}  // namespace

Split load_split(const std::string& images_path, const std::string& labels_path,
                 std::size_t num_classes) {
  U8Array images = read_idx(images_path);
  U8Array labels = read_idx(labels_path);
  const std::string both = "images '" + images_path + "' and labels '" + labels_path + "'";
  if (labels.shape.size() != 1) {
    throw std::runtime_error("load_split: " + both + ": expected 1-D labels, got shape " +
                             shape_str(labels.shape));
  }
  if (images.shape[0] != labels.shape[0]) {
    throw std::runtime_error(
        "load_split: " + both + " disagree: " + std::to_string(images.shape[0]) + " images " +
        shape_str(images.shape) + " but " + std::to_string(labels.shape[0]) + " labels");
  }
  const auto bad = std::find_if(labels.data.begin(), labels.data.end(),
                                [&](std::uint8_t v) { return v >= num_classes; });
  if (bad != labels.data.end()) {
    throw std::runtime_error("load_split: " + both + ": expected labels in [0, " +
                             std::to_string(num_classes - 1) + "], got " + std::to_string(*bad) +
                             " at index " + std::to_string(bad - labels.data.begin()) + " in '" +
                             labels_path + "'");
  }
  return {std::move(images), std::move(labels)};
}

namespace mnist {

std::string default_dir() {
  if (std::string d = env("XTAPE_MNIST_DIR"); !d.empty()) return d;
  if (std::string d = env("XTAPE_DATA_DIR"); !d.empty()) return (fs::path(d) / "mnist").string();
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty()) {
    return (fs::path(d) / "xtape" / "mnist").string();
  }
  return (fs::path(home_dir()) / ".cache" / "xtape" / "mnist").string();
}

Dataset load_data(const std::string& dir) {
  return load_four(dir.empty() ? default_dir() : dir,
                   {"mnist::load_data",
                    "Fetch them with `bash tools/xtape.sh setup` (it fills the data cache "
                    "$XTAPE_DATA_DIR/mnist, default ~/.cache/xtape/mnist), or point "
                    "XTAPE_MNIST_DIR or load_data's dir argument at a directory holding them."});
}

}  // namespace mnist

namespace fashion_mnist {

std::string default_dir() {
  if (std::string d = env("XTAPE_FASHION_MNIST_DIR"); !d.empty()) return d;
  return "/usr/share/datasets/fashion-mnist";
}

Dataset load_data(const std::string& dir) {
  return load_four(dir.empty() ? default_dir() : dir,
                   {"fashion_mnist::load_data",
                    "Install them with `apt-get install dataset-fashion-mnist` (Debian; it puts "
                    "them in /usr/share/datasets/fashion-mnist), or point "
                    "XTAPE_FASHION_MNIST_DIR or load_data's dir argument at a directory holding "
                    "them."});
}

}  // namespace fashion_mnist

}  // namespace xtape::datasets
