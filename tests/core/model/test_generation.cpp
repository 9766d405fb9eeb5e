// The generation engine: KV-cached logits against full forwards on a ragged batch, generation log-probs against
// teacher-forced ones, greedy against arg-max of full forwards, seeding, stops, candidate-constrained answers,
// batch compaction and chunking, prompt-shared prefill (decoding and teacher forcing) against unshared.
#include <gtest/gtest.h>

#include <set>

#include "core/model/generation.h"
#include "tests/core/model/tiny_model.h"

namespace r2rec {
namespace {
using testing::make_model;
using testing::tiny;

const std::vector<std::vector<int64_t>> kPrompts = {{3, 7, 1, 9, 4}, {5, 8}, {1, 2, 3, 4, 5, 6, 7}, {11}};

// Full forward of each sequence alone; logits of the last position.
torch::Tensor last_logits_alone(TransformerImpl& m, const std::vector<int64_t>& seq) {
  torch::NoGradGuard g;
  return m.forward(torch::tensor(seq).unsqueeze(0))[0][static_cast<int64_t>(seq.size()) - 1];
}

std::vector<GenerationRequest> requests_of(const std::vector<std::vector<int64_t>>& prompts, uint64_t seed0 = 1) {
  std::vector<GenerationRequest> out;
  for (size_t i = 0; i < prompts.size(); ++i) out.push_back({prompts[i], seed0 + i, nullptr});
  return out;
}

std::string letter(int64_t id) { return std::string(1, static_cast<char>('a' + id)); }

TEST(Generation, KvCacheLogitsEqualFullForwardOnARaggedBatch) {
  for (int variant : {0, 1, 2}) {  // qwen2, llama, qwen2 with smeared keys
    const bool qwen = variant != 1;
    SCOPED_TRACE(variant == 2 ? "qwen2, smeared keys" : qwen ? "qwen2" : "llama");
    Transformer m = make_model(variant == 2 ? testing::smeared(tiny(true)) : tiny(qwen), 41);
    torch::NoGradGuard g;
    const int64_t B = static_cast<int64_t>(kPrompts.size()), P = 7, steps = 6;
    torch::Tensor ids = torch::zeros({B, P}, torch::kLong), valid = torch::zeros({B, P}, torch::kBool);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = static_cast<int64_t>(kPrompts[b].size());
      for (int64_t t = 0; t < n; ++t) ids[b][P - n + t] = kPrompts[b][t], valid[b][P - n + t] = true;
    }
    KvCache cache = m->new_cache(B, P + steps + 2);
    torch::Tensor logits =
        m->lm_logits(m->forward_cached(ids, (valid.to(torch::kLong).cumsum(1) - 1).clamp_min(0), valid, cache));
    std::vector<std::vector<int64_t>> seqs = kPrompts;
    double worst = 0;
    for (int64_t b = 0; b < B; ++b)
      worst = std::max(worst, (logits[b][P - 1] - last_logits_alone(*m, seqs[b])).abs().max().item<double>());
    // Feed fixed tokens: one at a time, then two at once (a chunked step).
    for (int64_t s = 0; s < steps;) {
      const int64_t T = s == steps - 2 ? 2 : 1;
      torch::Tensor step_ids = torch::zeros({B, T}, torch::kLong), pos = torch::zeros({B, T}, torch::kLong);
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t t = 0; t < T; ++t) {
          const int64_t token = (b * 5 + (s + t) * 3 + 1) % 23;
          step_ids[b][t] = token;
          pos[b][t] = static_cast<int64_t>(seqs[b].size());
          seqs[b].push_back(token);
        }
      }
      logits = m->lm_logits(m->forward_cached(step_ids, pos, torch::ones({B, T}, torch::kBool), cache));
      for (int64_t b = 0; b < B; ++b) {
        worst = std::max(worst, (logits[b][T - 1] - last_logits_alone(*m, seqs[b])).abs().max().item<double>());
      }
      s += T;
    }
    EXPECT_LT(worst, 1e-4) << "max |cached - full forward| logits";
    std::printf("max |KV-cache logits - full forward| = %.3g (%s, ragged batch of %lld)\n", worst,
                variant == 2 ? "qwen2 smeared keys"
                : qwen       ? "qwen2"
                             : "llama",
                static_cast<long long>(B));
  }
}

