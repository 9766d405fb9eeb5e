// Split GRPO (trainers/lm/grpo.h train_grpo_split) against colocated GRPO on one process, under mpirun -np N:
// ranks [0, N-1) learn and rank N-1 rolls out (np 2: 1 + 1; np 3: 2 + 1). Every rank first runs the colocated
// reference on its own copy of the same model (DataParallelGroup::single()), then the ranks run split:
//   sync:  the rollout rank samples exactly the reference's completions (strings, in order) and scores the same
//          rewards; learner 0 sees the reference's per-step rewards, losses and KL, and ends with its weights
//          (1 learner: bit-identical; 2 learners: gradients summed in another order, fp32 tolerance 1e-5);
//   async (rl.max_staleness 1): every step after the first learns from completions one version old, the
//          behaviour log-probs differ from the learner's (|old - new| > 0), nothing is dropped.
// The model is random (no SFT): its completions are random tokens, and the reward is a hash of the text, so
// every group has a spread and every step updates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "core/hash.h"
#include "core/tokenizer/bpe_trainer.h"
#include "distributed/communicator.h"
#include "tests/trainers/lm/weights.h"
#include "trainers/lm/grpo.h"
#include "trainers/lm/model_folder.h"

namespace r2rec {
namespace {

struct Fixture {
  Config config;
  std::unique_ptr<Tokenizer> tok;
  std::vector<RlPrompt> prompts;
  RlConfig rl;

  Fixture() {
    config = load_config("", {"model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=2",
                              "model.intermediate_size=64"});
    std::vector<std::string> texts;
    for (int i = 0; i < 16; ++i) {
      texts.push_back("<|im_start|>user\nPick item " + std::to_string(i) + " of " + std::to_string(i * 7 % 5) +
                      "<|im_end|>\n<|im_start|>assistant\n<think>\nItem " + std::to_string(i) + ".\n</think><answer>" +
                      std::to_string(i % 4) + "</answer>");
    }
    BpeTrainerOptions bo;
    bo.vocab_size = 300;
    tok = std::make_unique<Tokenizer>(train_bpe(texts, bo));
    for (int k = 0; k < 6; ++k) {
      const auto ids =
          tok->encode("<|im_start|>user\nPick item " + std::to_string(k) + "<|im_end|>\n<|im_start|>assistant\n");
      prompts.push_back({{ids.begin(), ids.end()}, nullptr});
    }
    rl = config.rl;
    rl.steps = 4;
    rl.prompts_per_step = 4;
    rl.group_size = 4;
    rl.micro_batch_size = 8;
    rl.inner_epochs = 2;
    rl.max_new_tokens = 10;
    rl.learning_rate = 3e-3;
    rl.kl_beta = 0.05;
  }

