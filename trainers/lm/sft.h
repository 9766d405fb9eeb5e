// Supervised fine-tuning on the annotated traces (docs/design.md §1-2), data-parallel over the job's ranks
// through the shared next-token loop (trainers/lm/lm_trainer.h).
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
#include "distributed/dp_group.h"
#include "trainers/lm/lm_trainer.h"
#include "trainers/task/traces.h"

namespace r2rec {

// train_lm's result (steps, losses: mean completion-token loss per step, throughput over prompt + completion
// tokens, resume point, buckets) and what the traces gave.
struct SftResult : LmTrainResult {
  int64_t traces_used = 0;        // traces within sft.max_seq_len
  int64_t too_long = 0;           // left out
  int64_t completion_tokens = 0;  // per epoch, all ranks
};

// The traces as training sequences (above): prompt, completion, end of turn, loss from the completion, weights;
// the ones longer than sft.max_seq_len left out and counted in `too_long`. What train_sft trains on.
std::vector<LmSequence> sft_sequences(const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                                      int64_t* too_long = nullptr, int64_t* completion_tokens = nullptr);

// Trains `model` in place, data-parallel over `group`. `on_step` runs on every rank after each step with the
// step's LmStep (progress, metrics, validation; its time is not counted); full-state checkpoints follow
// `checkpoints` (trainers/lm/train_state.h). Throws ConfigError when the usable traces cannot fill one global batch.
SftResult train_sft(TransformerImpl& model, const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                    const DataParallelGroup& group, const LmStepFn& on_step = {},
                    const CheckpointPlan* checkpoints = nullptr);

}  // namespace r2rec
