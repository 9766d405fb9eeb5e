// Pretraining of a from-scratch model on the train split's corpus (trainers/task/corpus.h), through the shared
// next-token loop (trainers/lm/lm_trainer.h): each pass over the corpus is tokenised, concatenated with
// <|endoftext|> between documents and cut into rows of pretrain.seq_len tokens; every token is a loss position.
// pretrain.steps steps of pretrain.batch_size rows, warm-up then cosine decay.
#pragma once

#include <functional>
#include <vector>

#include "core/config.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/dp_group.h"
#include "sampler/shard.h"
#include "trainers/lm/lm_trainer.h"
#include "trainers/task/task.h"

namespace r2rec {

// train_lm's result (steps, losses: mean token loss per step, throughput, resume point, buckets) and the corpus.
struct PretrainResult : LmTrainResult {
  int64_t rows_per_pass = 0;  // rows of the first pass over the corpus
  int64_t tokens_per_pass = 0;
};

// LLaRA's hybrid item representation: the item tokens' embedding rows (tied to the LM head) set from a trained
// recommender's item factors F [items, k] (the safetensors file at `factors_path`, tensor "item_factors"),
// projected to the hidden size by a fixed random map: rows = F R, R [k, d] ~ N(0, 1/k) from `seed`, then scaled
// so the rows' standard deviation matches the other rows' (0.02 at initialisation). DataError naming the file
// when it is missing or its shape does not match the catalog.
void init_item_rows(TransformerImpl& model, const Tokenizer& tokenizer, const Catalog& catalog,
                    const std::string& factors_path, uint64_t seed);

PretrainResult train_pretrain(TransformerImpl& model, const Config& config, const Catalog& catalog,
                              const TaskFormat& format, const Tokenizer& tokenizer, const DataParallelGroup& group,
                              const LmStepFn& on_step = {}, const CheckpointPlan* checkpoints = nullptr);

}  // namespace r2rec
