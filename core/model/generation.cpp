#include "core/model/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

#include "core/model/cpu_kernels.h"
#include "core/rng.h"

namespace r2rec {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kAnswer:
      return "answer";
  }
  return "?";
}

namespace {

// Eval mode for the duration of a call; the caller's mode comes back afterwards.
class EvalMode {
 public:
  explicit EvalMode(TransformerImpl& m) : model_(m), was_training_(m.is_training()) { model_.eval(); }
  ~EvalMode() { model_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  TransformerImpl& model_;
  bool was_training_;
};

struct Row {
  size_t request;
  Rng rng;
  int32_t node = -1;  // trie node while the answer constraint is active
  bool done = false;
  int64_t next_position = 0;
};

void check_options(const SamplingOptions& o, bool has_text, const std::vector<GenerationRequest>& requests) {
  if (o.max_new_tokens < 0) throw std::invalid_argument("generate: max_new_tokens must be >= 0");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw std::invalid_argument("generate: temperature must be >= 0");
  if (o.top_k < 0) throw std::invalid_argument("generate: top_k must be >= 0");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("generate: top_p must be in (0, 1]");
  bool needs_text = !o.stop_strings.empty();
  for (const auto& r : requests) needs_text = needs_text || (r.constraint && !r.constraint->trigger.empty());
  if (needs_text && !has_text)
    throw std::invalid_argument("generate: stop strings and constraint triggers need a token_text function");
}

// Distinct prompts of `prompts` in order of first appearance; `row_prompt[i]` is prompt i's index among them.
// Without sharing every row is its own prompt.
std::vector<const std::vector<int64_t>*> distinct_prompts(const std::vector<const std::vector<int64_t>*>& prompts,
                                                          bool share, std::vector<int64_t>& row_prompt) {
  std::vector<const std::vector<int64_t>*> unique;
  std::map<std::vector<int64_t>, int64_t> seen;
  row_prompt.clear();
  for (const auto* p : prompts) {
    if (share) {
      const auto it = seen.emplace(*p, static_cast<int64_t>(unique.size())).first;
      if (it->second == static_cast<int64_t>(unique.size())) unique.push_back(p);
      row_prompt.push_back(it->second);
    } else {
      row_prompt.push_back(static_cast<int64_t>(unique.size()));
      unique.push_back(p);
    }
  }
  return unique;
}

// What the look-up copy proposes after prompt + tokens, copying from the prompt (core/model/copy_lookup.h).
CopyProposal copy_after(const TransformerImpl& model, const std::vector<int64_t>& prompt,
                        const std::vector<int64_t>& tokens) {
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (tokens.empty()) return copy_proposal(prompt.data(), P, model.config.copy_lookup, P);
  std::vector<int64_t> seq(prompt);
  seq.insert(seq.end(), tokens.begin(), tokens.end());
  return copy_proposal(seq.data(), static_cast<int64_t>(seq.size()), model.config.copy_lookup, P);
}

// The prefill of U distinct prompts, left-padded into one batch: their KV cache (U rows of P columns) and the
// final-norm hidden state of each one's last token [U, d], the state that predicts what follows it.
struct PromptPrefill {
  KvCache cache;
  torch::Tensor last;
  int64_t tokens = 0;  // real prompt tokens computed
};

PromptPrefill prefill_prompts(TransformerImpl& model, const std::vector<const std::vector<int64_t>*>& unique) {
  const int64_t U = static_cast<int64_t>(unique.size());
  int64_t P = 0;
  for (const auto* p : unique) P = std::max<int64_t>(P, static_cast<int64_t>(p->size()));
  torch::Tensor ids = torch::zeros({U, P}, torch::kLong), valid = torch::zeros({U, P}, torch::kBool);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto valid_a = valid.accessor<bool, 2>();
  PromptPrefill out;
  for (int64_t u = 0; u < U; ++u) {
    const int64_t n = static_cast<int64_t>(unique[u]->size());
    for (int64_t t = 0; t < n; ++t) ids_a[u][P - n + t] = (*unique[u])[t], valid_a[u][P - n + t] = true;
    out.tokens += n;
  }
  const torch::Device device = model.embed_tokens->weight.device();
  const torch::Tensor positions = (valid.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  out.cache = model.new_cache(U, P);
  out.last = model.forward_cached(ids.to(device), positions.to(device), valid.to(device), out.cache).select(1, P - 1);
  return out;
}

void generate_batch(TransformerImpl& model, const std::vector<GenerationRequest>& requests, size_t begin, size_t end,
                    const SamplingOptions& o, const TokenText& token_text, std::vector<Generation>& out,
                    GenerationStats& stats) {
  const int64_t V = model.config.vocab_size;
  const int64_t B = static_cast<int64_t>(end - begin);
  std::vector<const std::vector<int64_t>*> prompts;
  for (size_t r = begin; r < end; ++r) {
    if (requests[r].prompt.empty())
      throw std::invalid_argument("generate: request " + std::to_string(r) + " has an empty prompt");
    for (const int64_t id : requests[r].prompt) {
      if (id < 0 || id >= V) {
        throw std::invalid_argument("generate: request " + std::to_string(r) + " has token id " + std::to_string(id) +
                                    " outside the vocabulary (" + std::to_string(V) + ")");
      }
    }
    prompts.push_back(&requests[r].prompt);
  }
  std::vector<int64_t> row_prompt;
  const std::vector<const std::vector<int64_t>*> unique = distinct_prompts(prompts, o.share_prompts, row_prompt);
  const int64_t U = static_cast<int64_t>(unique.size());
  stats.shared_rows += B - U;
  std::vector<Row> rows;
  for (int64_t b = 0; b < B; ++b) {
    const GenerationRequest& req = requests[begin + b];
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    if (req.constraint && req.constraint->trie && req.constraint->trie->max_token() >= V) {
      throw std::invalid_argument("generate: request " + std::to_string(begin + b) + "'s answer trie holds token id " +
                                  std::to_string(req.constraint->trie->max_token()) + " outside the vocabulary (" +
                                  std::to_string(V) + ")");
    }
    Row row{begin + b, Rng(stream_key(req.seed, static_cast<uint64_t>(Stream::kGeneration)))};
    row.next_position = n;
    if (req.constraint && req.constraint->trie && req.constraint->trigger.empty() && !req.constraint->trie->is_leaf(0))
      row.node = 0;
    rows.push_back(row);
  }
  const auto started = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  const torch::Device device = model.embed_tokens->weight.device();
  PromptPrefill prefill = prefill_prompts(model, unique);
  stats.prefill_tokens += prefill.tokens;
  std::vector<CopyProposal> copy;
  if (model.config.copy_lookup > 0)
    for (const auto* p : unique) copy.push_back(copy_after(model, *p, {}));
  torch::Tensor logits = model.lm_logits(prefill.last, &copy);                                      // [U, V]
  if (U != B) logits = logits.index_select(0, torch::tensor(row_prompt, torch::kLong).to(device));  // [B, V]
  // Each row forks from its prompt here: its own columns hold what it samples (at most max_new_tokens - 1 are fed).
  KvCache cache = model.fork_cache(std::move(prefill.cache), row_prompt, o.max_new_tokens);
  torch::Tensor hidden;
  size_t longest_stop = 0;
  for (const auto& s : o.stop_strings) longest_stop = std::max(longest_stop, s.size());

  auto decode_started = started;
  for (bool first = true;; first = false) {
    // A chosen token's log-prob is its logit less the row's log-sum-exp, as completion_logprobs computes it.
    const torch::Tensor cpu_logits = logits.to(torch::kFloat).to(torch::kCPU).contiguous();
    const torch::Tensor lse = row_logsumexp(cpu_logits);
    const float* norm = lse.data_ptr<float>();
    const float* lg = cpu_logits.data_ptr<float>();
    for (size_t i = 0; i < rows.size(); ++i) {
      Row& row = rows[i];
      if (row.done) continue;
      Generation& g = out[row.request];
      const auto& constraint = requests[row.request].constraint;
      const std::vector<int64_t>* allowed = row.node >= 0 ? &constraint->trie->allowed(row.node) : nullptr;
      const int64_t token = choose_token(lg + i * V, V, o, row.rng, allowed);
      if (token < 0) {  // cannot happen: tries are checked against the vocabulary above
        throw std::logic_error("generate: no token to choose from");
      }
      if (allowed != nullptr) {  // would the model have chosen an allowed token on its own?
        const float* row_logits = lg + i * V;
        const int64_t free_choice = first_argmax(row_logits, V);
        ++g.constrained_steps;
        g.unconstrained_agreed += std::binary_search(allowed->begin(), allowed->end(), free_choice);
      }
      g.tokens.push_back(token);
      g.logprobs.push_back(lg[i * V + token] - norm[i]);
      ++stats.generated_tokens;
      if (row.node >= 0) {
        // Inside the answer span the trie rules: no stop token or string can cut a candidate short.
        row.node = constraint->trie->next(row.node, token);
        if (token_text) g.text += token_text(token);
        if (constraint->trie->is_leaf(row.node)) row.done = true, g.finish = FinishReason::kAnswer;
      } else if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), token) != o.stop_tokens.end()) {
        row.done = true;
        g.finish = FinishReason::kStopToken;
      } else if (token_text) {
        const size_t before = g.text.size();
        g.text += token_text(token);
        if (longest_stop > 0) {
          const size_t from = before >= longest_stop ? before - longest_stop + 1 : 0;
          size_t cut = std::string::npos;
          for (const auto& s : o.stop_strings) {
            if (s.empty()) continue;
            const size_t at = g.text.find(s, from);
            if (at != std::string::npos) cut = std::min(cut, at);
          }
          if (cut != std::string::npos) {
            g.text.resize(cut);
            row.done = true;
            g.finish = FinishReason::kStopString;
          }
        }
        if (!row.done && constraint && constraint->trie && !constraint->trigger.empty() &&
            !constraint->trie->is_leaf(0)) {
          const std::string& trigger = constraint->trigger;
          const size_t from = before >= trigger.size() ? before - trigger.size() + 1 : 0;
          const size_t at = g.text.find(trigger, from);
          if (at != std::string::npos && at + trigger.size() == g.text.size()) {
            row.node = 0;  // the trigger ends at this token: the answer span starts
          } else if (at != std::string::npos) {
            ++stats.trigger_mid_token;  // the trigger ended inside a token: the span cannot be constrained
          }
        }
      }
      if (!row.done && static_cast<int64_t>(g.tokens.size()) >= o.max_new_tokens) {
        row.done = true;
        g.finish = FinishReason::kLength;
      }
    }
    if (first) {
      stats.prefill_seconds += seconds_since(started);
      decode_started = std::chrono::steady_clock::now();
    }
    std::vector<int64_t> alive;
    for (size_t i = 0; i < rows.size(); ++i)
      if (!rows[i].done) alive.push_back(static_cast<int64_t>(i));
    if (alive.empty()) break;
    if (alive.size() * 2 <= rows.size()) {  // drop finished rows from the batch and the cache
      cache.keep_rows(torch::tensor(alive, torch::kLong).to(device));
      std::vector<Row> kept;
      for (int64_t i : alive) kept.push_back(rows[i]);
      rows.swap(kept);
      ++stats.compactions;
    }
    const int64_t R = static_cast<int64_t>(rows.size());
    // Filled through raw pointers: indexing a tensor element by element costs two ops per element.
    torch::Tensor step_ids = torch::empty({R, 1}, torch::kLong), step_pos = torch::empty({R, 1}, torch::kLong);
    torch::Tensor step_valid = torch::empty({R, 1}, torch::kBool);
    int64_t* ids_p = step_ids.data_ptr<int64_t>();
    int64_t* pos_p = step_pos.data_ptr<int64_t>();
    bool* valid_p = step_valid.data_ptr<bool>();
    for (int64_t i = 0; i < R; ++i) {
      const Generation& g = out[rows[i].request];
      ids_p[i] = g.tokens.empty() ? 0 : g.tokens.back();
      pos_p[i] = rows[i].next_position;
      valid_p[i] = !rows[i].done;
      if (!rows[i].done) ++rows[i].next_position;
    }
    hidden = model.forward_cached(step_ids.to(device), step_pos.to(device), step_valid.to(device), cache);
    copy.assign(model.config.copy_lookup > 0 ? rows.size() : 0, CopyProposal{});
    for (size_t i = 0; i < copy.size(); ++i)
      if (!rows[i].done) copy[i] = copy_after(model, requests[rows[i].request].prompt, out[rows[i].request].tokens);
    logits = model.lm_logits(hidden.select(1, 0), &copy);
    ++stats.decode_steps;
  }
  stats.decode_seconds += seconds_since(decode_started);
}

}  // namespace

