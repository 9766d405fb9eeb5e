#include "trainers/reward.h"

#include "trainers/task.h"

namespace r2rec {

Reward task_reward(const std::string& completion, const Example& example, const Catalog& catalog, const RlConfig& rl) {
  Reward r;
  const int32_t choice = parse_answer(completion, example, catalog);
  const size_t think = completion.find("<think>"), end = completion.find("</think>"),
               answer = completion.find(kAnswerOpen);
  if (choice >= 0 && think != std::string::npos && end != std::string::npos && think < end && end < answer) {
    r.format = rl.format_reward;
  }
  if (choice == example.target_index) r.answer = rl.answer_reward;
  return r;
}

}  // namespace r2rec
