#include "trainers/lm/grpo_steps.h"

#include <cmath>

#include "core/error.h"
#include "core/model/lora.h"
#include "core/rng.h"
#include "trainers/lm/answering.h"

namespace r2rec::grpo {

int64_t PromptSchedule::at(int64_t position) {
  const int64_t e = position / n_;
  if (e != epoch_) {
    epoch_ = e;
    order_.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) order_[static_cast<size_t>(i)] = i;
    Rng rng(stream_key(seed_, static_cast<uint64_t>(Stream::kRlOrder), static_cast<uint64_t>(e)));
    shuffle(order_, rng);
  }
  return order_[static_cast<size_t>(position % n_)];
}

// (1) Rollouts of the step's prompts [k0, k1): G completions each, completion g of prompt k seeded by its global
// slot k*G + g, scored with `reward`.
std::vector<Scored> rollout(TransformerImpl& policy, PromptSchedule& schedule, const std::vector<RlPrompt>& prompts,
                            int64_t step, int64_t k0, int64_t k1, const RlConfig& rl, const SamplingOptions& o,
                            const TokenText& text, uint64_t seed, const RewardFn& reward, int64_t version,
                            double* reward_seconds) {
  const int64_t P = rl.prompts_per_step, G = rl.group_size;
  std::vector<int64_t> batch;
  for (int64_t k = k0; k < k1; ++k) batch.push_back(schedule.at(step * P + k));
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < batch.size(); ++i) {
    for (int64_t g = 0; g < G; ++g) {
      const uint64_t slot = static_cast<uint64_t>((k0 + static_cast<int64_t>(i)) * G + g);
      reqs.push_back({prompts[static_cast<size_t>(batch[i])].ids,
                      stream_key(seed, static_cast<uint64_t>(Stream::kRollout), static_cast<uint64_t>(step), slot),
                      prompts[static_cast<size_t>(batch[i])].constraint});
    }
  }
  const std::vector<Generation> gen = generate(policy, reqs, o, text);
  std::vector<Scored> out(gen.size());
  for (size_t j = 0; j < gen.size(); ++j) {
    out[j].prompt = batch[j / static_cast<size_t>(G)];
    out[j].slot = (step * P + k0) * G + static_cast<int64_t>(j);
    out[j].tokens = gen[j].tokens;
    out[j].logprobs = gen[j].logprobs;
    out[j].version = version;
  }
  // Rewards over the batch, in parallel across the intra-op threads (RewardFn is pure; each completion's
  // reward lands in its own slot, so the order of scoring does not matter).
  const auto tr = std::chrono::steady_clock::now();
  at::parallel_for(0, static_cast<int64_t>(gen.size()), 4, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      Scored& c = out[static_cast<size_t>(j)];
      c.reward = reward(c.prompt, answer_completion(gen[static_cast<size_t>(j)]));
      // Rewards travel as float32 in trajectory batches: round them here, so colocated and split runs compute
      // the same advantages from the same values.
      c.reward.total = static_cast<float>(c.reward.total);
      for (double& p : c.reward.parts) p = static_cast<float>(p);
    }
  });
  if (reward_seconds) *reward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tr).count();
  return out;
}

// Sums of a step's reward statistics over the completions a rank holds: reward, reward^2, completions, tokens,
// hits, -log pi_old of every token, then one sum per reward component.
std::vector<double> reward_sums(const std::vector<Scored>& scored, size_t parts) {
  std::vector<double> s(6 + parts, 0.0);
  for (const Scored& c : scored) {
    s[0] += c.reward.total;
    s[1] += c.reward.total * c.reward.total;
    s[2] += 1;
    s[3] += static_cast<double>(c.tokens.size());
    s[4] += !c.reward.parts.empty() && c.reward.parts[0] > 0;
    for (float lp : c.logprobs) s[5] -= lp;
    for (size_t k = 0; k < parts && k < c.reward.parts.size(); ++k) s[6 + k] += c.reward.parts[k];
  }
  return s;
}