std::vector<Generation> generate(TransformerImpl& model, const std::vector<GenerationRequest>& requests,
                                 const SamplingOptions& options, const TokenText& token_text, int64_t max_batch,
                                 GenerationStats* stats) {
  check_options(options, static_cast<bool>(token_text), requests);
  std::vector<Generation> out(requests.size());
  GenerationStats local;
  if (options.max_new_tokens > 0) {
    EvalMode eval(model);
    // Inference mode, not just no-grad: nothing made here reaches autograd (the caller gets token ids and
    // floats), and ops skip version counters and the autograd dispatch.
    c10::InferenceMode inference;
    const size_t chunk = max_batch > 0 ? static_cast<size_t>(max_batch) : std::max<size_t>(1, requests.size());
    for (size_t begin = 0; begin < requests.size(); begin += chunk) {
      generate_batch(model, requests, begin, std::min(requests.size(), begin + chunk), options, token_text, out, local);
    }
  }
  if (stats != nullptr) *stats = local;
  return out;
}

namespace {

// log p(completion token | ...) at the positions `picked` [B, L, d] (final-norm hidden states whose logits
// predict each completion token), zero past each completion's end.
torch::Tensor picked_logprobs(TransformerImpl& model, const torch::Tensor& picked,
                              const std::vector<const std::vector<int64_t>*>& prompts,
                              const std::vector<std::vector<int64_t>>& completions) {
  const int64_t B = picked.size(0), L = picked.size(1);
  torch::Tensor target = torch::zeros({B, L}, torch::kLong), keep = torch::zeros({B, L}, torch::kFloat);
  auto tgt_a = target.accessor<int64_t, 2>();
  auto keep_a = keep.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (size_t j = 0; j < completions[b].size(); ++j) tgt_a[b][j] = completions[b][j], keep_a[b][j] = 1;
  }
  std::vector<CopyProposal> copy;
  if (model.config.copy_lookup > 0) {  // row b, step j: what prompt b + completion b's first j tokens propose
    copy.resize(static_cast<size_t>(B * L));
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> seq(*prompts[b]);
      seq.insert(seq.end(), completions[b].begin(), completions[b].end());
      const int64_t P = static_cast<int64_t>(prompts[b]->size());
      for (int64_t j = 0; j < static_cast<int64_t>(completions[b].size()); ++j)
        copy[static_cast<size_t>(b * L + j)] = copy_proposal(seq.data(), P + j, model.config.copy_lookup, P);
    }
  }
  const torch::Device device = picked.device();
  const torch::Tensor lp =
      model.target_logprobs(picked.reshape({B * L, picked.size(2)}), target.to(device).reshape({-1}), &copy);
  return lp.reshape({B, L}) * keep.to(device);
}

