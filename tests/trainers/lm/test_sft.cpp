// SFT on synthetic traces: the completion loss falls to near zero on a memorisable task, the loss covers only
// completion tokens, and the trained model then generates the completion.
#include <gtest/gtest.h>

#include "core/model/generation.h"
#include "core/tokenizer/bpe_trainer.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/sft.h"

namespace r2rec {
namespace {

Config tiny_config() {
  Config c = load_config("", {"model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=2",
                              "model.intermediate_size=64", "sft.batch_size=8", "sft.micro_batch_size=4",
                              "sft.learning_rate=0.01", "sft.warmup_steps=2", "sft.epochs=150"});
  return c;
}

TraceSet synthetic(int n) {
  TraceSet t;
  for (int i = 0; i < n; ++i) {
    const int k = i % 4;
    t.example_id.push_back(i);
    t.reaching.push_back(1);
    t.prompts.push_back("<|im_start|>user\nPick item " + std::to_string(k) + "<|im_end|>\n<|im_start|>assistant\n");
    t.completions.push_back("<think>\nItem " + std::to_string(k) + " it is.\n</think><answer>" + std::to_string(k + 1) +
                            "</answer>");
  }
  return t;
}

// A 300-token BPE learnt from the traces' text.
Tokenizer tokenizer_for(const TraceSet& traces) {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  std::vector<std::string> texts = traces.prompts;
  texts.insert(texts.end(), traces.completions.begin(), traces.completions.end());
  return Tokenizer(train_bpe(texts, o));
}

TEST(Sft, LearnsAMemorisableTaskAndGeneratesIt) {
  const Config c = tiny_config();
  const TraceSet traces = synthetic(16);
  const Tokenizer tok = tokenizer_for(traces);
  Transformer model = build_model(c, tok.vocab_size());
  EXPECT_EQ(model->config.vocab_size, 320);  // rounded up to a multiple of 64
  const SftResult r = train_sft(*model, c, traces, tok, DataParallelGroup::single());
  EXPECT_EQ(r.steps, 2 * 150);
  EXPECT_EQ(r.traces_used, 16);
  EXPECT_GT(r.losses.front(), 4.0);
  EXPECT_LT(r.losses.back(), 0.05) << "first " << r.losses.front();
  // The trained model writes the trace for a prompt it was trained on.
  SamplingOptions s;
  s.max_new_tokens = 40;
  s.temperature = 0;
  s.stop_tokens = {*tok.token_id("<|im_end|>")};
  std::vector<GenerationRequest> reqs;
  for (int k = 0; k < 4; ++k) {
    const auto ids = tok.encode(traces.prompts[k]);
    reqs.push_back({std::vector<int64_t>(ids.begin(), ids.end()), 0, nullptr});
  }
  const auto out = generate(*model, reqs, s, [&](int64_t id) { return tok.token_bytes(static_cast<TokenId>(id)); });
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out[k].text, traces.completions[k]) << "prompt " << k;
    EXPECT_EQ(out[k].finish, FinishReason::kStopToken);
  }
}

// The loss of the first step (initial weights) is the mean negative log-likelihood of the completion tokens and
// the end of turn only — computed independently with the teacher-forced log-probs of the same initial model.
TEST(Sft, LossCoversOnlyTheCompletionAndTheEndOfTurn) {
  Config c = tiny_config();
  c.sft.batch_size = 16;  // one step sees every trace
  c.sft.max_steps = 1;
  c.sft.answer_weight = 1.0;  // the plain mean (the weighted one: the next test)
  const TraceSet traces = synthetic(16);
  const Tokenizer tok = tokenizer_for(traces);
  Transformer initial = build_model(c, tok.vocab_size());
  std::vector<std::vector<int64_t>> prompts, completions;
  const int64_t eot = *tok.token_id("<|im_end|>");
  double tokens = 0;
  for (int i = 0; i < traces.size(); ++i) {
    const auto p = tok.encode(traces.prompts[i]), q = tok.encode(traces.completions[i]);
    prompts.emplace_back(p.begin(), p.end());
    completions.emplace_back(q.begin(), q.end());
    completions.back().push_back(eot);
    tokens += static_cast<double>(completions.back().size());
  }
  double expected = 0;
  {
    torch::NoGradGuard g;
    initial->eval();
    expected = -completion_logprobs(*initial, prompts, completions).sum().item<double>() / tokens;
  }
  Transformer model = build_model(c, tok.vocab_size());  // the same initial weights (run.seed)
  const SftResult r = train_sft(*model, c, traces, tok, DataParallelGroup::single());
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_NEAR(r.losses[0], expected, 1e-5 * expected);
}

