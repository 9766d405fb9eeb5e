#include "trainers/task/traces.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "sampler/hdf5_io.h"

namespace r2rec {
namespace {

void pack(const std::vector<std::string>& texts, std::vector<int64_t>* offsets, std::vector<uint8_t>* bytes) {
  offsets->assign(1, 0);
  for (const auto& t : texts) {
    bytes->insert(bytes->end(), t.begin(), t.end());
    offsets->push_back(static_cast<int64_t>(bytes->size()));
  }
}

std::vector<std::string> unpack(const std::string& path, const char* what, const std::vector<int64_t>& offsets,
                                const std::vector<uint8_t>& bytes, size_t n) {
  if (offsets.size() != n + 1 || offsets.front() != 0 || offsets.back() != static_cast<int64_t>(bytes.size())) {
    throw DataError(path + ": " + what + "_offsets: does not match " + what + "_bytes / example_id");
  }
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (offsets[i + 1] < offsets[i])
      throw DataError(path + ": " + what + "_offsets: decreasing at " + std::to_string(i));
    out.emplace_back(reinterpret_cast<const char*>(bytes.data()) + offsets[i],
                     static_cast<size_t>(offsets[i + 1] - offsets[i]));
  }
  return out;
}

}  // namespace

void write_traces(const std::string& path, const TraceSet& t, int compression) {
  const std::string tmp = temp_path_for(path);
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr("schema_version", kTraceSchemaVersion);
    f.set_attr("dataset", t.dataset);
    f.set_attr("prepare_hash", t.prepare_hash);
    f.set_attr("teacher", t.teacher);
    f.set_attr("split", t.split);
    f.write("example_id", t.example_id, compression);
    f.write("reaching", t.reaching, compression);
    f.write("target_top", t.target_top, compression);
    f.write("direct", t.direct, compression);
    std::vector<int64_t> offsets;
    std::vector<uint8_t> bytes;
    pack(t.prompts, &offsets, &bytes);
    f.write("prompt_offsets", offsets, compression);
    f.write("prompt_bytes", bytes, compression);
    bytes.clear();
    pack(t.completions, &offsets, &bytes);
    f.write("completion_offsets", offsets, compression);
    f.write("completion_bytes", bytes, compression);
    f.close();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw WriteError(path + ": cannot rename the written traces into place: " + ec.message(), ec.value());
}

TraceSet read_traces(const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError(path + ": not found (run `r2rec annotate` first)");
  h5::File f = h5::File::open_read(path);
  if (!f.has_attr("schema_version") || f.attr_int("schema_version") != kTraceSchemaVersion) {
    throw DataError(path + ": schema_version: expected " + std::to_string(kTraceSchemaVersion) +
                    " (a trace file of another r2rec version?)");
  }
  TraceSet t;
  t.dataset = f.attr_string("dataset");
  t.prepare_hash = f.attr_string("prepare_hash");
  t.teacher = f.attr_string("teacher");
  t.split = f.attr_string("split");
  t.example_id = f.read<int64_t>("example_id");
  t.reaching = f.read<int32_t>("reaching");
  t.target_top = f.read<int8_t>("target_top");
  t.direct = f.read<int8_t>("direct");
  for (const auto& [name, rows] : {std::pair<const char*, size_t>{"reaching", t.reaching.size()},
                                   {"target_top", t.target_top.size()},
                                   {"direct", t.direct.size()}}) {
    if (rows != t.example_id.size())
      throw DataError(path + ": " + name + ": " + std::to_string(rows) + " rows, example_id has " +
                      std::to_string(t.example_id.size()));
  }
  t.prompts =
      unpack(path, "prompt", f.read<int64_t>("prompt_offsets"), f.read<uint8_t>("prompt_bytes"), t.example_id.size());
  t.completions = unpack(path, "completion", f.read<int64_t>("completion_offsets"), f.read<uint8_t>("completion_bytes"),
                         t.example_id.size());
  return t;
}

}  // namespace r2rec