void fill_reward_stats(const std::vector<double>& s, GrpoStep& stats) {
  const double n = std::max(1.0, s[2]);
  stats.reward = s[0] / n;
  stats.reward_std = std::sqrt(std::max(0.0, s[1] / n - stats.reward * stats.reward));
  stats.completion_tokens = static_cast<int64_t>(s[3]);
  stats.response_tokens = s[3] / n;
  stats.hit = s[4] / n;
  stats.entropy = s[5] / std::max(1.0, s[3]);
  stats.parts.clear();
  for (size_t k = 6; k < s.size(); ++k) stats.parts.push_back(s[k] / n);
}

Learner::Learner(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl)
    : policy_(policy), reference_(reference), rl_(rl) {
  reference_.eval();
  for (auto& p : reference_.parameters()) p.set_requires_grad(false);
  for (auto& [name, p] : trainable_parameters(policy_)) params_.push_back(p);
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      params_, torch::optim::AdamWOptions(rl.learning_rate).betas({0.9, 0.95}).weight_decay(0.0));
}

void Learner::learn(const std::vector<Scored>& scored, const std::vector<RlPrompt>& prompts,
                    const DataParallelGroup& group, GrpoStep& stats) {
  const int64_t G = rl_.group_size, n = static_cast<int64_t>(scored.size());
  // (2) group-relative advantages; a group whose rewards are all equal (A = 0) is left out and counted.
  std::vector<double> adv(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> kept;
  double groups[2] = {0, 0};  // zero-advantage groups, kept completion tokens
  for (int64_t i = 0; i + G <= n; i += G) {
    double mean = 0, var = 0;
    for (int64_t g = 0; g < G; ++g) mean += scored[static_cast<size_t>(i + g)].reward.total / G;
    for (int64_t g = 0; g < G; ++g) {
      const double d = scored[static_cast<size_t>(i + g)].reward.total - mean;
      var += d * d / G;
    }
    if (var <= 0) {
      ++groups[0];
      continue;
    }
    for (int64_t g = 0; g < G; ++g) {
      const double d = scored[static_cast<size_t>(i + g)].reward.total - mean;
      adv[static_cast<size_t>(i + g)] = rl_.std_scale ? d / (std::sqrt(var) + 1e-4) : d;
      kept.push_back(i + g);
      groups[1] += static_cast<double>(scored[static_cast<size_t>(i + g)].tokens.size());
    }
  }
  group.sum(groups, 2);
  stats.zero_advantage_groups = static_cast<int64_t>(groups[0]);
  const double tokens = std::max(1.0, groups[1]);  // N of term (6): kept completion tokens of the global batch
  if (groups[1] == 0) return;                      // every group of every learner was flat: nothing to learn
  // (3)-(5) need log pi_ref (frozen) per micro-batch, [B, L] each.
  const int64_t nk = static_cast<int64_t>(kept.size()), M = rl_.micro_batch_size;
  std::vector<std::vector<int64_t>> seq_prompts, seq_completions;
  for (int64_t j : kept) {
    seq_prompts.push_back(prompts[static_cast<size_t>(scored[static_cast<size_t>(j)].prompt)].ids);
    seq_completions.push_back(scored[static_cast<size_t>(j)].tokens);
  }
  std::vector<torch::Tensor> ref_lp;
  {
    torch::NoGradGuard no_grad;
    for (int64_t m0 = 0; m0 < nk; m0 += M) {
      const int64_t m1 = std::min(nk, m0 + M);
      ref_lp.push_back(completion_logprobs(reference_, {seq_prompts.begin() + m0, seq_prompts.begin() + m1},
                                           {seq_completions.begin() + m0, seq_completions.begin() + m1}));
    }
  }
  policy_.train();
  if (!grad_sum_) grad_sum_ = std::make_unique<GradientSum>(params_, group);  // collective: first step, every learner
  for (int64_t inner = 0; inner < rl_.inner_epochs; ++inner) {
    double pass[4] = {0, 0, 0, 0};  // loss, |old - new|, kl, clipped tokens
    for (int64_t m0 = 0, mb = 0; m0 < nk; m0 += M, ++mb) {
      const int64_t m1 = std::min(nk, m0 + M), B = m1 - m0;
      // lp = log pi_theta [B, L]; old = log pi_old [B, L] (the sampling log-probs); mask [B, L]; a = A [B, 1].
      const torch::Tensor lp = completion_logprobs(policy_, {seq_prompts.begin() + m0, seq_prompts.begin() + m1},
                                                   {seq_completions.begin() + m0, seq_completions.begin() + m1});
      const int64_t L = lp.size(1);
      torch::Tensor old = torch::zeros({B, L}), mask = torch::zeros({B, L}), a = torch::zeros({B, 1});
      for (int64_t b = 0; b < B; ++b) {
        const Scored& c = scored[static_cast<size_t>(kept[static_cast<size_t>(m0 + b)])];
        for (size_t t = 0; t < c.logprobs.size(); ++t)
          old[b][static_cast<int64_t>(t)] = c.logprobs[t], mask[b][static_cast<int64_t>(t)] = 1;
        a[b][0] = adv[static_cast<size_t>(kept[static_cast<size_t>(m0 + b)])];
      }
      const torch::Device dev = lp.device();
      old = old.to(dev), mask = mask.to(dev), a = a.to(dev);
      const torch::Tensor ratio = torch::exp(lp - old);  // (3) rho
      const torch::Tensor pg =
          -torch::min(ratio * a, torch::clamp(ratio, 1.0 - rl_.clip_low, 1.0 + rl_.clip_high) * a);  // (4) -s
      const torch::Tensor delta = ref_lp[static_cast<size_t>(mb)].to(dev) - lp;                      // (5) Delta
      const torch::Tensor kl = torch::exp(delta) - delta - 1.0;                                      // (5) KL_k3
      const torch::Tensor loss = ((pg + rl_.kl_beta * kl) * mask).sum() / tokens;                    // (6)
      grad_sum_->micro_batch(m1 == nk);
      loss.backward();
      torch::NoGradGuard no_grad;
      pass[0] += loss.item<double>();
      pass[1] += ((lp - old).abs() * mask).sum().item<double>();
      pass[2] += (kl * mask).sum().item<double>();
      // (4) the clip binds: A > 0 and rho > 1 + eps_high, or A < 0 and rho < 1 - eps_low.
      const torch::Tensor binds = ((a > 0) & (ratio > 1.0 + rl_.clip_high)) | ((a < 0) & (ratio < 1.0 - rl_.clip_low));
      pass[3] += (binds.to(torch::kFloat) * mask).sum().item<double>();
    }
    grad_sum_->finish();  // (6) summed over the learners; (8) clip + AdamW below
    group.sum(pass, 4);
    if (rl_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params_, rl_.grad_clip);
    optimizer_->step();
    grad_sum_->zero_grad();
    if (inner == 0) {
      stats.loss = pass[0];
      stats.old_new_gap = pass[1] / tokens;
      stats.kl = pass[2] / tokens;
    }
    stats.clipped = pass[3] / tokens;
  }
}

void check_shape(const RlConfig& rl, int64_t ranks, const char* who, const std::vector<RlPrompt>& prompts) {
  if (rl.prompts_per_step % ranks != 0) {
    throw ConfigError("rl.prompts_per_step: " + std::to_string(rl.prompts_per_step) + " is not a multiple of the " +
                      std::to_string(ranks) + " " + who);
  }
  if (prompts.empty()) throw ConfigError("rl: no prompts to train on");
}

// The reward components' names, in rl.rewards order (trainers/task/reward.h parses the list).
std::vector<std::string> reward_names(const RlConfig& rl) {
  std::vector<std::string> names;
  for (const WeightedReward& w : make_rewards(rl)) names.push_back(w.name);
  return names;
}

// The record a checkpoint keeps: the steps so far.
nlohmann::ordered_json steps_record(const std::vector<GrpoStep>& steps, const RlConfig& rl) {
  const std::vector<std::string> names = reward_names(rl);
  nlohmann::ordered_json per = nlohmann::ordered_json::array();
  for (const GrpoStep& g : steps) per.push_back(grpo_step_json(g, names));
  return {{"steps", per}};
}

std::vector<GrpoStep> steps_from_record(const nlohmann::json& record, const RlConfig& rl) {
  const std::vector<std::string> names = reward_names(rl);
  std::vector<GrpoStep> out;
  for (const auto& j : record.at("steps")) out.push_back(grpo_step_from_json(j, names));
  return out;
}

}  // namespace r2rec::grpo
