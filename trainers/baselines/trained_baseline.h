// Training loop of the classical recommenders: epochs of Recommender::train_epoch, a validation pass every
// `eval_every` epochs scored by NDCG@10 on the stored validation candidates, early stopping after `patience`
// passes without improvement (the best weights are restored), then the configured eval split is scored.
// Every rank trains on its slice and scores its share of each split; metric sums go over the DataParallelGroup.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "trainers/baselines/recommender.h"
#include "trainers/eval/metrics.h"

namespace r2rec {

struct TrainedBaselineResult {
  RankingMetrics eval{{1}};  // on config.eval.split, all ranks merged
  int64_t epochs = 0;        // epochs trained
  int64_t best_epoch = 0;
  double best_valid_ndcg10 = 0.0;
  std::vector<std::pair<int64_t, double>> curve;  // (epoch, validation NDCG@10)
  double train_seconds = 0.0;
  double samples_per_second = 0.0;  // training samples per second on this rank
  double final_loss = 0.0;
  std::vector<float> item_factors;  // [num_items, factor_dim] of the restored best weights (bpr), else empty
  int64_t factor_dim = 0;
};

// Trains (where the method needs it) on the catalog of the shard folder `shard_dir` and scores `method` on
// config.eval.split. Throws DataError for a missing/damaged shard folder.
TrainedBaselineResult train_and_score(const std::string& method, const Config& config, const std::string& shard_dir,
                                      const DataParallelGroup& group);

}  // namespace r2rec
