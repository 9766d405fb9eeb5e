// One HDF5 example shard and the item catalog: what `prepare` writes and every later stage reads.
// docs/formats.md specifies both files (groups, datasets, dtypes, shapes, attributes).
//
// Examples are assigned to shards round-robin by id (example i -> shard i mod S), so every shard holds a
// mix of splits and shard sizes differ by at most one example. Inside a shard, examples are in id order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampler/chains.h"
#include "sampler/split.h"

namespace r2rec {

constexpr int64_t kShardSchemaVersion = 2;  // 2: the catalog holds users' train sequences
constexpr const char* kShardFormat = "r2rec.examples";
constexpr const char* kCatalogFormat = "r2rec.catalog";

// "shard-00003-of-00016.h5"
std::string shard_file_name(int64_t index, int64_t count);

// Identity of a prepare run, stored on every file and in the manifest.
struct ShardMeta {
  std::string dataset;      // data.name
  std::string config_hash;  // hash of every setting that changes the contents (see prepare)
  uint64_t seed = 0;
  int64_t shard_index = 0;
  int64_t num_shards = 1;
};

// Examples and their chains in columns, as stored in one shard. Row e of every per-example column is
// example e; its history is history_items[history_offsets[e] .. history_offsets[e+1]), its chains are
// chains[chain_offsets[e] .. chain_offsets[e+1]) of `chains`.
struct ExampleColumns {
  int64_t num_candidates = 0;                  // C
  std::vector<int64_t> id;                     // [E]
  std::vector<int32_t> user;                   // [E]
  std::vector<int32_t> target;                 // [E] item id
  std::vector<int8_t> split;                   // [E] Split
  std::vector<int32_t> position;               // [E] index of the target in the user's sequence
  std::vector<int32_t> target_index;           // [E] candidates[e][target_index[e]] == target[e]
  std::vector<int32_t> candidates;             // [E*C] row-major
  std::vector<int64_t> history_offsets = {0};  // [E+1]
  std::vector<int32_t> history_items;          // [sum of history lengths]
  std::vector<int64_t> chain_offsets = {0};    // [E+1] indices into chains
  ChainBuffer chains;

  int64_t size() const { return static_cast<int64_t>(id.size()); }
  // Appends an example with chains [first, first+count) of `buffer`.
  void append(const Example& example, const ChainBuffer& buffer, int64_t first, int64_t count);
  // Example e as a struct, and its chains appended to `out` (returns how many).
  Example example(int64_t e) const;
  int64_t copy_chains(int64_t e, ChainBuffer* out) const;
};

// Writes `columns` to `path` (directly: callers write to a temporary name and rename). Throws RuntimeFailure
// on an I/O error.
void write_shard(const std::string& path, const ShardMeta& meta, const ExampleColumns& columns, int compression);

// Reads and checks a shard: format, schema version, every array's shape and every offset/id range
// (`num_items`, `num_users` bound the ids). Throws DataError naming the file and the dataset on any problem.
ExampleColumns read_shard(const std::string& path, ShardMeta* meta, int32_t num_items, int32_t num_users);

// Reads only the id and split columns (cheap), for building a reader's index. Same checks on what it reads.
void read_shard_index(const std::string& path, std::vector<int64_t>* ids, std::vector<int8_t>* splits);

// The item catalog: titles and original tokens of items and users, train popularity.
struct Catalog {
  std::vector<std::string> item_titles;   // [I]
  std::vector<std::string> item_tokens;   // [I]
  std::vector<std::string> user_tokens;   // [U]
  std::vector<int64_t> item_train_count;  // [I] interactions in the train split
  // Each user's train split, chronological (s[0..n-3]): user u's items are
  // user_train_items[user_train_offsets[u] .. user_train_offsets[u+1]). What trained baselines learn from.
  std::vector<int64_t> user_train_offsets = {0};  // [U+1]
  std::vector<int32_t> user_train_items;          // [sum]
  int32_t num_items() const { return static_cast<int32_t>(item_tokens.size()); }
  int32_t num_users() const { return static_cast<int32_t>(user_tokens.size()); }
};

void write_catalog(const std::string& path, const ShardMeta& meta, const Catalog& catalog, int compression);
Catalog read_catalog(const std::string& path, ShardMeta* meta);

}  // namespace r2rec
