// How the task's completions are sampled and read back, shared by evaluation (trainers/eval/lm_eval.h) and GRPO
// rollouts (trainers/lm/grpo.h): stop at "</answer>" or an end-of-turn token; special tokens decode to their text
// (r2rec's learnt tokenizers make the answer tags special tokens); a completion cut at "</answer>" gets the tag
// back so parse_answer sees a closed answer; the answer span constrained to the example's candidates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/model/generation.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/shard.h"
#include "sampler/split.h"
#include "trainers/task/task.h"

namespace r2rec {

SamplingOptions answer_sampling(const Tokenizer& tokenizer, int64_t max_new_tokens, double temperature, double top_p);

// `text` encoded as the engine's int64 token ids (a prompt, a prefix, a tag).
std::vector<int64_t> token_ids(const Tokenizer& tokenizer, const std::string& text);

// Token text for the engine, special tokens included.
TokenText answer_token_text(const Tokenizer& tokenizer);

// The completion's text with the closing tag restored when it stopped there.
std::string answer_completion(const Generation& generation);

// The token ids of candidate c's answer continuation after "<answer>": answer_label + "</answer>".
std::vector<std::vector<int64_t>> candidate_answer_ids(const Tokenizer& tokenizer, const Example& example,
                                                       const Catalog& catalog, const TaskFormat& format);

// The constraint that, once the completion ends with "<answer>" (or at once with `immediate`), lets only the
// candidates' answer continuations follow.
std::shared_ptr<const AnswerConstraint> answer_constraint(const std::vector<std::vector<int64_t>>& candidate_ids,
                                                          bool immediate = false);

}  // namespace r2rec
