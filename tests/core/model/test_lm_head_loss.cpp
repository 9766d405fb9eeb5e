// The chunked LM head (core/model/lm_head_loss.h) against the plain composition log_softmax(h W^T)[target]:
// values and gradients for hidden and weight, over several chunks of positions with a vocabulary far larger than
// a chunk; float64 central differences; tied, untied and LoRA heads through TransformerImpl; the no-grad path.
#include <gtest/gtest.h>

#include "core/model/lm_head_loss.h"
#include "core/model/lora.h"
#include "core/model/transformer.h"
#include "tests/core/model/tiny_model.h"

namespace r2rec {
namespace {

// Largest difference in units of the reference's largest entry.
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max() / b.to(torch::kDouble).abs().max().clamp_min(1e-30))
      .item<double>();
}

torch::Tensor plain_logprobs(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& t) {
  return torch::log_softmax(torch::matmul(h, w.t()), 1).gather(1, t.unsqueeze(1)).squeeze(1);
}

struct Case {
  torch::Tensor h, w, t, rw;
};

// n positions, d features, V tokens; row weights with zeros (positions that carry no loss) and a large one.
Case make_case(int64_t n, int64_t d, int64_t V, torch::ScalarType dtype = torch::kFloat) {
  torch::manual_seed(n * 1000 + V);
  Case c;
  c.h = (torch::randn({n, d}) * 2).to(dtype).requires_grad_(true);
  c.w = (torch::randn({V, d}) * 0.5).to(dtype).requires_grad_(true);
  c.t = torch::randint(V, {n}, torch::kLong);
  c.rw = torch::rand({n}).to(dtype);
  c.rw.index_put_({torch::arange(0, n, 3)}, 0.0);
  c.rw[1] = 5.0;
  return c;
}

TEST(LmHeadLoss, NllEqualsCrossEntropyAndItsGradientsOverSeveralChunks) {
  const Case c = make_case(37, 16, 1000);
  const torch::Tensor fused = lm_head_nll(c.h, c.w, c.t, c.rw, /*chunk_rows=*/8);  // 5 chunks, the last of 5
  const auto [gh, gw] = [&] {
    const auto g = torch::autograd::grad({fused}, {c.h, c.w});
    return std::make_pair(g[0], g[1]);
  }();
  // Reference in float64 from the same float32 inputs.
  const torch::Tensor h64 = c.h.detach().to(torch::kDouble).requires_grad_(true);
  const torch::Tensor w64 = c.w.detach().to(torch::kDouble).requires_grad_(true);
  const torch::Tensor ref = -(plain_logprobs(h64, w64, c.t) * c.rw.to(torch::kDouble)).sum();
  const auto g = torch::autograd::grad({ref}, {h64, w64});
  EXPECT_EQ(fused.scalar_type(), torch::kFloat);
  EXPECT_LT(rel_diff(fused, ref), 1e-6);
  EXPECT_LT(rel_diff(gh, g[0]), 1e-5);
  EXPECT_LT(rel_diff(gw, g[1]), 1e-5);
  // The unfused float32 loss of lm_trainer (cross_entropy) is as far from the float64 reference.
  const torch::Tensor ce =
      (torch::nn::functional::cross_entropy(torch::matmul(c.h, c.w.t()), c.t,
                                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)) *
       c.rw)
          .sum();
  EXPECT_LT(rel_diff(ce, ref), 1e-6);
  // A scaled upstream gradient scales both.
  const auto g2 = torch::autograd::grad({lm_head_nll(c.h, c.w, c.t, c.rw, 8) * 3.0}, {c.h, c.w});
  EXPECT_LT(rel_diff(g2[0], gh * 3), 1e-6);
  EXPECT_LT(rel_diff(g2[1], gw * 3), 1e-6);
}

TEST(LmHeadLoss, LogprobsEqualLogSoftmaxAndTakeAnyUpstreamGradient) {
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{0}}) {
    const Case c = make_case(29, 12, 777);
    const torch::Tensor lp = lm_head_logprobs(c.h, c.w, c.t, rows);
    const torch::Tensor ref = plain_logprobs(c.h, c.w, c.t);
    ASSERT_EQ(lp.sizes(), ref.sizes());
    EXPECT_LT(rel_diff(lp, ref), 1e-6) << rows;
    // A non-linear function of the log-probs, as GRPO's clipped ratio and KL are.
    const torch::Tensor upstream = torch::randn({29});
    const auto f = [&](const torch::Tensor& x) { return (torch::exp(x * 0.1) * upstream).sum() + x.pow(2).sum(); };
    const auto g = torch::autograd::grad({f(lp)}, {c.h, c.w});
    const auto r = torch::autograd::grad({f(ref)}, {c.h, c.w});
    EXPECT_LT(rel_diff(g[0], r[0]), 1e-5) << rows;
    EXPECT_LT(rel_diff(g[1], r[1]), 1e-5) << rows;
  }
}

