// Reads a prepare run's shards for one rank: rank r of W gets an exact, disjoint share of the selected
// split's records — together the W shares are every record once — whether or not W equals the shard count.
//
// Order: the split's records sorted by example id form the epoch's list; with `shuffle` it is permuted by
// Fisher-Yates from the stream (seed, epoch), the same on every rank. Rank r takes list positions
// [r*N/W, (r+1)*N/W) (shares differ by at most one record). A cursor (epoch, position in the share) can be
// saved and restored for exact resume.
//
// Prefetch: opening reads the manifest, verifies every file (size and CRC-32) and reads the small id/split
// columns; a background thread then loads whole shards in the order this rank first needs them (then the
// rest), and next() waits only when the shard it needs is not loaded yet. Memory: loaded shards stay loaded
// (for ML-100K's defaults, ~2 MB in all).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sampler/manifest.h"
#include "sampler/shard.h"

namespace r2rec {

struct ReaderOptions {
  std::string dir;  // folder holding manifest.json
  int split = -1;   // a Split value, or -1 for every split
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  bool verify_checksums = true;
  int64_t limit = 0;  // > 0: only the first `limit` selected records (by id), before sharing
};

// The options every stage reads a split with: `split` of the shards in `dir`, rank `rank` of `world_size` taking
// its share (world_size 1: the whole split), in id order (no shuffle), the first `limit` records when > 0.
ReaderOptions split_reader_options(const std::string& dir, int split, int rank, int world_size, int64_t limit);

struct ReaderCursor {
  int64_t epoch = 0;
  int64_t position = 0;  // records of this rank's share already returned in `epoch`
  bool operator==(const ReaderCursor& o) const { return epoch == o.epoch && position == o.position; }
};

class ShardReader {
 public:
  // Throws DataError naming the file on a missing/damaged manifest, shard or catalog.
  explicit ShardReader(const ReaderOptions& options);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const Manifest& manifest() const { return manifest_; }
  const Catalog& catalog() const { return catalog_; }
  int64_t total() const { return static_cast<int64_t>(records_.size()); }  // selected records, all ranks
  int64_t share_size() const { return share_end_ - share_begin_; }         // this rank's, per epoch

  // The next record of this rank's share in the current epoch; false at the end of the epoch (then call
  // start_epoch). Rethrows a DataError met by the prefetch thread.
  bool next(Example* example, ChainBuffer* chains);
  void start_epoch(int64_t epoch);
  ReaderCursor cursor() const { return cursor_; }
  void seek(const ReaderCursor& cursor);

  // Example ids of this rank's share in `epoch`, in the order next() returns them.
  std::vector<int64_t> share_ids(int64_t epoch) const;

 private:
  std::vector<int64_t> epoch_order(int64_t epoch) const;  // positions into records_, whole list
  const ExampleColumns& shard(int64_t s);                 // waits for the prefetch thread
  void prefetch_loop(std::vector<int64_t> order);

  ReaderOptions options_;
  Manifest manifest_;
  Catalog catalog_;
  std::vector<int64_t> records_;  // example ids of the selected split(s), ascending
  int64_t share_begin_ = 0, share_end_ = 0;
  ReaderCursor cursor_;
  std::vector<int64_t> order_;  // epoch_order(cursor_.epoch)

  std::mutex mu_;
  std::condition_variable loaded_cv_;
  std::vector<int64_t> shard_rows_;  // rows per shard when the index was read
  std::vector<std::unique_ptr<ExampleColumns>> shards_;
  std::vector<std::exception_ptr> errors_;  // per shard, rethrown when that shard is needed
  bool stop_ = false;
  std::thread prefetch_;
};

}  // namespace r2rec
