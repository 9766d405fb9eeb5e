// Evaluation of the language model on the stored candidate lists (docs/design.md §6).
//
// For each example of the split (this rank's share): the chat prompt (trainers/task.h) is completed greedily
// (eval.max_new_tokens; stops at </answer> or the end-of-turn token) and
//   generation: the answer the completion names (parse_answer) is the model's choice — HR@1 by generation; a
//               completion that names no candidate is invalid and a miss (valid-answer rate);
//   likelihood: the model's own reasoning, cut before "<answer>" (opened with "<think>\n" and closed with
//               "\n</think>" where the model did not write them; empty when max_new_tokens is 0), is followed by each
//               candidate's answer "N</answer>" after "<answer>"; the candidates are ranked by log p(answer | prompt,
//               reasoning) (score_continuations: one prefill per example) — HR@k / NDCG@k for eval.ks.
#pragma once

#include <cstdint>

#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/shard_reader.h"
#include "trainers/metrics.h"
#include "trainers/recommender.h"

namespace r2rec {

struct LmEvalResult {
  RankingMetrics likelihood{{1}};
  RankingMetrics generation{{1}};
  int64_t examples = 0;
  int64_t valid = 0;  // completions naming a candidate
  int64_t generated_tokens = 0;
  double seconds = 0;
};

// Evaluates the model on every record `reader` yields (its rank share; ReaderOptions::limit caps the split), in
// generation batches of `batch_size`, and sums the result over ranks.
LmEvalResult evaluate_lm(TransformerImpl& model, const Tokenizer& tokenizer, ShardReader& reader,
                         const std::vector<int64_t>& ks, int64_t max_new_tokens, int64_t batch_size,
                         const Collectives& collectives);

}  // namespace r2rec
