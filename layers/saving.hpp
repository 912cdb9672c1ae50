#pragma once
/// @file saving.hpp
/// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
/// header length N, N bytes of JSON header
///   {"__metadata__": {"key": "value", ...},
///    "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
/// then the raw little-endian data; offsets are relative to the start of the data. Files written
/// here are read by PyTorch's, JAX's and NumPy's safetensors tools and vice versa.
///
/// Reading validates everything before anything is returned; writing is atomic (temporary file
/// in the same directory, flushed and fsync'ed, renamed over the target).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autodiff/tensor.hpp"

namespace xtape::layers {

/// One tensor described by a safetensors header.
struct SafetensorsEntry {
  /// Element type as spelt in the file: "F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", ...
  std::string dtype;
  /// Extents, outermost first (empty for a scalar).
  Shape shape;
  /// data_offsets: [begin, end) in bytes, relative to the start of the data section.
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// A validated safetensors file held in memory.
struct SafetensorsFile {
  /// The file's path (or a label for in-memory data), used in every error message.
  std::string path;
  /// The "__metadata__" string map (empty when absent).
  std::map<std::string, std::string> metadata;
  /// Every tensor by name.
  std::map<std::string, SafetensorsEntry> tensors;
  /// The whole file.
  std::vector<std::uint8_t> bytes;
  /// Offset of the data section in `bytes` (8 + header length).
  std::size_t data_start = 0;

  /// True when a tensor called `name` exists.
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  /// The tensor called `name` as a float32 Tensor of its shape. Throws std::runtime_error naming
  /// the file and the tensor when it is missing or its dtype is not F32, and, when
  /// `require_finite`, when it holds a NaN or an infinity (naming the first such element).
  Tensor f32(const std::string& name, bool require_finite = true) const;
};

/// Largest header accepted (as the reference implementation: 100 MB).
inline constexpr std::size_t k_safetensors_max_header = 100'000'000;

/// Most entries a header may hold, tensors and "__metadata__" keys together (2^16: models
/// rarely store more than a few thousand tensors per file). Bounds the memory a header costs.
inline constexpr std::size_t k_safetensors_max_entries = 65'536;

/// Most extents a tensor's shape may have (NumPy's limit).
inline constexpr std::size_t k_safetensors_max_rank = 64;

/// Parses and validates a safetensors file already in memory; `path` labels error messages.
/// Parsing takes time and memory linear in the header (a streaming parse, no document tree).
/// Throws std::runtime_error "safetensors: '<path>': <problem>" when: the file is shorter than
/// 8 bytes; the header length exceeds the file or k_safetensors_max_header; the header starts
/// with a byte order mark, holds a NUL byte, is not valid UTF-8 JSON, is not an object, nests
/// deeper than the format allows, or repeats a key (at the top, inside an entry, or inside
/// "__metadata__"); it has more than k_safetensors_max_entries entries; "__metadata__" is not
/// an object of strings; an entry is not an object of exactly "dtype", "shape" and
/// "data_offsets"; the dtype is unknown; a shape has more than k_safetensors_max_rank extents;
/// a shape extent or an offset is not a non-negative integer (negative, fractional, non-finite
/// or beyond 64 bits); the shape's byte size overflows or differs from end - begin; begin > end;
/// an offset lies past the data; two tensors overlap; the data has bytes no tensor covers (the
/// format forbids holes); or memory runs out. Names and values from the file appear in
/// messages quoted and cut (io::quoted).
SafetensorsFile parse_safetensors(std::vector<std::uint8_t> bytes, const std::string& path);

/// Reads and validates a safetensors file (see parse_safetensors): the header is read and
/// checked first, then the whole file is read into memory. Also throws std::runtime_error when
/// the file is missing, not a regular file (a directory, a FIFO, a device: refused without
/// being opened), cannot be opened (with the system's reason: permission denied, a symbolic
/// link loop, ...), is larger than the machine's memory (io::memory_limit()), or cannot be read.
SafetensorsFile read_safetensors(const std::string& path);

/// Serialises float32 tensors (stored as "F32", little-endian, in name order) with a metadata
/// map into the bytes of a safetensors file; the header is padded with spaces to a multiple of
/// 8 bytes. Throws std::invalid_argument on an empty, repeated or "__metadata__" name or an
/// undefined tensor.
std::string to_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata = {});

/// to_safetensors written atomically to `path` (see write_file_atomic).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Writes `bytes` to `path` atomically (io::write_file_atomic): a new temporary file in the same
/// directory ("<path>.tmp<pid>.XXXXXX"), fully written, fsync'ed, renamed over `path`, then the
/// directory fsync'ed. A crash or kill at any moment leaves either the old file or the new one,
/// never a mix; temporaries that killed writers left for `path` are removed by the next write.
/// Throws std::runtime_error naming the file and the system error; the temporary file is
/// removed on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace xtape::layers
