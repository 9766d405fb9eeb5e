// TensorBoard event files written by r2rec itself (no Python, no TensorFlow): scalar summaries only.
//
// A file is a sequence of records (TensorFlow's TFRecord framing):
//   uint64 length (little-endian) | uint32 masked_crc32c(length's 8 bytes) | data[length] | uint32 masked_crc32c(data)
// with masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8, c = CRC-32C (Castagnoli) of x. Each data is
// one serialized tensorflow.Event protobuf, hand-encoded:
//   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
// The first record carries file_version "brain.Event:2", as TensorBoard expects. Files are named
// events.out.tfevents.<unix seconds>.<host>.<pid>.<n> (n counts the process's writers), so a stage run never
// appends to another's file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace r2rec {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t bytes);
uint32_t masked_crc32c(const void* data, size_t bytes);

class EventWriter {
 public:
  // Creates a new event file in `dir` (made if missing). Throws RuntimeFailure naming the path on failure.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // One Event at `step` holding every (tag, value) as a simple_value (float).
  void scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace r2rec
