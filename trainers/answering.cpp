#include "trainers/answering.h"

#include "trainers/task.h"

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

TokenText answer_token_text(const Tokenizer& tokenizer) {
  return [&tokenizer](int64_t id) { return tokenizer.piece(id, /*specials=*/true); };
}

std::string answer_completion(const Generation& g) {
  return g.finish == FinishReason::kStopString ? g.text + kAnswerClose : g.text;
}

}  // namespace r2rec
