#include "trainers/lm_eval.h"

#include <chrono>

#include "core/error.h"
#include "core/model/generation.h"
#include "trainers/answering.h"
#include "trainers/task.h"

namespace r2rec {

LmEvalResult evaluate_lm(TransformerImpl& model, const Tokenizer& tok, ShardReader& reader,
                         const std::vector<int64_t>& ks, int64_t max_new_tokens, int64_t batch_size,
                         const Collectives& col) {
  const auto t0 = std::chrono::steady_clock::now();
  LmEvalResult r;
  r.likelihood = RankingMetrics(ks);
  r.generation = RankingMetrics({1});
  const SamplingOptions o = answer_sampling(tok, max_new_tokens, /*temperature=*/0, /*top_p=*/1);
  const TokenText text = answer_token_text(tok);
  // Candidate c's answer "c+1</answer>" as tokens: the same for every example, encoded once.
  std::vector<std::vector<int64_t>> answers;
  std::vector<Example> examples;
  std::vector<GenerationRequest> requests;  // the examples' encoded prompts
  auto flush = [&] {
    if (examples.empty()) return;
    GenerationStats stats;
    const std::vector<Generation> out = generate(model, requests, o, text, 0, &stats);
    r.generated_tokens += stats.generated_tokens;
    for (size_t i = 0; i < examples.size(); ++i) {
      const Example& e = examples[i];
      const int32_t choice = parse_answer(answer_completion(out[i]), e, reader.catalog());
      r.valid += choice >= 0;
      r.generation.add_choice(choice, e.target_index);
      // Likelihood: the prompt, the model's reasoning, then each candidate's answer (prompt and completion
      // encoded apart, as in training).
      std::string reasoning = out[i].text.substr(0, out[i].text.find(kAnswerOpen));
      if (reasoning.find("<think>") == std::string::npos) reasoning = "<think>\n" + reasoning;
      if (reasoning.find("</think>") == std::string::npos) reasoning += "\n</think>";
      std::vector<int64_t> prefix = requests[i].prompt;
      for (TokenId t : tok.encode(reasoning + kAnswerOpen)) prefix.push_back(t);
      while (answers.size() < e.candidates.size()) {
        const auto ids = tok.encode(std::to_string(answers.size() + 1) + kAnswerClose);
        answers.emplace_back(ids.begin(), ids.end());
      }
      const std::vector<std::vector<int64_t>> mine(answers.begin(),
                                                   answers.begin() + static_cast<int64_t>(e.candidates.size()));
      r.likelihood.add(score_continuations(model, prefix, mine), e.target_index);
      ++r.examples;
    }
    examples.clear();
    requests.clear();
  };
  Example e;
  ChainBuffer chains;
  while (reader.next(&e, &chains)) {
    const auto ids = tok.encode(render_chat_prompt(e, chains, 0, chains.size(), reader.catalog()));
    requests.push_back({std::vector<int64_t>(ids.begin(), ids.end()), 0, nullptr});
    examples.push_back(e);
    chains.clear();
    if (static_cast<int64_t>(examples.size()) >= batch_size) flush();
  }
  flush();
  r.likelihood = sum_over_ranks(r.likelihood, col);
  r.generation = sum_over_ranks(r.generation, col);
  double counts[3] = {static_cast<double>(r.examples), static_cast<double>(r.valid),
                      static_cast<double>(r.generated_tokens)};
  col.sum_doubles(counts, 3);
  r.examples = static_cast<int64_t>(counts[0]);
  r.valid = static_cast<int64_t>(counts[1]);
  r.generated_tokens = static_cast<int64_t>(counts[2]);
  if (r.examples == 0) throw DataError("eval: the split has no example to evaluate (every rank's share was empty)");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace r2rec
