#pragma once
/// @file mnist.hpp
/// keras.datasets.mnist and keras.datasets.fashion_mnist: the four IDX files read from a local
/// directory (nothing is downloaded at run time) as uint8 arrays.
///
///   auto [train, test] = datasets::mnist::load_data();
///   // train.first: images (60000, 28, 28), train.second: labels (60000,)
#include <cstddef>
#include <string>
#include <utility>

#include "datasets/idx.hpp"

namespace xtape::datasets {

/// (images, labels) of one split: images (n, 28, 28), labels (n,) with values in [0, 9].
using Split = std::pair<U8Array, U8Array>;

/// ((x_train, y_train), (x_test, y_test)), as keras.datasets.*.load_data() returns.
using Dataset = std::pair<Split, Split>;

/// Reads one split from an images file and a labels file (plain or gzip IDX) and checks that
/// they belong together: labels are 1-D, the image count equals the label count, and every label
/// is < num_classes. Throws std::runtime_error naming both files on a mismatch, and whatever
/// read_idx throws for an unreadable or corrupt file.
Split load_split(const std::string& images_path, const std::string& labels_path,
                 std::size_t num_classes = 10);

namespace mnist {

/// The directory load_data() reads when given none: $XTAPE_MNIST_DIR if set; otherwise
/// $XTAPE_DATA_DIR/mnist, $XDG_CACHE_HOME/xtape/mnist or $HOME/.cache/xtape/mnist, the cache
/// that `bash tools/xtape.sh setup` fills. Empty variables count as unset.
std::string default_dir();

/// Loads MNIST (60,000 training and 10,000 test images of 28x28 handwritten digits) from `dir`
/// (default_dir() when empty). The files are train-images-idx3-ubyte, train-labels-idx1-ubyte,
/// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally with a `.gz` suffix.
/// Throws std::runtime_error when a file is missing (listing them, with how to fetch them),
/// corrupt, or when images are not (n, 28, 28) or disagree with their labels.
Dataset load_data(const std::string& dir = "");

}  // namespace mnist

namespace fashion_mnist {

/// The directory load_data() reads when given none: $XTAPE_FASHION_MNIST_DIR if set, else
/// /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
std::string default_dir();

/// Loads Fashion-MNIST (60,000 + 10,000 28x28 images of clothing in 10 classes) from `dir`
/// (default_dir() when empty); the same four file names as MNIST, gzip-compressed (`.gz`) or
/// plain. Throws std::runtime_error as mnist::load_data does; the hint for missing files is
/// `apt-get install dataset-fashion-mnist`.
Dataset load_data(const std::string& dir = "");

}  // namespace fashion_mnist

}  // namespace xtape::datasets
