// Supervised fine-tuning on the annotated traces (docs/design.md §1-2), data-parallel over the job's ranks.
//
// Each trace becomes prompt ids + completion ids + the end-of-turn token (<|im_end|>, else <|endoftext|>); the
// loss is the cross-entropy of the completion tokens (and the end of turn) only. Sequences longer than
// sft.max_seq_len are left out and counted.
//
// One optimizer step = sft.batch_size sequences (global): each epoch the kept traces are shuffled with a seeded
// stream (core/rng.h, Stream::kSftOrder), cut into global batches (a last partial batch is dropped), and rank r
// of W takes the r-th W-th of each batch, in micro-batches of sft.micro_batch_size (gradient accumulation). The
// loss is the sum of token losses over the GLOBAL batch divided by its completion-token count (one all-reduce of
// the count per step), and gradients are summed over ranks, so W ranks take exactly the step one process would
// take on the whole batch (up to float summation order). Then clip (sft.grad_clip), AdamW (sft.learning_rate,
// sft.weight_decay, betas 0.9/0.95), learning rate linear warm-up over sft.warmup_steps then cosine decay to
// 10% of the peak at the last step (sft.max_steps, when set, ends training early and is the last step).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "trainers/recommender.h"
#include "trainers/traces.h"

namespace r2rec {

struct SftResult {
  int64_t steps = 0;
  int64_t traces_used = 0;        // traces within sft.max_seq_len
  int64_t too_long = 0;           // left out
  int64_t completion_tokens = 0;  // per epoch, all ranks
  std::vector<double> losses;     // per step: mean completion-token loss of the global batch
  double seconds = 0;
  double tokens_per_second = 0;  // all tokens (prompt + completion) through forward+backward, all ranks
};

// Trains `model` in place. `on_step(step, loss)` runs on every rank after each step (for logging and
// checkpoints). Throws ConfigError when the usable traces cannot fill one global batch.
SftResult train_sft(TransformerImpl& model, const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                    const Collectives& collectives, const std::function<void(int64_t, double)>& on_step = {});

}  // namespace r2rec
