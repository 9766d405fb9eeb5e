// LightGCN (He et al. 2020): user and item embeddings E0 smoothed over the user-item graph of the train split,
// E = mean(E0, A E0, ..., A^K E0) with A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 (no weights, no non-linearity), trained
// with BPR on (u, i, j) triples (j an item u never touched) and L2 on the batch's E0 rows, Adam. The classical
// model closest to reasoning over user-item chains: a user's score for an item sums the walks of up to 2K hops
// between them. Score of a candidate c for user u: <E_u, E_c> on the graph of the scoring prefixes (the train
// edges plus each example's history past the train split, a test example's validation item), propagated again
// without retraining, so LightGCN, like every other method, uses the validation item when it scores test.
#pragma once

#include <memory>

#include "trainers/baselines/recommender.h"

namespace r2rec {

std::unique_ptr<Recommender> make_lightgcn(const LightGcnConfig& config, const Catalog& catalog, uint64_t seed,
                                           const DataParallelGroup& group);

}  // namespace r2rec