  Transformer model() const {
    torch::manual_seed(11);
    return build_model(config, tok->vocab_size());
  }
};

// A reward with two components and a spread inside every group: pure in the completion's text.
// Rewards are scored in parallel: the record is locked, and compared as a sorted list.
struct Recorder {
  std::mutex mu;
  std::vector<std::pair<int64_t, std::string>> seen;
  std::vector<std::pair<int64_t, std::string>> sorted() {
    std::vector<std::pair<int64_t, std::string>> s = seen;
    std::sort(s.begin(), s.end());
    return s;
  }
  RewardFn fn() {
    return [this](int64_t prompt, const std::string& completion) {
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.emplace_back(prompt, completion);
      }
      const uint64_t h = fnv1a(completion);
      Reward r;
      // Thirds and a weight of 0.1 are not float32 values: the rounding of rewards in transit must not matter.
      r.parts = {static_cast<double>(h % 2), static_cast<double>(completion.size() % 3) / 3};
      r.total = r.parts[0] + 0.1 * r.parts[1];
      return r;
    };
  }
};

using testing::max_weight_diff;

struct Groups {
  std::shared_ptr<Communicator> world;
  std::unique_ptr<Communicator> sync;
  SplitGroups g;
  Groups() {
    CommOptions o;
    o.timeout_s = 60;
    world = make_communicator("mpi", o);
    const int n = world->size();
    std::vector<int> ls, ss{0};
    for (int r = 0; r + 1 < n; ++r) ls.push_back(r);
    ss.push_back(n - 1);
    DataParallelOptions dp;
    dp.timeout_s = 60;
    dp.bucket_mb = 0.01;  // several buckets even for this small model
    g.learners = DataParallelGroup::over(world->split(ls), dp);
    sync = world->split(ss);
    g.world = world.get();
    g.sync = sync.get();
    g.num_learners = n - 1;
    g.num_rollouts = 1;
    g.timeout_s = 60;
    g.bucket_mb = 0.01;  // several buckets even for this small model
  }
  bool learner() const { return world->rank() + 1 < world->size(); }
};

TEST(GrpoSplit, SyncEqualsColocated) {
  Fixture f;
  Groups groups;
  if (groups.world->size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more";
  // Reference: colocated on this process alone.
  Transformer ref_policy = f.model(), ref_reference = f.model();
  Recorder ref_seen;
  const RlResult ref =
      train_grpo(*ref_policy, *ref_reference, f.rl, 77, f.prompts, ref_seen.fn(), *f.tok, DataParallelGroup::single());
  ASSERT_EQ(ref.steps.size(), 4u);
  ASSERT_EQ(ref_seen.seen.size(), 4u * 4 * 4);

  Transformer policy = f.model();
  Transformer reference = f.model();
  Recorder seen;
  const RlResult split = train_grpo_split(*policy, groups.learner() ? reference.get() : nullptr, f.rl, 77, f.prompts,
                                          seen.fn(), *f.tok, groups.g);
  ASSERT_EQ(split.steps.size(), 4u);
  const double tol = groups.g.num_learners == 1 ? 0.0 : 1e-5;
  if (!groups.learner()) {  // the rollout rank sampled and scored the reference's completions
    const auto got = seen.sorted(), want = ref_seen.sorted();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].first, want[i].first) << "completion " << i;
      EXPECT_EQ(got[i].second, want[i].second) << "completion " << i;
    }
    return;
  }
  EXPECT_TRUE(seen.seen.empty());  // learners do not score
  for (size_t s = 0; s < 4; ++s) {
    const GrpoStep &a = split.steps[s], &b = ref.steps[s];
    EXPECT_EQ(a.completion_tokens, b.completion_tokens) << "step " << s;
    EXPECT_DOUBLE_EQ(a.reward, b.reward) << "step " << s;
    EXPECT_DOUBLE_EQ(a.reward_std, b.reward_std) << "step " << s;
    ASSERT_EQ(a.parts.size(), 2u);
    EXPECT_DOUBLE_EQ(a.parts[1], b.parts[1]) << "step " << s;
    EXPECT_EQ(a.zero_advantage_groups, b.zero_advantage_groups) << "step " << s;
    EXPECT_NEAR(a.loss, b.loss, tol + 1e-6 * std::abs(b.loss)) << "step " << s;
    EXPECT_NEAR(a.kl, b.kl, tol + 1e-6 * std::abs(b.kl)) << "step " << s;
    EXPECT_EQ(a.staleness.at(0), 16) << "step " << s;
    EXPECT_EQ(a.stale_dropped, 0);
    EXPECT_LT(a.old_new_gap, 1e-4) << "step " << s;  // sync: the rollout sampled with these weights
    if (groups.world->rank() == 0 && s + 1 < 4) {
      EXPECT_GT(a.sync_bytes, 0) << "step " << s;
    }
  }
  EXPECT_GT(ref.steps.back().kl, 0.0);  // the policy moved
  const double diff = max_weight_diff(*policy, *ref_policy);
  std::printf("rank %d: split %d+1 vs colocated: max |weight diff| %.3g, losses %.6f/%.6f (step 4)\n",
              groups.world->rank(), groups.g.num_learners, diff, split.steps.back().loss, ref.steps.back().loss);
  EXPECT_LE(diff, tol);
}

TEST(GrpoSplit, AsyncLearnsFromOneVersionOld) {
  Fixture f;
  Groups groups;
  if (groups.world->size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more";
  f.rl.async = true;
  f.rl.max_staleness = 1;
  // Batches past MPI's eager limit (16 x 96 tokens x 8 bytes): the rollout's send of step t+1 must not wait for
  // the learner, which is in the weight broadcast by then (a deadlock before the sends completed lazily).
  f.rl.max_new_tokens = 96;
  Transformer policy = f.model(), reference = f.model();
  Recorder seen;
  const RlResult r = train_grpo_split(*policy, groups.learner() ? reference.get() : nullptr, f.rl, 77, f.prompts,
                                      seen.fn(), *f.tok, groups.g);
  ASSERT_EQ(r.steps.size(), 4u);
  if (!groups.learner()) {
    EXPECT_EQ(seen.seen.size(), 64u);
    return;
  }
  // Step 0 and 1 sample with version 0; step t >= 1 learns from version t - 1.
  EXPECT_EQ(r.steps[0].staleness.at(0), 16);
  EXPECT_LT(r.steps[0].old_new_gap, 1e-4);
  for (size_t s = 1; s < 4; ++s) {
    EXPECT_EQ(r.steps[s].staleness.size(), 1u) << "step " << s;
    EXPECT_EQ(r.steps[s].staleness.at(1), 16) << "step " << s;
    EXPECT_GT(r.steps[s].old_new_gap, 1e-5) << "step " << s;  // the behaviour policy is one update behind
    EXPECT_EQ(r.steps[s].stale_dropped, 0);
  }
}

}  // namespace
}  // namespace r2rec
