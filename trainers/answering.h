// How the task's completions are sampled and read back, shared by evaluation (trainers/lm_eval.h) and GRPO
// rollouts (trainers/grpo.h): stop at "</answer>" or an end-of-turn token; special tokens decode to their text
// (r2rec's learnt tokenizers make the answer tags special tokens); a completion cut at "</answer>" gets the tag
// back so parse_answer sees a closed answer.
#pragma once

#include <string>

#include "core/model/generation.h"
#include "core/tokenizer/tokenizer.h"

namespace r2rec {

SamplingOptions answer_sampling(const Tokenizer& tokenizer, int64_t max_new_tokens, double temperature, double top_p);

// Token text for the engine, special tokens included.
TokenText answer_token_text(const Tokenizer& tokenizer);

// The completion's text with the closing tag restored when it stopped there.
std::string answer_completion(const Generation& generation);

}  // namespace r2rec
