// manifest.json: the list of a prepare run's files with sizes and CRC-32 checksums, the run's identity
// (dataset, config hash, seed) and its summary counts. Written last, atomically, by rank 0: a shard folder
// is complete exactly when its manifest exists. docs/formats.md specifies every field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace r2rec {

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kCatalogName = "items.h5";

struct ManifestFile {
  std::string name;  // relative to the manifest's folder
  int64_t bytes = 0;
  uint32_t crc32 = 0;
  int64_t examples = 0;  // shards only
  int64_t chains = 0;    // shards only
};

struct Manifest {
  int64_t schema_version = 0;
  std::string dataset;
  std::string config_hash;
  uint64_t seed = 0;
  int64_t num_candidates = 0;
  int64_t num_users = 0;
  int64_t num_items = 0;
  int64_t examples[3] = {0, 0, 0};  // per Split
  ManifestFile catalog;
  std::vector<ManifestFile> shards;
  nlohmann::json summary;  // prepare's statistics (informational)
};

// CRC-32 (zlib polynomial) and size of a file. Throws DataError naming it when it cannot be read.
ManifestFile checksum_file(const std::string& dir, const std::string& name);

void write_manifest(const std::string& dir, const Manifest& manifest);

// Reads dir/manifest.json and checks its format and version. Throws DataError naming the file and field.
Manifest read_manifest(const std::string& dir);

// Checks that every listed file exists with its size, and (when `checksums`) its CRC-32. Throws DataError
// naming the first file that differs.
void verify_manifest_files(const std::string& dir, const Manifest& manifest, bool checksums);

}  // namespace r2rec
