#pragma once
/// @file idx.hpp
/// Reading IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed, into
/// uint8 arrays, and the conversions a training script needs: uint8 -> scaled float Tensor, a
/// trailing channel axis, and one-hot labels (keras.utils.to_categorical).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape::datasets {

/// A row-major n-d array of bytes: what keras.datasets returns as uint8 numpy arrays.
/// Invariant kept by every function here: data.size() == shape_size(shape).
struct U8Array {
  /// Extents, outermost first, e.g. (60000, 28, 28) for MNIST training images.
  Shape shape;
  /// The elements, row-major.
  std::vector<std::uint8_t> data;

  /// Number of elements.
  std::size_t size() const { return data.size(); }
  /// Number of axes.
  std::size_t ndim() const { return shape.size(); }
};

/// Reads an IDX file of unsigned bytes: magic 0x00 0x00, type 0x08, a rank byte, one big-endian
/// 32-bit extent per axis, then exactly prod(extents) bytes. A gzip-compressed file (detected by
/// its magic bytes 1F 8B, whatever its name) is inflated straight into the array; concatenated
/// gzip members count as one stream. Only regular files are opened (a FIFO or device is refused
/// without opening it). Throws std::runtime_error naming the file and the problem: missing,
/// not a regular file or unreadable (with the system's reason: permission denied, a symbolic
/// link loop, ...), wrong magic, unsupported element type, rank 0, truncated header, truncated
/// data, trailing bytes after the data or after the gzip stream, extents whose product
/// overflows, a gzip file claiming more than deflate's 1032:1 ratio allows, data larger than
/// the machine's memory (io::memory_limit()), a corrupt gzip stream, or an allocation failure.
/// Every size claim is checked before the data buffer is allocated, once, at its final size.
U8Array read_idx(const std::string& path);

/// Writes `array` as an uncompressed IDX file of unsigned bytes (type 0x08), the exact inverse of
/// read_idx, atomically (io::write_file_atomic: stale temporaries of killed writers are
/// removed). Throws std::invalid_argument when the rank is 0 or above 255, an extent does not fit
/// a signed 32-bit integer, or data.size() disagrees with the shape; std::runtime_error when the
/// file cannot be written.
void write_idx(const std::string& path, const U8Array& array);

/// A float32 Tensor of the same shape holding value * scale for every element (scale 1/255
/// maps images to [0, 1]). Throws std::invalid_argument when data.size() disagrees with the shape.
Tensor to_float(const U8Array& array, float scale = 1.f);

/// The array with a new axis of extent 1 inserted at `axis` (numpy.expand_dims); the default -1
/// appends it: MNIST images (60000, 28, 28) -> (60000, 28, 28, 1). Axis must lie in
/// [-(ndim + 1), ndim]; throws std::invalid_argument otherwise. The data is moved, not copied,
/// when the argument is an rvalue.
U8Array expand_dims(U8Array array, int axis = -1);

/// One-hot encoding like keras.utils.to_categorical: a float32 Tensor of shape
/// labels.shape + (num_classes,) (a trailing axis of extent 1 in labels is dropped first, so
/// (n,) and (n, 1) both give (n, num_classes)) with 1 at each label's class and 0 elsewhere.
/// num_classes == 0 means max(label) + 1. Throws std::invalid_argument when a label is
/// >= num_classes (naming the first such label and its position) or the labels are inconsistent.
Tensor to_categorical(const U8Array& labels, std::size_t num_classes = 0);

}  // namespace xtape::datasets
