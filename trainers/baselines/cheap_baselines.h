// The baselines that need no training, scored on the stored candidate lists (docs/design.md §6):
//
//   random      seeded uniform scores per (example, candidate): a real random ranking (expected HR@1 = 1/C)
//   popularity  score = the candidate's train interactions (catalog items/train_count); ties by expected rank
//   chainvote   score = chains of the example that contain the candidate (sampler/chain_vote.h), ties broken
//               by popularity: score = votes * (max_popularity + 1) + popularity
//
// Each rank scores its share of the split (ShardReader); the counts are summed across ranks by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampler/shard_reader.h"
#include "trainers/eval/metrics.h"

namespace r2rec {

const std::vector<std::string>& cheap_baseline_names();  // random, popularity, chainvote
bool is_cheap_baseline(const std::string& method);

// Scores every record the reader yields in its current epoch (from its cursor to the end of the share)
// with `method` and accumulates the metrics. `max_examples` > 0 stops after that many (this rank).
RankingMetrics score_cheap_baseline(const std::string& method, ShardReader& reader, const std::vector<int64_t>& ks,
                                    uint64_t seed, int64_t max_examples = 0);

// Scores of the C candidates of one example under `method` (exposed for tests).
std::vector<double> cheap_baseline_scores(const std::string& method, const Example& example, const ChainBuffer& chains,
                                          const std::vector<int64_t>& popularity, uint64_t seed);

}  // namespace r2rec
