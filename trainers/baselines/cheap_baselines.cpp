#include "trainers/baselines/cheap_baselines.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "sampler/chain_vote.h"

namespace r2rec {

const std::vector<std::string>& cheap_baseline_names() {
  static const std::vector<std::string> names = {"random", "popularity", "chainvote"};
  return names;
}

bool is_cheap_baseline(const std::string& method) {
  const auto& n = cheap_baseline_names();
  return std::find(n.begin(), n.end(), method) != n.end();
}

std::vector<double> cheap_baseline_scores(const std::string& method, const Example& example, const ChainBuffer& chains,
                                          const std::vector<int64_t>& popularity, uint64_t seed) {
  const size_t C = example.candidates.size();
  std::vector<double> scores(C, 0.0);
  if (method == "random") {
    Rng rng(stream_key(seed, /*random baseline*/ 101, static_cast<uint64_t>(example.id)));
    for (auto& s : scores) s = static_cast<double>(rng.next() >> 11);  // 53 random bits: ties are negligible
  } else if (method == "popularity") {
    for (size_t c = 0; c < C; ++c) scores[c] = static_cast<double>(popularity[example.candidates[c]]);
  } else if (method == "chainvote") {
    const std::vector<int32_t> votes = chain_votes(example, chains, 0, chains.size());
    int64_t max_pop = 0;
    for (int32_t item : example.candidates) max_pop = std::max(max_pop, popularity[item]);
    for (size_t c = 0; c < C; ++c) {
      scores[c] = static_cast<double>(votes[c]) * static_cast<double>(max_pop + 1) +
                  static_cast<double>(popularity[example.candidates[c]]);
    }
  } else {
    throw ConfigError("baseline --method: '" + method + "' is not a cheap baseline (random, popularity, chainvote)");
  }
  return scores;
}

RankingMetrics score_cheap_baseline(const std::string& method, ShardReader& reader, const std::vector<int64_t>& ks,
                                    uint64_t seed, int64_t max_examples) {
  RankingMetrics metrics(ks);
  const std::vector<int64_t>& popularity = reader.catalog().item_train_count;
  Example example;
  ChainBuffer chains;
  while ((max_examples <= 0 || metrics.count() < max_examples)) {
    chains.clear();
    if (!reader.next(&example, &chains)) break;
    metrics.add(cheap_baseline_scores(method, example, chains, popularity, seed), example);
  }
  return metrics;
}

}  // namespace r2rec
