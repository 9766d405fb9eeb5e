// Supervised fine-tuning on the annotated traces (docs/design.md §1-2), data-parallel over the job's ranks
// through the shared next-token loop (trainers/lm_trainer.h).
//
// Each trace becomes prompt ids + completion ids + the end-of-turn token (<|im_end|>, else <|endoftext|>); the
// loss is the cross-entropy of the completion tokens (and the end of turn) only, the answer label's tokens
// weighted by sft.answer_weight (loss = weighted sum / total weight of the global batch). Sequences longer than
// sft.max_seq_len are left out and counted. Steps: sft.epochs passes over the traces, or sft.max_steps when
// that is smaller; batches, learning-rate schedule and loss normalisation as in train_lm.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "trainers/lm_trainer.h"
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
  int64_t resumed_from = 0;      // the step a resume continued from (0 = afresh)
  int64_t gradient_buckets = 0;  // GradientSynchronizer buckets that summed the gradients (0: one rank)
};

// The traces as training sequences (above): prompt, completion, end of turn, loss from the completion, weights;
// the ones longer than sft.max_seq_len left out and counted in `too_long`. What train_sft trains on.
std::vector<LmSequence> sft_sequences(const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                                      int64_t* too_long = nullptr, int64_t* completion_tokens = nullptr);

// Trains `model` in place. `on_step(step, loss)` runs on every rank after each step (for logging and
// checkpoints). Throws ConfigError when the usable traces cannot fill one global batch.
SftResult train_sft(TransformerImpl& model, const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                    const Collectives& collectives, const LmStepFn& on_step = {},
                    const CheckpointPlan* checkpoints = nullptr);

}  // namespace r2rec