// A tiny model with the look-up copy whose boosts are large enough to move the choice.
Transformer copying_model(bool qwen, uint64_t seed) {
  Transformer m = make_model(testing::copying(tiny(qwen)), seed);
  torch::NoGradGuard g;
  m->copy_gate_bias.fill_(3.0);
  return m;
}

TEST(Generation, LogprobsEqualTeacherForced) {
  for (int variant : {0, 1, 2}) {
    const bool smear = variant == 1;
    SCOPED_TRACE(variant == 2 ? "look-up copy" : smear ? "smeared keys" : "plain keys");
    Transformer m =
        variant == 2 ? copying_model(true, 43) : make_model(smear ? testing::smeared(tiny(true)) : tiny(true), 43);
    for (double temperature : {0.0, 1.0}) {
      SamplingOptions o;
      o.max_new_tokens = 12;
      o.temperature = temperature;
      o.top_p = temperature > 0 ? 0.9 : 1.0;
      const auto out = generate(*m, requests_of(kPrompts), o);
      std::vector<std::vector<int64_t>> completions;
      for (const auto& g : out) {
        EXPECT_EQ(g.tokens.size(), 12u);
        EXPECT_EQ(g.finish, FinishReason::kLength);
        completions.push_back(g.tokens);
      }
      torch::NoGradGuard ng;
      const torch::Tensor teacher = completion_logprobs(*m, kPrompts, completions);
      double worst = 0;
      for (size_t b = 0; b < out.size(); ++b) {
        for (size_t j = 0; j < out[b].tokens.size(); ++j) {
          worst = std::max(worst, std::abs(out[b].logprobs[j] - teacher[b][j].item<double>()));
        }
      }
      EXPECT_LT(worst, 1e-5) << "temperature " << temperature;
      std::printf("max |generation log-prob - teacher-forced| = %.3g (temperature %.1f%s)\n", worst, temperature,
                  variant == 2 ? ", look-up copy"
                  : smear      ? ", smeared keys"
                               : "");
    }
  }
}

// With the look-up copy too: decoding finds its proposals incrementally, forward from the whole sequence.
TEST(Generation, GreedyEqualsArgmaxOfFullForwards) {
  for (bool copy : {false, true}) {
    SCOPED_TRACE(copy ? "look-up copy" : "plain");
    Transformer m = copy ? copying_model(false, 47) : make_model(tiny(false), 47);
    SamplingOptions o;
    o.max_new_tokens = 8;
    o.temperature = 0;
    const auto out = generate(*m, requests_of(kPrompts), o);
    int copied = 0;
    for (size_t b = 0; b < kPrompts.size(); ++b) {
      std::vector<int64_t> seq = kPrompts[b];
      const int64_t P = static_cast<int64_t>(seq.size());
      for (int step = 0; step < 8; ++step) {
        const int64_t n = static_cast<int64_t>(seq.size());
        if (!copy) {
          seq.push_back(last_logits_alone(*m, seq).argmax().item<int64_t>());
          continue;
        }
        // The completion copies from its prompt only (core/model/copy_lookup.h).
        const std::vector<CopyProposal> proposal = {copy_proposal(seq.data(), n, 3, P)};
        copied += proposal[0].match > 0;
        torch::NoGradGuard g;
        const torch::Tensor h = m->hidden_states(torch::tensor(seq).unsqueeze(0))[0].narrow(0, n - 1, 1);
        seq.push_back(m->lm_logits(h, &proposal)[0].argmax().item<int64_t>());
      }
      EXPECT_EQ(out[b].tokens, std::vector<int64_t>(seq.end() - 8, seq.end())) << "row " << b;
    }
    if (copy) {
      EXPECT_GE(copied, 4) << "steps with a proposal";
    }
  }
}

