// The Llama/Qwen2 decoder: gradients of a decoder layer against central finite differences (float64),
// ragged (padded) batches against the same sequences alone, causal query blocks against one block, Hugging Face
// checkpoint round trip, config.json parsing errors, and logits against an independent PyTorch-Python implementation of
// the same math.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/model/transformer.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::copying;
using testing::make_model;
using testing::smeared;
using testing::TempDir;
using testing::tiny;

TEST(Transformer, DecoderLayerGradientsMatchFiniteDifferences) {
  const TransformerConfig c = tiny(true);
  torch::manual_seed(5);
  DecoderLayer layer(c);
  layer->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    for (auto& p : layer->parameters())
      p.copy_(torch::randn_like(p) * 0.4 + (p.dim() == 1 && p.numel() == c.hidden_size ? 1.0 : 0.0));
  }
  const torch::Tensor x = torch::randn({2, 5, c.hidden_size}, torch::kDouble);
  const torch::Tensor weights = torch::randn({2, 5, c.hidden_size}, torch::kDouble);
  const torch::Tensor positions = torch::arange(5, torch::kLong).unsqueeze(0).expand({2, 5});
  auto [cos, sin] = rotary_tables(positions, c.head_dim, c.rope_theta, torch::kDouble);
  const torch::Tensor mask =
      torch::zeros({2, 1, 5, 5}, torch::kDouble)
          .masked_fill(torch::ones({5, 5}, torch::kBool).triu(1), std::numeric_limits<float>::lowest());
  auto loss_of = [&] { return (layer->forward(x, cos, sin, mask) * weights).sum(); };
  torch::Tensor loss = loss_of();
  loss.backward();
  int checked = 0;
  const double worst = testing::worst_finite_difference_error(layer->parameters(), loss_of, 7, &checked);
  EXPECT_GT(checked, 60);
  EXPECT_LT(worst, 1e-6) << "worst relative error over " << checked << " parameters";
}

TEST(Transformer, RaggedBatchEqualsSequencesAlone) {
  for (bool smear : {false, true}) {
    SCOPED_TRACE(smear ? "smeared keys" : "plain keys");
    Transformer m = make_model(smear ? smeared(tiny(true)) : tiny(true), 11);
    torch::NoGradGuard g;
    const std::vector<std::vector<int64_t>> seqs = {{3, 7, 1, 9, 4, 2}, {5, 8}, {1, 2, 3, 4}};
    const int64_t T = 6;
    torch::Tensor ids = torch::zeros({3, T}, torch::kLong), attn = torch::zeros({3, T}, torch::kLong);
    for (int64_t b = 0; b < 3; ++b) {  // left padding, as generation uses
      const int64_t n = static_cast<int64_t>(seqs[b].size());
      for (int64_t t = 0; t < n; ++t) {
        ids[b][T - n + t] = seqs[b][t];
        attn[b][T - n + t] = 1;
      }
    }
    const torch::Tensor batch = m->forward(ids, attn);
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t n = static_cast<int64_t>(seqs[b].size());
      const torch::Tensor alone = m->forward(torch::tensor(seqs[b]).unsqueeze(0))[0];
      const double diff = (batch[b].narrow(0, T - n, n) - alone).abs().max().item<double>();
      EXPECT_LT(diff, 1e-5) << "row " << b;
    }
  }
}

// Smeared keys (TransformerConfig::smeared_keys): a packed row computes each of its sequences as if alone (the first
// token of a sequence mixes in no key of the one before), the key_smear logits get gradients, and the share is what
// the config says: sigmoid(key_smear) of the own key. The model folder records it and loads back.
TEST(Transformer, SmearedKeysStayInsideTheirSequenceAndRoundTrip) {
  Transformer m = make_model(smeared(tiny(true)), 13);
  const std::vector<std::vector<int64_t>> seqs = {{3, 7, 1, 9}, {5, 8, 2}};
  torch::Tensor ids = torch::zeros({1, 7}, torch::kLong), seg = torch::zeros({1, 7}, torch::kLong);
  for (int64_t t = 0; t < 7; ++t) ids[0][t] = t < 4 ? seqs[0][t] : seqs[1][t - 4], seg[0][t] = t < 4 ? 1 : 2;
  {
    torch::NoGradGuard g;
    const torch::Tensor packed = m->forward(ids, seg)[0];
    double worst = 0;
    for (int s = 0; s < 2; ++s) {
      const torch::Tensor alone = m->forward(torch::tensor(seqs[s]).unsqueeze(0))[0];
      worst = std::max(worst, (packed.narrow(0, s == 0 ? 0 : 4, alone.size(0)) - alone).abs().max().item<double>());
    }
    EXPECT_LT(worst, 1e-5);
  }
  m->forward(ids, seg).pow(2).mean().backward();
  for (auto& layer : m->layers) {
    ASSERT_TRUE(layer->self_attn->key_smear.grad().defined());
    EXPECT_GT(layer->self_attn->key_smear.grad().abs().sum().item<double>(), 0);
  }
  // Smearing changes the model: the same weights without it give other logits.
  TransformerConfig plain_config = m->config;
  plain_config.smeared_keys = false;
  Transformer plain(plain_config);
  {
    torch::NoGradGuard g;
    for (auto& [name, t] : plain->hf_state_dict()) {
      for (auto& [other, u] : m->hf_state_dict())
        if (other == name) t.copy_(u);
    }
    EXPECT_GT((plain->forward(ids) - m->forward(ids)).abs().max().item<double>(), 1e-3);
  }
  TempDir dir;
  m->save_hf(dir.path());
  const TransformerConfig c = TransformerConfig::from_hf_json(dir.file("config.json"));
  EXPECT_TRUE(c.smeared_keys);
  Transformer back(c);
  back->load_hf(dir.path());
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(m->forward(ids), back->forward(ids)));
}

