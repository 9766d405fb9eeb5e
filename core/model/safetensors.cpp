#include "core/model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

struct DtypeRow {
  StDtype dtype;
  const char* name;
  size_t size;
  at::ScalarType scalar;
};
const DtypeRow kDtypes[] = {
    {StDtype::kF32, "F32", 4, at::kFloat},      {StDtype::kF16, "F16", 2, at::kHalf},
    {StDtype::kBF16, "BF16", 2, at::kBFloat16}, {StDtype::kF64, "F64", 8, at::kDouble},
    {StDtype::kI64, "I64", 8, at::kLong},       {StDtype::kI32, "I32", 4, at::kInt},
    {StDtype::kI16, "I16", 2, at::kShort},      {StDtype::kI8, "I8", 1, at::kChar},
    {StDtype::kU8, "U8", 1, at::kByte},         {StDtype::kBool, "BOOL", 1, at::kBool},
};
const DtypeRow& row_of(StDtype d) {
  for (const auto& r : kDtypes) {
    if (r.dtype == d) return r;
  }
  return kDtypes[0];
}
const DtypeRow* row_of_name(const std::string& name) {
  for (const auto& r : kDtypes) {
    if (name == r.name) return &r;
  }
  return nullptr;
}
const DtypeRow* row_of_scalar(at::ScalarType s) {
  for (const auto& r : kDtypes) {
    if (r.scalar == s) return &r;
  }
  return nullptr;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

const char* st_dtype_name(StDtype dtype) { return row_of(dtype).name; }
size_t st_dtype_size(StDtype dtype) { return row_of(dtype).size; }

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  auto bad = [&](const std::string& what) { return DataError(path + ": " + what); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw bad(fs::exists(path) ? "cannot open (not readable)" : "no such file");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw bad("cannot stat");
  }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ < 8) {
    ::close(fd);
    throw bad("not a safetensors file (" + std::to_string(map_size_) + " bytes, truncated?)");
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw bad("cannot map the file");
  }
  const auto* bytes = static_cast<const uint8_t*>(map_);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | bytes[i];  // little-endian u64
  try {
    if (header > kMaxHeaderBytes || header > map_size_ - 8) {
      throw bad("header size " + std::to_string(header) + " does not fit the file of " + std::to_string(map_size_) +
                " bytes (truncated or not safetensors)");
    }
    buffer_ = bytes + 8 + header;
    const uint64_t buffer_size = map_size_ - 8 - header;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(bytes + 8, bytes + 8 + header);
    } catch (const nlohmann::json::exception& e) {
      throw bad("header is not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) throw bad("header is not a JSON object");
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const auto& [name, v] : j.items()) {
      if (name == "__metadata__") {
        if (!v.is_object()) throw bad("__metadata__ is not an object");
        for (const auto& [k, m] : v.items()) {
          if (!m.is_string()) throw bad("__metadata__." + k + " is not a string");
          metadata_[k] = m.get<std::string>();
        }
        continue;
      }
      const std::string where = "tensor '" + name + "': ";
      if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
        throw bad(where + "needs dtype, shape and data_offsets");
      }
      if (!v["dtype"].is_string()) throw bad(where + "dtype is not a string");
      const DtypeRow* row = row_of_name(v["dtype"].get<std::string>());
      if (!row) throw bad(where + "unsupported dtype " + v["dtype"].get<std::string>());
      StTensorInfo info;
      info.dtype = row->dtype;
      if (!v["shape"].is_array()) throw bad(where + "shape is not a list");
      unsigned __int128 bytes_needed = row->size;
      for (const auto& d : v["shape"]) {
        if (!d.is_number_unsigned()) throw bad(where + "shape has a non-integer or negative dimension");
        info.shape.push_back(d.get<int64_t>());
        bytes_needed *= d.get<uint64_t>();
        if (bytes_needed > buffer_size)
          throw bad(where + "shape " + shape_text(info.shape) + " is larger than the file");
      }
      const auto& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
        throw bad(where + "data_offsets must be [begin, end]");
      }
      info.begin = off[0].get<uint64_t>();
      info.end = off[1].get<uint64_t>();
      if (info.begin > info.end || info.end > buffer_size) {
        throw bad(where + "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                  "] outside the data buffer of " + std::to_string(buffer_size) + " bytes (truncated?)");
      }
      if (info.end - info.begin != static_cast<uint64_t>(bytes_needed)) {
        throw bad(where + "shape " + shape_text(info.shape) + " of " + row->name + " needs " +
                  std::to_string(static_cast<uint64_t>(bytes_needed)) + " bytes, data_offsets give " +
                  std::to_string(info.end - info.begin));
      }
      if (info.end > info.begin) spans.emplace_back(info.begin, info.end);
      tensors_[name] = info;
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
      if (spans[i].first < spans[i - 1].second) throw bad("two tensors' data overlap");
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const uint8_t* SafetensorsFile::data(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw DataError(path_ + ": no tensor '" + name + "'");
  return buffer_ + it->second.begin;
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const uint8_t* src = data(name);
  const StTensorInfo& info = tensors_.at(name);
  at::Tensor t = at::empty(info.shape, at::TensorOptions().dtype(row_of(info.dtype).scalar));
  if (info.end > info.begin) std::memcpy(t.data_ptr(), src, info.end - info.begin);
  return t;
}

