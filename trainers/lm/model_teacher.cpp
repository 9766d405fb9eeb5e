#include "trainers/lm/model_teacher.h"

#include "core/rng.h"
#include "trainers/lm/answering.h"

namespace r2rec {
namespace {

struct Row {
  size_t example = 0;
  int32_t sample = 0;
  std::vector<TeacherWalk> walks;
  size_t walk = 0;
  int64_t hop = 1;
  int64_t step = 0;   // thoughts written so far
  std::string lines;  // finished "Chain N: ...\n" lines
  std::string line;   // the current chain's thoughts so far
  std::vector<TeacherThought> thoughts;
  bool done = false;
  TeacherVerdict verdict = TeacherVerdict::kAccepted;
  std::string completion;
};

}  // namespace

std::vector<TeacherOutcome> teach(TransformerImpl& model, const Tokenizer& tokenizer,
                                  const std::vector<Example>& examples, const std::vector<ChainBuffer>& chains,
                                  const Catalog& catalog, const TaskFormat& format, const TeacherOptions& options,
                                  GenerationStats* stats) {
  std::vector<TeacherOutcome> out(examples.size());
  std::vector<Row> rows;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::vector<TeacherWalk> walks = teacher_walks(examples[i], chains[i], 0, chains[i].size(), format);
    if (walks.empty()) continue;
    out[i].verdicts.assign(static_cast<size_t>(options.samples), TeacherVerdict::kAccepted);
    out[i].last.assign(static_cast<size_t>(options.samples), "");
    for (int32_t s = 0; s < options.samples; ++s) {
      Row r;
      r.example = i;
      r.sample = s;
      r.walks = walks;
      rows.push_back(std::move(r));
    }
  }
  const TokenText token_text = answer_token_text(tokenizer);
  SamplingOptions thought_options;
  thought_options.max_new_tokens = options.thought_tokens;
  thought_options.temperature = options.temperature;
  thought_options.top_p = options.top_p;
  thought_options.stop_strings = {"."};
  thought_options.stop_tokens = end_of_turn_tokens(tokenizer);
  SamplingOptions answer_options;
  answer_options.max_new_tokens = 64;
  answer_options.temperature = 0;  // the teacher's own choice after its trace
  answer_options.stop_tokens = thought_options.stop_tokens;

  for (;;) {
    std::vector<size_t> thinking, answering;
    for (size_t r = 0; r < rows.size(); ++r) {
      if (rows[r].done) continue;
      (rows[r].walk < rows[r].walks.size() ? thinking : answering).push_back(r);
    }
    if (thinking.empty() && answering.empty()) break;
    if (!thinking.empty()) {
      std::vector<GenerationRequest> requests;
      for (size_t r : thinking) {
        const Row& row = rows[r];
        const Example& e = examples[row.example];
        const TeacherWalk& w = row.walks[row.walk];
        const ChainMask mask{w.chain, row.hop};
        const std::string text =
            teacher_prompt(e, chains[row.example], 0, chains[row.example].size(), catalog, format, mask) + "<think>\n" +
            row.lines + "Chain " + std::to_string(w.chain + 1) + ":" + row.line;
        const uint64_t seed =
            stream_key(options.seed, static_cast<uint64_t>(Stream::kTeacher), static_cast<uint64_t>(e.id),
                       static_cast<uint64_t>(row.sample) << 32 | static_cast<uint64_t>(row.step));
        requests.push_back({token_ids(tokenizer, text), seed, nullptr});
      }
      const std::vector<Generation> gens = generate(model, requests, thought_options, token_text, 0, stats);
      for (size_t k = 0; k < thinking.size(); ++k) {
        Row& row = rows[thinking[k]];
        const Generation& g = gens[k];
        out[row.example].tokens += static_cast<int64_t>(g.tokens.size());
        const Example& e = examples[row.example];
        const TeacherWalk& w = row.walks[row.walk];
        const ChainMask mask{w.chain, row.hop};
        const bool finished = g.finish == FinishReason::kStopString;
        const std::string thought = g.text + (finished ? "." : "");
        const TeacherVerdict v = judge_thought(thought, finished, e, chains[row.example], 0, chains[row.example].size(),
                                               catalog, format, mask);
        row.thoughts.push_back({mask, thought});
        ++row.step;
        if (v != TeacherVerdict::kAccepted) {
          row.done = true;
          row.verdict = v;
          continue;
        }
        row.line += thought;
        if (++row.hop > w.hops) {
          row.lines += "Chain " + std::to_string(w.chain + 1) + ":" + row.line + "\n";
          row.line.clear();
          row.hop = 1;
          ++row.walk;
        }
      }
    }
    if (!answering.empty()) {
      std::vector<GenerationRequest> requests;
      for (size_t r : answering) {
        const Row& row = rows[r];
        const Example& e = examples[row.example];
        const std::string text =
            teacher_prompt(e, chains[row.example], 0, chains[row.example].size(), catalog, format, ChainMask{}) +
            "<think>\n" + row.lines + "</think>" + kAnswerOpen;
        requests.push_back({token_ids(tokenizer, text), 0,
                            answer_constraint(candidate_answer_ids(tokenizer, e, catalog, format),
                                              /*immediate=*/true)});
      }
      const std::vector<Generation> gens = generate(model, requests, answer_options, token_text, 0, stats);
      for (size_t k = 0; k < answering.size(); ++k) {
        Row& row = rows[answering[k]];
        const Generation& g = gens[k];
        out[row.example].tokens += static_cast<int64_t>(g.tokens.size());
        row.completion = "<think>\n" + row.lines + "</think>" + kAnswerOpen + g.text;
        row.verdict = judge_trace(row.completion, examples[row.example], chains[row.example], 0,
                                  chains[row.example].size(), catalog, format);
        row.done = true;
      }
    }
  }
  for (Row& row : rows) {
    TeacherOutcome& o = out[row.example];
    o.verdicts[static_cast<size_t>(row.sample)] = row.verdict;
    if (!row.thoughts.empty()) o.last[static_cast<size_t>(row.sample)] = row.thoughts.back().text;
    if (row.verdict == TeacherVerdict::kAccepted && (o.accepted < 0 || row.sample < o.accepted)) {
      o.accepted = row.sample;
      o.completion = row.completion;
      o.thoughts = row.thoughts;
    }
  }
  return out;
}

}  // namespace r2rec