TEST(Generation, SeededPerSequenceWhateverTheBatch) {
  Transformer m = make_model(tiny(true), 53);
  m->to(torch::kDouble);  // so that batch shape cannot move a draw across a boundary
  SamplingOptions o;
  o.max_new_tokens = 16;
  o.temperature = 1.3;
  o.top_k = 10;
  const auto batch = generate(*m, requests_of(kPrompts, 100), o);
  const auto again = generate(*m, requests_of(kPrompts, 100), o);
  for (size_t b = 0; b < kPrompts.size(); ++b) {
    EXPECT_EQ(batch[b].tokens, again[b].tokens);
    const auto alone = generate(*m, {{kPrompts[b], 100 + b, nullptr}}, o);
    EXPECT_EQ(batch[b].tokens, alone[0].tokens) << "row " << b;
    for (int64_t t : batch[b].tokens) EXPECT_TRUE(t >= 0 && t < 23);
  }
  const auto other = generate(*m, requests_of(kPrompts, 200), o);
  int differ = 0;
  for (size_t b = 0; b < kPrompts.size(); ++b) differ += other[b].tokens != batch[b].tokens;
  EXPECT_GE(differ, 3);
  // top-k 1 is greedy whatever the temperature.
  o.top_k = 1;
  SamplingOptions greedy;
  greedy.max_new_tokens = 16;
  greedy.temperature = 0;
  const auto k1 = generate(*m, requests_of(kPrompts, 5), o), g = generate(*m, requests_of(kPrompts, 9), greedy);
  for (size_t b = 0; b < kPrompts.size(); ++b) EXPECT_EQ(k1[b].tokens, g[b].tokens);
}

