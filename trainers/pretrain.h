// Pretraining of a from-scratch model on the train split's corpus (trainers/corpus.h), through the shared
// next-token loop (trainers/lm_trainer.h): each pass over the corpus is tokenised, concatenated with
// <|endoftext|> between documents and cut into rows of pretrain.seq_len tokens; every token is a loss position.
// pretrain.steps steps of pretrain.batch_size rows, warm-up then cosine decay.
#pragma once

#include <functional>
#include <vector>

#include "core/config.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/shard.h"
#include "trainers/lm_trainer.h"
#include "trainers/recommender.h"
#include "trainers/task.h"

namespace r2rec {

struct PretrainResult {
  int64_t steps = 0;
  int64_t rows_per_pass = 0;  // rows of the first pass over the corpus
  int64_t tokens_per_pass = 0;
  std::vector<double> losses;  // per step: mean token loss of the global batch
  double seconds = 0;
  double tokens_per_second = 0;
  int64_t resumed_from = 0;      // the step a resume continued from (0 = afresh)
  int64_t gradient_buckets = 0;  // GradientSynchronizer buckets that summed the gradients (0: one rank)
};

// LLaRA's hybrid item representation: the item tokens' embedding rows (tied to the LM head) set from a trained
// recommender's item factors F [items, k] (the safetensors file at `factors_path`, tensor "item_factors"),
// projected to the hidden size by a fixed random map: rows = F R, R [k, d] ~ N(0, 1/k) from `seed`, then scaled
// so the rows' standard deviation matches the other rows' (0.02 at initialisation). DataError naming the file
// when it is missing or its shape does not match the catalog.
void init_item_rows(TransformerImpl& model, const Tokenizer& tokenizer, const Catalog& catalog,
                    const std::string& factors_path, uint64_t seed);

PretrainResult train_pretrain(TransformerImpl& model, const Config& config, const Catalog& catalog,
                              const TaskFormat& format, const Tokenizer& tokenizer, const Collectives& collectives,
                              const LmStepFn& on_step = {}, const CheckpointPlan* checkpoints = nullptr);

}  // namespace r2rec
