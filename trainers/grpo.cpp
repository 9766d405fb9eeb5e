#include "trainers/grpo.h"

#include <glog/logging.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/model/generation.h"
#include "core/model/lora.h"
#include "core/rng.h"
#include "distributed/communicator.h"
#include "distributed/param_broadcast.h"
#include "distributed/trajectory.h"
#include "distributed/watchdog.h"
#include "trainers/answering.h"
#include "trainers/torch_util.h"
#include "trainers/train_state.h"

namespace r2rec {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The prompt at each global position: positions step*P .. step*P+P-1 of the prompt list, shuffled afresh
// (seeded) for each pass over it. The same on every rank.
class PromptSchedule {
 public:
  PromptSchedule(size_t n, uint64_t seed) : n_(static_cast<int64_t>(n)), seed_(seed) {}
  int64_t at(int64_t position) {
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

// (2)-(8): the learner's update on complete groups of scored completions, gradients and counts summed over `col`.
class Learner {
 public:
  Learner(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, double grad_clip)
      : policy_(policy), reference_(reference), rl_(rl), grad_clip_(grad_clip) {
    reference_.eval();
    for (auto& p : reference_.parameters()) p.set_requires_grad(false);
    for (auto& [name, p] : trainable_parameters(policy_)) params_.push_back(p);
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        params_, torch::optim::AdamWOptions(rl.learning_rate).betas({0.9, 0.95}).weight_decay(0.0));
  }

  const std::vector<torch::Tensor>& params() const { return params_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }

  // `scored` holds complete groups of G consecutive completions; `prompts` their prompt ids.
  void learn(const std::vector<Scored>& scored, const std::vector<RlPrompt>& prompts, const Collectives& col,
             GrpoStep& stats) {
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
    col.sum_doubles(groups, 2);
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
    if (!grad_sum_) grad_sum_ = std::make_unique<GradientSum>(params_, col);  // collective: first step, every learner
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
        const torch::Tensor binds =
            ((a > 0) & (ratio > 1.0 + rl_.clip_high)) | ((a < 0) & (ratio < 1.0 - rl_.clip_low));
        pass[3] += (binds.to(torch::kFloat) * mask).sum().item<double>();
      }
      grad_sum_->finish();  // (6) summed over the learners; (8) clip + AdamW below
      col.sum_doubles(pass, 4);
      if (grad_clip_ > 0) torch::nn::utils::clip_grad_norm_(params_, grad_clip_);
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

 private:
  TransformerImpl& policy_;
  TransformerImpl& reference_;
  const RlConfig& rl_;
  double grad_clip_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<GradientSum> grad_sum_;
};

void check_shape(const RlConfig& rl, int64_t ranks, const char* who, const std::vector<RlPrompt>& prompts) {
  if (rl.prompts_per_step % ranks != 0) {
    throw ConfigError("rl.prompts_per_step: " + std::to_string(rl.prompts_per_step) + " is not a multiple of the " +
                      std::to_string(ranks) + " " + who);
  }
  if (prompts.empty()) throw ConfigError("rl: no prompts to train on");
}

// Trajectory batches <-> scored completions (the channel carries whole groups; example_ids = global slots).
TrajectoryBatch to_batch(const std::vector<Scored>& scored, int64_t version) {
  TrajectoryBatch b;
  b.policy_version = version;
  b.parts_per_sequence = scored.empty() ? 0 : static_cast<int64_t>(scored.front().reward.parts.size());
  for (const Scored& c : scored) {
    b.add(std::vector<int32_t>(c.tokens.begin(), c.tokens.end()), c.logprobs, static_cast<float>(c.reward.total),
          c.slot);
    for (double p : c.reward.parts) b.reward_parts.push_back(static_cast<float>(p));
  }
  return b;
}

// `prompt_of(slot)` maps a global slot back to its prompt index.
void append_scored(const TrajectoryBatch& b, const std::function<int64_t(int64_t)>& prompt_of,
                   std::vector<Scored>& out) {
  const size_t K = static_cast<size_t>(b.parts_per_sequence);
  for (size_t s = 0; s < b.num_sequences(); ++s) {
    Scored c;
    c.slot = b.example_ids[s];
    c.prompt = prompt_of(c.slot);
    c.tokens.assign(b.tokens.begin() + b.offsets[s], b.tokens.begin() + b.offsets[s + 1]);
    c.logprobs.assign(b.logprobs.begin() + b.offsets[s], b.logprobs.begin() + b.offsets[s + 1]);
    c.reward.total = b.rewards[s];
    for (size_t k = 0; k < K; ++k) c.reward.parts.push_back(b.reward_parts[s * K + k]);
    c.version = b.policy_version;
    out.push_back(std::move(c));
  }
}

// The reward components' names, in rl.rewards order (trainers/reward.h parses the list).
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

}  // namespace

RlResult train_grpo(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, double grad_clip,
                    uint64_t seed, const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tok,
                    const Collectives& col, const std::function<void(const GrpoStep&)>& on_step,
                    const CheckpointPlan* plan) {
  const auto t0 = Clock::now();
  double outside = 0;  // seconds in on_step (validation, logs): not the stage's training time
  const int64_t W = col.world_size, P = rl.prompts_per_step, mine = P / std::max<int64_t>(1, W);
  check_shape(rl, W, "ranks", prompts);
  const SamplingOptions o = answer_sampling(tok, rl.max_new_tokens, rl.temperature, rl.top_p);
  const TokenText text = answer_token_text(tok);
  Learner learner(policy, reference, rl, grad_clip);
  PromptSchedule schedule(prompts.size(), seed);
  RlResult result;
  int64_t first = 0;
  if (plan && !plan->resume_from.empty()) {
    const nlohmann::json st = load_train_state(plan->resume_from, policy, &learner.optimizer(), col.rank);
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
      scored = rollout(policy, schedule, prompts, step, col.rank * mine, (col.rank + 1) * mine, rl, o, text, seed,
                       reward, step, &stats.reward_seconds);
    }
    stats.rollout_seconds = since(ts);
    std::vector<double> sums = reward_sums(scored, scored.empty() ? 0 : scored.front().reward.parts.size());
    col.sum_doubles(sums.data(), static_cast<int64_t>(sums.size()));
    fill_reward_stats(sums, stats);
    const auto tl = Clock::now();
    {
      PhaseScope phase("rl learn step " + std::to_string(step + 1));
      learner.learn(scored, prompts, col, stats);
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
      save_train_state(*plan, step + 1, policy, &learner.optimizer(), steps_record(result.steps, rl), col.rank);
  }
  result.seconds = since(t0) - outside;
  return result;
}

RlResult train_grpo_split(TransformerImpl& policy, TransformerImpl* reference, const RlConfig& rl, double grad_clip,
                          uint64_t seed, const std::vector<RlPrompt>& prompts, const RewardFn& reward,
                          const Tokenizer& tok, const SplitGroups& groups,
                          const std::function<void(const GrpoStep&)>& on_step, const CheckpointPlan* plan) {
  const auto t0 = Clock::now();
  double outside = 0;  // seconds in on_step on learner 0 (validation, logs): not the stage's training time
  Communicator& world = *groups.world;
  const int L = groups.num_learners, R = groups.num_rollouts, rank = world.rank();
  const bool is_learner = rank < L;
  const int64_t P = rl.prompts_per_step, T = rl.steps;
  check_shape(rl, L, "learner ranks", prompts);
  check_shape(rl, R, "rollout ranks", prompts);
  // The rollout of step t uses version max(0, t - s); version v (1 <= v <= T-1-s) is broadcast after update v-1.
  const int64_t s = rl.async ? rl.max_staleness : 0;
  auto needed = [&](int64_t version) { return version >= 1 && version <= T - 1 - s; };
  // Checkpoint v is written after update v - 1 and broadcast v (every rank joins); a resume starts at `first`.
  auto checkpoint_at = [&](int64_t version) { return plan && plan->every > 0 && version % plan->every == 0; };
  const bool resuming = plan && !plan->resume_from.empty();
  TrajectoryChannelOptions co;
  co.capacity = static_cast<size_t>(s + 2);
  co.max_staleness = s;
  co.timeout_s = groups.timeout_s;
  BroadcastOptions bo;
  bo.bucket_mb = groups.bucket_mb;
  bo.timeout_s = groups.timeout_s;
  bo.checksum = groups.weight_checksum;
  bo.alias = true;  // zero-copy: learner 0 sends from, rollout ranks receive into, the parameters themselves
  std::vector<torch::Tensor> sync_params;
  for (auto& [name, p] : trainable_parameters(policy)) sync_params.push_back(p);
  std::unique_ptr<ParameterBroadcaster> broadcaster;
  if (groups.sync != nullptr) {
    broadcaster = std::make_unique<ParameterBroadcaster>(sync_params, *groups.sync, bo);
  }
  int64_t sync_bytes = 0;
  for (const auto& p : sync_params) sync_bytes += static_cast<int64_t>(p.numel() * p.element_size());
  RlResult result;
  PromptSchedule schedule(prompts.size(), seed);
  // Rollout rank j holds the step's prompts [j P/R, (j+1) P/R), learner l learns on [l P/L, (l+1) P/L); j sends
  // to l exactly when the two ranges overlap, so every batch holds at least one group.
  auto overlaps = [&](int j, int l) {
    return std::max(j * P / R, l * P / L) < std::min((j + 1) * P / R, (l + 1) * P / L);
  };

  if (!is_learner) {  // ---- rollout rank j: prompts [j P/R, (j+1) P/R) of every step ----
    const int j = rank - L;
    const int64_t per = P / R;
    const SamplingOptions o = answer_sampling(tok, rl.max_new_tokens, rl.temperature, rl.top_p);
    const TokenText text = answer_token_text(tok);
    TrajectorySender sender(world, co);
    int64_t version = 0, first = 0;
    if (resuming) {  // the weights of version `first` (no optimizer on a rollout rank)
      first = version = load_train_state(plan->resume_from, policy, nullptr, rank).at("step").get<int64_t>();
    }
    for (int64_t step = first; step < T; ++step) {
      const auto ts = Clock::now();
      double waited = 0;
      if (needed(step - s) && step - s > first) {  // the version this step samples with
        PhaseScope phase("rl weight sync before step " + std::to_string(step + 1));
        const auto tw = Clock::now();
        version = broadcaster->broadcast(0);
        // Checkpoint `version` with the learners, before the flush: an asynchronous rank's last send may complete
        // only once a learner posts its receive, which the learners do after the checkpoint.
        if (checkpoint_at(version)) save_train_state(*plan, version, policy, nullptr, {}, rank);
        // Finish the sends still in flight while the learners take them (learner 0 posted their receives before
        // the broadcast; the others are receiving): a large send only moves inside this rank's MPI calls, and
        // generation makes none for seconds.
        sender.flush();
        waited += since(tw);
      }
      std::vector<Scored> scored;
      double reward_s = 0;
      {
        PhaseScope phase("rl rollout step " + std::to_string(step + 1));
        scored = rollout(policy, schedule, prompts, step, j * per, (j + 1) * per, rl, o, text, seed, reward, version,
                         &reward_s);
      }
      const double rollout_s = since(ts) - waited;
      // Learner l takes the step's prompts [l P/L, (l+1) P/L): send each its part of this rank's groups.
      PhaseScope phase("rl send step " + std::to_string(step + 1));
      const auto tq = Clock::now();
      for (int l = 0; l < L; ++l) {
        if (!overlaps(j, l)) continue;
        std::vector<Scored> part;
        for (size_t c = 0; c < scored.size(); ++c) {
          const int64_t k = j * per + static_cast<int64_t>(c) / rl.group_size;  // the prompt's place in the step
          if (k * L / P == l) part.push_back(scored[c]);
        }
        sender.send(to_batch(part, version), l);
      }
      waited += since(tq);
      GrpoStep stats;
      stats.step = step;
      stats.rollout_seconds = rollout_s;
      stats.reward_seconds = reward_s;
      stats.rollout_idle = waited / std::max(1e-9, since(ts));
      result.steps.push_back(stats);
    }
    for (int l = 0; l < L; ++l) sender.close(l);
    result.seconds = since(t0);
    return result;
  }

  // ---- learner rank l: trains on prompts [l P/L, (l+1) P/L) of every step ----
  CHECK(reference != nullptr) << "train_grpo_split: a learner needs the reference model";
  const Collectives col = Collectives::over(*groups.learners, groups.bucket_mb, groups.timeout_s);
  std::vector<int> senders;
  for (int r = L; r < L + R; ++r) senders.push_back(r);
  TrajectoryReceiver receiver(world, senders, co);
  Learner learner(policy, *reference, rl, grad_clip);
  const int64_t G = rl.group_size;
  std::map<int64_t, std::vector<TrajectoryBatch>> pending;  // batches of later steps, by step
  const std::function<int64_t(int64_t)> prompt_of = [&](int64_t slot) { return schedule.at(slot / G); };
  int64_t first = 0;
  if (resuming) {
    const nlohmann::json st = load_train_state(plan->resume_from, policy, &learner.optimizer(), rank);
    first = result.resumed_from = st.at("step").get<int64_t>();
    result.steps = steps_from_record(st.at("record"), rl);
  }
  for (int64_t step = first; step < T; ++step) {
    const auto ts = Clock::now();
    GrpoStep stats;
    stats.step = step;
    // One batch per rollout rank for this step (a batch of a later step, from a rollout rank ahead of the others,
    // waits in `pending`), the completions then in slot order: the step's prompts in order, whoever sampled them.
    receiver.set_current_version(step);
    std::vector<Scored> scored;
    const size_t dropped_before = receiver.dropped();
    {
      PhaseScope phase("rl receive step " + std::to_string(step + 1));
      int expected = 0, got = 0;
      for (int j = 0; j < R; ++j) expected += overlaps(j, col.rank);
      auto it = pending.find(step);
      if (it != pending.end()) {
        for (const auto& b : it->second) append_scored(b, prompt_of, scored);
        got = static_cast<int>(it->second.size());
        pending.erase(it);
      }
      while (got < expected) {
        std::optional<TrajectoryBatch> b = receiver.pop();
        if (!b) throw CommError("rl: every rollout rank closed its channel before step " + std::to_string(step + 1));
        if (b->num_sequences() == 0) throw CommError("rl: an empty trajectory batch (a rollout rank out of step?)");
        const int64_t of = b->example_ids.front() / (P * G);
        if (of == step) {
          append_scored(*b, prompt_of, scored);
          ++got;
        } else {
          pending[of].push_back(std::move(*b));
        }
      }
    }
    stats.learner_idle = since(ts);
    std::stable_sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) { return a.slot < b.slot; });
    double drops = static_cast<double>(receiver.dropped() - dropped_before);
    col.sum_doubles(&drops, 1);
    stats.stale_dropped = static_cast<int64_t>(drops);
    std::vector<double> sums = reward_sums(scored, rl.rewards.size());
    col.sum_doubles(sums.data(), static_cast<int64_t>(sums.size()));
    fill_reward_stats(sums, stats);
    std::vector<double> lags(static_cast<size_t>(s + 1), 0.0);  // completions by staleness, summed over learners
    for (const Scored& c : scored) lags[static_cast<size_t>(std::min<int64_t>(s, step - c.version))] += 1;
    col.sum_doubles(lags.data(), static_cast<int64_t>(lags.size()));
    for (size_t lag = 0; lag < lags.size(); ++lag)
      if (lags[lag] > 0) stats.staleness[static_cast<int64_t>(lag)] = static_cast<int64_t>(lags[lag]);
    const auto tl = Clock::now();
    {
      PhaseScope phase("rl learn step " + std::to_string(step + 1));
      learner.learn(scored, prompts, col, stats);
    }
    stats.learner_seconds = since(tl);
    if (needed(step + 1) && broadcaster) {  // learner 0 sends version step+1 to the rollout ranks
      PhaseScope phase("rl weight sync after step " + std::to_string(step + 1));
      const auto tb = Clock::now();
      // Post the receive of any batch already announced first: its bytes then move while both sides wait in the
      // broadcast (a sender only progresses a large send inside MPI calls, and the rollout rank goes on to
      // generate right after the broadcast), instead of while this learner waits for the next step's batch.
      receiver.pump();
      broadcaster->broadcast(step + 1);
      stats.sync_seconds = since(tb);
      stats.sync_bytes = sync_bytes;
    }
    stats.seconds = since(ts);
    stats.learner_idle /= std::max(1e-9, stats.seconds);
    result.steps.push_back(stats);
    if (on_step && col.rank == 0) {
      const auto tc = Clock::now();
      on_step(stats);
      outside += since(tc);
    }
    if (needed(step + 1) && checkpoint_at(step + 1))
      save_train_state(*plan, step + 1, policy, &learner.optimizer(), steps_record(result.steps, rl), rank);
  }
  // Drain the end-of-stream markers so no send is left pending.
  while (!receiver.all_closed()) {
    if (receiver.pop()) LOG(WARNING) << "rl: an extra trajectory batch after the last step was ignored";
  }
  result.seconds = since(t0) - outside;
  return result;
}

}  // namespace r2rec
