// Chronological leave-one-out examples with their candidate lists.
//
// For user u with sequence s[0..n-1] (n >= 3, guaranteed by data.min_history >= 3):
//   test        target s[n-1] at position p = n-1, history s[0..n-2]
//   validation  target s[n-2] at position p = n-2, history s[0..n-3]
//   train       targets at p = n-3, n-4, ..., down to 1, at most sampler.train_examples_per_user of them
//               (the latest first), history s[0..p-1]
// The stored history is the last H = sampler.history_len items of s[0..p-1], oldest first.
//
// Candidates: C = sampler.num_candidates items = the target + C-1 negatives drawn uniformly without
// replacement from the items u never touched (anywhere in s), then shuffled (Fisher-Yates); target_index is
// where the target landed. The draws come from Rng(stream_key(seed, kCandidates, user, p)), so an example's
// candidates depend only on (seed, user, position): not on the order, thread or rank that builds it, nor on
// train_examples_per_user.
//
// Example ids are dense and ordered by (split, user, position): all train examples (user by user, positions
// ascending), then all validation, then all test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "sampler/dataset.h"

namespace r2rec {

enum class Split : int8_t { kTrain = 0, kValid = 1, kTest = 2 };

struct Example {
  int64_t id = 0;
  int32_t user = 0;
  int32_t target = 0;  // item id = s[position]
  Split split = Split::kTrain;
  int32_t position = 0;             // p: index of the target in the user's sequence
  std::vector<int32_t> history;     // [min(H, p)] item ids, oldest first (s[p-len .. p-1])
  std::vector<int32_t> candidates;  // [C] distinct item ids, shuffled
  int32_t target_index = 0;         // candidates[target_index] == target
};

// Every example of every split, in id order. Throws DataError naming the user when fewer than C-1 items
// remain untouched by that user, ConfigError when C > number of items.
std::vector<Example> make_examples(const Dataset& dataset, const SamplerConfig& sampler, uint64_t seed);

// The C candidates for one (user, position) with the target, as described above; `touched_stamp` is scratch
// of size num_items (any contents; it is stamped with `stamp`, which must differ between calls).
void draw_candidates(const Dataset& dataset, int32_t user, int32_t position, int64_t num_candidates, uint64_t seed,
                     std::vector<uint32_t>* touched_stamp, uint32_t stamp, Example* example);

const char* split_name(Split split);             // "train" | "valid" | "test"
Split split_from_name(const std::string& name);  // inverse of split_name (eval.split is validated by the config)

}  // namespace r2rec
