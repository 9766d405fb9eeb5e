#include "trainers/eval/lm_eval.h"

#include <glog/logging.h>

#include <chrono>

#include "core/error.h"
#include "core/model/generation.h"
#include "core/model/lm_head_loss.h"
#include "core/rng.h"
#include "trainers/lm/answering.h"
#include "trainers/task/citations.h"

namespace r2rec {
namespace {

// log p(first token of each candidate's answer | prefix) for a batch of prefixes, one left-padded forward:
// [B][C]. Valid when every candidate's answer starts with its own token (the item-token form).
std::vector<std::vector<double>> first_token_scores(TransformerImpl& model,
                                                    const std::vector<std::vector<int64_t>>& prefixes,
                                                    const std::vector<std::vector<std::vector<int64_t>>>& answers) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t B = static_cast<int64_t>(prefixes.size());
  int64_t T = 0;
  for (const auto& p : prefixes) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  torch::Tensor ids = torch::zeros({B, T}, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prefixes[b].size());
    for (int64_t t = 0; t < n; ++t) ids[b][T - n + t] = prefixes[b][t], mask[b][T - n + t] = 1;
  }
  const torch::Device device = model.embed_tokens->weight.device();
  const torch::Tensor hidden = model.hidden_states(ids.to(device), mask.to(device)).select(1, T - 1);  // [B, d]
  // Only the candidates' first tokens leave the device; the [rows, V] log-probs are formed a chunk of rows at
  // a time (core/model/lm_head_loss.h's sizes), so a large vocabulary never makes a [B, V] block.
  size_t C = 0;
  for (const auto& a : answers) C = std::max(C, a.size());
  torch::Tensor first = torch::zeros({B, static_cast<int64_t>(C)}, torch::kLong);
  auto first_a = first.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (size_t c = 0; c < answers[b].size(); ++c) first_a[b][static_cast<int64_t>(c)] = answers[b][c].front();
  }
  first = first.to(device);
  const int64_t rows = lm_head_chunk_rows(model.config.vocab_size, device.is_cpu());
  std::vector<torch::Tensor> parts;
  for (int64_t b0 = 0; b0 < B; b0 += rows) {
    const int64_t m = std::min(rows, B - b0);
    std::vector<CopyProposal> copy;
    if (model.config.copy_lookup > 0)
      for (int64_t b = b0; b < b0 + m; ++b)
        copy.push_back(
            copy_proposal(prefixes[b].data(), static_cast<int64_t>(prefixes[b].size()), model.config.copy_lookup));
    const torch::Tensor lp = torch::log_softmax(model.lm_logits(hidden.narrow(0, b0, m), &copy).to(torch::kFloat), -1);
    parts.push_back(lp.gather(1, first.narrow(0, b0, m)));
  }
  const torch::Tensor picked = B > 0 ? torch::cat(parts).to(torch::kCPU).contiguous() : torch::zeros({0, 0});
  model.train(was_training);
  std::vector<std::vector<double>> out(static_cast<size_t>(B));
  auto a = picked.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (size_t c = 0; c < answers[b].size(); ++c) out[b].push_back(a[b][static_cast<int64_t>(c)]);
  }
  return out;
}

// `chains` without the chains whose indices are in `drop` (ascending order kept).
ChainBuffer without_chains(const ChainBuffer& chains, const std::vector<int64_t>& drop) {
  ChainBuffer out;
  for (int64_t k = 0; k < chains.size(); ++k) {
    if (std::find(drop.begin(), drop.end(), k) != drop.end()) continue;
    out.nodes.insert(out.nodes.end(), chains.nodes.begin() + chains.offsets[k],
                     chains.nodes.begin() + chains.offsets[k + 1]);
    out.types.insert(out.types.end(), chains.types.begin() + chains.offsets[k],
                     chains.types.begin() + chains.offsets[k + 1]);
    out.kinds.push_back(chains.kinds[static_cast<size_t>(k)]);
    out.offsets.push_back(static_cast<int64_t>(out.nodes.size()));
  }
  return out;
}

