#include "trainers/lm/lm_trainer.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/model/lora.h"
#include "distributed/gradient_sync.h"

namespace r2rec {

double lm_learning_rate(double peak, int64_t warmup_steps, int64_t step, int64_t total) {
  if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double span = std::max<int64_t>(1, total - warmup_steps - 1);  // the last step gets 10% of the peak
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  return peak * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

std::vector<LmMicroBatch> lm_micro_batches(const std::vector<const LmSequence*>& mine, int64_t M, bool pack) {
  // Rows: one sequence each, or (pack) first fit of the longest-first list into rows no longer than its longest.
  std::vector<std::vector<const LmSequence*>> rows;
  std::vector<int64_t> row_len;
  const int64_t capacity = mine.empty() ? 0 : static_cast<int64_t>(mine.front()->ids.size());
  for (const LmSequence* q : mine) {
    const int64_t n = static_cast<int64_t>(q->ids.size());
    size_t r = rows.size();
    if (pack)
      for (size_t k = 0; k < rows.size() && r == rows.size(); ++k)
        if (row_len[k] + n <= capacity) r = k;
    if (r == rows.size()) {
      rows.emplace_back();
      row_len.push_back(0);
    }
    rows[r].push_back(q);
    row_len[r] += n;
  }
  std::vector<LmMicroBatch> out;
  const int64_t R = static_cast<int64_t>(rows.size());
  for (int64_t m0 = 0; m0 < R; m0 += M) {
    const int64_t rows_here = std::min(M, R - m0);
    int64_t T = 0;
    for (int64_t k = 0; k < rows_here; ++k) T = std::max(T, row_len[static_cast<size_t>(m0 + k)]);
    LmMicroBatch mb;
    mb.ids = torch::zeros({rows_here, T}, torch::kLong);
    mb.mask = torch::zeros({rows_here, T}, torch::kLong);
    mb.weight = torch::zeros({rows_here, T - 1}, torch::kFloat);
    mb.copy_source = torch::zeros({rows_here, T}, torch::kLong);
    auto ids_a = mb.ids.accessor<int64_t, 2>();
    auto source_a = mb.copy_source.accessor<int64_t, 2>();
    auto mask_a = mb.mask.accessor<int64_t, 2>();
    auto w_a = mb.weight.accessor<float, 2>();
    for (int64_t k = 0; k < rows_here; ++k) {  // right padding; sequence j of a row is segment j+1
      int64_t at = 0, segment = 0;
      for (const LmSequence* qp : rows[static_cast<size_t>(m0 + k)]) {
        const LmSequence& q = *qp;
        ++segment;
        const int64_t source = q.loss_from > 1 ? q.loss_from : static_cast<int64_t>(q.ids.size());
        for (size_t t = 0; t < q.ids.size(); ++t) {
          const int64_t c = at + static_cast<int64_t>(t);
          ids_a[k][c] = q.ids[t], mask_a[k][c] = segment, source_a[k][c] = source;
        }
        for (int64_t t = std::max<int64_t>(1, q.loss_from); t < static_cast<int64_t>(q.ids.size()); ++t)
          w_a[k][at + t - 1] = q.weights.empty() ? 1.0f : q.weights[static_cast<size_t>(t)];  // t-1 predicts t
        at += static_cast<int64_t>(q.ids.size());
      }
    }
    out.push_back(std::move(mb));
  }
  return out;
}

torch::Tensor lm_micro_loss(TransformerImpl& model, const LmMicroBatch& mb, double loss_tokens) {
  const torch::Device device = model.embed_tokens->weight.device();
  const torch::Tensor ids = mb.ids.to(device);
  const int64_t T = ids.size(1);
  // Logits only where a prediction has weight (SFT: the completion, ~1/4 of the tokens): the LM head is
  // the largest matmul of a small-vocabulary-and-many-entities model.
  const torch::Tensor hidden = model.hidden_states(ids, mb.mask.to(device));  // [rows, T, d]
  const torch::Tensor w = mb.weight.reshape({-1});                            // [rows * (T-1)]
  const torch::Tensor at = w.nonzero().squeeze(1);
  const torch::Tensor picked =
      hidden.narrow(1, 0, T - 1).reshape({-1, hidden.size(2)}).index_select(0, at.to(device));  // [n, d]
  const torch::Tensor targets = ids.narrow(1, 1, T - 1).reshape({-1}).index_select(0, at.to(device));
  std::vector<CopyProposal> copy;
  if (model.config.copy_lookup > 0) {  // what the look-up proposes after each predicting position
    std::vector<int64_t> flat(static_cast<size_t>(at.size(0)));
    const int64_t* at_p = at.data_ptr<int64_t>();
    for (size_t k = 0; k < flat.size(); ++k) flat[k] = at_p[k] / (T - 1) * T + at_p[k] % (T - 1);
    copy = copy_proposals_at(mb.ids, mb.mask, flat, model.config.copy_lookup, mb.copy_source);
  }
  // The chunked head (core/model/lm_head_loss.h): no [n, V] logits, which grow with the catalog.
  return model.target_nll(picked, targets, w.index_select(0, at).to(device), &copy) / loss_tokens;
}

LmTrainResult train_lm(TransformerImpl& model, const EpochSequences& epochs, const LmTrainOptions& o,
                       const DataParallelGroup& group, const LmStepFn& on_step) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string what = o.what;
  const int64_t G = o.batch_size, W = group.size(), M = o.micro_batch_size;
  if (G % (W * M) != 0) {
    throw ConfigError(what + ".batch_size: " + std::to_string(G) + " is not a multiple of " + std::to_string(W) +
                      " ranks x " + what + ".micro_batch_size " + std::to_string(M));
  }
  const int64_t per_rank = G / W;
  if (o.warmup_steps >= o.steps && group.rank() == 0 && o.steps > 0) {
    LOG(WARNING) << what << ": " << what << ".warmup_steps " << o.warmup_steps << " >= the " << o.steps
                 << " steps of this run: the learning rate never reaches its peak";
  }
  LmTrainResult result;
  model.train();
  std::vector<torch::Tensor> params;
  for (auto& [name, p] : trainable_parameters(model)) params.push_back(p);
  torch::optim::AdamW optimizer(
      params, torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95}).weight_decay(o.weight_decay));
  // Resume: weights, optimizer, generator and the data cursor (epoch, next batch) of the checkpoint.
  int64_t step = 0, first_epoch = 0, first_batch = 0;
  double seconds_before = 0;
  const CheckpointPlan* plan = o.checkpoints;
  if (plan && !plan->resume_from.empty()) {
    const nlohmann::json st = load_train_state(plan->resume_from, model, &optimizer, group.rank());
    const nlohmann::json& rec = st.at("record");
    step = st.at("step").get<int64_t>();
    first_epoch = rec.at("epoch").get<int64_t>();
    first_batch = rec.at("batch").get<int64_t>();
    for (const auto& l : rec.at("losses")) result.losses.push_back(l.is_null() ? std::nan("") : l.get<double>());
    result.tokens = rec.at("tokens").get<int64_t>();
    seconds_before = rec.at("seconds").get<double>();
    result.resumed_from = step;
    if (group.rank() == 0) LOG(INFO) << what << ": resumed from " << plan->resume_from << " at step " << step;
  }
  GradientSum grad_sum(params, group);
  result.gradient_buckets = static_cast<int64_t>(grad_sum.buckets());
  double outside = 0;  // seconds spent in on_step (validation, logs): not the stage's training time
  const auto elapsed = [&] {
    return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - outside;
  };
  for (int64_t epoch = first_epoch; step < o.steps; ++epoch) {
    const std::vector<LmSequence> seqs = epochs(epoch);
    const int64_t steps_per_epoch = static_cast<int64_t>(seqs.size()) / G;
    if (steps_per_epoch == 0) {
      throw ConfigError(what + ".batch_size: " + std::to_string(G) + " is more than the " +
                        std::to_string(seqs.size()) + " sequences of an epoch");
    }
    std::vector<int64_t> order(seqs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    Rng rng(stream_key(o.seed, static_cast<uint64_t>(o.order_stream), static_cast<uint64_t>(epoch)));
    shuffle(order, rng);
    for (int64_t b = epoch == first_epoch ? first_batch : 0; b < steps_per_epoch && step < o.steps; ++b, ++step) {
      // This rank's slice of the global batch, longest first (micro-batches of similar lengths).
      std::vector<const LmSequence*> mine;
      for (int64_t k = 0; k < per_rank; ++k) mine.push_back(&seqs[order[b * G + group.rank() * per_rank + k]]);
      std::stable_sort(mine.begin(), mine.end(),
                       [](const LmSequence* x, const LmSequence* y) { return x->ids.size() > y->ids.size(); });
      double counts[2] = {0, 0};  // loss weight, all tokens (this rank, then all ranks)
      for (const LmSequence* q : mine) {
        if (q->weights.empty()) {
          counts[0] += static_cast<double>(static_cast<int64_t>(q->ids.size()) - std::max<int64_t>(1, q->loss_from));
        } else {
          for (int64_t t = std::max<int64_t>(1, q->loss_from); t < static_cast<int64_t>(q->ids.size()); ++t)
            counts[0] += q->weights[static_cast<size_t>(t)];
        }
        counts[1] += static_cast<double>(q->ids.size());
      }
      group.sum(counts, 2);
      result.tokens += static_cast<int64_t>(counts[1]);
      const double loss_tokens = std::max(1.0, counts[0]);
      double loss_sum = 0;
      const std::vector<LmMicroBatch> micro = lm_micro_batches(mine, M, o.pack);
      for (size_t m = 0; m < micro.size(); ++m) {
        const torch::Tensor loss = lm_micro_loss(model, micro[m], loss_tokens);
        grad_sum.micro_batch(m + 1 == micro.size());
        loss.backward();
        loss_sum += loss.item<double>();
      }
      grad_sum.finish();
      group.sum(&loss_sum, 1);
      // The norm is reported either way; with grad_clip 0 the infinite cap never scales.
      const double grad_norm = torch::nn::utils::clip_grad_norm_(
          params, o.grad_clip > 0 ? o.grad_clip : std::numeric_limits<double>::infinity());
      const double lr = lm_learning_rate(o.learning_rate, o.warmup_steps, step, o.steps);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.step();
      grad_sum.zero_grad();
      result.losses.push_back(loss_sum);
      if (on_step) {
        const auto tc = std::chrono::steady_clock::now();
        on_step({step, o.steps, loss_sum, lr, grad_norm, result.tokens, elapsed()});
        outside += std::chrono::duration<double>(std::chrono::steady_clock::now() - tc).count();
      }
      if (plan && plan->every > 0 && (step + 1) % plan->every == 0 && step + 1 < o.steps) {
        const bool last_of_epoch = b + 1 == steps_per_epoch;
        nlohmann::ordered_json rec;
        rec["epoch"] = last_of_epoch ? epoch + 1 : epoch;
        rec["batch"] = last_of_epoch ? 0 : b + 1;
        rec["losses"] = result.losses;
        rec["tokens"] = result.tokens;
        rec["seconds"] = elapsed();
        save_train_state(*plan, step + 1, model, &optimizer, rec, group.rank());
      }
    }
  }
  result.steps = step;
  result.seconds = elapsed();
  result.tokens_per_second = result.seconds > 0 ? static_cast<double>(result.tokens) / result.seconds : 0;
  return result;
}

}  // namespace r2rec
