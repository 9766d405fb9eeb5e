// The in-memory dataset: dense ids, item titles and each user's chronological item sequence after filtering.
//
// load_dataset() reads one of the supported formats (raw_log.h), then filters in this order:
//   1. drop interactions rated below data.min_rating (only when the format has ratings and min_rating > 0);
//   2. order each user's interactions by (timestamp, line order) — a stable chronology;
//   3. de-duplicate repeated (user, item) pairs, keeping the first (earliest) one;
//   4. iterated k-core: remove users and items with < data.kcore interactions until none remain (0 = off);
//   5. drop users with < data.min_history interactions (this does not re-run the k-core).
// Survivors get dense ids: users 0..U-1 and items 0..I-1, ordered by their original token (numerically when the
// token is all digits, else bytewise), so ids do not depend on the order of lines in the files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace r2rec {

struct DatasetStats {
  // As read (after skipping malformed lines), before any filter. Items: distinct items in the interactions.
  int64_t raw_users = 0;
  int64_t raw_items = 0;
  int64_t raw_interactions = 0;
  int64_t malformed_lines = 0;      // skipped lines (data.skip_malformed), all files together
  int64_t dropped_by_rating = 0;    // step 1
  int64_t duplicates = 0;           // step 3
  int64_t kcore_rounds = 0;         // passes of step 4 until stable
  int64_t items_without_title = 0;  // surviving items absent from the title file (title "")
  // After filtering: what the Dataset holds.
  int64_t users = 0;
  int64_t items = 0;
  int64_t interactions = 0;
};

// Read-only view of one user's sequence: item ids, oldest first.
struct ItemSpan {
  const int32_t* data = nullptr;
  int64_t size = 0;
  const int32_t* begin() const { return data; }
  const int32_t* end() const { return data + size; }
  int32_t operator[](int64_t i) const { return data[i]; }
};

struct Dataset {
  std::string format;                     // data.format it was read with
  std::vector<std::string> user_tokens;   // [U]  dense user id -> original user token
  std::vector<std::string> item_tokens;   // [I]  dense item id -> original item token
  std::vector<std::string> item_titles;   // [I]  UTF-8 title ("" when the title file lacks the item)
  std::vector<int64_t> sequence_offsets;  // [U+1] user u's items are sequence_items[offsets[u] .. offsets[u+1])
  std::vector<int32_t> sequence_items;    // [N]  chronological item ids, every user's in turn
  DatasetStats stats;

  int32_t num_users() const { return static_cast<int32_t>(user_tokens.size()); }
  int32_t num_items() const { return static_cast<int32_t>(item_tokens.size()); }
  int64_t num_interactions() const { return static_cast<int64_t>(sequence_items.size()); }
  ItemSpan sequence(int32_t user) const {
    const int64_t b = sequence_offsets[user];
    return {sequence_items.data() + b, sequence_offsets[user + 1] - b};
  }
};

// Reads data.path in data.format and filters it as above. `seed` (run.seed) orders Last.fm's untimed
// interactions. Throws DataError (one line, naming file and line) on a missing file, a malformed line (unless
// data.skip_malformed) or when a filter leaves nothing; ConfigError for an unknown format.
Dataset load_dataset(const DataConfig& data, uint64_t seed);

// One line of counts for logs: "raw 943 users / 1682 items / 100000 interactions -> 943 / 1349 / 99287 ...".
std::string describe(const DatasetStats& stats);

}  // namespace r2rec