at::Tensor SafetensorsFile::load_f32(const std::string& name, const std::vector<int64_t>& expected) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw DataError(path_ + ": no tensor '" + name + "'");
  if (it->second.shape != expected) {
    throw DataError(path_ + ": tensor '" + name + "' has shape " + shape_text(it->second.shape) + ", the model needs " +
                    shape_text(expected));
  }
  const StDtype d = it->second.dtype;
  if (d != StDtype::kF32 && d != StDtype::kF16 && d != StDtype::kBF16 && d != StDtype::kF64) {
    throw DataError(path_ + ": tensor '" + name + "' has dtype " + st_dtype_name(d) + ", the model needs a float");
  }
  return load(name).to(at::kFloat);
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path) : root_(path) {
  fs::path index, single;
  if (fs::is_directory(path)) {
    index = fs::path(path) / "model.safetensors.index.json";
    single = fs::path(path) / "model.safetensors";
  } else if (fs::path(path).extension() == ".json") {
    index = path;
  } else {
    single = path;
  }
  if (!index.empty() && fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(index.string()));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(index.string() + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) throw DataError(index.string() + ": no weight_map");
    std::map<std::string, size_t> file_index;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos) {
        throw DataError(index.string() + ": weight_map['" + tensor + "'] must be a file name in the same folder");
      }
      const std::string f = file.get<std::string>();
      if (!file_index.count(f)) {
        file_index[f] = files_.size();
        files_.push_back(std::make_unique<SafetensorsFile>((index.parent_path() / f).string()));
      }
      const size_t k = file_index[f];
      if (!files_[k]->has(tensor)) {
        throw DataError(files_[k]->path() + ": no tensor '" + tensor + "' (listed in " + index.string() + ")");
      }
      where_[tensor] = k;
    }
    return;
  }
  if (single.empty() || !fs::exists(single)) {
    throw DataError(path + ": no model.safetensors or model.safetensors.index.json");
  }
  files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
  for (const auto& [name, info] : files_[0]->tensors()) where_[name] = 0;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, k] : where_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw DataError(root_ + ": checkpoint has no tensor '" + name + "'");
  return *files_[it->second];
}

at::Tensor SafetensorsCheckpoint::load(const std::string& name) const { return file_of(name).load(name); }
at::Tensor SafetensorsCheckpoint::load_f32(const std::string& name, const std::vector<int64_t>& shape) const {
  return file_of(name).load_f32(name, shape);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<at::Tensor> data;
  for (const auto& [name, t0] : tensors) {
    const at::Tensor t = t0.contiguous().cpu();
    const DtypeRow* row = row_of_scalar(t.scalar_type());
    if (!row) throw RuntimeFailure(path + ": tensor '" + name + "' has a dtype safetensors does not store");
    const uint64_t n = static_cast<uint64_t>(t.numel()) * row->size;
    header[name] = {{"dtype", row->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned, as the reference writer does
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& t : data) out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomic(path, out);
}

void write_safetensors_checkpoint(const std::string& dir,
                                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                  uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw WriteError(dir + ": cannot create folder: " + ec.message(), ec.value());
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& nt : tensors) {
    const uint64_t n = static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size();
    if (!shards.back().empty() && in_shard + n > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(nt);
    in_shard += n;
    total += n;
  }
  if (shards.size() == 1) {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, metadata);
    return;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = nlohmann::ordered_json::object();
  char name[64];
  for (size_t s = 0; s < shards.size(); ++s) {
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    write_safetensors((fs::path(dir) / name).string(), shards[s], metadata);
    for (const auto& nt : shards[s]) index["weight_map"][nt.first] = name;
  }
  write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace r2rec
