#include "trainers/lm/answering.h"

namespace r2rec {

SamplingOptions answer_sampling(const Tokenizer& tokenizer, int64_t max_new_tokens, double temperature, double top_p) {
  SamplingOptions o;
  o.max_new_tokens = max_new_tokens;
  o.temperature = temperature;
  o.top_p = top_p;
  o.stop_strings = {kAnswerClose};
  o.stop_tokens = end_of_turn_tokens(tokenizer);
  return o;
}

std::vector<int64_t> token_ids(const Tokenizer& tokenizer, const std::string& text) {
  const std::vector<TokenId> ids = tokenizer.encode(text);
  return {ids.begin(), ids.end()};
}

TokenText answer_token_text(const Tokenizer& tokenizer) {
  return [&tokenizer](int64_t id) { return tokenizer.piece(id, /*specials=*/true); };
}

std::string answer_completion(const Generation& g) {
  return g.finish == FinishReason::kStopString ? g.text + kAnswerClose : g.text;
}

std::vector<std::vector<int64_t>> candidate_answer_ids(const Tokenizer& tokenizer, const Example& example,
                                                       const Catalog& catalog, const TaskFormat& format) {
  std::vector<std::vector<int64_t>> out;
  for (size_t c = 0; c < example.candidates.size(); ++c) {
    out.push_back(token_ids(tokenizer, answer_label(example, static_cast<int32_t>(c), catalog, format) + kAnswerClose));
  }
  return out;
}

std::shared_ptr<const AnswerConstraint> answer_constraint(const std::vector<std::vector<int64_t>>& candidate_ids,
                                                          bool immediate) {
  auto trie = std::make_shared<TokenTrie>();
  for (const auto& ids : candidate_ids) trie->insert(ids);
  auto c = std::make_shared<AnswerConstraint>();
  c->trigger = immediate ? "" : kAnswerOpen;
  c->trie = trie;
  return c;
}

}  // namespace r2rec
