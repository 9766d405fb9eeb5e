// Next-token training of a decoder on token sequences, data-parallel over the job's ranks: the loop under
// `pretrain` (packed corpus rows, loss on every token) and `sft` (prompt + completion, loss on the completion).
//
// One optimizer step = batch_size sequences (global). Each epoch the epoch's sequences are shuffled with a seeded
// stream (core/rng.h, `order_stream`), cut into global batches (a last partial batch is dropped), and rank r of
// W takes the r-th W-th of each batch. Inside its share a rank sorts the sequences by length and cuts
// micro-batches of micro_batch_size (gradient accumulation, right padding to the micro-batch's longest; or
// packed rows, LmTrainOptions::pack), so little compute goes to padding; the loss is a sum, so the order does not
// change the step. The loss is the weighted sum of token losses over the GLOBAL batch divided by its total weight (the
// loss-token count when every weight is 1; one all-reduce per step), and gradients are summed over ranks, so W ranks
// take exactly the step one process would take on the whole batch (up to float summation order). Then clip (grad_clip),
// AdamW (learning_rate, weight_decay, betas 0.9/0.95), learning rate linear warm-up over warmup_steps then cosine decay
// to 10% of the peak at the last step.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/metrics_log.h"
#include "core/model/transformer.h"
#include "core/rng.h"
#include "distributed/dp_group.h"
#include "trainers/lm/train_state.h"

namespace r2rec {

struct LmSequence {
  std::vector<int64_t> ids;
  int64_t loss_from = 1;       // the loss covers the predictions of ids[loss_from..] (from position loss_from - 1)
  std::vector<float> weights;  // empty, or one per id: the weight of predicting ids[t] (t >= loss_from); 1 if empty
};

struct LmTrainOptions {
  int64_t batch_size = 32;
  int64_t micro_batch_size = 4;
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  int64_t warmup_steps = 0;
  double grad_clip = 1.0;
  int64_t steps = 0;  // total optimizer steps
  uint64_t seed = 0;
  // Packing: a rank's sequences of the step go into rows no longer than its longest one (first fit, longest
  // first; attention and positions per sequence), and micro_batch_size rows make a forward pass, so no compute
  // goes to padding beyond each row's tail. Same loss and gradients as unpacked, up to float summation order.
  bool pack = false;
  Stream order_stream = Stream::kSftOrder;
  const char* what = "sft";  // names the stage in errors
  // Full-state checkpoints every checkpoints->every steps and the resume from checkpoints->resume_from
  // (trainers/lm/train_state.h); null = neither.
  const CheckpointPlan* checkpoints = nullptr;
};

struct LmTrainResult {
  int64_t steps = 0;
  int64_t resumed_from = 0;    // the step a resume continued from (0 = started afresh)
  std::vector<double> losses;  // per step: mean loss-token loss of the global batch
  int64_t tokens = 0;          // tokens through forward + backward, all ranks
  double seconds = 0;
  double tokens_per_second = 0;
  int64_t gradient_buckets = 0;  // buckets of the GradientSynchronizer that summed the gradients (0: none)
};

// What every rank learns after each optimizer step (for logs and the metrics stream).
struct LmStep {
  int64_t step = 0;      // 0-based
  int64_t total = 0;     // steps of the stage
  double loss = 0;       // as LmTrainResult::losses
  double lr = 0;         // the learning rate of this step
  double grad_norm = 0;  // global gradient norm before clipping
  int64_t tokens = 0;    // tokens through forward + backward so far, all ranks
  double seconds = 0;    // since the stage started (a resumed stage: its earlier runs included)
};
using LmStepFn = std::function<void(const LmStep&)>;

// The step's scalars for the metrics stream (core/metrics_log.h): loss, lr, grad_norm, tokens_per_s.
inline Scalars lm_step_scalars(const LmStep& s) {
  return {{"loss", s.loss},
          {"lr", s.lr},
          {"grad_norm", s.grad_norm},
          {"tokens_per_s", s.seconds > 0 ? static_cast<double>(s.tokens) / s.seconds : 0.0}};
}

// One forward pass of the loop: ids and mask [rows, T] (mask: 1 / segment ids, 0 padding; core/model/
// transformer.h), weight [rows, T-1] (position t-1 predicting t; 0 off the loss).
struct LmMicroBatch {
  torch::Tensor ids, mask, weight;
  // [rows, T]: for each token, how many tokens of its sequence the look-up copy may copy from (core/model/
  // copy_lookup.h): the prompt (ids before loss_from) where the loss starts past the first token, else all.
  torch::Tensor copy_source;
};
// A rank's sequences of one step (longest first) as micro-batches of `micro` rows: one sequence per row, or with
// `pack` several (LmTrainOptions::pack).
std::vector<LmMicroBatch> lm_micro_batches(const std::vector<const LmSequence*>& longest_first, int64_t micro,
                                           bool pack);
// The micro-batch's weighted token loss divided by `loss_tokens` (the global batch's weight).
torch::Tensor lm_micro_loss(TransformerImpl& model, const LmMicroBatch& batch, double loss_tokens);

// The sequences of epoch e (called once per epoch; every rank must get the same list).
using EpochSequences = std::function<std::vector<LmSequence>(int64_t epoch)>;

// The learning rate at `step` of `total`: linear warm-up, then cosine decay to 10% of the peak.
double lm_learning_rate(double peak, int64_t warmup_steps, int64_t step, int64_t total);

// Trains `model` in place for options.steps steps, taking epochs from `epochs` as needed. `on_step` runs on every
// rank after each step; its time (validation runs there) is not counted in LmStep::seconds nor in the result's
// seconds. Throws ConfigError naming options.what when the batch does not divide
// over the ranks or an epoch cannot fill one global batch.
LmTrainResult train_lm(TransformerImpl& model, const EpochSequences& epochs, const LmTrainOptions& options,
                       const DataParallelGroup& group, const LmStepFn& on_step = {});

}  // namespace r2rec
