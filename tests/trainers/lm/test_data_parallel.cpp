// Data-parallel SFT and GRPO through the GradientSynchronizer (distributed/gradient_sync.h GradientSum): under
// `mpirun -np 2` and `-np 3`, the ranks' summed gradients give the steps one process takes on the whole batch —
// the same losses and final weights (fp32 CPU: 2e-5 relative on losses, 2e-5 absolute on weights, the float
// summation order across ranks and micro-batches being the only difference) — and the bucketed synchroniser
// (several buckets, launched from the backward hooks) gives exactly what a flat all-reduce after backward gives
// on two ranks (a + b is commutative), within 1e-6 on three.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/tokenizer/bpe_trainer.h"
#include "distributed/dp_group.h"
#include "tests/trainers/lm/weights.h"
#include "trainers/lm/grpo.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/sft.h"

namespace r2rec {
namespace {

Config tiny_config() {
  return load_config("", {"model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=2",
                          "model.intermediate_size=64", "sft.batch_size=12", "sft.micro_batch_size=2",
                          "sft.learning_rate=0.01", "sft.warmup_steps=1", "sft.epochs=3"});
}

// Traces of uneven lengths, so the ranks' micro-batches differ in shape.
TraceSet traces(int n) {
  TraceSet t;
  for (int i = 0; i < n; ++i) {
    t.example_id.push_back(i);
    t.reaching.push_back(1);
    t.prompts.push_back("<|im_start|>user\nPick item " + std::to_string(i % 5) + std::string(i % 7, '!') +
                        "<|im_end|>\n<|im_start|>assistant\n");
    t.completions.push_back("<think>\nItem " + std::to_string(i % 5) + " it is" + std::string(i % 3, '.') +
                            "\n</think><answer>" + std::to_string(i % 5 + 1) + "</answer>");
  }
  return t;
}

Tokenizer tokenizer_for(const TraceSet& t) {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  std::vector<std::string> texts = t.prompts;
  texts.insert(texts.end(), t.completions.begin(), t.completions.end());
  return Tokenizer(train_bpe(texts, o));
}

Transformer fresh(const Config& c, const Tokenizer& tok) {
  torch::manual_seed(5);
  return build_model(c, tok.vocab_size());
}

using testing::max_weight_diff;

// The world as a data-parallel group: gradients through the bucketed synchroniser (0.01 MiB buckets: several
// for this model), or with `flat` through one flat host all-reduce after backward (the synchroniser's reference).
DataParallelGroup world(bool flat = false) {
  DataParallelOptions o;
  o.timeout_s = 60;
  o.bucket_mb = 0.01;
  o.flat_gradients = flat;
  return DataParallelGroup::world(o);
}

TEST(DataParallel, SftThroughTheSynchronizerEqualsOneProcess) {
  const DataParallelGroup group = world();
  if (group.size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more";
  const Config c = tiny_config();
  const TraceSet t = traces(24);
  const Tokenizer tok = tokenizer_for(t);

  Transformer one = fresh(c, tok);
  const SftResult a = train_sft(*one, c, t, tok, DataParallelGroup::single());
  ASSERT_EQ(a.steps, 6);
  EXPECT_EQ(a.gradient_buckets, 0);

  Transformer dp = fresh(c, tok);
  const SftResult b = train_sft(*dp, c, t, tok, group);
  EXPECT_GT(b.gradient_buckets, 2) << "0.01 MiB buckets: several for this model";
  ASSERT_EQ(b.losses.size(), a.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i)
    EXPECT_NEAR(b.losses[i], a.losses[i], 2e-5 * std::abs(a.losses[i])) << "step " << i;
  EXPECT_LT(max_weight_diff(*dp, *one), 2e-5);
  EXPECT_LT(a.losses.back(), a.losses.front());

  Transformer flat = fresh(c, tok);
  const SftResult f = train_sft(*flat, c, t, tok, world(/*flat=*/true));
  EXPECT_EQ(f.gradient_buckets, 0);
  const double tol = group.size() == 2 ? 0.0 : 1e-6;
  for (size_t i = 0; i < f.losses.size(); ++i)
    EXPECT_NEAR(b.losses[i], f.losses[i], tol * std::abs(f.losses[i])) << "step " << i;
  EXPECT_LE(max_weight_diff(*dp, *flat), tol);
}

TEST(DataParallel, ColocatedGrpoThroughTheSynchronizerEqualsOneProcess) {
  const DataParallelGroup group = world();
  if (group.size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more";
  const Config c = tiny_config();
  const TraceSet t = traces(24);
  const Tokenizer tok = tokenizer_for(t);
  std::vector<RlPrompt> prompts;
  for (int k = 0; k < 6; ++k) {
    const auto ids = tok.encode(t.prompts[static_cast<size_t>(k)]);
    prompts.push_back({{ids.begin(), ids.end()}, nullptr});
  }
  RlConfig rl = c.rl;
  rl.steps = 3;
  rl.prompts_per_step = 6;  // a multiple of 2 and 3 ranks
  rl.group_size = 4;
  rl.micro_batch_size = 5;  // uneven micro-batches
  rl.inner_epochs = 2;
  rl.max_new_tokens = 10;
  rl.learning_rate = 3e-3;
  const RewardFn reward = [](int64_t prompt, const std::string& completion) {
    Reward r;
    r.parts = {static_cast<double>((completion.size() + static_cast<size_t>(prompt)) % 3) / 2};
    r.total = r.parts[0];
    return r;
  };
  Transformer p1 = fresh(c, tok), r1 = fresh(c, tok);
  const RlResult a = train_grpo(*p1, *r1, rl, 9, prompts, reward, tok, DataParallelGroup::single());
  Transformer p2 = fresh(c, tok), r2 = fresh(c, tok);
  const RlResult b = train_grpo(*p2, *r2, rl, 9, prompts, reward, tok, group);
  ASSERT_EQ(a.steps.size(), 3u);
  ASSERT_EQ(b.steps.size(), 3u);
  bool learnt = false;
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(b.steps[s].completion_tokens, a.steps[s].completion_tokens) << "step " << s;
    EXPECT_DOUBLE_EQ(b.steps[s].reward, a.steps[s].reward) << "step " << s;
    EXPECT_NEAR(b.steps[s].loss, a.steps[s].loss, 1e-6 + 2e-5 * std::abs(a.steps[s].loss)) << "step " << s;
    EXPECT_GE(b.steps[s].reward_seconds, 0.0);
    learnt = learnt || a.steps[s].loss != 0;
  }
  EXPECT_TRUE(learnt) << "every step was flat: the test checks nothing";
  EXPECT_LT(max_weight_diff(*p2, *p1), 2e-5);
  EXPECT_GT(max_weight_diff(*p2, *r2), 1e-4) << "the policy moved";
}

}  // namespace
}  // namespace r2rec
