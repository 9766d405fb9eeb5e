// GRPO (docs/design.md §5; the objective derived term by term in docs/grpo.md, whose numbers label the code), in
// the three shapes of docs/design.md §3:
//
//   colocated (train_grpo): every rank is a rollout worker and a data-parallel learner, time-sliced.
//   split (train_grpo_split, rl.async=false): ranks [0, L) learn, ranks [L, L+R) roll out. Step t: the rollout
//     ranks sample with policy version t and send whole scored groups to the learners (TrajectoryChannel);
//     the learners update; learner 0 broadcasts version t+1 to the rollout ranks (ParameterBroadcaster).
//   asynchronous (train_grpo_split, rl.async=true): the rollout for step t uses version max(0, t - s),
//     s = rl.max_staleness, so rollout of step t+1..t+s overlaps the learners' update t; the ratio uses the
//     log-probs the rollout recorded (the behaviour policy, decoupled-PPO style), and a batch staler than s is
//     dropped and counted.
//
// A step takes rl.prompts_per_step prompts P (global; a seeded shuffle of the prompt list, cycled). Prompt k of
// the step (0 <= k < P) has completions at global slots k*G .. k*G+G-1 (G = rl.group_size), each sampled with
// its own stream keyed by (seed, step, slot) (rl.temperature, rl.top_p, rl.max_new_tokens; stop at </answer>
// or the end of turn; the answer span constrained to the prompt's candidates), so who samples a prompt does not
// change what is sampled: colocated on W ranks, rank r samples prompts [r P/W, (r+1) P/W); split, rollout rank j
// samples [j P/R, (j+1) P/R) and learner l learns on [l P/L, (l+1) P/L). Rewards (trainers/task/reward.h) -> group
// advantages A = (r - mean r) / (std r + 1e-4) (no division when rl.std_scale is false); groups with equal
// rewards carry no signal and are left out of the update, counted. Then rl.inner_epochs passes over the kept
// completions in micro-batches of rl.micro_batch_size:
//   loss = sum over kept completion tokens of -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A) + beta KL_k3,
//          divided by the kept completion-token count of the global batch,
// rho = exp(log pi_theta - log pi_old) with log pi_old the engine's sampling log-probs, KL_k3 = exp(D) - D - 1,
// D = log pi_ref - log pi_theta, pi_ref the frozen reference (the SFT checkpoint). Gradients are summed over the
// learners, clipped (rl.grad_clip) and applied with AdamW at rl.learning_rate after each inner pass. With the same
// seed, split sync mode takes the colocated run's steps: the same completions, rewards and losses (up to float
// summation order across learners) and weights.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics_log.h"
#include "core/model/generation.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/dp_group.h"
#include "trainers/lm/checkpoint_plan.h"
#include "trainers/task/reward.h"