// Top-p draws come from the nucleus computed independently (sorted teacher-forced probabilities), on a vocabulary
// large enough for the engine's partition-based selection to run; a tiny top-p is greedy.
TEST(Generation, TopPSamplesStayInTheNucleus) {
  TransformerConfig c = testing::tiny(true);
  c.vocab_size = 600;
  Transformer m = make_model(c, 73);
  SamplingOptions o;
  o.max_new_tokens = 20;
  o.temperature = 1.0;
  o.top_p = 0.6;
  const auto out = generate(*m, requests_of(kPrompts, 500), o);
  std::vector<std::vector<int64_t>> completions;
  for (const auto& g : out) completions.push_back(g.tokens);
  torch::NoGradGuard ng;
  const torch::Tensor teacher = completion_logprobs(*m, kPrompts, completions);
  // The full distributions at every completion position, by one forward per row.
  int64_t checked = 0, largest = 0;
  for (size_t b = 0; b < kPrompts.size(); ++b) {
    std::vector<int64_t> seq = kPrompts[b];
    seq.insert(seq.end(), completions[b].begin(), completions[b].end());
    const torch::Tensor probs = torch::softmax(m->forward(torch::tensor(seq).unsqueeze(0))[0], -1);
    for (size_t j = 0; j < completions[b].size(); ++j) {
      const torch::Tensor p = probs[static_cast<int64_t>(kPrompts[b].size() + j) - 1];
      const auto sorted = std::get<0>(p.sort(-1, /*descending=*/true));
      double mass = 0;
      int64_t n = 0;
      while (mass < 0.6 && n < sorted.size(0)) mass += sorted[n++].item<double>();
      const double boundary = sorted[n - 1].item<double>();
      EXPECT_GE(p[completions[b][j]].item<double>(), boundary - 1e-6) << "row " << b << " token " << j;
      largest = std::max(largest, n);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 80);
  EXPECT_GT(largest, 40) << "the nucleus should be large enough to exercise the partition path";
  o.top_p = 1e-9;
  SamplingOptions greedy;
  greedy.max_new_tokens = 20;
  greedy.temperature = 0;
  const auto tiny_p = generate(*m, requests_of(kPrompts, 7), o), g = generate(*m, requests_of(kPrompts, 7), greedy);
  for (size_t b = 0; b < kPrompts.size(); ++b) EXPECT_EQ(tiny_p[b].tokens, g[b].tokens);
}

TEST(Generation, StopTokensAndStopStrings) {
  Transformer m = make_model(tiny(true), 59);
  SamplingOptions o;
  o.max_new_tokens = 20;
  o.temperature = 0;
  const auto free = generate(*m, requests_of({kPrompts[0]}), o, letter);
  const std::string text = free[0].text;
  ASSERT_EQ(text.size(), 20u);
  // A stop token: the 6th generated token ends the sequence at its first occurrence, kept with its log-prob.
  const int64_t stop = free[0].tokens[5];
  const size_t first = std::find(free[0].tokens.begin(), free[0].tokens.end(), stop) - free[0].tokens.begin();
  SamplingOptions with_token = o;
  with_token.stop_tokens = {stop};
  const auto st = generate(*m, requests_of({kPrompts[0]}), with_token, letter)[0];
  EXPECT_EQ(st.finish, FinishReason::kStopToken);
  EXPECT_EQ(st.tokens.size(), first + 1);
  EXPECT_EQ(st.logprobs.size(), first + 1);
  EXPECT_EQ(st.text, text.substr(0, first));
  // A stop string spanning two tokens: text cut before it, tokens up to the one completing it.
  SamplingOptions with_string = o;
  with_string.stop_strings = {"zz-never", text.substr(7, 2)};
  const size_t at = text.find(text.substr(7, 2));
  const auto ss = generate(*m, requests_of({kPrompts[0]}), with_string, letter)[0];
  EXPECT_EQ(ss.finish, FinishReason::kStopString);
  EXPECT_EQ(ss.text, text.substr(0, at));
  EXPECT_EQ(ss.tokens.size(), at + 2);
  // Stop strings without a way to decode are a programming error, said at once.
  EXPECT_THROW(generate(*m, requests_of({kPrompts[0]}), with_string), std::invalid_argument);
}

TEST(Generation, ConstrainedAnswersAreAlwaysCandidates) {
  Transformer m = make_model(tiny(true), 61);
  auto trie = std::make_shared<TokenTrie>();
  const std::vector<std::vector<int64_t>> candidates = {{3, 4, 9, 22}, {3, 5, 22}, {7, 1, 1, 22}, {12, 22}};
  for (const auto& c : candidates) trie->insert(c);
  const std::set<std::vector<int64_t>> allowed(candidates.begin(), candidates.end());
  auto constraint = std::make_shared<AnswerConstraint>(AnswerConstraint{"", trie});
  SamplingOptions o;
  o.max_new_tokens = 30;
  o.temperature = 2.0;  // flat: unconstrained sampling would almost never hit a candidate
  std::set<std::vector<int64_t>> seen;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const auto g = generate(*m, {{kPrompts[seed % 4], seed, constraint}}, o)[0];
    EXPECT_EQ(g.finish, FinishReason::kAnswer);
    EXPECT_TRUE(allowed.count(g.tokens)) << "seed " << seed;
    seen.insert(g.tokens);
  }
  EXPECT_GE(seen.size(), 3u);  // sampling still chooses among the candidates
  // With a trigger: free text until the completion ends with it, then a candidate.
  SamplingOptions greedy = o;
  greedy.temperature = 0;
  const auto free = generate(*m, requests_of({kPrompts[1]}), greedy, letter)[0];
  auto triggered =
      std::make_shared<AnswerConstraint>(AnswerConstraint{letter(free.tokens[0]) + letter(free.tokens[1]), trie});
  const auto g = generate(*m, {{kPrompts[1], 0, triggered}}, greedy, letter)[0];
  ASSERT_GE(g.tokens.size(), 3u);
  EXPECT_EQ(g.tokens[0], free.tokens[0]);
  EXPECT_EQ(g.tokens[1], free.tokens[1]);
  EXPECT_TRUE(allowed.count(std::vector<int64_t>(g.tokens.begin() + 2, g.tokens.end()))) << g.text;
  EXPECT_EQ(g.finish, FinishReason::kAnswer);
}

TEST(Generation, CompactionAndChunkingDoNotChangeResults) {
  Transformer m = make_model(tiny(false), 67);
  // Three rows end after one or two tokens (single-candidate tries), one runs to the limit: the batch compacts.
  std::vector<GenerationRequest> reqs = requests_of(kPrompts);
  for (int i = 0; i < 3; ++i) {
    auto trie = std::make_shared<TokenTrie>();
    trie->insert(std::vector<int64_t>(static_cast<size_t>(1 + i % 2), 4 + i));
    reqs[i].constraint = std::make_shared<AnswerConstraint>(AnswerConstraint{"", trie});
  }
  SamplingOptions o;
  o.max_new_tokens = 10;
  o.temperature = 0.8;
  GenerationStats stats;
  const auto together = generate(*m, reqs, o, {}, 0, &stats);
  EXPECT_GE(stats.compactions, 1);
  EXPECT_EQ(stats.generated_tokens, 1 + 2 + 1 + 10);
  EXPECT_EQ(stats.prefill_tokens, 5 + 2 + 7 + 1);
  const auto chunked = generate(*m, reqs, o, {}, /*max_batch=*/3);
  for (size_t b = 0; b < reqs.size(); ++b) {
    const auto alone = generate(*m, {reqs[b]}, o)[0];
    EXPECT_EQ(together[b].tokens, alone.tokens) << "row " << b;
    EXPECT_EQ(chunked[b].tokens, alone.tokens) << "row " << b;
    ASSERT_EQ(together[b].logprobs.size(), alone.logprobs.size());
    for (size_t j = 0; j < alone.logprobs.size(); ++j) EXPECT_NEAR(together[b].logprobs[j], alone.logprobs[j], 1e-5);
  }
  EXPECT_EQ(together[3].tokens.size(), 10u);
}