bool distinct_first_tokens(const std::vector<std::vector<int64_t>>& answers) {
  std::vector<int64_t> firsts;
  for (const auto& a : answers) {
    if (a.empty()) return false;
    firsts.push_back(a.front());
  }
  std::sort(firsts.begin(), firsts.end());
  return std::adjacent_find(firsts.begin(), firsts.end()) == firsts.end();
}

}  // namespace

std::vector<GeneratedAnswer> generate_answers(TransformerImpl& model, const Tokenizer& tok,
                                              const std::vector<Example>& examples,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const std::vector<std::vector<std::vector<int64_t>>>& answers,
                                              const Catalog& catalog, int64_t max_new_tokens, GenerationStats* stats) {
  const size_t n = examples.size();
  if (prompts.size() != n || answers.size() != n) throw std::invalid_argument("generate_answers: sizes differ");
  const SamplingOptions greedy = answer_sampling(tok, max_new_tokens, /*temperature=*/0, /*top_p=*/1);
  SamplingOptions one = greedy;
  one.max_new_tokens = 64;  // the forced answer span: a label and the closing tag
  const TokenText text = answer_token_text(tok);
  const std::vector<int64_t> answer_open = token_ids(tok, kAnswerOpen);
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < n; ++i) requests.push_back({prompts[i], 0, answer_constraint(answers[i])});
  const std::vector<Generation> out = generate(model, requests, greedy, text, 0, stats);
  std::vector<GeneratedAnswer> result(n);
  std::vector<GenerationRequest> forced;
  std::vector<size_t> forced_of;
  for (size_t i = 0; i < n; ++i) {
    const Generation& g = out[i];
    GeneratedAnswer& a = result[i];
    a.text = answer_completion(g);
    a.finish = g.finish;
    a.tokens = static_cast<int64_t>(g.tokens.size());
    if (g.finish == FinishReason::kAnswer) {
      a.choice = parse_answer(g.text, examples[i], catalog);
      a.valid = g.constrained_steps > 0 && g.unconstrained_agreed == g.constrained_steps;
      continue;
    }
    std::vector<int64_t> p = prompts[i];
    a.text.clear();
    for (size_t t = 0; t < g.tokens.size(); ++t) {
      if (g.finish == FinishReason::kStopToken && t + 1 == g.tokens.size()) break;  // drop the end of turn
      p.push_back(g.tokens[t]);
      a.text += text(g.tokens[t]);
    }
    p.insert(p.end(), answer_open.begin(), answer_open.end());
    forced.push_back({std::move(p), 0, answer_constraint(answers[i], /*immediate=*/true)});
    forced_of.push_back(i);
  }
  if (!forced.empty()) {
    const std::vector<Generation> f = generate(model, forced, one, text);
    for (size_t k = 0; k < forced.size(); ++k) {
      GeneratedAnswer& a = result[forced_of[k]];
      a.forced = true;
      a.text += kAnswerOpen + answer_completion(f[k]);
      a.choice = parse_answer(kAnswerOpen + f[k].text, examples[forced_of[k]], catalog);
    }
  }
  return result;
}

