// Hugging Face safetensors: read (memory-mapped) and write, single file or sharded with
// model.safetensors.index.json, so real Qwen2.5 / Llama checkpoints load and r2rec's exports load in
// `transformers`.
//
// File layout (https://github.com/huggingface/safetensors, "Format"): an 8-byte little-endian header size N,
// N bytes of UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {str: str}}, then the data buffer; offsets are relative to the buffer, tensors row-major and
// little-endian. Every check a reader needs is made on open: header size within the file, JSON valid, every
// dtype known, shape × element size == end − begin, offsets within the buffer, no overlaps. Errors are one
// DataError line naming the file (and the tensor).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace r2rec {

enum class StDtype { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

const char* st_dtype_name(StDtype dtype);  // "F32", "BF16", ...
size_t st_dtype_size(StDtype dtype);

struct StTensorInfo {
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data buffer
};

// One open safetensors file, memory-mapped read-only for its lifetime.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws DataError
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, StTensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  // Raw bytes of a tensor inside the mapping.
  const uint8_t* data(const std::string& name) const;

  // A CPU tensor holding a copy of `name` in its stored dtype (F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL).
  at::Tensor load(const std::string& name) const;
  // `name` checked against an expected shape (DataError naming file, tensor, both shapes otherwise) and
  // converted to float32.
  at::Tensor load_f32(const std::string& name, const std::vector<int64_t>& expected_shape) const;

 private:
  std::string path_;
  std::map<std::string, StTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* buffer_ = nullptr;  // start of the data buffer
};

// A checkpoint: one model.safetensors, or shards listed by model.safetensors.index.json ("weight_map":
// tensor -> file). `path` is the folder, the single file, or the index file.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& path);
  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const { return where_.count(name) > 0; }
  const SafetensorsFile& file_of(const std::string& name) const;  // DataError naming the checkpoint when absent
  at::Tensor load(const std::string& name) const;
  at::Tensor load_f32(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  std::string root_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor -> index in files_
};

// Writes `tensors` (contiguous CPU tensors of a supported dtype; name order preserved) to `path` through a
// temporary file + rename.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint into folder `dir`: one model.safetensors when the data fits `max_shard_bytes`, else
// model-0000i-of-0000n.safetensors shards + model.safetensors.index.json (tensors in the given order, a new
// shard when the next tensor would pass the cap).
void write_safetensors_checkpoint(const std::string& dir,
                                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                  uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata = {});

}  // namespace r2rec
