#include "trainers/grpo.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/model/generation.h"
#include "core/model/lora.h"
#include "core/rng.h"
#include "trainers/answering.h"
#include "trainers/torch_util.h"

namespace r2rec {

RlResult train_grpo(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, double grad_clip,
                    uint64_t seed, const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tok,
                    const Collectives& col, const std::function<void(const GrpoStep&)>& on_step) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const int64_t W = col.world_size, P = rl.prompts_per_step, G = rl.group_size;
  if (P % W != 0) {
    throw ConfigError("rl.prompts_per_step: " + std::to_string(P) + " is not a multiple of the " + std::to_string(W) +
                      " ranks");
  }
  if (prompts.empty()) throw ConfigError("rl: no prompts to train on");
  const int64_t mine = P / W;
  const SamplingOptions o = answer_sampling(tok, rl.max_new_tokens, rl.temperature, rl.top_p);
  const TokenText text = answer_token_text(tok);
  reference.eval();
  for (auto& p : reference.parameters()) p.set_requires_grad(false);
  std::vector<torch::Tensor> params;
  for (auto& [name, p] : trainable_parameters(policy)) params.push_back(p);
  torch::optim::AdamW optimizer(params,
                                torch::optim::AdamWOptions(rl.learning_rate).betas({0.9, 0.95}).weight_decay(0.0));
  RlResult result;
  std::vector<int64_t> order;
  int64_t epoch = -1;
  auto prompt_at = [&](int64_t position) {
    const int64_t N = static_cast<int64_t>(prompts.size()), e = position / N;
    if (e != epoch) {
      epoch = e;
      order.resize(prompts.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
      Rng rng(stream_key(seed, static_cast<uint64_t>(Stream::kRlOrder), static_cast<uint64_t>(e)));
      shuffle(order, rng);
    }
    return order[position % N];
  };
  for (int64_t step = 0; step < rl.steps; ++step) {
    const auto ts = Clock::now();
    GrpoStep stats;
    stats.step = step;
    // 1. This rank's prompts of the step: global positions step*P .. step*P+P-1 of the prompt list, shuffled
    //    afresh (seeded) for each pass over it; rank r takes the r-th W-th.
    std::vector<int64_t> batch;
    for (int64_t k = col.rank * mine; k < (col.rank + 1) * mine; ++k) batch.push_back(prompt_at(step * P + k));
    // 2. Rollouts: G completions per prompt, each with its own stream.
    std::vector<GenerationRequest> reqs;
    for (size_t i = 0; i < batch.size(); ++i) {
      for (int64_t g = 0; g < G; ++g) {
        const uint64_t slot = static_cast<uint64_t>((col.rank * mine + static_cast<int64_t>(i)) * G + g);
        reqs.push_back({prompts[batch[i]].ids,
                        stream_key(seed, static_cast<uint64_t>(Stream::kRollout), static_cast<uint64_t>(step), slot),
                        prompts[batch[i]].constraint});
      }
    }
    const std::vector<Generation> gen = generate(policy, reqs, o, text);
    stats.rollout_seconds = std::chrono::duration<double>(Clock::now() - ts).count();
    // (1) rewards r, (2) group-relative advantages A (docs/grpo.md). [n] each, n = this rank's completions.
    const int64_t n = static_cast<int64_t>(gen.size());
    std::vector<double> rewards(n), adv(n);
    double sums[5] = {0, 0, 0, 0, 0};  // reward, answer, format, completions, completion tokens
    for (int64_t j = 0; j < n; ++j) {
      const Reward r = reward(batch[j / G], answer_completion(gen[j]));
      rewards[j] = r.total();
      sums[0] += r.total();
      sums[1] += r.answer;
      sums[2] += r.format;
      sums[3] += 1;
      sums[4] += static_cast<double>(gen[j].tokens.size());
    }
    // A group whose rewards are all equal has A = 0 everywhere (no policy-gradient signal): it is left out of the
    // learner passes and counted. `kept` are the completions the learner trains on.
    std::vector<int64_t> kept;
    double groups[2] = {0, 0};                                          // zero-advantage groups, kept completion tokens
    for (int64_t i = 0; i < static_cast<int64_t>(batch.size()); ++i) {  // group-relative advantages
      double mean = 0, var = 0;
      for (int64_t g = 0; g < G; ++g) mean += rewards[i * G + g] / G;
      for (int64_t g = 0; g < G; ++g) var += (rewards[i * G + g] - mean) * (rewards[i * G + g] - mean) / G;
      if (var <= 0) {
        ++groups[0];
        continue;
      }
      for (int64_t g = 0; g < G; ++g) {
        adv[i * G + g] =
            rl.std_scale ? (rewards[i * G + g] - mean) / (std::sqrt(var) + 1e-4) : rewards[i * G + g] - mean;
        kept.push_back(i * G + g);
        groups[1] += static_cast<double>(gen[i * G + g].tokens.size());
      }
    }
    col.sum_doubles(sums, 5);
    col.sum_doubles(groups, 2);
    stats.reward = sums[0] / sums[3];
    stats.answer = sums[1] / sums[3];
    stats.format = sums[2] / sums[3];
    stats.completion_tokens = static_cast<int64_t>(sums[4]);
    stats.zero_advantage_groups = static_cast<int64_t>(groups[0]);
    const double tokens = std::max(1.0, groups[1]);  // N of term (6): kept completion tokens of the global batch
    if (groups[1] == 0) {  // every group of every rank was flat: nothing to learn from this step
      stats.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
      result.steps.push_back(stats);
      if (on_step) on_step(stats);
      continue;
    }
    // 3. Reference log-probs log pi_ref (frozen) per micro-batch, [B, L] each; then the inner passes.
    const int64_t nk = static_cast<int64_t>(kept.size());
    std::vector<std::vector<int64_t>> seq_prompts, seq_completions;
    for (int64_t j : kept) {
      seq_prompts.push_back(prompts[batch[j / G]].ids);
      seq_completions.push_back(gen[j].tokens);
    }
    const int64_t M = rl.micro_batch_size;
    std::vector<torch::Tensor> ref_lp;
    {
      torch::NoGradGuard no_grad;
      for (int64_t m0 = 0; m0 < nk; m0 += M) {
        const int64_t m1 = std::min(nk, m0 + M);
        ref_lp.push_back(completion_logprobs(reference, {seq_prompts.begin() + m0, seq_prompts.begin() + m1},
                                             {seq_completions.begin() + m0, seq_completions.begin() + m1}));
      }
    }
    policy.train();
    for (int64_t inner = 0; inner < rl.inner_epochs; ++inner) {
      double pass[4] = {0, 0, 0, 0};  // loss, |old - new|, kl, clipped tokens
      for (int64_t m0 = 0, mb = 0; m0 < nk; m0 += M, ++mb) {
        const int64_t m1 = std::min(nk, m0 + M), B = m1 - m0;
        // lp = log pi_theta [B, L]; old = log pi_old [B, L] (the engine's sampling log-probs); mask [B, L];
        // a = A [B, 1].
        const torch::Tensor lp = completion_logprobs(policy, {seq_prompts.begin() + m0, seq_prompts.begin() + m1},
                                                     {seq_completions.begin() + m0, seq_completions.begin() + m1});
        const int64_t L = lp.size(1);
        torch::Tensor old = torch::zeros({B, L}), mask = torch::zeros({B, L}), a = torch::zeros({B, 1});
        for (int64_t b = 0; b < B; ++b) {
          const auto& g = gen[kept[m0 + b]];
          for (size_t t = 0; t < g.logprobs.size(); ++t)
            old[b][static_cast<int64_t>(t)] = g.logprobs[t], mask[b][static_cast<int64_t>(t)] = 1;
          a[b][0] = adv[kept[m0 + b]];
        }
        const torch::Device dev = lp.device();
        old = old.to(dev), mask = mask.to(dev), a = a.to(dev);
        const torch::Tensor ratio = torch::exp(lp - old);  // (3) rho
        const torch::Tensor pg =
            -torch::min(ratio * a, torch::clamp(ratio, 1.0 - rl.clip_low, 1.0 + rl.clip_high) * a);  // (4) -s
        const torch::Tensor delta = ref_lp[mb].to(dev) - lp;                                         // (5) Delta
        const torch::Tensor kl = torch::exp(delta) - delta - 1.0;                                    // (5) KL_k3
        const torch::Tensor loss = ((pg + rl.kl_beta * kl) * mask).sum() / tokens;                   // (6)
        loss.backward();
        torch::NoGradGuard no_grad;
        pass[0] += loss.item<double>();
        pass[1] += ((lp - old).abs() * mask).sum().item<double>();
        pass[2] += (kl * mask).sum().item<double>();
        // (4) the clip binds: A > 0 and rho > 1 + eps_high, or A < 0 and rho < 1 - eps_low.
        const torch::Tensor binds = ((a > 0) & (ratio > 1.0 + rl.clip_high)) | ((a < 0) & (ratio < 1.0 - rl.clip_low));
        pass[3] += (binds.to(torch::kFloat) * mask).sum().item<double>();
      }
      sum_gradients(params, col);  // (6) summed over ranks; (8) clip + AdamW below
      col.sum_doubles(pass, 4);
      if (grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, grad_clip);
      optimizer.step();
      optimizer.zero_grad();
      if (inner == 0) {
        stats.loss = pass[0];
        stats.old_new_gap = pass[1] / tokens;
        stats.kl = pass[2] / tokens;
      }
      stats.clipped = pass[3] / tokens;
    }
    stats.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
    result.steps.push_back(stats);
    if (on_step) on_step(stats);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace r2rec
