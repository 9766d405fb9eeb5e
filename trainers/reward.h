// The rewards of a task completion (docs/grpo.md, term r_i): what GRPO rollouts are scored with.
//   answer  rl.answer_reward when the completion's answer names the example's target (trainers/task.h
//           parse_answer), else 0;
//   format  rl.format_reward when the completion is well formed: "<think>" ... "</think>" before an answer that
//           names a candidate, else 0.
#pragma once

#include <string>

#include "core/config.h"
#include "sampler/shard.h"
#include "sampler/split.h"

namespace r2rec {

struct Reward {
  double answer = 0, format = 0;
  double total() const { return answer + format; }
};

// `completion` is the completion's text, the answer's closing tag included when it stopped there.
Reward task_reward(const std::string& completion, const Example& example, const Catalog& catalog, const RlConfig& rl);

}  // namespace r2rec