// completion_logprobs with each distinct prompt run once: its final hidden state predicts the first completion
// token of each of its rows, and the rows' completions (all but their last token, fed at once) attend to its
// cached keys/values through a forked cache.
torch::Tensor shared_prompt_logprobs(TransformerImpl& model, const std::vector<const std::vector<int64_t>*>& unique,
                                     const std::vector<int64_t>& row_prompt,
                                     const std::vector<std::vector<int64_t>>& completions, int64_t L) {
  const torch::Device device = model.embed_tokens->weight.device();
  const int64_t B = static_cast<int64_t>(row_prompt.size());
  PromptPrefill prefill = prefill_prompts(model, unique);
  torch::Tensor picked = prefill.last.index_select(0, torch::tensor(row_prompt, torch::kLong).to(device)).unsqueeze(1);
  if (L > 1) {
    torch::Tensor step = torch::zeros({B, L - 1}, torch::kLong), pos = torch::zeros({B, L - 1}, torch::kLong);
    torch::Tensor fed = torch::zeros({B, L - 1}, torch::kBool);
    auto step_a = step.accessor<int64_t, 2>();
    auto pos_a = pos.accessor<int64_t, 2>();
    auto fed_a = fed.accessor<bool, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = static_cast<int64_t>(unique[static_cast<size_t>(row_prompt[b])]->size());
      for (int64_t j = 0; j < L - 1; ++j) {
        pos_a[b][j] = n + j;
        if (j + 1 < static_cast<int64_t>(completions[b].size())) step_a[b][j] = completions[b][j], fed_a[b][j] = true;
      }
    }
    KvCache cache = model.fork_cache(std::move(prefill.cache), row_prompt, L - 1);
    const torch::Tensor h = model.forward_cached(step.to(device), pos.to(device), fed.to(device), cache);
    picked = torch::cat({picked, h}, 1);  // [B, L, d]
  }
  std::vector<const std::vector<int64_t>*> prompts;
  for (const int64_t u : row_prompt) prompts.push_back(unique[static_cast<size_t>(u)]);
  return picked_logprobs(model, picked, prompts, completions);
}

}  // namespace

