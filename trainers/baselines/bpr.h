// BPR-MF (Rendle et al. 2009): x_ui = <p_u, q_i>; each step maximises ln σ(x_ui − x_uj) for train pairs (u, i)
// and a negative j drawn uniformly from the items u never touched in the train split, with L2 `reg` on the
// embeddings in the batch, optimised by Adam. Score of a candidate c for user u: <p_u, q_c>, where p_u is
// updated with the items of the example's pre-target history that training did not see (a test example's
// validation item; baseline.bpr.fold_in), so BPR-MF, like every other method, uses the validation item
// when it scores the test target.
#pragma once

#include <memory>

#include "trainers/baselines/recommender.h"

namespace r2rec {

std::unique_ptr<Recommender> make_bpr(const BprConfig& config, const Catalog& catalog, uint64_t seed,
                                      const DataParallelGroup& group);

}  // namespace r2rec
