// GRPO on a synthetic task: SFT teaches the format with answers at random, RL with an answer reward then makes
// the rewarded answer likely; the first inner pass sees log pi_old == log pi_theta; the KL to the reference
// starts at zero and grows as the policy moves.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "core/tokenizer/bpe_trainer.h"
#include "trainers/lm/grpo.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/sft.h"

namespace r2rec {
namespace {

// SFT leaves the answer uniform over 1..4; the reward pays answer 1, so its share must rise. (Making the answer
// depend on the prompt is a harder credit-assignment problem than this tiny model solves in a test's budget.)
TEST(Grpo, RewardedAnswerBecomesLikely) {
  Config c = load_config("", {"model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=2",
                              "model.intermediate_size=64", "sft.batch_size=8", "sft.micro_batch_size=4",
                              "sft.learning_rate=0.01", "sft.warmup_steps=2", "sft.epochs=60"});
  TraceSet traces;
  Rng rng(5);
  std::vector<std::string> prompts_text;
  for (int i = 0; i < 32; ++i) {
    const int k = i % 4;
    traces.example_id.push_back(i);
    traces.reaching.push_back(0);
    traces.prompts.push_back("<|im_start|>user\nPick item " + std::to_string(k) +
                             "<|im_end|>\n<|im_start|>assistant\n");
    traces.completions.push_back("<think>\nItem " + std::to_string(k) + ".\n</think><answer>" +
                                 std::to_string(1 + rng.below(4)) + "</answer>");
  }
  BpeTrainerOptions bo;
  bo.vocab_size = 300;
  std::vector<std::string> texts = traces.prompts;
  texts.insert(texts.end(), traces.completions.begin(), traces.completions.end());
  const Tokenizer tok(train_bpe(texts, bo));
  Transformer policy = build_model(c, tok.vocab_size());
  train_sft(*policy, c, traces, tok, DataParallelGroup::single());
  Transformer reference = build_model(c, tok.vocab_size());
  {
    torch::NoGradGuard g;
    const auto src = policy->named_parameters();
    auto dst = reference->named_parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].value().copy_(src[i].value());
  }
  std::vector<RlPrompt> prompts;
  for (int k = 0; k < 4; ++k) {
    const auto ids = tok.encode(traces.prompts[k]);
    prompts.push_back({{ids.begin(), ids.end()}, nullptr});
  }
  const RewardFn reward = [](int64_t prompt, const std::string& completion) {
    Reward r;  // parts: answer, format (weights 1 and 0.1)
    const size_t open = completion.find("<answer>");
    const bool formed = open != std::string::npos && completion.find("</answer>", open) != std::string::npos;
    (void)prompt;
    r.parts = {completion.find("<answer>1</answer>") != std::string::npos ? 1.0 : 0.0, formed ? 1.0 : 0.0};
    r.total = r.parts[0] + 0.1 * r.parts[1];
    return r;
  };
  RlConfig rl = c.rl;
  rl.steps = 30;
  rl.prompts_per_step = 4;
  rl.group_size = 8;
  rl.micro_batch_size = 8;
  rl.max_new_tokens = 24;
  rl.learning_rate = 1e-3;
  rl.kl_beta = 0.01;
  const RlResult r = train_grpo(*policy, *reference, rl, 77, prompts, reward, tok, DataParallelGroup::single());
  ASSERT_EQ(r.steps.size(), 30u);
  double early = 0, late = 0;
  for (int s = 0; s < 5; ++s) early += r.steps[s].parts[0] / 5;
  for (int s = 25; s < 30; ++s) late += r.steps[s].parts[0] / 5;
  std::printf("answer reward: first 5 steps %.3f, last 5 steps %.3f; format %.2f; KL step 0 %.2g, last %.2g\n", early,
              late, r.steps.back().parts[1], r.steps.front().kl, r.steps.back().kl);
  EXPECT_LT(early, 0.5);
  EXPECT_GT(late, early + 0.3);
  EXPECT_GT(late, 0.65);
  for (const auto& s : r.steps) {
    EXPECT_LT(s.old_new_gap, 1e-4) << "step " << s.step;  // rollout and learner share weights and kernels
    EXPECT_GT(s.completion_tokens, 0);
  }
  EXPECT_LT(r.steps.front().kl, 1e-6);  // the policy starts at the reference
  // The KL of the last step that updated (a step whose groups were all flat learns nothing and reports 0).
  double last_kl = -1;
  for (const auto& s : r.steps)
    if (s.zero_advantage_groups < rl.prompts_per_step) last_kl = s.kl;
  EXPECT_GT(last_kl, r.steps.front().kl);
}

}  // namespace
}  // namespace r2rec
