#include "trainers/task/teacher.h"

#include "core/tokenizer/tokenizer.h"
#include "trainers/task/citations.h"

namespace r2rec {

std::vector<TeacherWalk> teacher_walks(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                                       const TaskFormat& format) {
  std::vector<TeacherWalk> walks;
  for (int64_t k = 0; k < count && static_cast<int64_t>(walks.size()) < format.cited_chains; ++k) {
    const int64_t c = first + k;
    for (int64_t n = chains.offsets[c] + 1; n < chains.offsets[c + 1]; ++n) {
      if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem && chains.nodes[n] == example.target) {
        walks.push_back({k, n - chains.offsets[c]});
        break;
      }
    }
  }
  return walks;
}

std::string teacher_guidance(const Example& example, const Catalog& catalog, const TaskFormat& format,
                             int64_t chain_number) {
  std::string s = "The answer is " + answer_label(example, example.target_index, catalog, format) + ".";
  if (chain_number > 0)
    s += " Explain it along chain " + std::to_string(chain_number) +
         ", one hop per sentence, naming only what the chains show.";
  return s;
}

std::string teacher_user_turn(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                              const Catalog& catalog, const TaskFormat& format, const ChainMask& mask) {
  return render_prompt(example, chains, first, count, catalog, format, PromptForm::kReason, mask) + "\n" +
         teacher_guidance(example, catalog, format, mask.chain + 1);
}

std::string teacher_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                           const Catalog& catalog, const TaskFormat& format, const ChainMask& mask) {
  return render_chatml({{"system", kTaskSystemPrompt},
                        {"user", teacher_user_turn(example, chains, first, count, catalog, format, mask)}},
                       /*add_generation_prompt=*/true);
}

const char* teacher_verdict_name(TeacherVerdict verdict) {
  switch (verdict) {
    case TeacherVerdict::kAccepted:
      return "accepted";
    case TeacherVerdict::kUnfinished:
      return "unfinished";
    case TeacherVerdict::kUnrevealed:
      return "unrevealed";
    case TeacherVerdict::kMalformed:
      return "malformed";
    case TeacherVerdict::kWrongAnswer:
      return "wrong_answer";
    case TeacherVerdict::kUngrounded:
      return "ungrounded";
    case TeacherVerdict::kFalseVotes:
      return "false_votes";
    case TeacherVerdict::kInconsistent:
      return "inconsistent";
  }
  return "?";
}

TeacherVerdict judge_thought(const std::string& thought, bool finished, const Example& example,
                             const ChainBuffer& chains, int64_t first, int64_t count, const Catalog& catalog,
                             const TaskFormat& format, const ChainMask& mask) {
  if (!finished || thought.find('\n') != std::string::npos) return TeacherVerdict::kUnfinished;
  // A thought is one sentence of the walk: no tag and no line of another kind inside it.
  for (const char* marker : {"<think>", "</think>", kAnswerOpen, kAnswerClose, "Votes:", "Chain ", "Candidate "})
    if (thought.find(marker) != std::string::npos) return TeacherVerdict::kUnfinished;
  if (!unshown_mentions(thought, example, chains, first, count, catalog, format, mask).empty())
    return TeacherVerdict::kUnrevealed;
  return TeacherVerdict::kAccepted;
}

TeacherVerdict judge_trace(const std::string& completion, const Example& example, const ChainBuffer& chains,
                           int64_t first, int64_t count, const Catalog& catalog, const TaskFormat& format) {
  const int32_t answer = parse_answer(completion, example, catalog);
  if (answer < 0) return TeacherVerdict::kMalformed;
  if (answer != example.target_index) return TeacherVerdict::kWrongAnswer;
  const ReasoningCheck check = check_reasoning(completion, example, chains, first, count, catalog, format);
  if (check.citations.empty()) return TeacherVerdict::kUngrounded;
  for (const Citation& c : check.citations)
    if (!c.grounded) return TeacherVerdict::kUngrounded;
  if (check.has_votes && !check.votes_true) return TeacherVerdict::kFalseVotes;
  if (!check.consistent(answer)) return TeacherVerdict::kInconsistent;
  return TeacherVerdict::kAccepted;
}

}  // namespace r2rec