// The look-up copy's proposals (core/model/copy_lookup.h) on hand-written sequences: the longest earlier match of the
// suffix wins, its followers are distinct and sorted, nothing matches across a packed segment or from padding, and an
// uninformative match (more than kCopyMaxFollowers tokens) proposes nothing.
TEST(CopyLookup, ProposesWhatFollowedTheLongestEarlierMatch) {
  auto at_end = [](const std::vector<int64_t>& ids, int64_t n) {
    return copy_proposal(ids.data(), int64_t(ids.size()), n);
  };
  CopyProposal p = at_end({5, 6, 7, 5, 6}, 4);
  EXPECT_EQ(p.match, 2);
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{7}));
  p = at_end({5, 6, 7, 5, 6}, 1);  // matches of one token only: the 6 at 1
  EXPECT_EQ(p.match, 1);
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{7}));
  p = at_end({5, 6, 5, 8, 5}, 4);  // "5" twice before, followed by 6 and 8; "8 5" and "6 5" do not match
  EXPECT_EQ(p.match, 1);
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{6, 8}));
  p = at_end({5, 6, 5, 8, 5, 8, 5}, 4);  // "5 8 5" at 2..4 beats the single 5s
  EXPECT_EQ(p.match, 3);
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{8}));
  const std::vector<int64_t> rep = {5, 6, 5, 6, 5};
  EXPECT_EQ(copy_proposal(rep.data(), 5, 4).match, 3);
  p = copy_proposal(rep.data(), 5, 4, 3);  // followers from the first 3 tokens only (a prompt of 3)
  EXPECT_EQ(p.match, 1);
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{6}));
  EXPECT_EQ(copy_proposal(rep.data(), 5, 4, 1).match, 0);
  EXPECT_EQ(at_end({1, 2, 3}, 4).match, 0);
  EXPECT_TRUE(at_end({1, 2, 3}, 4).tokens.empty());
  EXPECT_EQ(at_end({4}, 4).match, 0);
  std::vector<int64_t> many;
  for (int64_t k = 0; k <= kCopyMaxFollowers; ++k) many.insert(many.end(), {0, 100 + k});
  many.push_back(0);
  EXPECT_EQ(at_end(many, 4).match, 0) << "17 followers of 0: uninformative";
  many.resize(many.size() - 3);  // 16 followers
  many.push_back(0);
  EXPECT_EQ(at_end(many, 4).tokens.size(), static_cast<size_t>(kCopyMaxFollowers));
  // Row 0: segments [5 6 5 | 9 5]; row 1: left padding then [5 6 5].
  const torch::Tensor ids = torch::tensor({5, 6, 5, 9, 5, 0, 0, 5, 6, 5}, torch::kLong).view({2, 5});
  const torch::Tensor mask = torch::tensor({1, 1, 1, 2, 2, 0, 0, 1, 1, 1}, torch::kLong).view({2, 5});
  const auto q = copy_proposals_at(ids, mask, {2, 4, 5, 9}, 4);
  EXPECT_EQ(q[0].tokens, (std::vector<int64_t>{6}));
  EXPECT_EQ(q[1].match, 0) << "the 5 of segment 1 is not in segment 2";
  EXPECT_EQ(q[2].match, 0) << "padding";
  EXPECT_EQ(q[3].tokens, (std::vector<int64_t>{6}));
  const torch::Tensor source = torch::full({2, 5}, 1, torch::kLong);  // only the first token of each sequence
  EXPECT_EQ(copy_proposals_at(ids, mask, {2, 9}, 4, source)[1].match, 0);
}

