// The model teacher's protocol (docs/teacher.md): progressive masked prompting and rejection by code. The model
// side (batched generation over a checkpoint) is trainers/lm/model_teacher.h; this header is the text and the
// checks, testable without a model.
//
// For a train example whose prompt chains reach the target, the teacher walks the first task.cited_chains of those
// chains, each from U to the target's first place on it, one hop per thought. Thought k of chain N is written after
// a prompt that shows chain N only up to its node k (the later nodes "?"), the rest of the task (history, the other
// chains, candidates) and the answer as guidance; the assistant's turn so far is the trace written before it. The
// trace the student learns is the votes form's walk, in the teacher's words:
//
//   <think>
//   Chain 5: U liked <item_7>. <user_40> also liked <item_7>. <user_40> liked <item_98>, a candidate.
//   Chain 9: ...
//   </think><answer><item_98></answer>
//
// where "Chain N:" is written by the protocol and each sentence by the teacher; the answer is the teacher's choice
// among the candidates after the whole trace, shown the whole prompt. A trace is kept only when code finds every
// thought finished (ends with "." within annotate.thought_tokens, one line) and naming only what its masked
// prompt shows, the answer the target, every citation a grounded walk of its chain (trainers/task/citations.h),
// a votes line, if any, true, and the answer the candidate the trace's own evidence favours.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampler/chains.h"
#include "sampler/shard.h"
#include "sampler/split.h"
#include "trainers/task/task.h"

namespace r2rec {

// One chain the teacher walks: its 0-based place among the prompt's chains, and the hops from U to the target's
// first place on it.
struct TeacherWalk {
  int64_t chain = 0;
  int64_t hops = 0;
};

// The first format.cited_chains prompt chains that hold the target as an item node, in prompt order; empty when
// none does (the example keeps the template teacher's "No chain reaches it." trace).
std::vector<TeacherWalk> teacher_walks(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                                       const TaskFormat& format);

// The guidance line appended to the teacher's user turn: "The answer is X. Explain it along chain N, one hop per
// sentence, naming only what the chains show." (no chain: "The answer is X.").
std::string teacher_guidance(const Example& example, const Catalog& catalog, const TaskFormat& format,
                             int64_t chain_number);

// The teacher's user turn for a step: the reasoning-form prompt with `mask` (ChainMask{} for the answer step:
// nothing masked), then the guidance line.
std::string teacher_user_turn(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                              const Catalog& catalog, const TaskFormat& format, const ChainMask& mask);

// That turn after the system turn, as ChatML up to the assistant's turn.
std::string teacher_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                           const Catalog& catalog, const TaskFormat& format, const ChainMask& mask);

// Why a sampled trace was kept or not, in the order the checks run.
enum class TeacherVerdict {
  kAccepted,
  kUnfinished,    // a thought did not end with "." within the token limit, ran onto a new line, or holds a tag
                  // (<think>, <answer>, ...) or another line's start ("Votes:", "Chain ", "Candidate ")
  kUnrevealed,    // a thought named an entity its masked prompt does not show
  kMalformed,     // the answer names no candidate
  kWrongAnswer,   // the answer is not the target
  kUngrounded,    // a citation is not a walk of its chain (or the trace cites nothing)
  kFalseVotes,    // a votes line that is not the prompt's tally
  kInconsistent,  // the answer is not what the trace's stated evidence favours
};
constexpr int kTeacherVerdicts = 8;
const char* teacher_verdict_name(TeacherVerdict verdict);  // "accepted", "unfinished", "unrevealed", ...

// A thought the teacher wrote at the step of `mask` (`finished`: it ended with its "." within the limit).
TeacherVerdict judge_thought(const std::string& thought, bool finished, const Example& example,
                             const ChainBuffer& chains, int64_t first, int64_t count, const Catalog& catalog,
                             const TaskFormat& format, const ChainMask& mask);

// A whole trace ("<think>...</think><answer>...</answer>") against the full prompt.
TeacherVerdict judge_trace(const std::string& completion, const Example& example, const ChainBuffer& chains,
                           int64_t first, int64_t count, const Catalog& catalog, const TaskFormat& format);

}  // namespace r2rec