namespace r2rec {

class Communicator;

// One RL prompt: its token ids and the constraint of its answer span (trainers/lm/answering.h; null = free).
struct RlPrompt {
  std::vector<int64_t> ids;
  std::shared_ptr<const AnswerConstraint> constraint;
};

// The reward of a completion (its text, the answer's closing tag included when it stopped there) of prompt i.
// Called from several threads at once (a rollout scores its batch with at::parallel_for): it must be pure, or
// lock what it shares.
using RewardFn = std::function<Reward(int64_t prompt, const std::string& completion)>;

struct GrpoStep {
  int64_t step = 0;
  double reward = 0, reward_std = 0;  // mean and std over the step's completions (all ranks)
  std::vector<double> parts;          // mean of each reward component (rl.rewards order)
  double hit = 0;                     // share of completions whose first component (answer) is > 0
  double kl = 0;                      // mean KL_k3 per kept completion token, first inner pass
  double clipped = 0;                 // share of kept tokens where the clip binds for A's sign (last pass)
  double entropy = 0;                 // mean -log pi_old of the sampled tokens: a Monte-Carlo entropy estimate
  double old_new_gap = 0;             // mean |log pi_old - log pi_theta|, first inner pass (term 3)
  double loss = 0;                    // first inner pass
  double response_tokens = 0;         // mean completion length
  int64_t completion_tokens = 0;
  int64_t zero_advantage_groups = 0;     // groups with equal rewards, left out of the update (all ranks)
  int64_t stale_dropped = 0;             // async: batches older than rl.max_staleness, dropped
  std::map<int64_t, int64_t> staleness;  // learner version - rollout version -> completions learnt from
  double seconds = 0;                    // the step on learner 0
  double rollout_seconds = 0;            // generation + rewards (colocated: this rank; split: rollout rank 0)
  double reward_seconds = 0;             // of which scoring the rewards (parallel over the intra-op threads)
  double learner_seconds = 0;            // reference + inner passes (learner 0)
  double sync_seconds = 0;               // weight broadcast (learner 0; 0 when colocated)
  int64_t sync_bytes = 0;                // bytes of one weight broadcast
  double learner_idle = 0;               // share of the step learner 0 waited for trajectories
  double rollout_idle = 0;               // share of the step rollout rank 0 waited (weights, credits)
};

struct RlResult {
  std::vector<GrpoStep> steps;
  double seconds = 0;
  int64_t resumed_from = 0;  // the step a resume continued from (0 = afresh)
};

// The step's scalars for the metrics stream (core/metrics_log.h): every number of grpo_step_json but the step,
// the reward components as "reward/<name>", the staleness as "staleness/<lag>".
Scalars grpo_step_scalars(const GrpoStep& step, const std::vector<std::string>& reward_names);

// A step as rl.json writes it (docs/grpo.md "Reported per step"); `reward_names` name the components. And back.
nlohmann::ordered_json grpo_step_json(const GrpoStep& step, const std::vector<std::string>& reward_names);
GrpoStep grpo_step_from_json(const nlohmann::json& j, const std::vector<std::string>& reward_names);

// Colocated GRPO over `collectives` (every rank samples its share and learns). With `checkpoints`: a full-state
// checkpoint every checkpoints->every steps (trainers/lm/train_state.h; the record holds the steps so far), and a
// resume from checkpoints->resume_from that continues bit-identically (rollouts are seeded by step and slot).
RlResult train_grpo(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, uint64_t seed,
                    const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tokenizer,
                    const DataParallelGroup& group, const std::function<void(const GrpoStep&)>& on_step = {},
                    const CheckpointPlan* checkpoints = nullptr);

// The groups of a split run: the world (the trajectory channel), the learners' data-parallel group (gradient
// and scalar sums; a single-process group on rollout ranks) and the sync group (learner 0 + the rollout ranks;
// null on other learners). timeout_s and bucket_mb (distributed.*) apply to the channel and the broadcast.
struct SplitGroups {
  Communicator* world = nullptr;
  DataParallelGroup learners;
  Communicator* sync = nullptr;
  int num_learners = 1;
  int num_rollouts = 1;
  double timeout_s = 300;
  double bucket_mb = 25;
  bool weight_checksum = false;  // distributed.weight_checksum
};

// Split (and asynchronous) GRPO. On a learner rank `policy` is trained (and `reference` used); on a rollout rank
// `policy` is the rollout copy, overwritten by each broadcast, and `reference` is unused. Every rank returns
// the steps as learner 0 saw them (on_step runs on learner 0 only). CommError naming the phase on a dead or hung
// peer (through the communicators' deadlines and the watchdog).
//
// Checkpoints (`checkpoints`, rank 0 = learner 0 writes): version v's, after update v-1 and its broadcast, when
// v is a multiple of checkpoints->every and is broadcast at all; every rank joins it (the rollout ranks right
// after receiving v). A resume from step N: the learners restore weights and optimizer, the rollout ranks the
// weights (version N), and step N samples with version N. Synchronous runs continue bit-identically; an
// asynchronous run's first s steps after the resume sample with version N instead of N - s .. N - 1 (the
// batches in flight at the kill are not saved), counted in their staleness.
RlResult train_grpo_split(TransformerImpl& policy, TransformerImpl* reference, const RlConfig& rl, uint64_t seed,
                          const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tokenizer,
                          const SplitGroups& groups, const std::function<void(const GrpoStep&)>& on_step = {},
                          const CheckpointPlan* checkpoints = nullptr);

}  // namespace r2rec