// With sft.answer_weight w the first-step loss is the weighted mean: the answer label's tokens (between
// <answer> and </answer>) weigh w, every other completion token and the end of turn 1.
TEST(Sft, AnswerTokensWeighAnswerWeight) {
  Config c = tiny_config();
  c.sft.batch_size = 16;
  c.sft.max_steps = 1;
  c.sft.answer_weight = 3.0;
  const TraceSet traces = synthetic(16);
  const Tokenizer tok = tokenizer_for(traces);
  Transformer initial = build_model(c, tok.vocab_size());
  const int64_t eot = *tok.token_id("<|im_end|>"), open = *tok.token_id("<answer>"), close = *tok.token_id("</answer>");
  std::vector<std::vector<int64_t>> prompts, completions;
  for (int i = 0; i < traces.size(); ++i) {
    const auto p = tok.encode(traces.prompts[i]), q = tok.encode(traces.completions[i]);
    prompts.emplace_back(p.begin(), p.end());
    completions.emplace_back(q.begin(), q.end());
    completions.back().push_back(eot);
  }
  double weighted = 0, total = 0;
  int64_t answer_tokens = 0;
  {
    torch::NoGradGuard g;
    initial->eval();
    const torch::Tensor lp = completion_logprobs(*initial, prompts, completions);
    for (size_t i = 0; i < completions.size(); ++i) {
      bool inside = false;
      for (size_t t = 0; t < completions[i].size(); ++t) {
        const int64_t id = completions[i][t];
        if (id == close) inside = false;
        const double w = inside ? 3.0 : 1.0;
        answer_tokens += inside;
        weighted -= w * lp[static_cast<int64_t>(i)][static_cast<int64_t>(t)].item<double>();
        total += w;
        if (id == open) inside = true;
      }
    }
  }
  ASSERT_GE(answer_tokens, 16);
  Transformer model = build_model(c, tok.vocab_size());
  const SftResult r = train_sft(*model, c, traces, tok, DataParallelGroup::single());
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_NEAR(r.losses[0], weighted / total, 1e-5 * weighted / total);
}

}  // namespace
}  // namespace r2rec

