// The generation engine (docs/design.md §3): batched KV-cached sampling for rollout workers, the model teacher and
// evaluation, and the teacher-forced log-probabilities the RL loss needs, on the same modules.
//
// Prompts of different lengths are left-padded into one batch; the prefill fills a KV cache once per distinct
// prompt (the G completions of a GRPO group share it: one prefill, and decoding attends to the prompt's keys and
// values once per prompt rather than once per row), then each step feeds one token per live row. Rows that finish are
// dropped from the batch once half of them are done (the cache rows are compacted), so long and short completions share
// a batch cheaply.
//
// Sampling (core/model/sampling.h): temperature 0 is greedy (arg-max); otherwise logits / temperature, then top-k,
// then top-p (the smallest set of most likely tokens whose probability reaches p), drawn with a per-sequence
// SplitMix64 stream (core/rng.h) keyed by the request's seed — a sequence's tokens depend on its prompt and seed, not
// on which other prompts share its batch (up to floating-point effects of the batch shape).
//
// Log-probs: every returned token carries log p(token | prefix) under the model itself (temperature 1, no top-k /
// top-p / constraint renormalisation), which is what `completion_logprobs` computes teacher-forced and what the
// GRPO ratio needs.
//
// Stops: a stop token ends the sequence and is kept (with its log-prob) but not put in `text`; a stop string ends
// it after the token that completes it, and `text` is cut before the stop string. Candidate-constrained
// decoding: once `text` ends with the constraint's trigger (e.g. "<answer>") at a token boundary, only
// continuations in its token trie are allowed (stops do not apply inside the span); reaching a leaf ends the
// sequence, so the answer span is one of the trie's sequences. A trigger that ends inside a token (a
// tokenizer that merges ">" with what follows) cannot start the span: counted in stats, the text stays free —
// make the trigger a special token (r2rec's learnt tokenizers do) or end the prompt with it and use "".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/model/sampling.h"
#include "core/model/transformer.h"

namespace r2rec {

struct GenerationRequest {
  std::vector<int64_t> prompt;  // at least one token
  uint64_t seed = 0;
  std::shared_ptr<const AnswerConstraint> constraint;  // optional
};

enum class FinishReason { kLength, kStopToken, kStopString, kAnswer };
const char* finish_reason_name(FinishReason reason);  // "length", "stop_token", "stop_string", "answer"

struct Generation {
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;  // one per token
  std::string text;             // decoded completion (when a token_text function was given)
  FinishReason finish = FinishReason::kLength;
  int64_t constrained_steps = 0;     // tokens chosen inside the answer span (under the constraint)
  int64_t unconstrained_agreed = 0;  // of those, the steps where the model's own arg-max was an allowed token
};

// The bytes of one token (Tokenizer::decode of one id); needed for stop strings and constraints.
using TokenText = std::function<std::string(int64_t)>;

struct GenerationStats {
  int64_t prefill_tokens = 0;  // real (unpadded) prompt tokens computed (a shared prompt counts once)
  int64_t shared_rows = 0;     // rows that reused another row's prompt prefill
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;
  int64_t compactions = 0;
  int64_t trigger_mid_token = 0;  // constraint triggers that ended inside a token (span left free)
  double prefill_seconds = 0;     // prompt forward + choosing the first token
  double decode_seconds = 0;      // every later step
};

// Generates a completion for every request (in order), in batches of at most `max_batch` rows (0 = all at
// once). The model runs in eval mode without autograd; its training flag is restored afterwards.
std::vector<Generation> generate(TransformerImpl& model, const std::vector<GenerationRequest>& requests,
                                 const SamplingOptions& options, const TokenText& token_text = {},
                                 int64_t max_batch = 0, GenerationStats* stats = nullptr);

// Teacher-forced log p(completion[i][j] | prompt[i], completion[i][<j]) as a [B, Lmax] float tensor (zeros past
// each completion's end), differentiable when autograd is on; logits are formed only at completion positions.
// When rows repeat a prompt (and share_prompts), each distinct prompt is run once and its rows' completions
// attend to its keys/values (gradients flow back into the one prompt pass); otherwise one forward over the
// left-padded prompt+completion rows. Activation checkpointing in training takes the plain forward.
torch::Tensor completion_logprobs(TransformerImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                  const std::vector<std::vector<int64_t>>& completions, bool share_prompts = true);

// log p(continuation_c | prefix) for many continuations of one prefix (e.g. the C candidate answers after the
// model's reasoning): the prefix is run once into a KV cache that is then shared by C rows (completion_logprobs'
// shared-prompt pass), so scoring costs one prefill plus C x (continuation length) tokens. Empty continuations
// score 0. Eval mode, no autograd.
std::vector<double> score_continuations(TransformerImpl& model, const std::vector<int64_t>& prefix,
                                        const std::vector<std::vector<int64_t>>& continuations);

}  // namespace r2rec