TEST(LmHeadLoss, GradientsMatchCentralDifferencesInFloat64) {
  const Case c = make_case(11, 6, 50, torch::kDouble);
  const auto loss = [&](const torch::Tensor& h, const torch::Tensor& w) {
    return (lm_head_nll(h, w, c.t, c.rw, 4) + lm_head_logprobs(h, w, c.t, 3).pow(2).sum()).item<double>();
  };
  const torch::Tensor total = lm_head_nll(c.h, c.w, c.t, c.rw, 4) + lm_head_logprobs(c.h, c.w, c.t, 3).pow(2).sum();
  const auto g = torch::autograd::grad({total}, {c.h, c.w});
  const double eps = 1e-6;
  for (const auto& [which, i, j] : std::vector<std::tuple<int, int64_t, int64_t>>{
           {0, 0, 0}, {0, 1, 5}, {0, 10, 3}, {1, 0, 0}, {1, c.t[2].item<int64_t>(), 4}, {1, 49, 1}}) {
    torch::Tensor h = c.h.detach().clone(), w = c.w.detach().clone();
    torch::Tensor& x = which == 0 ? h : w;
    const double x0 = x[i][j].item<double>();
    x[i][j] = x0 + eps;
    const double up = loss(h, w);
    x[i][j] = x0 - eps;
    const double down = loss(h, w);
    const double fd = (up - down) / (2 * eps), an = g[static_cast<size_t>(which)][i][j].item<double>();
    EXPECT_NEAR(an, fd, 1e-6 * std::max(1.0, std::abs(fd))) << which << " " << i << "," << j;
  }
}

TEST(LmHeadLoss, WithoutGradientsItOnlyComputesTheLoss) {
  const Case c = make_case(20, 8, 300);
  torch::Tensor a, b;
  {
    c10::InferenceMode inference;
    a = lm_head_logprobs(c.h.detach(), c.w.detach(), c.t);
    b = lm_head_nll(c.h.detach(), c.w.detach(), c.t, c.rw);
  }
  EXPECT_LT(rel_diff(a, plain_logprobs(c.h, c.w, c.t)), 1e-6);
  EXPECT_LT(rel_diff(b, -(a * c.rw).sum()), 1e-6);
  // Only hidden needs a gradient (a frozen head): the weight gets none.
  const torch::Tensor loss = lm_head_nll(c.h, c.w.detach(), c.t, c.rw);
  const auto g = torch::autograd::grad({loss}, {c.h});
  const torch::Tensor h2 = c.h.detach().requires_grad_(true);
  const auto r = torch::autograd::grad({-(plain_logprobs(h2, c.w.detach(), c.t) * c.rw).sum()}, {h2});
  EXPECT_LT(rel_diff(g[0], r[0]), 1e-5);
  EXPECT_THROW(lm_head_nll(c.h, c.w, c.t.narrow(0, 0, 5), c.rw), std::invalid_argument);
  EXPECT_THROW(lm_head_logprobs(c.h, c.w.narrow(1, 0, 4), c.t), std::invalid_argument);
}

// The model's target_nll (chunked where the head is plain, composed where it has LoRA) against cross-entropy of
// its logits, gradients of every trainable parameter included.
TEST(LmHeadLoss, ModelTargetNllEqualsCrossEntropyForTiedUntiedAndLoraHeads) {
  for (const int variant : {0, 1, 2}) {  // tied, untied, untied with a LoRA lm_head
    Transformer model = testing::make_model(testing::tiny(/*qwen (tied)=*/variant == 0), 3 + variant);
    if (variant == 2) {
      LoraSpec spec;
      spec.rank = 4;
      spec.alpha = 8;
      spec.targets = {"q_proj", "lm_head"};
      add_lora(*model, spec);
      torch::NoGradGuard no_grad;
      for (auto& [name, proj] : model->projections())
        if (proj->has_lora()) proj->lora_B.normal_(0, 0.1);
    }
    const int64_t V = model->config.vocab_size, d = model->config.hidden_size;
    const torch::Tensor ids = torch::randint(V, {3, 9}, torch::kLong);
    const torch::Tensor h = model->hidden_states(ids).reshape({27, d});
    const torch::Tensor t = torch::randint(V, {27}, torch::kLong), rw = torch::rand({27});
    std::vector<torch::Tensor> params;
    for (auto& p : model->parameters())
      if (p.requires_grad()) params.push_back(p);
    const auto fused = torch::autograd::grad({model->target_nll(h, t, rw)}, params, {}, /*retain_graph=*/true);
    const torch::Tensor ce =
        (torch::nn::functional::cross_entropy(
             model->lm_logits(h), t, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)) *
         rw)
            .sum();
    const auto plain = torch::autograd::grad({ce}, params);
    ASSERT_EQ(fused.size(), plain.size());
    for (size_t k = 0; k < fused.size(); ++k) EXPECT_LT(rel_diff(fused[k], plain[k]), 1e-5) << variant << " " << k;
  }
}

}  // namespace
}  // namespace r2rec
