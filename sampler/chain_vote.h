// The cheap baselines' scores: chain votes and item popularity (docs/design.md §6).
//
//   votes[c]     = number of the example's chains that contain candidates[c] as an item node (a chain counts
//                  at most once per candidate, wherever the candidate sits in it; bridge chains end there)
//   popularity[i] = train interactions of item i = its degree in the train graph
// chain-vote picks argmax_c votes[c]; ties (including all-zero votes) go to the more popular candidate, then the
// lower candidate index, so the choice is deterministic. popularity picks argmax_c popularity[candidates[c]].
#pragma once

#include <cstdint>
#include <vector>

#include "sampler/chains.h"
#include "sampler/graph.h"
#include "sampler/split.h"

namespace r2rec {

// [C] votes for chains [first, first+count) of `chains`.
std::vector<int32_t> chain_votes(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count);

// [I] train interactions per item.
std::vector<int64_t> item_popularity(const InteractionGraph& graph);

// Index into example.candidates chosen by chain-vote (votes as above) or by popularity alone.
int32_t chain_vote_choice(const Example& example, const std::vector<int32_t>& votes,
                          const std::vector<int64_t>& popularity);
int32_t popularity_choice(const Example& example, const std::vector<int64_t>& popularity);

}  // namespace r2rec
