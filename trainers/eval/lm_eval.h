// Evaluation of the language model on the stored candidate lists (docs/design.md §6).
//
// For each example of the split (this rank's share):
//   generation: the reasoning-form chat prompt (trainers/task/task.h) is completed greedily (max_new_tokens) with
//               the answer span constrained to the candidates: once the model writes "<answer>", only a
//               candidate's answer label + "</answer>" can follow (trainers/lm/answering.h answer_constraint). A
//               completion that ends without "<answer>" (stop token or length) gets "<answer>" appended and its
//               constrained greedy choice. The choice gives HR@1 by generation. `valid` counts the completions
//               that wrote "<answer>" on their own and whose unconstrained arg-max at every answer step was an
//               allowed token: the valid-answer rate without the constraint's help.
//   likelihood: the direct-form prompt (answer only, no reasoning: trainers/task/task.h PromptForm::kDirect) followed
//               by "<answer>"; the candidates are ranked by log p(answer label | prompt) (one batched forward when
//               every label starts with its own token, else score_continuations per example). It conditions on
//               no text that names a candidate, so it is a ranking of its own, not the generation's choice
//               again. The model learns the direct form from the task.direct_share traces.
//   reasoning:  every completion is checked against its prompt (trainers/task/citations.h): citations grounded,
//               votes lines true, answers consistent with their own stated evidence; and, with
//               LmEvalOptions::counterfactual, the counterfactual test (below).
#pragma once

#include <cstdint>
#include <functional>

#include "core/model/generation.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/dp_group.h"
#include "sampler/shard_reader.h"
#include "trainers/eval/metrics.h"
#include "trainers/task/task.h"

namespace r2rec {

struct LmEvalResult {
  RankingMetrics likelihood{{1}};
  RankingMetrics generation{{1}};
  int64_t examples = 0;
  int64_t valid = 0;   // see above
  int64_t forced = 0;  // completions that needed "<answer>" appended
  int64_t generated_tokens = 0;
  // The completions' reasoning checked against their prompts (trainers/task/citations.h): chains cited, of them
  // grounded; count claims (a votes line, or "No chain reaches it." about the candidate named), of them true to
  // the prompt; completions whose answer is what their own stated evidence favours (ReasoningCheck::consistent).
  int64_t citations = 0, grounded_citations = 0, votes_lines = 0, true_votes = 0, consistent = 0;
  // The counterfactual test (LmEvalOptions::counterfactual): completions tested, of them the answers that changed
  // with the cited chains removed, and with as many uncited chains removed.
  int64_t cf_examples = 0, cf_changed_cited = 0, cf_changed_uncited = 0;
  double seconds = 0;
};

// One example's answer by generation, as evaluation scores it (see above).
struct GeneratedAnswer {
  std::string text;     // the completion, with "<answer>" + the forced answer appended when it was forced
  int32_t choice = -1;  // the candidate it names (0-based), -1 when malformed
  bool forced = false;  // it ended without "<answer>" and got it appended
  bool valid = false;   // wrote "<answer>" itself and agreed with the constraint at every answer step
  FinishReason finish = FinishReason::kLength;
  int64_t tokens = 0;  // generated tokens (the forced span not counted)
};

// Greedy completions of the reasoning-form chat prompts `prompts` (token ids) of `examples`, answers constrained
// to each example's candidates (`answers`: trainers/lm/answering.h candidate_answer_ids), forced where needed.
std::vector<GeneratedAnswer> generate_answers(TransformerImpl& model, const Tokenizer& tokenizer,
                                              const std::vector<Example>& examples,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const std::vector<std::vector<std::vector<int64_t>>>& answers,
                                              const Catalog& catalog, int64_t max_new_tokens,
                                              GenerationStats* stats = nullptr);

struct LmEvalOptions {
  std::vector<int64_t> ks = {1, 3, 5, 10};
  int64_t max_new_tokens = 256;  // 0: no generation (likelihood only)
  int64_t batch_size = 64;       // prompts per generation batch
  // The counterfactual test: a completion citing m of the prompt's chains (m > 0, and at least m uncited) is
  // generated again from the prompt without those m chains, and from the prompt without m uncited chains drawn
  // by Rng(seed, kCounterfactual, example id); an answer that changes in the first and not the second depends on
  // the evidence it cited. Costs up to two more generations per example.
  bool counterfactual = false;
  uint64_t seed = 0;
  // Called on every rank after each batch with the examples this rank has done and its share's size
  // (progress lines); null = none.
  std::function<void(int64_t done, int64_t share)> on_batch;
};

// Evaluates the model on every record `reader` yields (its rank share; ReaderOptions::limit caps the split) and
// sums the result over ranks.
LmEvalResult evaluate_lm(TransformerImpl& model, const Tokenizer& tokenizer, ShardReader& reader,
                         const TaskFormat& format, const LmEvalOptions& options, const DataParallelGroup& group);

}  // namespace r2rec