// The look-up copy in the model: target_logprobs' sparse formula (only the proposed tokens' scores) equals the
// log-softmax of forward's boosted [T, V] logits, values and parameter gradients, on packed rows with repeats (tied
// head, then an untied Llama head); the gate gets gradients; the model folder records it and loads back.
TEST(Transformer, CopyLookupLogprobsEqualTheBoostedSoftmax) {
  for (bool qwen : {true, false}) {
    SCOPED_TRACE(qwen ? "qwen2 (tied head)" : "llama (untied head)");
    Transformer m = make_model(copying(tiny(qwen)), 17);
    m->to(torch::kDouble);
    {
      torch::NoGradGuard g;
      m->copy_gate_bias.fill_(2.0);
    }
    const torch::Tensor ids =
        torch::tensor({3, 7, 1, 3, 7, 2, 3, 7, 1, 5, 9, 5, 9, 5, 4, 1, 4, 1, 4, 0}, torch::kLong).view({2, 10});
    const torch::Tensor seg =
        torch::tensor({1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}, torch::kLong).view({2, 10});
    std::vector<int64_t> at;  // every position whose next token is in its own segment
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 0; t + 1 < 10; ++t)
        if (seg[b][t].item<int64_t>() != 0 && seg[b][t].item<int64_t>() == seg[b][t + 1].item<int64_t>())
          at.push_back(b * 10 + t);
    const torch::Tensor at_t = torch::tensor(at, torch::kLong);
    const torch::Tensor targets = ids.roll(-1, 1).reshape({-1}).index_select(0, at_t);
    const auto copy = copy_proposals_at(ids, seg, at, 3);
    int proposed = 0;
    for (const auto& p : copy) proposed += p.match > 0;
    EXPECT_GE(proposed, 5);

    auto params = m->parameters();
    const torch::Tensor full = torch::log_softmax(m->forward(ids, seg).reshape({20, -1}).index_select(0, at_t), -1)
                                   .gather(1, targets.unsqueeze(1))
                                   .squeeze(1);
    full.sum().backward();
    std::vector<torch::Tensor> g_full;
    for (auto& p : params) g_full.push_back(p.grad().clone()), p.mutable_grad().zero_();
    const torch::Tensor hidden = m->hidden_states(ids, seg).reshape({20, -1}).index_select(0, at_t);
    const torch::Tensor sparse = m->target_logprobs(hidden, targets, &copy);
    sparse.sum().backward();
    EXPECT_LT((full - sparse).abs().max().item<double>(), 1e-10);
    double worst = 0;
    for (size_t k = 0; k < params.size(); ++k)
      worst = std::max(worst, (params[k].grad() - g_full[k]).abs().max().item<double>());
    EXPECT_LT(worst, 1e-10);
    EXPECT_GT(m->copy_gate_bias.grad().abs().sum().item<double>(), 0);
    EXPECT_THROW(m->target_logprobs(hidden, targets), std::logic_error) << "proposals are required";

    // The boost changes the model: the same weights without the look-up give other logits.
    TransformerConfig plain_config = m->config;
    plain_config.copy_lookup = 0;
    Transformer plain(plain_config);
    plain->to(torch::kDouble);
    TempDir dir;
    m->save_hf(dir.path());
    const TransformerConfig c = TransformerConfig::from_hf_json(dir.file("config.json"));
    EXPECT_EQ(c.copy_lookup, 3);
    Transformer back(c);
    back->to(torch::kDouble);
    back->load_hf(dir.path());
    plain->load_hf(dir.path());
    torch::NoGradGuard g;
    EXPECT_GT((plain->forward(ids, seg) - m->forward(ids, seg)).abs().max().item<double>(), 1e-3);
    EXPECT_LT((back->forward(ids, seg) - m->forward(ids, seg)).abs().max().item<double>(), 1e-4);
  }
}