// A row that finishes while most rows go on stays in the batch (no compaction) and feeds a masked token; every
// row equals the same request alone.
TEST(Generation, FinishedRowsStayMaskedInTheBatch) {
  Transformer m = make_model(tiny(true), 79);
  std::vector<GenerationRequest> reqs = requests_of(kPrompts, 30);
  auto trie = std::make_shared<TokenTrie>();
  trie->insert({6});
  reqs[1].constraint = std::make_shared<AnswerConstraint>(AnswerConstraint{"", trie});
  SamplingOptions o;
  o.max_new_tokens = 9;
  o.temperature = 1.0;
  GenerationStats stats;
  const auto together = generate(*m, reqs, o, {}, 0, &stats);
  EXPECT_EQ(stats.compactions, 0);
  EXPECT_EQ(together[1].tokens, std::vector<int64_t>{6});
  EXPECT_EQ(together[1].finish, FinishReason::kAnswer);
  for (size_t b = 0; b < reqs.size(); ++b) {
    const auto alone = generate(*m, {reqs[b]}, o)[0];
    EXPECT_EQ(together[b].tokens, alone.tokens) << "row " << b;
    ASSERT_EQ(together[b].logprobs.size(), alone.logprobs.size());
    for (size_t j = 0; j < alone.logprobs.size(); ++j) EXPECT_NEAR(together[b].logprobs[j], alone.logprobs[j], 1e-5);
  }
}

// top-k then top-p: draws lie in the nucleus of the renormalised k best; extreme temperatures are greedy, and an
// answer trie outside the vocabulary is refused up front.
TEST(Generation, TopKWithTopPAndEdgeCases) {
  TransformerConfig c = testing::tiny(true);
  c.vocab_size = 600;
  Transformer m = make_model(c, 83);
  SamplingOptions o;
  o.max_new_tokens = 15;
  o.temperature = 1.0;
  o.top_k = 50;
  o.top_p = 0.5;
  const auto out = generate(*m, requests_of(kPrompts, 900), o);
  torch::NoGradGuard ng;
  for (size_t b = 0; b < kPrompts.size(); ++b) {
    std::vector<int64_t> seq = kPrompts[b];
    seq.insert(seq.end(), out[b].tokens.begin(), out[b].tokens.end());
    const torch::Tensor probs = torch::softmax(m->forward(torch::tensor(seq).unsqueeze(0))[0], -1);
    for (size_t j = 0; j < out[b].tokens.size(); ++j) {
      const auto top = probs[static_cast<int64_t>(kPrompts[b].size() + j) - 1].topk(50);
      const torch::Tensor p = std::get<0>(top) / std::get<0>(top).sum();
      double mass = 0;
      int64_t n = 0;
      while (mass < 0.5) mass += p[n++].item<double>();
      bool inside = false;
      for (int64_t i = 0; i < n + 1 && i < 50; ++i) {  // +1: tolerate a boundary tie moved by rounding
        inside = inside || std::get<1>(top)[i].item<int64_t>() == out[b].tokens[j];
      }
      EXPECT_TRUE(inside) << "row " << b << " token " << j;
    }
  }
  SamplingOptions greedy;
  greedy.max_new_tokens = 15;
  greedy.temperature = 0;
  SamplingOptions cold = greedy;
  cold.temperature = 1e-45;  // 1 / T overflows to infinity
  const auto g = generate(*m, requests_of(kPrompts, 1), greedy), k = generate(*m, requests_of(kPrompts, 2), cold);
  for (size_t b = 0; b < kPrompts.size(); ++b) EXPECT_EQ(g[b].tokens, k[b].tokens);
  auto trie = std::make_shared<TokenTrie>();
  trie->insert({5, 600});
  EXPECT_THROW(generate(*m, {{kPrompts[0], 0, std::make_shared<AnswerConstraint>(AnswerConstraint{"", trie})}}, o),
               std::invalid_argument);
}