namespace r2rec {
namespace {

// sft.packing (trainers/lm/lm_trainer.h lm_micro_batches): several sequences per row, attention and positions per
// sequence. The packed micro-batches hold fewer rows, and their loss and every gradient equal the padded ones'
// (float summation order apart: tolerance 1e-5 relative to the largest gradient).
TEST(Sft, PackedRowsGiveTheSameLossAndGradientsAsPadded) {
  Config c = tiny_config();
  torch::manual_seed(3);
  Transformer model = build_model(c, 96);
  std::vector<LmSequence> seqs;
  for (int i = 0; i < 12; ++i) {  // lengths 5..38, loss on the second half, weights on some
    LmSequence q;
    const int n = 5 + (i * 7) % 34;
    for (int t = 0; t < n; ++t) q.ids.push_back((i * 31 + t * 17) % 96);
    q.loss_from = n / 2;
    if (i % 3 == 0) q.weights.assign(static_cast<size_t>(n), 2.0f);
    seqs.push_back(q);
  }
  std::vector<const LmSequence*> mine;
  for (const auto& q : seqs) mine.push_back(&q);
  std::stable_sort(mine.begin(), mine.end(),
                   [](const LmSequence* x, const LmSequence* y) { return x->ids.size() > y->ids.size(); });
  const auto grads = [&](bool pack, double* loss_sum, int64_t* rows) {
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    *loss_sum = 0;
    *rows = 0;
    for (const LmMicroBatch& mb : lm_micro_batches(mine, 4, pack)) {
      const torch::Tensor loss = lm_micro_loss(*model, mb, 100.0);
      loss.backward();
      *loss_sum += loss.item<double>();
      *rows += mb.ids.size(0);
    }
    std::vector<torch::Tensor> out;
    for (auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  double padded_loss = 0, packed_loss = 0;
  int64_t padded_rows = 0, packed_rows = 0;
  const auto padded = grads(false, &padded_loss, &padded_rows);
  const auto packed = grads(true, &packed_loss, &packed_rows);
  EXPECT_EQ(padded_rows, 12);
  EXPECT_LT(packed_rows, padded_rows) << "nothing was packed";
  EXPECT_NEAR(packed_loss, padded_loss, 1e-6 * std::abs(padded_loss));
  double largest = 0, diff = 0;
  for (size_t i = 0; i < padded.size(); ++i) {
    largest = std::max(largest, padded[i].abs().max().item<double>());
    diff = std::max(diff, (padded[i] - packed[i]).abs().max().item<double>());
  }
  EXPECT_GT(largest, 0);
  EXPECT_LT(diff, 1e-5 * largest) << "largest gradient " << largest;
  std::printf("padded %lld rows, packed %lld rows; loss %.9g vs %.9g; largest gradient %.3g, max difference %.3g\n",
              static_cast<long long>(padded_rows), static_cast<long long>(packed_rows), padded_loss, packed_loss,
              largest, diff);
}

// With the look-up copy (model.copy_lookup) an SFT sequence copies from its prompt only (ids before loss_from;
// core/model/copy_lookup.h): the packed micro-batch loss equals a per-sequence reference built from the boosted
// logits of proposals with that source, and differs from what copying from the whole sequence would give.
TEST(Sft, LookUpCopyLossCopiesFromThePromptOnly) {
  Config c = tiny_config();
  c.model.copy_lookup = 3;
  torch::manual_seed(5);
  Transformer model = build_model(c, 96);
  {
    torch::NoGradGuard g;
    model->copy_gate_bias.fill_(2.0);
  }
  std::vector<LmSequence> seqs;
  for (int i = 0; i < 6; ++i) {  // period-5 repeats, so that the completion's suffixes match in its prompt
    LmSequence q;
    const int n = 12 + 3 * i;
    for (int t = 0; t < n; ++t) q.ids.push_back((i * 31 + (t % 5) * 17 + (t >= n / 2 ? 1 : 0) * (t % 2)) % 96);
    q.loss_from = n / 2;
    seqs.push_back(q);
  }
  std::vector<const LmSequence*> mine;
  for (const auto& q : seqs) mine.push_back(&q);
  std::stable_sort(mine.begin(), mine.end(),
                   [](const LmSequence* x, const LmSequence* y) { return x->ids.size() > y->ids.size(); });
  torch::NoGradGuard g;
  double packed = 0;
  for (const LmMicroBatch& mb : lm_micro_batches(mine, 4, true))
    packed += lm_micro_loss(*model, mb, 1.0).item<double>();
  double prompt_only = 0, whole = 0;
  int proposed = 0;
  for (const auto& q : seqs) {
    const int64_t n = static_cast<int64_t>(q.ids.size());
    const torch::Tensor h = model->hidden_states(torch::tensor(q.ids).unsqueeze(0))[0];
    for (int64_t t = q.loss_from - 1; t + 1 < n; ++t) {
      for (bool from_prompt : {true, false}) {
        const std::vector<CopyProposal> p = {copy_proposal(q.ids.data(), t + 1, 3, from_prompt ? q.loss_from : n)};
        proposed += from_prompt && p[0].match > 0;
        const double lp =
            torch::log_softmax(model->lm_logits(h.narrow(0, t, 1), &p)[0], 0)[q.ids[t + 1]].item<double>();
        (from_prompt ? prompt_only : whole) -= lp;
      }
    }
  }
  EXPECT_GT(proposed, 10);
  EXPECT_NEAR(packed, prompt_only, 1e-5 * std::abs(prompt_only));
  EXPECT_GT(std::abs(whole - prompt_only), 1e-3);
}

}  // namespace
}  // namespace r2rec
