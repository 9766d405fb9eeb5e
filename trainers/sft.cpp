#include "trainers/sft.h"

#include <glog/logging.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/model/lora.h"
#include "core/rng.h"
#include "trainers/checkpoint.h"
#include "trainers/task.h"
#include "trainers/torch_util.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

struct Sequence {
  std::vector<int64_t> ids;
  int64_t prompt_len = 0;  // tokens before the completion; the loss covers ids[prompt_len..]
};

double learning_rate(const SftConfig& s, int64_t step, int64_t total) {
  if (step < s.warmup_steps)
    return s.learning_rate * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const double span = std::max<int64_t>(1, total - s.warmup_steps - 1);  // the last step gets 10% of the peak
  const double progress = std::min(1.0, static_cast<double>(step - s.warmup_steps) / span);
  return s.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace

SftResult train_sft(TransformerImpl& model, const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                    const Collectives& col, const std::function<void(int64_t, double)>& on_step) {
  const SftConfig& s = config.sft;
  const auto t0 = std::chrono::steady_clock::now();
  SftResult result;
  const int64_t eot = end_of_turn_id(tokenizer);
  std::vector<Sequence> seqs;
  for (int64_t i = 0; i < traces.size(); ++i) {
    Sequence q;
    for (TokenId t : tokenizer.encode(traces.prompts[i])) q.ids.push_back(t);
    q.prompt_len = static_cast<int64_t>(q.ids.size());
    for (TokenId t : tokenizer.encode(traces.completions[i])) q.ids.push_back(t);
    if (eot >= 0) q.ids.push_back(eot);
    if (static_cast<int64_t>(q.ids.size()) > s.max_seq_len) {
      ++result.too_long;
      continue;
    }
    result.completion_tokens += static_cast<int64_t>(q.ids.size()) - q.prompt_len;
    seqs.push_back(std::move(q));
  }
  result.traces_used = static_cast<int64_t>(seqs.size());
  const int64_t G = s.batch_size, W = col.world_size;
  if (G % (W * s.micro_batch_size) != 0) {
    throw ConfigError("sft.batch_size: " + std::to_string(G) + " is not a multiple of " + std::to_string(W) +
                      " ranks x sft.micro_batch_size " + std::to_string(s.micro_batch_size));
  }
  const int64_t steps_per_epoch = result.traces_used / G;
  if (steps_per_epoch == 0) {
    throw ConfigError("sft.batch_size: " + std::to_string(G) + " is more than the " +
                      std::to_string(result.traces_used) + " traces within sft.max_seq_len " +
                      std::to_string(s.max_seq_len) + " (" + std::to_string(result.too_long) + " are longer)");
  }
  const int64_t total_steps =
      s.max_steps > 0 ? std::min(s.max_steps, steps_per_epoch * s.epochs) : steps_per_epoch * s.epochs;
  const int64_t per_rank = G / W;
  if (s.warmup_steps >= total_steps && col.rank == 0) {
    LOG(WARNING) << "sft: sft.warmup_steps " << s.warmup_steps << " >= the " << total_steps
                 << " steps of this run: the learning rate never reaches its peak";
  }
  model.train();
  std::vector<torch::Tensor> params;
  for (auto& [name, p] : trainable_parameters(model)) params.push_back(p);
  torch::optim::AdamW optimizer(
      params, torch::optim::AdamWOptions(s.learning_rate).betas({0.9, 0.95}).weight_decay(s.weight_decay));
  const torch::Device device = model.embed_tokens->weight.device();
  int64_t tokens_seen = 0, step = 0;
  for (int64_t epoch = 0; epoch < s.epochs; ++epoch) {
    std::vector<int64_t> order(seqs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    Rng rng(stream_key(static_cast<uint64_t>(config.run.seed), static_cast<uint64_t>(Stream::kSftOrder),
                       static_cast<uint64_t>(epoch)));
    shuffle(order, rng);
    for (int64_t b = 0; b < steps_per_epoch && step < total_steps; ++b, ++step) {
      const int64_t first = b * G + col.rank * per_rank;  // this rank's slice of the global batch
      double counts[2] = {0, 0};                          // completion tokens, all tokens (this rank)
      for (int64_t k = 0; k < per_rank; ++k) {
        const Sequence& q = seqs[order[first + k]];
        counts[0] += static_cast<double>(q.ids.size() - q.prompt_len);
        counts[1] += static_cast<double>(q.ids.size());
      }
      col.sum_doubles(counts, 2);
      tokens_seen += static_cast<int64_t>(counts[1]);
      double loss_sum = 0;
      for (int64_t m0 = 0; m0 < per_rank; m0 += s.micro_batch_size) {
        int64_t T = 0;
        for (int64_t k = m0; k < m0 + s.micro_batch_size; ++k)
          T = std::max<int64_t>(T, static_cast<int64_t>(seqs[order[first + k]].ids.size()));
        const int64_t B = s.micro_batch_size;
        torch::Tensor ids = torch::zeros({B, T}, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
        torch::Tensor weight = torch::zeros({B, T - 1}, torch::kFloat);
        auto ids_a = ids.accessor<int64_t, 2>();
        auto mask_a = mask.accessor<int64_t, 2>();
        auto w_a = weight.accessor<float, 2>();
        for (int64_t k = 0; k < B; ++k) {  // right padding
          const Sequence& q = seqs[order[first + m0 + k]];
          for (size_t t = 0; t < q.ids.size(); ++t) ids_a[k][t] = q.ids[t], mask_a[k][t] = 1;
          for (int64_t t = q.prompt_len; t < static_cast<int64_t>(q.ids.size()); ++t)
            w_a[k][t - 1] = 1;  // logits at t-1 predict t
        }
        ids = ids.to(device);
        const torch::Tensor logits = model.forward(ids, mask.to(device));
        const int64_t V = logits.size(2);
        const torch::Tensor token_loss = torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, T - 1).reshape({-1, V}).to(torch::kFloat), ids.narrow(1, 1, T - 1).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        const torch::Tensor loss = (token_loss * weight.to(device).reshape({-1})).sum() / counts[0];
        loss.backward();
        loss_sum += loss.item<double>();
      }
      sum_gradients(params, col);
      col.sum_doubles(&loss_sum, 1);
      if (s.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, s.grad_clip);
      const double lr = learning_rate(s, step, total_steps);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.step();
      optimizer.zero_grad();
      result.losses.push_back(loss_sum);
      if (on_step) on_step(step, loss_sum);
    }
  }
  result.steps = step;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.tokens_per_second = result.seconds > 0 ? tokens_seen / result.seconds : 0;
  return result;
}

}  // namespace r2rec
