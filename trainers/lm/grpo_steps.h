// The pieces both shapes of GRPO share (trainers/lm/grpo.h: colocated in grpo.cpp, split in grpo_split.cpp),
// numbered as docs/grpo.md's terms: the prompt schedule, (1) rollouts with rewards, the step's reward statistics,
// (2)-(8) the learner's update, and the step records a checkpoint keeps. Internal to trainers/lm.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/model/generation.h"
#include "distributed/gradient_sync.h"
#include "trainers/lm/grpo.h"

namespace r2rec::grpo {

using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The prompt at each global position: positions step*P .. step*P+P-1 of the prompt list, shuffled afresh
// (seeded) for each pass over it. The same on every rank.
class PromptSchedule {
 public:
  PromptSchedule(size_t n, uint64_t seed) : n_(static_cast<int64_t>(n)), seed_(seed) {}
  int64_t at(int64_t position);

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

// One scored completion of a step.
struct Scored {
  int64_t prompt = 0;  // index into the prompt list
  int64_t slot = 0;    // global slot over the run: step * P * G + k * G + g (prompt k of the step, completion g)
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;  // log pi_old: the sampling policy's
  Reward reward;
  int64_t version = 0;  // the policy version that sampled it
};

// (1) Rollouts of the step's prompts [k0, k1): G completions each, completion g of prompt k seeded by its global
// slot k*G + g, scored with `reward`.
std::vector<Scored> rollout(TransformerImpl& policy, PromptSchedule& schedule, const std::vector<RlPrompt>& prompts,
                            int64_t step, int64_t k0, int64_t k1, const RlConfig& rl, const SamplingOptions& o,
                            const TokenText& text, uint64_t seed, const RewardFn& reward, int64_t version,
                            double* reward_seconds);

// Sums of a step's reward statistics over the completions a rank holds: reward, reward^2, completions, tokens,
// hits, -log pi_old of every token, then one sum per reward component.
std::vector<double> reward_sums(const std::vector<Scored>& scored, size_t parts);
// The step's reward statistics from the sums over every rank.
void fill_reward_stats(const std::vector<double>& s, GrpoStep& stats);

// (2)-(8): the learner's update on complete groups of scored completions, gradients and counts summed over `group`.
class Learner {
 public:
  Learner(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl);

  const std::vector<torch::Tensor>& params() const { return params_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }

  // `scored` holds complete groups of G consecutive completions; `prompts` their prompt ids.
  void learn(const std::vector<Scored>& scored, const std::vector<RlPrompt>& prompts, const DataParallelGroup& group,
             GrpoStep& stats);

 private:
  TransformerImpl& policy_;
  TransformerImpl& reference_;
  const RlConfig& rl_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<GradientSum> grad_sum_;
};

// ConfigError when rl.prompts_per_step does not divide over `ranks` (named `who`) or there is no prompt.
void check_shape(const RlConfig& rl, int64_t ranks, const char* who, const std::vector<RlPrompt>& prompts);

// The reward components' names, in rl.rewards order (trainers/task/reward.h parses the list).
std::vector<std::string> reward_names(const RlConfig& rl);
// The record a checkpoint keeps: the steps so far; and back.
nlohmann::ordered_json steps_record(const std::vector<GrpoStep>& steps, const RlConfig& rl);
std::vector<GrpoStep> steps_from_record(const nlohmann::json& record, const RlConfig& rl);

}  // namespace r2rec::grpo
