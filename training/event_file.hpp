#pragma once
/// @file event_file.hpp
/// TensorBoard event files written without a protobuf dependency.
///
/// An event file is a sequence of records, each
///   uint64 length (little-endian) | uint32 masked CRC32C of the 8 length bytes |
///   payload | uint32 masked CRC32C of the payload,
/// with masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 and CRC32C the Castagnoli CRC
/// (TensorFlow's TFRecord framing). Each payload is a serialized `tensorflow.Event`
/// (tensorflow/core/util/event.proto); the first one holds file_version "brain.Event:2". Only
/// the fields TensorBoard needs for scalars and histograms are encoded, in field-number order,
/// proto3 style (plain scalar fields equal to zero are left out; members of a oneof, such as
/// simple_value, are always written):
///   Event          wall_time double 1, step int64 2, file_version string 3, summary Summary 5
///   Summary        value Value 1 (repeated)
///   Summary.Value  tag string 1, simple_value float 2, histo HistogramProto 5
///   HistogramProto min 1, max 2, num 3, sum 4, sum_squares 5 (doubles),
///                  bucket_limit 6, bucket 7 (packed repeated doubles)
/// EventFileWriter writes such files; the encoders and the histogram are in
/// xtape::layers::tfevents.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xtape::layers {

/// Appends TensorBoard events to a new file `<dir>/events.out.tfevents.<seconds>.<host>.<pid>.v2`
/// (a number is inserted before ".v2" if that name is taken: a file is never shared).
///
/// An event file is a log: it is appended to, never rewritten, so the library's rule of atomic
/// writes (temporary file + rename) does not apply. Instead records are queued in memory and
/// flush() hands every queued record to the kernel with one write call on a descriptor opened
/// with O_APPEND, so a reader (TensorBoard) sees whole records; only a short write (a full disk)
/// can leave a truncated last record, which TensorBoard's reader skips. Records still queued
/// when the process dies are lost; flush() is not an fsync.
class EventFileWriter {
 public:
  /// Creates `dir` (and its parents) and the file, and queues the file_version record.
  /// Throws std::runtime_error naming the directory or file when either cannot be created.
  explicit EventFileWriter(const std::string& dir);
  /// Flushes; errors are swallowed (call flush() or close() to see them).
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  /// Queues a scalar summary (stored as float, TensorBoard's simple_value).
  void add_scalar(const std::string& tag, double value, std::int64_t step);
  /// Queues a histogram summary of `values` (see tfevents::make_histogram).
  void add_histogram(const std::string& tag, std::span<const float> values, std::int64_t step,
                     std::size_t buckets = 30);
  /// Writes every queued record. Throws std::runtime_error naming the file on a write error
  /// (the records not written stay queued) or when the writer is closed.
  void flush();
  /// Flushes and closes the file; later add_* or flush() calls throw std::runtime_error.
  void close();
  /// The event file's path.
  const std::string& path() const { return path_; }

 private:
  void queue(const std::string& payload);

  std::string path_;
  int fd_ = -1;
  std::string pending_;
};

namespace tfevents {

/// A TensorBoard histogram (HistogramProto). Bucket i holds the values in
/// [bucket_limit[i-1], bucket_limit[i]) (from `min` for i = 0, up to and including `max` for the
/// last bucket); TensorBoard reads `min` as the first left edge and `max` as the last right edge.
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

/// Histogram of `values` with `buckets` equal-width buckets from the smallest to the largest
/// value (TensorBoard's default is 30), statistics in double precision. NaN and infinite
/// values are left out of every field (num counts the finite values only); with no finite
/// value the histogram is empty (num 0, no buckets). All values equal: one bucket.
/// Throws std::invalid_argument when `buckets` is 0.
Histogram make_histogram(std::span<const float> values, std::size_t buckets = 30);

/// CRC32C (Castagnoli, reflected polynomial 0x82f63b78) of `data`, continuing from `crc`
/// (0 for a fresh CRC). crc32c("123456789") == 0xe3069283.
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);
/// TensorFlow's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t mask_crc(std::uint32_t crc);
/// One framed record around `payload` (see the file comment).
std::string frame_record(std::string_view payload);
/// Serialized Event holding file_version "brain.Event:2" (step 0).
std::string file_version_event(double wall_time);
/// Serialized Event with a one-value Summary: `tag` and simple_value `value`.
std::string scalar_event(double wall_time, std::int64_t step, std::string_view tag, float value);
/// Serialized Event with a one-value Summary: `tag` and `histo`.
std::string histogram_event(double wall_time, std::int64_t step, std::string_view tag,
                            const Histogram& histo);

}  // namespace tfevents

}  // namespace xtape::layers