// Causal query blocks (TransformerConfig::attention_block) against one block over the whole sequence: the same
// logits and gradients (float64) on a left-padded batch and on packed rows, 23 tokens in blocks of 4.
TEST(Transformer, CausalQueryBlocksEqualOneBlock) {
  TransformerConfig one = tiny(true), blocked = tiny(true);
  one.attention_block = 0;
  blocked.attention_block = 4;
  Transformer a = make_model(one, 13), b = make_model(blocked, 13);
  a->to(torch::kDouble);
  b->to(torch::kDouble);
  const int64_t T = 23;
  torch::manual_seed(3);
  const torch::Tensor ids = torch::randint(one.vocab_size, {3, T});
  torch::Tensor padded = torch::ones({3, T}, torch::kLong), packed = torch::zeros({3, T}, torch::kLong);
  padded[1].narrow(0, 0, 7).zero_();   // left padding
  padded[2].narrow(0, 0, 20).zero_();  // a short row
  packed[0].narrow(0, 0, 9).fill_(1), packed[0].narrow(0, 9, 14).fill_(2);
  packed[1].narrow(0, 0, 23).fill_(1);
  packed[2].narrow(0, 0, 5).fill_(1), packed[2].narrow(0, 5, 11).fill_(2), packed[2].narrow(0, 16, 4).fill_(3);
  const torch::Tensor weights = torch::randn({3, T, one.vocab_size}, torch::kDouble);
  for (const torch::Tensor& mask : {padded, packed}) {
    a->zero_grad();
    b->zero_grad();
    const torch::Tensor la = a->forward(ids, mask), lb = b->forward(ids, mask);
    EXPECT_LT((la - lb).abs().max().item<double>(), 1e-10);
    (la * weights).sum().backward();
    (lb * weights).sum().backward();
    const auto pa = a->parameters(), pb = b->parameters();
    double worst = 0;
    for (size_t i = 0; i < pa.size(); ++i)
      worst = std::max(worst, (pa[i].grad() - pb[i].grad()).abs().max().item<double>());
    EXPECT_LT(worst, 1e-9) << "max |grad(blocks) - grad(one block)|";
  }
}

TEST(Transformer, HuggingFaceCheckpointRoundTrip) {
  TempDir dir;
  for (bool qwen : {true, false}) {
    Transformer a = make_model(tiny(qwen), 21);
    a->save_hf(dir.file(qwen ? "qwen" : "llama"), /*max_shard_bytes=*/4096);
    const TransformerConfig c =
        TransformerConfig::from_hf_json(dir.file(qwen ? "qwen/config.json" : "llama/config.json"));
    EXPECT_EQ(c.qkv_bias, qwen);
    EXPECT_EQ(c.tie_embeddings, qwen);
    EXPECT_EQ(c.num_kv_heads, 2);
    Transformer b(c);
    b->load_hf(dir.file(qwen ? "qwen" : "llama"));
    torch::NoGradGuard g;
    const torch::Tensor ids = torch::tensor({{1, 5, 9, 2}});
    EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
  }
  EXPECT_TRUE(std::filesystem::exists(dir.file("llama/model.safetensors.index.json")));  // sharded at 4 KB
}

TEST(Transformer, BadCheckpointsAreNamed) {
  TempDir dir;
  Transformer a = make_model(tiny(false), 1);
  a->save_hf(dir.path());
  TransformerConfig wrong = tiny(false);
  wrong.intermediate_size = 32;
  Transformer b(wrong);
  try {
    b->load_hf(dir.path());
    FAIL() << "shape mismatch not caught";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.gate_proj.weight' has shape [24, 16], the model needs [32, 16]"),
              std::string::npos)
        << e.what();
  }
  dir.write("bad/config.json", "{\"model_type\": \"llama\", \"hidden_size\": 16}");
  try {
    TransformerConfig::from_hf_json(dir.file("bad/config.json"));
    FAIL() << "missing key not caught";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad/config.json: vocab_size"), std::string::npos) << e.what();
  }
}

TEST(Transformer, LogitsMatchPyTorchPythonReference) {
  TempDir dir;
  for (bool qwen : {true, false}) {
    SCOPED_TRACE(qwen ? "qwen2" : "llama");
    Transformer m = make_model(tiny(qwen), 31);
    const std::string model_dir = dir.file(qwen ? "q" : "l");
    m->save_hf(model_dir);
    const std::vector<int64_t> ids = {4, 17, 0, 22, 9, 9, 13, 2};
    std::vector<std::string> argv = {"/usr/bin/python3", testing::source_dir() + "/tests/python/qwen2_reference.py",
                                     model_dir, dir.file("logits.bin")};
    for (int64_t t : ids) argv.push_back(std::to_string(t));
    const auto r = testing::run_command(argv);
    if (r.exit_code != 0 && r.err.find("No module named 'torch'") != std::string::npos) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string bytes = testing::run_command({"cat", dir.file("logits.bin")}).out;
    const int64_t T = static_cast<int64_t>(ids.size()), V = m->config.vocab_size;
    ASSERT_EQ(bytes.size(), static_cast<size_t>(T * V * 4));
    torch::Tensor ref = torch::empty({T, V});
    std::memcpy(ref.data_ptr<float>(), bytes.data(), bytes.size());
    torch::NoGradGuard g;
    const torch::Tensor ours = m->forward(torch::tensor(ids).unsqueeze(0))[0];
    const double diff = (ours - ref).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << "max |logit difference|";
    std::printf("max |logits - python reference| = %.3g (%s)\n", diff, qwen ? "qwen2" : "llama");
  }
}

}  // namespace
}  // namespace r2rec
