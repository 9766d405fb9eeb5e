// The R2Rec task as text (docs/design.md §1): the prompt a model sees for an example, the template teacher's
// interaction-of-thought trace, and the parser that turns a completion back into a candidate.
//
// Prompt (the user turn of a ChatML conversation, after a fixed system turn):
//
//   The user's history, oldest first:
//   - Toy Story (1995)
//   ...
//   Interaction chains (U = the user; user N = another user):
//   Chain 1: U -> Heat (1995) -> user 231 -> Casino (1995)
//   ...
//   Candidates:
//   [1] Casino (1995)
//   ...
//   Reason over the chains step by step inside <think></think>, then give the number of the best candidate
//   inside <answer></answer>.
//
// Trace (template teacher, knows the target; progressive: step k of a chain names only its nodes 0..k):
//
//   <think>
//   Chain 1, step 1: U interacted with Heat (1995).
//   Chain 1, step 2: user 231 also interacted with Heat (1995), so user 231 shares the user's taste.
//   Chain 1, step 3: user 231 interacted with Casino (1995), which is candidate [1].
//   Conclusion: candidate [1] Casino (1995) is reached by 1 of 4 chains.
//   </think><answer>1</answer>
//
// Grounding rule: the trace cites only chains in the prompt, and only those that reach the target (contain it
// as an item node). When none does, it says the evidence is weak and answers from the history (or the example
// is left out: sft.skip_unreached). The answer is the candidate's number (1-based) or its exact title; anything
// else — no <answer> block, an unknown number or title, two answers — is malformed and scores as wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "sampler/chains.h"
#include "sampler/shard.h"
#include "sampler/split.h"

namespace r2rec {

extern const char* const kTaskSystemPrompt;
extern const char* const kAnswerOpen;   // "<answer>"
extern const char* const kAnswerClose;  // "</answer>"

// The user turn for `example` with its chains [first, first+count) of `chains`.
std::string render_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                          const Catalog& catalog);

// The prompt as a ChatML conversation ready for the assistant's turn (system + user + "<|im_start|>assistant\n").
std::string render_chat_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               const Catalog& catalog);

struct Trace {
  std::string text;      // "<think>\n...\n</think><answer>N</answer>"
  int32_t reaching = 0;  // chains of the prompt that reach the target
};

// The template teacher's trace for `example` (see above).
Trace template_trace(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                     const Catalog& catalog);

// The answer text for candidate index c (0-based): "<answer>c+1</answer>".
std::string answer_text(int32_t candidate_index);

// The end-of-turn tokens the tokenizer has, in order of preference: <|im_end|>, <|endoftext|>.
std::vector<int64_t> end_of_turn_tokens(const Tokenizer& tokenizer);

// The candidate index (0-based) a completion names, or -1 when it is malformed (see above).
int32_t parse_answer(const std::string& completion, const Example& example, const Catalog& catalog);

}  // namespace r2rec
