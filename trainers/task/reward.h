// The rewards of a task completion (docs/grpo.md, term r_i): components registered by name, listed with their
// weights in rl.rewards ("answer=1", "format=0.1", "rank=0.5"); a completion's reward is the weighted sum, and
// every component is logged on its own. Built in (each in [0, 1]):
//   answer  1 when the completion's answer names the example's target (trainers/task/task.h parse_answer), else 0;
//   format  1 when the completion is well formed: "<think>" ... "</think>" before an answer that names a
//           candidate, else 0;
//   rank    NDCG of the target in the completion's ranked list: the candidates in the order the completion
//           first names them, its answer first; 1/log2(1 + rank) when the target is in the list, else 0
//           (rank 1 = the answer is the target).
// Components are pure functions of (completion, example, catalog), so a batch is scored in any order.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "sampler/shard.h"
#include "sampler/split.h"

namespace r2rec {

using RewardComponent =
    std::function<double(const std::string& completion, const Example& example, const Catalog& catalog)>;

struct WeightedReward {
  std::string name;
  double weight = 0;
  RewardComponent score;
};

// The registered component names ("answer", "format", "rank").
std::vector<std::string> reward_component_names();

// rl.rewards parsed: "name=weight" each. ConfigError naming the entry for an unknown name, a missing or
// negative weight, or a name listed twice.
std::vector<WeightedReward> make_rewards(const RlConfig& rl);

struct Reward {
  std::vector<double> parts;  // [K] unweighted component values, in rl.rewards order
  double total = 0;           // sum of weight x part
};

// `completion` is the completion's text, the answer's closing tag included when it stopped there.
Reward score_completion(const std::vector<WeightedReward>& rewards, const std::string& completion,
                        const Example& example, const Catalog& catalog);

}  // namespace r2rec
