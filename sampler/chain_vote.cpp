#include "sampler/chain_vote.h"

namespace r2rec {

std::vector<int32_t> chain_votes(const Example& ex, const ChainBuffer& chains, int64_t first, int64_t count) {
  std::vector<int32_t> votes(ex.candidates.size(), 0);
  for (size_t k = 0; k < ex.candidates.size(); ++k) {
    for (int64_t c = first; c < first + count; ++c) {
      for (int64_t x = chains.offsets[c]; x < chains.offsets[c + 1]; ++x) {
        if (chains.types[x] == static_cast<uint8_t>(NodeType::kItem) && chains.nodes[x] == ex.candidates[k]) {
          ++votes[k];
          break;
        }
      }
    }
  }
  return votes;
}

std::vector<int64_t> item_popularity(const InteractionGraph& graph) {
  std::vector<int64_t> pop(graph.num_items);
  for (int32_t i = 0; i < graph.num_items; ++i) pop[i] = graph.item_offsets[i + 1] - graph.item_offsets[i];
  return pop;
}

int32_t chain_vote_choice(const Example& ex, const std::vector<int32_t>& votes, const std::vector<int64_t>& pop) {
  int32_t best = 0;
  for (int32_t k = 1; k < static_cast<int32_t>(ex.candidates.size()); ++k) {
    if (votes[k] > votes[best] || (votes[k] == votes[best] && pop[ex.candidates[k]] > pop[ex.candidates[best]]))
      best = k;
  }
  return best;
}

int32_t popularity_choice(const Example& ex, const std::vector<int64_t>& pop) {
  int32_t best = 0;
  for (int32_t k = 1; k < static_cast<int32_t>(ex.candidates.size()); ++k)
    if (pop[ex.candidates[k]] > pop[ex.candidates[best]]) best = k;
  return best;
}

}  // namespace r2rec
