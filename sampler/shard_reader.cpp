#include "sampler/shard_reader.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"

namespace r2rec {

ReaderOptions split_reader_options(const std::string& dir, int split, int rank, int world_size, int64_t limit) {
  ReaderOptions o;
  o.dir = dir;
  o.split = split;
  o.rank = rank;
  o.world_size = world_size;
  o.shuffle = false;
  o.limit = limit;
  return o;
}
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kReaderShuffleStream = 4;  // after Stream::kLastfmOrder in core/rng.h
}

ShardReader::ShardReader(const ReaderOptions& options) : options_(options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    throw ConfigError("reader: rank " + std::to_string(options.rank) + " outside world size " +
                      std::to_string(options.world_size));
  }
  manifest_ = read_manifest(options.dir);
  verify_manifest_files(options.dir, manifest_, options.verify_checksums);
  ShardMeta meta;
  catalog_ = read_catalog((fs::path(options.dir) / manifest_.catalog.name).string(), &meta);

  // Index: round-robin layout means shard s holds ids s, s+S, s+2S, ... in order; check it, keep the split.
  const int64_t S = static_cast<int64_t>(manifest_.shards.size());
  int64_t total = 0;
  std::vector<std::vector<int8_t>> splits(S);
  for (int64_t s = 0; s < S; ++s) {
    const std::string path = (fs::path(options.dir) / manifest_.shards[s].name).string();
    std::vector<int64_t> ids;
    read_shard_index(path, &ids, &splits[s]);
    for (size_t k = 0; k < ids.size(); ++k) {
      if (ids[k] != s + static_cast<int64_t>(k) * S) {
        throw DataError(path + ": examples/id: id " + std::to_string(ids[k]) + " at row " + std::to_string(k) +
                        " breaks the round-robin layout (expected " + std::to_string(s + static_cast<int64_t>(k) * S) +
                        ")");
      }
    }
    if (static_cast<int64_t>(ids.size()) != manifest_.shards[s].examples) {
      throw DataError(path + ": holds " + std::to_string(ids.size()) + " examples, the manifest says " +
                      std::to_string(manifest_.shards[s].examples) + " (re-run prepare with run.force=true)");
    }
    total += static_cast<int64_t>(ids.size());
    shard_rows_.push_back(static_cast<int64_t>(ids.size()));
  }
  const int64_t listed = manifest_.examples[0] + manifest_.examples[1] + manifest_.examples[2];
  if (total != listed) {
    throw DataError(options.dir + "/manifest.json: examples: train + valid + test = " + std::to_string(listed) +
                    ", the shards hold " + std::to_string(total));
  }
  for (int64_t id = 0; id < total; ++id) {
    const auto& col = splits[id % S];
    const size_t k = static_cast<size_t>(id / S);
    if (k >= col.size()) throw DataError(options.dir + ": shards do not hold consecutive example ids");
    if (options.split < 0 || col[k] == options.split) records_.push_back(id);
  }
  if (options.limit > 0 && static_cast<int64_t>(records_.size()) > options.limit) records_.resize(options.limit);
  const int64_t N = static_cast<int64_t>(records_.size());
  share_begin_ = N * options.rank / options.world_size;
  share_end_ = N * (options.rank + 1) / options.world_size;
  shards_.resize(S);
  errors_.resize(S);
  start_epoch(0);

  // Shards in the order this rank first needs them in epoch 0, then the rest (later epochs may need them).
  std::vector<int64_t> need;
  std::vector<char> seen(S, 0);
  for (int64_t p = share_begin_; p < share_end_; ++p) {
    const int64_t s = records_[order_[p]] % S;
    if (!seen[s]) {
      seen[s] = 1;
      need.push_back(s);
    }
  }
  for (int64_t s = 0; s < S; ++s) {
    if (!seen[s]) need.push_back(s);
  }
  prefetch_ = std::thread(&ShardReader::prefetch_loop, this, std::move(need));
}

ShardReader::~ShardReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (prefetch_.joinable()) prefetch_.join();
}

void ShardReader::prefetch_loop(std::vector<int64_t> order) {
  for (int64_t s : order) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (shards_[s]) continue;
    }
    std::unique_ptr<ExampleColumns> loaded;
    std::exception_ptr error;
    try {
      const std::string path = (fs::path(options_.dir) / manifest_.shards[s].name).string();
      ShardMeta meta;
      loaded = std::make_unique<ExampleColumns>(read_shard(path, &meta, catalog_.num_items(), catalog_.num_users()));
      // The file must still be the one the index was built from (a re-run of prepare may have replaced it).
      if (meta.config_hash != manifest_.config_hash || loaded->size() != shard_rows_[s]) {
        throw DataError(path + ": changed since it was opened (config hash " + meta.config_hash + ", " +
                        std::to_string(loaded->size()) + " rows; expected " + manifest_.config_hash + ", " +
                        std::to_string(shard_rows_[s]) + ")");
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (error)
      errors_[s] = error;  // reported by next() only when shard s is needed
    else if (!shards_[s])
      shards_[s] = std::move(loaded);
    loaded_cv_.notify_all();
  }
}

const ExampleColumns& ShardReader::shard(int64_t s) {
  std::unique_lock<std::mutex> lock(mu_);
  loaded_cv_.wait(lock, [&] { return shards_[s] || errors_[s]; });
  if (errors_[s]) std::rethrow_exception(errors_[s]);
  return *shards_[s];
}

std::vector<int64_t> ShardReader::epoch_order(int64_t epoch) const {
  const int64_t N = static_cast<int64_t>(records_.size());
  std::vector<int64_t> order(N);
  for (int64_t i = 0; i < N; ++i) order[i] = i;
  if (options_.shuffle) {
    Rng rng(stream_key(options_.seed, kReaderShuffleStream, static_cast<uint64_t>(epoch)));
    shuffle(order, rng);
  }
  return order;
}

void ShardReader::start_epoch(int64_t epoch) {
  if (epoch != cursor_.epoch || order_.empty()) order_ = epoch_order(epoch);
  cursor_ = {epoch, 0};
}

void ShardReader::seek(const ReaderCursor& cursor) {
  if (cursor.position < 0 || cursor.position > share_size()) {
    throw DataError("reader cursor position " + std::to_string(cursor.position) + " outside this rank's share of " +
                    std::to_string(share_size()) + " records (saved with another world size?)");
  }
  start_epoch(cursor.epoch);
  cursor_.position = cursor.position;
}

bool ShardReader::next(Example* example, ChainBuffer* chains) {
  if (cursor_.position >= share_size()) return false;
  const int64_t id = records_[order_[share_begin_ + cursor_.position]];
  const int64_t S = static_cast<int64_t>(manifest_.shards.size());
  const ExampleColumns& cols = shard(id % S);
  const int64_t row = id / S;
  *example = cols.example(row);
  if (chains) cols.copy_chains(row, chains);
  ++cursor_.position;
  return true;
}

std::vector<int64_t> ShardReader::share_ids(int64_t epoch) const {
  const std::vector<int64_t> order = epoch_order(epoch);
  std::vector<int64_t> ids;
  for (int64_t p = share_begin_; p < share_end_; ++p) ids.push_back(records_[order[p]]);
  return ids;
}

}  // namespace r2rec
