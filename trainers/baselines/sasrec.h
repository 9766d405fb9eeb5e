// SASRec (Kang & McAuley 2018): item + learned position embeddings, `layers` causal self-attention blocks
// (pre-LayerNorm attention with the query taken from the normalised input, point-wise two-layer FFN with
// ReLU, dropout and residuals, a final LayerNorm), trained with binary cross-entropy on every position of the
// user's last `max_len` train items against one sampled negative per position. A candidate's score is the
// dot product of the last position's output with the candidate's item embedding.
#pragma once

#include <memory>

#include "trainers/baselines/recommender.h"

namespace r2rec {

std::unique_ptr<Recommender> make_sasrec(const SasrecConfig& config, const Catalog& catalog, uint64_t seed,
                                         const DataParallelGroup& group);

}  // namespace r2rec
