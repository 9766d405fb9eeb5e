// The R2Rec task as text (docs/design.md §1): the prompt a model sees for an example, the template teacher's
// interaction-of-thought trace, and the parser that turns a completion back into a candidate.
//
// Items appear as their own added token (<item_ID>, ID = the dataset's item id), as their title, or both
// (TaskFormat::items); chain users as <user_ID> or "user ID". Prompt, token form (the user turn of a ChatML
// conversation, after a fixed system turn):
//
//   History (oldest first): <item_172><item_181><item_50>...
//   Chains (U is this user):
//   1. U -> <item_50> -> <user_231> -> <item_98>
//   2. U -> <item_181> -> <user_13> -> <item_98>
//   ...
//   Candidates: <item_98><item_1016><item_12>...
//   Think over the chains step by step, then answer with one candidate.
//
// With titles, the history is one "- <title>" line per item and candidates are numbered "[k] <title>" lines
// ("[k] <item_ID> <title>" with both). The direct form (PromptForm::kDirect) ends with "Answer with one
// candidate." instead, and its completion is the answer alone.
//
// Trace (template teacher; knows the target):
//
//   <think>
//   Chain 1: U liked <item_50>. <user_231> also liked <item_50>. <user_231> liked <item_98>, a candidate.
//   Chain 5: U liked <item_7>. <user_40> also liked <item_7>. <user_40> liked <item_12>, a candidate.
//   Votes: <item_98> 2, <item_12> 1.
//   </think><answer><item_98></answer>
//
// Grounding rule (docs/design.md §1): every statement is checkable against the prompt and the trace's form
// depends only on the prompt. A candidate's votes are the prompt chains that contain it as an item node; the
// cited chains (at most TaskFormat::cited_chains) are, for the candidates in vote order (most votes first, ties
// by candidate position), the first prompt chain reaching each; each cited chain is walked hop by hop, thought
// k naming only nodes k-1 and k (progressive masking); the votes line lists every reached candidate in vote
// order ("Votes: none." when no chain reaches one). Only the answer depends on the target: the teacher names
// it whatever the votes say, so the model learns how far the visible evidence goes (Trace records whether the
// target was reached and whether it had the most votes).
//
// The ablation task.trace_form=target instead cites the (first cited_chains) chains that contain the target and
// ends "Conclusion: <target> is reached by N chains." or "Conclusion: no chain reaches the answer; <target> fits
// the history.": its form tells what the prompt cannot, which is why the grounded form replaced it.
//
// Answers: inside <answer></answer>, a candidate's item token, its 1-based number ("5" or "[5]") or its exact
// title; anything else — no <answer> block, an unknown token, number or title, two answers — is malformed and
// scores as wrong. The answer the teacher writes (answer_label) is the item token when items have tokens, else
// the number.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/chains.h"
#include "sampler/shard.h"
#include "sampler/split.h"

namespace r2rec {

extern const char* const kTaskSystemPrompt;
extern const char* const kAnswerOpen;   // "<answer>"
extern const char* const kAnswerClose;  // "</answer>"

enum class ItemText { kToken, kTitle, kTokenTitle };
enum class PromptForm { kReason, kDirect };

struct TaskFormat {
  ItemText items = ItemText::kToken;
  bool user_tokens = true;
  int64_t cited_chains = 3;
  bool target_form = false;  // task.trace_form=target: the ablation (cites target-reaching chains)
  bool item_tokens() const { return items != ItemText::kTitle; }
  bool titles() const { return items != ItemText::kToken; }
};

// From task.*: item_text auto is token for a from-scratch model and token+title with a pretrained model.path.
TaskFormat task_format(const Config& config);

// "<item_50>", "<user_231>": the added token of a catalog item / user (the dataset's own id inside).
std::string item_token(const Catalog& catalog, int32_t item);
std::string user_token(const Catalog& catalog, int32_t user);
// The added tokens the format needs, in id order: every item's, then (with user_tokens) every user's.
std::vector<std::string> entity_tokens(const Catalog& catalog, const TaskFormat& format);

// The user turn for `example` with its chains [first, first+count) of `chains`.
std::string render_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                          const Catalog& catalog, const TaskFormat& format, PromptForm form = PromptForm::kReason);

// The prompt as a ChatML conversation ready for the assistant's turn (system + user + "<|im_start|>assistant\n").
std::string render_chat_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               const Catalog& catalog, const TaskFormat& format, PromptForm form = PromptForm::kReason);

// What the prompt's chains say about the candidates; a function of the prompt alone.
struct ChainEvidence {
  std::vector<int32_t> votes;  // [C] chains containing candidate c as an item node
  std::vector<int32_t> order;  // candidate indices with votes > 0: most votes first, ties by position
  std::vector<int64_t> cited;  // chain indices (0-based within the prompt) the trace walks, in order
};
ChainEvidence chain_evidence(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                             int64_t cited_chains);

struct Trace {
  std::string text;         // "<think>\n...\n</think><answer>...</answer>"
  int32_t reaching = 0;     // prompt chains that reach the target
  bool target_top = false;  // the target has the most votes (ties included)
};

// The template teacher's trace for `example` (see above).
Trace template_trace(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                     const Catalog& catalog, const TaskFormat& format);

// What names candidate c (0-based) in an answer: its item token, or its number "c+1" without item tokens.
std::string answer_label(const Example& example, int32_t candidate_index, const Catalog& catalog,
                         const TaskFormat& format);
// "<answer>" + answer_label + "</answer>": the direct form's completion and every trace's last part.
std::string answer_text(const Example& example, int32_t candidate_index, const Catalog& catalog,
                        const TaskFormat& format);

// The end-of-turn tokens the tokenizer has, in order of preference: <|im_end|>, <|endoftext|>.
std::vector<int64_t> end_of_turn_tokens(const Tokenizer& tokenizer);

// The candidate index (0-based) a completion names, or -1 when it is malformed (see above).
int32_t parse_answer(const std::string& completion, const Example& example, const Catalog& catalog);

}  // namespace r2rec