LmEvalResult evaluate_lm(TransformerImpl& model, const Tokenizer& tok, ShardReader& reader, const TaskFormat& format,
                         const LmEvalOptions& opt, const DataParallelGroup& group) {
  const auto t0 = std::chrono::steady_clock::now();
  LmEvalResult r;
  r.likelihood = RankingMetrics(opt.ks);
  r.generation = RankingMetrics({1});
  const Catalog& catalog = reader.catalog();
  const std::vector<int64_t> answer_open = token_ids(tok, kAnswerOpen);
  std::vector<Example> examples;
  std::vector<ChainBuffer> batch_chains;                   // each example's prompt chains
  std::vector<std::vector<std::vector<int64_t>>> answers;  // [example][candidate] answer ids
  std::vector<std::vector<int64_t>> reason;                // reasoning-form prompts
  std::vector<std::vector<int64_t>> direct;                // direct-form prompts + "<answer>"
  auto flush = [&] {
    if (examples.empty()) return;
    const size_t n = examples.size();
    std::vector<int32_t> choice(n, -1);
    // Generation with the constrained answer span; completions without "<answer>" get it appended.
    if (opt.max_new_tokens > 0) {
      GenerationStats stats;
      const std::vector<GeneratedAnswer> out =
          generate_answers(model, tok, examples, reason, answers, catalog, opt.max_new_tokens, &stats);
      r.generated_tokens += stats.generated_tokens;
      std::vector<std::vector<int64_t>> cf_prompts;  // the counterfactual prompts: [2k] cited removed, [2k+1] uncited
      std::vector<Example> cf_examples;
      std::vector<std::vector<std::vector<int64_t>>> cf_answers;
      std::vector<size_t> cf_of;
      if (r.examples == 0 && group.rank() == 0 && n > 0) {
        LOG(INFO) << "eval: the first completion (" << finish_reason_name(out[0].finish) << ", " << out[0].tokens
                  << " tokens): " << out[0].text;
      }
      for (size_t i = 0; i < n; ++i) {
        const ReasoningCheck check =
            check_reasoning(out[i].text, examples[i], batch_chains[i], 0, batch_chains[i].size(), catalog, format);
        r.citations += static_cast<int64_t>(check.citations.size());
        for (const Citation& c : check.citations) r.grounded_citations += c.grounded;
        // Count claims: a votes line, or a candidate line's count ("No chain reaches it.", "Candidate X 3"): each true
        // or not.
        r.votes_lines += check.has_votes + check.count_claim;
        r.true_votes += (check.has_votes && check.votes_true) + check.count_true;
        r.consistent += check.consistent(out[i].choice);
        r.valid += out[i].valid;
        r.forced += out[i].forced;
        r.generation.add_choice(out[i].choice, examples[i]);
        if (!opt.counterfactual) continue;
        std::vector<int64_t> cited;
        for (const Citation& ci : check.citations)
          if (ci.chain >= 0 && std::find(cited.begin(), cited.end(), ci.chain) == cited.end())
            cited.push_back(ci.chain);
        std::vector<int64_t> uncited;
        for (int64_t k = 0; k < batch_chains[i].size(); ++k)
          if (std::find(cited.begin(), cited.end(), k) == cited.end()) uncited.push_back(k);
        if (cited.empty() || uncited.size() < cited.size()) continue;
        Rng rng(stream_key(opt.seed, static_cast<uint64_t>(Stream::kCounterfactual),
                           static_cast<uint64_t>(examples[i].id)));
        for (size_t k = 0; k < cited.size(); ++k)  // the first m of a seeded shuffle
          std::swap(uncited[k], uncited[k + rng.below(uncited.size() - k)]);
        uncited.resize(cited.size());
        for (const auto* drop : {&cited, &uncited}) {
          cf_prompts.push_back(
              token_ids(tok, render_chat_prompt(examples[i], without_chains(batch_chains[i], *drop), 0,
                                                batch_chains[i].size() - static_cast<int64_t>(drop->size()), catalog,
                                                format, PromptForm::kReason)));
          cf_examples.push_back(examples[i]);
          cf_answers.push_back(answers[i]);
        }
        cf_of.push_back(i);
      }
      if (!cf_of.empty()) {
        // In chunks of at most eval.batch_size prompts (pairs kept together), the bound generation holds to.
        std::vector<GeneratedAnswer> cf;
        const size_t chunk = 2 * std::max<size_t>(1, static_cast<size_t>(opt.batch_size) / 2);
        for (size_t b = 0; b < cf_prompts.size(); b += chunk) {
          const size_t e = std::min(cf_prompts.size(), b + chunk);
          GenerationStats cf_stats;
          const std::vector<GeneratedAnswer> part = generate_answers(
              model, tok, std::vector<Example>(cf_examples.begin() + b, cf_examples.begin() + e),
              std::vector<std::vector<int64_t>>(cf_prompts.begin() + b, cf_prompts.begin() + e),
              std::vector<std::vector<std::vector<int64_t>>>(cf_answers.begin() + b, cf_answers.begin() + e), catalog,
              opt.max_new_tokens, &cf_stats);
          r.generated_tokens += cf_stats.generated_tokens;
          cf.insert(cf.end(), part.begin(), part.end());
        }
        for (size_t k = 0; k < cf_of.size(); ++k) {
          ++r.cf_examples;
          r.cf_changed_cited += cf[2 * k].choice != out[cf_of[k]].choice;
          r.cf_changed_uncited += cf[2 * k + 1].choice != out[cf_of[k]].choice;
        }
      }
    }
    // Likelihood of each candidate's answer after the direct-form prompt.
    bool batched = true;
    for (const auto& a : answers) batched = batched && distinct_first_tokens(a);
    std::vector<std::vector<double>> scores;
    if (batched) {
      scores = first_token_scores(model, direct, answers);
    } else {
      for (size_t i = 0; i < n; ++i) scores.push_back(score_continuations(model, direct[i], answers[i]));
    }
    for (size_t i = 0; i < n; ++i) r.likelihood.add(scores[i], examples[i]);
    r.examples += static_cast<int64_t>(n);
    if (opt.on_batch) opt.on_batch(r.examples, reader.share_size());
    examples.clear();
    batch_chains.clear();
    answers.clear();
    reason.clear();
    direct.clear();
  };
  Example e;
  ChainBuffer chains;
  while (reader.next(&e, &chains)) {
    answers.push_back(candidate_answer_ids(tok, e, catalog, format));
    reason.push_back(
        token_ids(tok, render_chat_prompt(e, chains, 0, chains.size(), catalog, format, PromptForm::kReason)));
    direct.push_back(
        token_ids(tok, render_chat_prompt(e, chains, 0, chains.size(), catalog, format, PromptForm::kDirect)));
    direct.back().insert(direct.back().end(), answer_open.begin(), answer_open.end());
    examples.push_back(e);
    batch_chains.push_back(chains);
    chains.clear();
    if (static_cast<int64_t>(examples.size()) >= opt.batch_size) flush();
  }
  flush();
  r.likelihood = sum_over_ranks(r.likelihood, group);
  r.generation = sum_over_ranks(r.generation, group);
  double counts[12] = {static_cast<double>(r.examples),         static_cast<double>(r.valid),
                       static_cast<double>(r.forced),           static_cast<double>(r.generated_tokens),
                       static_cast<double>(r.citations),        static_cast<double>(r.grounded_citations),
                       static_cast<double>(r.votes_lines),      static_cast<double>(r.true_votes),
                       static_cast<double>(r.consistent),       static_cast<double>(r.cf_examples),
                       static_cast<double>(r.cf_changed_cited), static_cast<double>(r.cf_changed_uncited)};
  group.sum(counts, 12);
  r.citations = static_cast<int64_t>(counts[4]);
  r.grounded_citations = static_cast<int64_t>(counts[5]);
  r.votes_lines = static_cast<int64_t>(counts[6]);
  r.true_votes = static_cast<int64_t>(counts[7]);
  r.consistent = static_cast<int64_t>(counts[8]);
  r.cf_examples = static_cast<int64_t>(counts[9]);
  r.cf_changed_cited = static_cast<int64_t>(counts[10]);
  r.cf_changed_uncited = static_cast<int64_t>(counts[11]);
  r.examples = static_cast<int64_t>(counts[0]);
  r.valid = static_cast<int64_t>(counts[1]);
  r.forced = static_cast<int64_t>(counts[2]);
  r.generated_tokens = static_cast<int64_t>(counts[3]);
  if (r.examples == 0) throw DataError("eval: the split has no example to evaluate (every rank's share was empty)");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace r2rec
