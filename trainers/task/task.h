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
// The compact layout (task.chain_layout compact) writes chains "1. <item_98><user_231><item_50>U" and one
// "Candidate <item_98>" line per candidate after "Candidates:", the words the reasoning names one with.
//
// With titles, the history is one "- <title>" line per item and candidates are numbered "[k] <title>" lines
// ("[k] <item_ID> <title>" with both). The direct form (PromptForm::kDirect) ends with "Answer with one
// candidate." instead, and its completion is the answer alone.
//
// Traces (template teacher; knows the target). The teacher may write only reasoning whose own stated rule
// arrives at the answer it gives (docs/training.md, "Traces"). Two forms, task.trace_form:
//
// evidence (default): name the candidate, then walk each of the first cited_chains prompt chains that reach it
// back to U, then answer it. The rule the trace states is "this candidate, because these chains reach it"; every
// node it names is on the cited chain, in chain order backwards (node p, p-1, ..., 0), so each step is one hop.
//
//   <think>
//   Candidate <item_98>.
//   <item_98> <- <user_40> <- <item_7> <- U (chain 5).
//   <item_98> <- <user_231> <- <item_50> <- U (chain 9).
//   </think><answer><item_98></answer>
//
// When no prompt chain reaches the target the trace says so and nothing else ("Candidate <item_98>. No chain
// reaches it."): a true statement, and the answer comes from the history the model read, not from chains.
//
// With task.chain_layout grouped the prompt lists each chain under the candidate it reaches, after the line
// "Candidate <item_98> 2" (its count), and the evidence form copies those lines verbatim: the candidate's line, a
// count claim checked against the prompt, then its first cited_chains chain lines ("" after "Candidate <item_98> 0").
//
//   <think>
//   Candidate <item_98> 2
//   <item_98><user_40><item_7>U
//   <item_98><user_231><item_50>U
//   </think><answer><item_98></answer>
//
// votes: the tally form — each cited chain walked forwards hop by hop (thought k names nodes k-1 and k), then
// every reached candidate's votes (prompt chains containing it), most first:
//
//   <think>
//   Chain 1: U liked <item_50>. <user_231> also liked <item_50>. <user_231> liked <item_98>, a candidate.
//   Chain 5: U liked <item_7>. <user_40> also liked <item_7>. <user_40> liked <item_12>, a candidate.
//   Votes: <item_98> 2, <item_12> 1.
//   </think><answer><item_98></answer>
//
// written only where its rule (the most votes, ties by candidate position) picks the target; other examples take
// the evidence form. The chains the votes form cites are, for the candidates in vote order, the first prompt
// chain reaching each (at most cited_chains).
//
// Which form an example gets depends on the target (as R2Rec keeps only traces that reach the answer); what a
// trace says is checkable against the prompt alone (trainers/task/citations.h checks citations, votes and
// whether the stated evidence favours the answer).
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
enum class TraceForm { kEvidence, kVotes };  // task.trace_form (see above)
// task.chain_layout (chain_line below). grouped is compact with each chain under the candidate it reaches.
enum class ChainLayout { kForward, kBackward, kCompact, kGrouped };

struct TaskFormat {
  ItemText items = ItemText::kToken;
  bool user_tokens = true;
  int64_t cited_chains = 3;
  TraceForm trace_form = TraceForm::kEvidence;
  ChainLayout layout = ChainLayout::kForward;
  bool support_order = false;  // task.candidate_order support (candidate_order below)
  bool item_tokens() const { return items != ItemText::kTitle; }
  // Chains as entity tokens side by side, cited by their hops (compact and grouped).
  bool compact() const { return layout == ChainLayout::kCompact || layout == ChainLayout::kGrouped; }
  bool titles() const { return items != ItemText::kToken; }
};

// From task.*: item_text auto is token for a from-scratch model and token+title with a pretrained model.path.
TaskFormat task_format(const Config& config);

// "<item_50>", "<user_231>": the added token of a catalog item / user (the dataset's own id inside).
std::string item_token(const Catalog& catalog, int32_t item);
std::string user_token(const Catalog& catalog, int32_t user);
// The added tokens the format needs, in id order: every item's, then (with user_tokens) every user's.
std::vector<std::string> entity_tokens(const Catalog& catalog, const TaskFormat& format);

// One chain as the prompt writes it (no newline), its nodes' names given from U: forward "1. U -> a -> b -> c";
// backward "c <- b <- a <- U (chain 1)" (the evidence form's reading order); compact "1. cbaU", the backward order
// with the entity tokens side by side, so that an evidence citation ("cbaU.", which names no number) is a copy in
// which every entity follows the one before it as in the prompt: one look-up per token (docs/training.md).
std::string chain_line(const std::vector<std::string>& nodes, int64_t number, const TaskFormat& format);

// One prompt chain shown only up to its node `revealed` (0 is U), the later nodes written "?": the model teacher's
// masked prompts (trainers/task/teacher.h). `chain` is 0-based among the prompt's chains; -1 masks nothing.
struct ChainMask {
  int64_t chain = -1;
  int64_t revealed = 0;
  // Whether node `node` (0-based place on its chain) of prompt chain `k` is hidden.
  bool hides(int64_t k, int64_t node) const { return k == chain && node > revealed; }
};
extern const char* const kMaskedNode;  // "?"

// grouped layout: the candidate (0-based) each prompt chain [first, first+count) is listed under, the first
// candidate among its items after u0 (-1: none; such chains keep a numbered list of their own), and the size of each
// candidate's group: the count its "Candidate <item_98> 3" line states.
std::vector<int32_t> chain_groups(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count);
std::vector<int32_t> group_sizes(const Example& example, const std::vector<int32_t>& groups);

// The order the prompt lists the candidates in (0-based indices into example.candidates): the given order, or
// with task.candidate_order support the candidates most prompt chains reach first — in the grouped layout the size
// of each one's group, in compact its votes (prompt chains holding it) — ties in the given order. Only the display
// changes: answers name item tokens, and every check reads the example's own candidate list.
std::vector<int32_t> candidate_order(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                                     const TaskFormat& format);

// The user turn for `example` with its chains [first, first+count) of `chains`.
std::string render_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                          const Catalog& catalog, const TaskFormat& format, PromptForm form = PromptForm::kReason,
                          const ChainMask& mask = {});

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

// The shape a template trace took: the tally (votes form), the chains reaching the answer, or "no chain reaches
// it".
enum class TraceShape { kVotes, kEvidence, kNoChain };
const char* trace_shape_name(TraceShape shape);  // "votes" | "evidence" | "no_chain"

struct Trace {
  std::string text;         // "<think>\n...\n</think><answer>...</answer>"
  int32_t reaching = 0;     // prompt chains that reach the target
  bool target_top = false;  // the target has the most votes (ties included)
  TraceShape shape = TraceShape::kEvidence;
};

// The template teacher's trace for `example` (see above).
Trace template_trace(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                     const Catalog& catalog, const TaskFormat& format);

// The evidence form's think block (without the tags): "Candidate X.", then the first `cited` of chains
// [first, first+count) reaching candidate `candidate_index`, each walked from the candidate back to U (nodes p,
// p-1, ..., 0 of the chain, p the candidate's first place on it) and ended "(chain k)." with k its 1-based place
// among them; "No chain reaches it." when none does. The pretraining corpus's reading documents use it too.
std::string evidence_reasoning(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               int32_t candidate_index, int64_t cited, const Catalog& catalog,
                               const TaskFormat& format);

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
