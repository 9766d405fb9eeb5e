// item-kNN (Sarwar et al. 2001): cosine similarity of items over the users who interacted with them in the
// train split, sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrink); a candidate's score is the sum of its
// similarities to the items of the scoring prefix (optionally only over its `neighbors` most similar items).
#pragma once

#include <vector>

#include "trainers/baselines/recommender.h"

namespace r2rec {

class ItemKnn : public Recommender {
 public:
  ItemKnn(const ItemKnnConfig& config, const Catalog& catalog);
  double train_epoch(int64_t) override { return 0.0; }
  bool needs_training() const override { return false; }
  int64_t samples_per_epoch() const override { return 0; }
  std::vector<double> score(const Example& example, const std::vector<int32_t>& prefix) override;

  // Similarity row of item i against every item ([I]); exposed for tests.
  std::vector<float> similarity_row(int32_t item);

 private:
  ItemKnnConfig config_;
  const Catalog& catalog_;
  std::vector<int64_t> item_offsets_;  // [I+1] CSR item -> users (train split, unique users)
  std::vector<int32_t> item_users_;
  std::vector<float> counts_;     // scratch [I]
  std::vector<int32_t> touched_;  // scratch
};

}  // namespace r2rec
