// GRPO (docs/design.md §5; the objective derived term by term in docs/grpo.md, whose numbers label the code),
// colocated: every rank is a rollout worker and a data-parallel learner, time-sliced.
//
// A step takes rl.prompts_per_step prompts (global; a seeded shuffle of the prompt list, cycled), rank r of W the
// r-th W-th. For each, rl.group_size completions are sampled with the current policy (rl.temperature, rl.top_p,
// rl.max_new_tokens; stop at </answer> or the end of turn; the answer span constrained to the prompt's
// candidates), each with its own seeded stream. Rewards come from `reward`; advantages A_i = (r_i - mean r) /
// (std r + 1e-4) within the group (without the division when rl.std_scale is false); groups whose rewards are
// all equal (A = 0) are left out of the update and counted. Then rl.inner_epochs passes over the kept rollouts
// in micro-batches of rl.micro_batch_size:
//   loss = sum over completion tokens of  -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A) + beta KL_k3
//          / the kept completion-token count of the global batch,
//   rho = exp(log pi_theta - log pi_old), KL_k3 = exp(D) - D - 1, D = log pi_ref - log pi_theta,
// where log pi_old are the log-probs the engine returned while sampling and pi_ref is the frozen reference model
// (the SFT checkpoint). Gradients are summed over ranks, clipped (grad_clip) and applied with AdamW at
// rl.learning_rate after each inner pass. The mean |log pi_old - log pi_theta| at the first inner pass is logged:
// rollout and learner share weights and kernels here, so it must be ~0.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model/generation.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "trainers/recommender.h"
#include "trainers/reward.h"

namespace r2rec {

// One RL prompt: its token ids and the constraint of its answer span (trainers/answering.h; null = free).
struct RlPrompt {
  std::vector<int64_t> ids;
  std::shared_ptr<const AnswerConstraint> constraint;
};

// The reward of a completion (its text, the answer's closing tag included when it stopped there) of prompt i.
using RewardFn = std::function<Reward(int64_t prompt, const std::string& completion)>;

struct GrpoStep {
  int64_t step = 0;
  double reward = 0, answer = 0, format = 0;  // means over the step's completions (all ranks)
  double kl = 0;                              // mean KL_k3 per completion token, first inner pass
  double clipped = 0;                         // share of tokens where the clip binds for A's sign (last pass)
  double old_new_gap = 0;                     // mean |log pi_old - log pi_theta|, first inner pass
  double loss = 0;                            // first inner pass
  int64_t completion_tokens = 0;
  int64_t zero_advantage_groups = 0;  // groups with equal rewards, left out of the update (all ranks)
  double seconds = 0, rollout_seconds = 0;
};

struct RlResult {
  std::vector<GrpoStep> steps;
  double seconds = 0;
};

RlResult train_grpo(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, double grad_clip,
                    uint64_t seed, const std::vector<RlPrompt>& prompts, const RewardFn& reward,
                    const Tokenizer& tokenizer, const Collectives& collectives,
                    const std::function<void(const GrpoStep&)>& on_step = {});

}  // namespace r2rec
