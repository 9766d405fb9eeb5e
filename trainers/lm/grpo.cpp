#include "trainers/lm/grpo.h"

#include "distributed/watchdog.h"
#include "trainers/lm/answering.h"
#include "trainers/lm/grpo_steps.h"
#include "trainers/lm/train_state.h"

namespace r2rec {

using namespace grpo;  // NOLINT: the shared pieces of both GRPO shapes

RlResult train_grpo(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, uint64_t seed,
                    const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tok,
                    const DataParallelGroup& group, const std::function<void(const GrpoStep&)>& on_step,
                    const CheckpointPlan* plan) {
  const auto t0 = Clock::now();
  double outside = 0;  // seconds in on_step (validation, logs): not the stage's training time
  const int64_t W = group.size(), P = rl.prompts_per_step, mine = P / std::max<int64_t>(1, W);
  check_shape(rl, W, "ranks", prompts);
  const SamplingOptions o = answer_sampling(tok, rl.max_new_tokens, rl.temperature, rl.top_p);
  const TokenText text = answer_token_text(tok);
  Learner learner(policy, reference, rl);
  PromptSchedule schedule(prompts.size(), seed);
  RlResult result;
  int64_t first = 0;
  if (plan && !plan->resume_from.empty()) {
    const nlohmann::json st = load_train_state(plan->resume_from, policy, &learner.optimizer(), group.rank());
    first = result.resumed_from = st.at("step").get<int64_t>();
    result.steps = steps_from_record(st.at("record"), rl);
  }
  for (int64_t step = first; step < rl.steps; ++step) {
    const auto ts = Clock::now();
    GrpoStep stats;
    stats.step = step;
    std::vector<Scored> scored;
    {
      PhaseScope phase("rl rollout step " + std::to_string(step + 1));
      scored = rollout(policy, schedule, prompts, step, group.rank() * mine, (group.rank() + 1) * mine, rl, o, text,
                       seed, reward, step, &stats.reward_seconds);
    }
    stats.rollout_seconds = since(ts);
    std::vector<double> sums = reward_sums(scored, scored.empty() ? 0 : scored.front().reward.parts.size());
    group.sum(sums.data(), static_cast<int64_t>(sums.size()));
    fill_reward_stats(sums, stats);
    const auto tl = Clock::now();
    {
      PhaseScope phase("rl learn step " + std::to_string(step + 1));
      learner.learn(scored, prompts, group, stats);
    }
    stats.staleness[0] = stats.completion_tokens > 0 ? static_cast<int64_t>(sums[2]) : 0;
    stats.learner_seconds = since(tl);
    stats.seconds = since(ts);
    result.steps.push_back(stats);
    if (on_step) {
      const auto tc = Clock::now();
      on_step(stats);
      outside += since(tc);
    }
    if (plan && plan->every > 0 && (step + 1) % plan->every == 0 && step + 1 < rl.steps)
      save_train_state(*plan, step + 1, policy, &learner.optimizer(), steps_record(result.steps, rl), group.rank());
  }
  result.seconds = since(t0) - outside;
  return result;
}

}  // namespace r2rec
