// The rewards of a task completion (docs/grpo.md, term r_i): components registered by name, listed with their
// weights in rl.rewards ("answer=1", "format=0.1", "rank=0.5"); a completion's reward is the weighted sum, and
// every component is logged on its own. Built in (each in [0, 1]):
//   answer  1 when the completion's answer names the example's target (trainers/task/task.h parse_answer), else 0;
//   format  1 when the completion is well formed: "<think>" ... "</think>" before an answer that names a
//           candidate, else 0;
//   rank    NDCG of the target in the completion's ranked list: the candidates in the order the completion
//           first names them, its answer first; 1/log2(1 + rank) when the target is in the list, else 0
//           (rank 1 = the answer is the target);
//   grounded the share of the completion's checkable claims that are true to its prompt
//           (trainers/task/citations.h): each chain citation counts one (grounded or not), a votes line one
//           and a "No chain reaches it." one (true or not); 0 when it makes no claim, so writing no reasoning
//           earns nothing here;
//   consistent 1 when the answer is what the completion's own stated evidence favours, else 0 (no evidence: 0).
// Components are pure functions of (completion, the example's prompt), so a batch is scored in any order.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "sampler/chains.h"
#include "sampler/shard.h"
#include "sampler/split.h"
#include "trainers/task/task.h"

namespace r2rec {

// What a completion answered: the example, the chains its prompt showed and how the prompt named things.
struct RewardPrompt {
  const Example& example;
  const ChainBuffer& chains;  // the prompt's chains (all of the buffer)
  const Catalog& catalog;
  const TaskFormat& format;
};

using RewardComponent = std::function<double(const std::string& completion, const RewardPrompt& prompt)>;

struct WeightedReward {
  std::string name;
  double weight = 0;
  RewardComponent score;
};

// The registered component names ("answer", "consistent", "format", "grounded", "rank").
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
                        const RewardPrompt& prompt);

}  // namespace r2rec
