#include "trainers/lm_eval.h"

#include <chrono>

#include "core/error.h"
#include "core/generation.h"
#include "trainers/task.h"

namespace r2rec {

LmEvalResult evaluate_lm(TransformerImpl& model, const Tokenizer& tok, ShardReader& reader, const std::vector<int64_t>& ks,
                         int64_t max_new_tokens, int64_t batch_size, const Collectives& col) {
  const auto t0 = std::chrono::steady_clock::now();
  LmEvalResult r;
  r.likelihood = RankingMetrics(ks);
  r.generation = RankingMetrics({1});
  SamplingOptions o;
  o.max_new_tokens = max_new_tokens;
  o.temperature = 0;
  o.stop_strings = {kAnswerClose};
  for (const char* t : {"<|im_end|>", "<|endoftext|>"}) {
    if (auto id = tok.token_id(t)) o.stop_tokens.push_back(*id);
  }
  // Special tokens decode to their text here (the answer tags may be special tokens).
  const TokenText text = [&tok](int64_t id) -> std::string {
    if (id >= tok.vocab_size()) return std::string();
    try {
      return tok.token_bytes(static_cast<TokenId>(id));
    } catch (const std::exception&) {
      return std::string();
    }
  };
  std::vector<Example> examples;
  std::vector<std::string> prompts;
  auto flush = [&] {
    if (examples.empty()) return;
    std::vector<GenerationRequest> reqs;
    for (const auto& p : prompts) {
      const auto ids = tok.encode(p);
      reqs.push_back({std::vector<int64_t>(ids.begin(), ids.end()), 0, nullptr});
    }
    GenerationStats stats;
    const std::vector<Generation> out = generate(model, reqs, o, text, 0, &stats);
    r.generated_tokens += stats.generated_tokens;
    for (size_t i = 0; i < examples.size(); ++i) {
      const Example& e = examples[i];
      std::string completion = out[i].text;
      if (out[i].finish == FinishReason::kStopString) completion += kAnswerClose;
      const int32_t choice = parse_answer(completion, e, reader.catalog());
      r.valid += choice >= 0;
      r.generation.add_choice(choice, e.target_index);
      // Likelihood: the model's reasoning, then each candidate's answer.
      std::string reasoning = out[i].text.substr(0, out[i].text.find(kAnswerOpen));
      if (reasoning.find("<think>") == std::string::npos) reasoning = "<think>\n" + reasoning;
      if (reasoning.find("</think>") == std::string::npos) reasoning += "\n</think>";
      const auto prefix_ids = tok.encode(prompts[i] + reasoning + kAnswerOpen);
      std::vector<std::vector<int64_t>> answers;
      for (size_t c = 0; c < e.candidates.size(); ++c) {
        const auto ids = tok.encode(std::to_string(c + 1) + kAnswerClose);
        answers.emplace_back(ids.begin(), ids.end());
      }
      r.likelihood.add(score_continuations(model, std::vector<int64_t>(prefix_ids.begin(), prefix_ids.end()), answers), e.target_index);
      ++r.examples;
    }
    examples.clear();
    prompts.clear();
  };
  Example e;
  ChainBuffer chains;
  while (reader.next(&e, &chains)) {
    prompts.push_back(render_chat_prompt(e, chains, 0, chains.size(), reader.catalog()));
    examples.push_back(e);
    chains.clear();
    if (static_cast<int64_t>(examples.size()) >= batch_size) flush();
  }
  flush();
  r.likelihood = sum_over_ranks(r.likelihood, col);
  r.generation = sum_over_ranks(r.generation, col);
  double counts[3] = {static_cast<double>(r.examples), static_cast<double>(r.valid), static_cast<double>(r.generated_tokens)};
  col.sum_doubles(counts, 3);
  r.examples = static_cast<int64_t>(counts[0]);
  r.valid = static_cast<int64_t>(counts[1]);
  r.generated_tokens = static_cast<int64_t>(counts[2]);
  if (r.examples == 0) throw DataError("eval: the split has no example to evaluate (every rank's share was empty)");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace r2rec
