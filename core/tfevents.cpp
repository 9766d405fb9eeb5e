#include "core/tfevents.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace r2rec {

namespace {

std::array<uint32_t, 256> crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// Protobuf wire format: varints, fixed 64/32-bit little-endian, length-delimited fields.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire) { varint(out, static_cast<uint64_t>(field) << 3 | wire); }
void fixed(std::string& out, const void* p, size_t n) {  // x86-64 and aarch64 are little-endian, as the format
  out.append(static_cast<const char*>(p), n);
}
void bytes_field(std::string& out, int field, const std::string& s) {
  key(out, field, 2);
  varint(out, s.size());
  out += s;
}

}  // namespace

uint32_t crc32c(const void* data, size_t bytes) {
  static const std::array<uint32_t, 256> table = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < bytes; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t bytes) {
  const uint32_t c = crc32c(data, bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  static std::atomic<int> files{0};  // several writers in one process (r2rec run) within one second
  path_ = dir + "/events.out.tfevents." +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "." + host + "." +
          std::to_string(::getpid()) + "." + std::to_string(files++);
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) throw WriteError(path_ + ": cannot create: " + std::strerror(errno), errno);
  std::string e;
  const double wall = std::chrono::duration<double>(now).count();
  key(e, 1, 1);
  fixed(e, &wall, 8);
  bytes_field(e, 3, "brain.Event:2");
  record(e);
  flush();
}

EventWriter::~EventWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void EventWriter::scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    bytes_field(value, 1, tag);
    const float f = static_cast<float>(v);
    key(value, 2, 5);
    fixed(value, &f, 4);
    bytes_field(summary, 1, value);
  }
  std::string e;
  key(e, 1, 1);
  fixed(e, &wall_time, 8);
  key(e, 2, 0);
  varint(e, static_cast<uint64_t>(step));
  bytes_field(e, 5, summary);
  record(e);
}

void EventWriter::record(const std::string& data) {
  const uint64_t n = data.size();
  const uint32_t len_crc = masked_crc32c(&n, 8), data_crc = masked_crc32c(data.data(), data.size());
  const bool ok = std::fwrite(&n, 8, 1, file_) == 1 && std::fwrite(&len_crc, 4, 1, file_) == 1 &&
                  std::fwrite(data.data(), 1, data.size(), file_) == data.size() &&
                  std::fwrite(&data_crc, 4, 1, file_) == 1;
  if (!ok) throw WriteError(path_ + ": write failed: " + std::strerror(errno), errno);
}

void EventWriter::flush() {
  if (std::fflush(file_) != 0) throw WriteError(path_ + ": flush failed: " + std::strerror(errno), errno);
}

}  // namespace r2rec