torch::Tensor completion_logprobs(TransformerImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                  const std::vector<std::vector<int64_t>>& completions, bool share_prompts) {
  if (prompts.size() != completions.size())
    throw std::invalid_argument("completion_logprobs: prompts and completions differ in count");
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0, L = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (prompts[b].empty())
      throw std::invalid_argument("completion_logprobs: row " + std::to_string(b) + " has an empty prompt");
    T = std::max<int64_t>(T, static_cast<int64_t>(prompts[b].size() + completions[b].size()));
    L = std::max<int64_t>(L, static_cast<int64_t>(completions[b].size()));
  }
  const torch::Device device = model.embed_tokens->weight.device();
  if (L == 0) return torch::zeros({B, 0}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  const bool checkpointing = model.activation_checkpointing && model.is_training() && torch::GradMode::is_enabled();
  if (share_prompts && !checkpointing) {
    std::vector<const std::vector<int64_t>*> all;
    for (const auto& p : prompts) all.push_back(&p);
    std::vector<int64_t> row_prompt;
    const auto unique = distinct_prompts(all, true, row_prompt);
    if (unique.size() < prompts.size()) return shared_prompt_logprobs(model, unique, row_prompt, completions, L);
  }
  torch::Tensor ids = torch::zeros({B, T}, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
  torch::Tensor source = torch::zeros({B, L}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  auto src_a = source.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = static_cast<int64_t>(prompts[b].size()), n = static_cast<int64_t>(completions[b].size());
    const int64_t first = T - P - n;  // left padding
    for (int64_t t = 0; t < P; ++t) ids_a[b][first + t] = prompts[b][t], mask_a[b][first + t] = 1;
    for (int64_t j = 0; j < n; ++j) {
      ids_a[b][T - n + j] = completions[b][j];
      mask_a[b][T - n + j] = 1;
      src_a[b][j] = T - n + j - 1;  // the logits at the previous column predict token j
    }
  }
  const torch::Tensor hidden = model.hidden_states(ids.to(device), mask.to(device));  // [B, T, d]
  const int64_t d = hidden.size(2);
  std::vector<const std::vector<int64_t>*> rows;
  for (const auto& p : prompts) rows.push_back(&p);
  return picked_logprobs(model, hidden.gather(1, source.to(device).unsqueeze(-1).expand({B, L, d})), rows, completions);
}

std::vector<double> score_continuations(TransformerImpl& model, const std::vector<int64_t>& prefix,
                                        const std::vector<std::vector<int64_t>>& continuations) {
  if (prefix.empty()) throw std::invalid_argument("score_continuations: empty prefix");
  EvalMode eval(model);
  torch::NoGradGuard no_grad;
  const size_t C = continuations.size();
  int64_t L = 0;
  for (const auto& c : continuations) L = std::max<int64_t>(L, static_cast<int64_t>(c.size()));
  std::vector<double> scores(C, 0.0);
  if (C == 0 || L == 0) return scores;
  // One prefix shared by all C rows: completion_logprobs' shared-prompt pass with a single prompt.
  const torch::Tensor lp =
      shared_prompt_logprobs(model, {&prefix}, std::vector<int64_t>(C, 0), continuations, L).to(torch::kDouble);
  const torch::Tensor sums = lp.sum(1).to(torch::kCPU).contiguous();
  for (size_t c = 0; c < C; ++c) scores[c] = sums.data_ptr<double>()[c];
  return scores;
}

}  // namespace r2rec