TEST(Generation, ScoredContinuationsEqualTeacherForcedSums) {
  Transformer m = make_model(tiny(false), 89);
  const std::vector<int64_t> prefix = {3, 9, 14, 2, 2, 7};
  const std::vector<std::vector<int64_t>> conts = {{5}, {5, 6, 7}, {}, {22, 1}, {0, 0, 0, 0}};
  const auto scores = score_continuations(*m, prefix, conts);
  torch::NoGradGuard g;
  const torch::Tensor lp = completion_logprobs(*m, std::vector<std::vector<int64_t>>(conts.size(), prefix), conts);
  for (size_t c = 0; c < conts.size(); ++c)
    EXPECT_NEAR(scores[c], lp[static_cast<int64_t>(c)].sum().item<double>(), 1e-5) << c;
  EXPECT_EQ(scores[2], 0.0);
}

TEST(Generation, TeacherForcedLogprobsAreDifferentiable) {
  Transformer m = make_model(tiny(true), 71);
  const torch::Tensor lp = completion_logprobs(*m, {{1, 2, 3}, {4}}, {{5, 6}, {7, 8, 9}});
  ASSERT_EQ(lp.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(lp[0][2].item<float>(), 0.0f);  // past the first completion's end
  EXPECT_TRUE((lp.narrow(1, 0, 2) < 0).all().item<bool>());
  lp.sum().backward();
  EXPECT_TRUE(m->embed_tokens->weight.grad().defined());
  EXPECT_GT(m->embed_tokens->weight.grad().abs().sum().item<double>(), 0);
}

// GRPO-shaped batches: every prompt six times (grouped, then scattered), two thirds of the rows ending at once on
// a one-token answer (the batch compacts; a prompt all of whose rows stopped drops out of the shared prefix). Sharing
// the prompt prefill must give the same completions and log-probs as prefilling every row, for greedy and sampled
// decoding.
TEST(Generation, SharedPromptsGiveTheSameCompletionsAndLogprobs) {
  for (int variant : {0, 1, 2}) {  // qwen2, llama, qwen2 with smeared keys
    const bool qwen = variant != 1;
    SCOPED_TRACE(variant == 2 ? "qwen2, smeared keys" : qwen ? "qwen2" : "llama");
    Transformer m = make_model(variant == 2 ? testing::smeared(tiny(true)) : tiny(qwen), 97);
    std::vector<GenerationRequest> reqs;
    for (int round = 0; round < 2; ++round) {
      for (size_t p = 0; p < kPrompts.size(); ++p) {
        for (int g = 0; g < 3; ++g) {
          const size_t i = round == 0 ? p : (p + static_cast<size_t>(g)) % kPrompts.size();  // grouped, scattered
          reqs.push_back({kPrompts[i], static_cast<uint64_t>(100 + reqs.size()), nullptr});
        }
      }
    }
    auto trie = std::make_shared<TokenTrie>();
    trie->insert({5});
    const auto answer = std::make_shared<AnswerConstraint>(AnswerConstraint{"", trie});
    for (size_t r = 0; r < reqs.size(); ++r) {
      if (r % 3 != 2) reqs[r].constraint = answer;  // two of each three rows stop at once: the batch compacts
    }
    for (uint64_t seed : {7, 8}) reqs.push_back({{2, 4, 6}, seed, answer});  // a prompt whose rows all stop
    for (double temperature : {0.0, 1.0}) {
      SamplingOptions o;
      o.max_new_tokens = 9;
      o.temperature = temperature;
      o.top_p = temperature > 0 ? 0.95 : 1.0;
      GenerationStats shared_stats, plain_stats;
      const auto shared = generate(*m, reqs, o, {}, 0, &shared_stats);
      o.share_prompts = false;
      const auto plain = generate(*m, reqs, o, {}, 0, &plain_stats);
      EXPECT_EQ(shared_stats.shared_rows, static_cast<int64_t>(reqs.size() - kPrompts.size() - 1));
      EXPECT_EQ(plain_stats.shared_rows, 0);
      EXPECT_EQ(shared_stats.prefill_tokens, 5 + 2 + 7 + 1 + 3);
      EXPECT_EQ(plain_stats.prefill_tokens, 6 * (5 + 2 + 7 + 1) + 2 * 3);
      double worst = 0;
      for (size_t r = 0; r < reqs.size(); ++r) {
        EXPECT_EQ(shared[r].tokens, plain[r].tokens) << "row " << r;
        ASSERT_EQ(shared[r].logprobs.size(), plain[r].logprobs.size());
        for (size_t j = 0; j < plain[r].logprobs.size(); ++j)
          worst = std::max(worst, static_cast<double>(std::abs(shared[r].logprobs[j] - plain[r].logprobs[j])));
      }
      EXPECT_LT(worst, 1e-5);
      std::printf(
          "max |shared-prompt - unshared| generation log-prob = %.3g (%s, temperature %.0f, %lld compactions)\n", worst,
          qwen ? "qwen2" : "llama", temperature, static_cast<long long>(shared_stats.compactions));
      EXPECT_GE(shared_stats.compactions, 1);
      // And against the teacher-forced log-probs of the tokens drawn.
      std::vector<std::vector<int64_t>> prompts, completions;
      for (size_t r = 0; r < reqs.size(); ++r)
        prompts.push_back(reqs[r].prompt), completions.push_back(shared[r].tokens);
      torch::NoGradGuard ng;
      const torch::Tensor teacher = completion_logprobs(*m, prompts, completions, /*share_prompts=*/false);
      for (size_t r = 0; r < reqs.size(); ++r) {
        for (size_t j = 0; j < completions[r].size(); ++j)
          EXPECT_NEAR(shared[r].logprobs[j], teacher[static_cast<int64_t>(r)][static_cast<int64_t>(j)].item<double>(),
                      1e-5);
      }
    }
  }
}

// The learner's passes: rows that repeat a prompt run it once; values and gradients equal the plain forward over
// every prompt+completion row (float64, so the comparison is tight), completions of lengths 0 to 5.
TEST(Generation, SharedPromptTeacherForcedLogprobsAndGradientsEqualUnshared) {
  Transformer m = make_model(tiny(true), 101);
  m->to(torch::kDouble);
  const std::vector<std::vector<int64_t>> prompts = {kPrompts[0], kPrompts[0], kPrompts[2], kPrompts[0],
                                                     kPrompts[2], kPrompts[3], kPrompts[2]};
  const std::vector<std::vector<int64_t>> completions = {{5, 6, 7}, {8}, {1, 2, 3, 4, 5}, {}, {9, 9}, {4, 3}, {0}};
  auto run = [&](bool share) {
    m->zero_grad();
    const torch::Tensor lp = completion_logprobs(*m, prompts, completions, share);
    (lp * torch::arange(1, lp.size(1) + 1, lp.options())).sum().backward();  // weights tell positions apart
    std::vector<torch::Tensor> grads;
    for (const auto& p : m->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(lp.detach(), grads);
  };
  const auto [shared_lp, shared_grads] = run(true);
  const auto [plain_lp, plain_grads] = run(false);
  ASSERT_EQ(shared_lp.sizes(), plain_lp.sizes());
  const double value_diff = (shared_lp - plain_lp).abs().max().item<double>();
  double grad_diff = 0, grad_scale = 0;
  for (size_t i = 0; i < plain_grads.size(); ++i) {
    grad_diff = std::max(grad_diff, (shared_grads[i] - plain_grads[i]).abs().max().item<double>());
    grad_scale = std::max(grad_scale, plain_grads[i].abs().max().item<double>());
  }
  EXPECT_LT(value_diff, 1e-10);
  EXPECT_LT(grad_diff, 1e-10 * std::max(1.0, grad_scale));
  EXPECT_EQ(shared_lp[3].abs().sum().item<double>(), 0.0);  // the empty completion
  std::printf("shared-prompt teacher forcing: max |log-prob diff| %.3g, max |grad diff| %.3g (grads up to %.3g)\n",
              value_diff, grad_diff, grad_scale);
}

}  // namespace
}  // namespace r2rec
