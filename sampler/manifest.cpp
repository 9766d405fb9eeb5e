#include "sampler/manifest.h"

#include <zlib.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json_fields.h"
#include "sampler/shard.h"

namespace r2rec {
namespace fs = std::filesystem;

ManifestFile checksum_file(const std::string& dir, const std::string& name) {
  const std::string path = (fs::path(dir) / name).string();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DataError(path + ": cannot open (" + (fs::exists(path) ? "not readable" : "no such file") + ")");
  ManifestFile out;
  out.name = name;
  std::vector<unsigned char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    crc = crc32_z(crc, buf.data(), n);
    out.bytes += static_cast<int64_t>(n);
  }
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) throw DataError(path + ": read error");
  out.crc32 = static_cast<uint32_t>(crc);
  return out;
}

namespace {
std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}
nlohmann::ordered_json file_json(const ManifestFile& f, bool counts) {
  nlohmann::ordered_json j = {{"file", f.name}, {"bytes", f.bytes}, {"crc32", hex32(f.crc32)}};
  if (counts) {
    j["examples"] = f.examples;
    j["chains"] = f.chains;
  }
  return j;
}
}  // namespace

void write_manifest(const std::string& dir, const Manifest& m) {
  nlohmann::ordered_json j;
  j["format"] = "r2rec.shards";
  j["schema_version"] = kShardSchemaVersion;
  j["dataset"] = m.dataset;
  j["config_hash"] = m.config_hash;
  j["seed"] = m.seed;
  j["num_shards"] = m.shards.size();
  j["num_candidates"] = m.num_candidates;
  j["num_users"] = m.num_users;
  j["num_items"] = m.num_items;
  j["examples"] = {{"train", m.examples[0]}, {"valid", m.examples[1]}, {"test", m.examples[2]}};
  j["catalog"] = file_json(m.catalog, false);
  j["shards"] = nlohmann::ordered_json::array();
  for (const auto& s : m.shards) j["shards"].push_back(file_json(s, true));
  j["summary"] = m.summary;
  write_file_atomic((fs::path(dir) / kManifestName).string(), j.dump(2) + "\n");
}

Manifest read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifestName).string();
  if (!fs::exists(path)) {
    throw DataError(path + ": no manifest (run `r2rec prepare` first, or it did not finish)");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  Manifest m;
  const std::string field_prefix = path + ": ";
  try {
    if (j.at("format") != "r2rec.shards") throw DataError(field_prefix + "format: expected 'r2rec.shards'");
    m.schema_version = json_field::integer(j, "schema_version", field_prefix);
    if (m.schema_version != kShardSchemaVersion) {
      throw DataError(field_prefix + "schema_version: " + std::to_string(m.schema_version) + ", this r2rec reads " +
                      std::to_string(kShardSchemaVersion) + " (re-run prepare with run.force=true)");
    }
    m.dataset = j.at("dataset").get<std::string>();
    m.config_hash = j.at("config_hash").get<std::string>();
    if (!j.at("seed").is_number_unsigned()) throw DataError(field_prefix + "seed: expected a non-negative integer");
    m.seed = j.at("seed").get<uint64_t>();
    m.num_candidates = json_field::count(j, "num_candidates", field_prefix);
    m.num_users = json_field::count(j, "num_users", field_prefix);
    m.num_items = json_field::count(j, "num_items", field_prefix);
    m.examples[0] = json_field::count(j.at("examples"), "train", field_prefix + "examples.");
    m.examples[1] = json_field::count(j.at("examples"), "valid", field_prefix + "examples.");
    m.examples[2] = json_field::count(j.at("examples"), "test", field_prefix + "examples.");
    auto parse_file = [&](const nlohmann::json& f) {
      ManifestFile out;
      out.name = f.at("file").get<std::string>();
      if (out.name.empty() || out.name.find('/') != std::string::npos) {
        throw DataError(field_prefix + "file name '" + out.name + "' must be a plain name in the manifest's folder");
      }
      out.bytes = json_field::count(f, "bytes", field_prefix);
      const std::string crc = f.at("crc32").get<std::string>();
      uint32_t value = 0;
      const auto [end, ec] = std::from_chars(crc.data(), crc.data() + crc.size(), value, 16);
      if (crc.empty() || crc.size() > 8 || ec != std::errc() || end != crc.data() + crc.size()) {
        throw DataError(field_prefix + "crc32 '" + crc + "' of " + out.name + " is not 1-8 hexadecimal digits");
      }
      out.crc32 = value;
      out.examples = f.contains("examples") ? json_field::count(f, "examples", field_prefix) : 0;
      out.chains = f.contains("chains") ? json_field::count(f, "chains", field_prefix) : 0;
      return out;
    };
    m.catalog = parse_file(j.at("catalog"));
    for (const auto& s : j.at("shards")) m.shards.push_back(parse_file(s));
    if (m.shards.empty()) throw DataError(field_prefix + "shards: empty list");
    if (static_cast<int64_t>(m.shards.size()) != json_field::count(j, "num_shards", field_prefix)) {
      throw DataError(field_prefix + "num_shards disagrees with the shard list");
    }
    m.summary = j.value("summary", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw DataError(field_prefix + "missing or mistyped field (" + std::string(e.what()) + ")");
  }
  return m;
}

void verify_manifest_files(const std::string& dir, const Manifest& m, bool checksums) {
  std::vector<const ManifestFile*> files = {&m.catalog};
  for (const auto& s : m.shards) files.push_back(&s);
  for (const ManifestFile* f : files) {
    const std::string path = (fs::path(dir) / f->name).string();
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) throw DataError(path + ": listed in the manifest but missing");
    if (static_cast<int64_t>(size) != f->bytes) {
      throw DataError(path + ": " + std::to_string(size) + " bytes, the manifest says " + std::to_string(f->bytes) +
                      " (truncated or changed; re-run prepare with run.force=true)");
    }
    if (checksums) {
      const ManifestFile got = checksum_file(dir, f->name);
      if (got.crc32 != f->crc32) {
        throw DataError(path + ": checksum mismatch (crc32 " + hex32(got.crc32) + ", the manifest says " +
                        hex32(f->crc32) + "; damaged or changed, re-run prepare with run.force=true)");
      }
    }
  }
}

}  // namespace r2rec
