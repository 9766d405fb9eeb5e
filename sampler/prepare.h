// The pieces of `r2rec prepare` that do not talk to other ranks (launch/prepare_command.cpp coordinates them):
// read + filter the dataset, make the examples, build the train graph, sample each shard's chains and write it.
//
// Every rank computes the same PreparedData (reading is cheap: ML-100K < 1 s) and writes the shards
// s = rank, rank + W, ...; chains depend only on (seed, example), so the files are byte-identical whatever the
// number of ranks or threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "sampler/chains.h"
#include "sampler/dataset.h"
#include "sampler/graph.h"
#include "sampler/manifest.h"
#include "sampler/shard.h"
#include "sampler/split.h"

namespace r2rec {

// 16 hex digits identifying every setting that changes prepare's output (data.*, sampler.* except
// output_dir, run.seed). A re-run with the same hash is a no-op unless run.force.
std::string prepare_config_hash(const Config& config);

struct PreparedData {
  Dataset dataset;
  std::vector<Example> examples;  // in id order
  InteractionGraph graph;
  int64_t split_counts[3] = {0, 0, 0};
};

// Throws DataError / ConfigError (one line) on bad input.
PreparedData build_prepared_data(const Config& config);

struct ShardResult {
  ManifestFile file;  // name, bytes, crc32, examples, chains
  ChainStats stats;
  std::vector<int64_t> chains_per_example_histogram;  // [K+1]: examples with 0..K chains
};

// Samples the chains of shard `index` of `count` (examples id % count == index) and writes it as
// dir/shard_file_name(index, count), through a temporary name. `progress` counts examples done.
ShardResult build_shard(const PreparedData& data, const Config& config, int64_t index, int64_t count,
                        const std::string& dir, std::atomic<int64_t>* progress);

Catalog make_catalog(const PreparedData& data);

// Threads that may write shards at once: `wanted`, or 1 when the HDF5 library is not thread-safe.
int shard_writer_threads(int wanted);

// A shard's result as JSON (to gather across ranks) and back; `index` is the shard index.
nlohmann::json shard_result_to_json(const ShardResult& result, int64_t index);
ShardResult shard_result_from_json(const nlohmann::json& j, int64_t* index);

// The manifest of a complete run: `results[s]` is shard s's result, `catalog` the catalog file's checksum.
// summary: dataset statistics, chain totals and the chains-per-example histogram; the caller adds timings.
Manifest make_manifest(const PreparedData& data, const Config& config, const std::vector<ShardResult>& results,
                       const ManifestFile& catalog);

// Writes every shard (one after the other), the catalog and the manifest into `dir`, in this process: what
// `prepare` does on one rank without threads, for tests and tools. Returns the manifest.
Manifest prepare_in_process(const Config& config, const std::string& dir);

}  // namespace r2rec
