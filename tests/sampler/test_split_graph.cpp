// Leave-one-out examples, candidate lists and the train graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "sampler/graph.h"
#include "sampler/split.h"
#include "tests/sampler/sampler_fixtures.h"

namespace r2rec::testing {
namespace {

SamplerConfig sampler_config() {
  SamplerConfig s;
  s.history_len = 10;
  s.num_candidates = 20;
  s.train_examples_per_user = 3;
  return s;
}

const std::vector<Example>& ml100k_examples() {
  static const std::vector<Example> ex = make_examples(ml100k(), sampler_config(), kSeed);
  return ex;
}

TEST(Split, LeaveOneOutPositions) {
  const Dataset& ds = ml100k();
  const std::vector<Example>& ex = ml100k_examples();
  // 943 users, each with >= 20 items: 3 train + 1 valid + 1 test.
  ASSERT_EQ(ex.size(), 943u * 5);
  for (size_t k = 0; k < ex.size(); ++k) {
    const Example& e = ex[k];
    ASSERT_EQ(e.id, static_cast<int64_t>(k));
    const ItemSpan s = ds.sequence(e.user);
    const int32_t n = static_cast<int32_t>(s.size);
    EXPECT_EQ(e.target, s[e.position]);
    switch (e.split) {
      case Split::kTest:
        EXPECT_EQ(e.position, n - 1);
        break;
      case Split::kValid:
        EXPECT_EQ(e.position, n - 2);
        break;
      case Split::kTrain:
        EXPECT_LE(e.position, n - 3);
        EXPECT_GE(e.position, n - 5);
        break;
    }
    // History: the last min(H, p) items before the target, oldest first.
    const int32_t len = std::min(10, e.position);
    ASSERT_EQ(static_cast<int32_t>(e.history.size()), len);
    for (int32_t j = 0; j < len; ++j) EXPECT_EQ(e.history[j], s[e.position - len + j]);
  }
  // Order: split, then user, then position.
  for (size_t k = 1; k < ex.size(); ++k) {
    auto key = [](const Example& e) { return std::make_tuple(static_cast<int>(e.split), e.user, e.position); };
    EXPECT_LT(key(ex[k - 1]), key(ex[k]));
  }
}

TEST(Split, TrainExamplesStopAtPositionOne) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t1\n1\t2\t5\t2\n1\t3\t5\t3\n1\t4\t5\t4\n2\t5\t5\t1\n2\t6\t5\t2\n2\t7\t5\t3\n", 30);
  const Dataset ds = load_dataset(tiny_config(dir), kSeed);
  SamplerConfig s = sampler_config();
  s.num_candidates = 3;  // only items with interactions exist: 7, of which user 1 touched 4
  s.train_examples_per_user = 100;
  const std::vector<Example> ex = make_examples(ds, s, kSeed);
  // User 1 (n=4): train p=1 only; user 2 (n=3): no train (p would be 0). Then 2 valid, 2 test.
  ASSERT_EQ(ex.size(), 5u);
  EXPECT_EQ(ex[0].split, Split::kTrain);
  EXPECT_EQ(ex[0].position, 1);
  EXPECT_EQ(ex[0].history.size(), 1u);
}

TEST(Candidates, DistinctWithTargetAndNeverTouchedNegatives) {
  const Dataset& ds = ml100k();
  for (const Example& e : ml100k_examples()) {
    ASSERT_EQ(e.candidates.size(), 20u);
    EXPECT_EQ(std::set<int32_t>(e.candidates.begin(), e.candidates.end()).size(), 20u);
    ASSERT_GE(e.target_index, 0);
    ASSERT_LT(e.target_index, 20);
    EXPECT_EQ(e.candidates[e.target_index], e.target);
    const ItemSpan s = ds.sequence(e.user);
    for (size_t k = 0; k < e.candidates.size(); ++k) {
      if (static_cast<int32_t>(k) == e.target_index) continue;
      EXPECT_EQ(std::find(s.begin(), s.end(), e.candidates[k]), s.end()) << "negative touched by the user";
    }
  }
}

TEST(Candidates, TargetIndexIsSpreadOut) {
  std::vector<int> hist(20, 0);
  for (const Example& e : ml100k_examples()) ++hist[e.target_index];
  for (int h : hist) EXPECT_GT(h, 4715 / 20 / 2);  // roughly uniform
}

TEST(Candidates, DeterministicBySeed) {
  const std::vector<Example> again = make_examples(ml100k(), sampler_config(), kSeed);
  const std::vector<Example> other = make_examples(ml100k(), sampler_config(), kSeed + 1);
  const std::vector<Example>& ex = ml100k_examples();
  size_t same_other = 0;
  for (size_t k = 0; k < ex.size(); ++k) {
    EXPECT_EQ(ex[k].candidates, again[k].candidates);
    same_other += ex[k].candidates == other[k].candidates;
  }
  EXPECT_EQ(same_other, 0u);
  // Valid/test candidates do not depend on how many train examples come first.
  SamplerConfig s = sampler_config();
  s.train_examples_per_user = 0;
  const std::vector<Example> no_train = make_examples(ml100k(), s, kSeed);
  ASSERT_EQ(no_train.size(), 943u * 2);
  EXPECT_EQ(no_train.back().candidates, ex.back().candidates);
}

TEST(Candidates, TooFewUntouchedItemsIsAnError) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t1\n1\t2\t5\t2\n1\t3\t5\t3\n1\t4\t5\t4\n2\t1\t5\t1\n2\t2\t5\t2\n2\t3\t5\t3\n", 4);
  const Dataset ds = load_dataset(tiny_config(dir), kSeed);
  SamplerConfig s = sampler_config();
  s.num_candidates = 2;  // user 1 touched all 4 items
  EXPECT_THROW(make_examples(ds, s, kSeed), DataError);
  s.num_candidates = 5;
  EXPECT_THROW(make_examples(ds, s, kSeed), ConfigError);
}

TEST(Candidates, DenseCaseStillDistinct) {
  // 30 items, a user touching 20: 10 untouched < 2*(C-1) uses the exhaustive path.
  TempDir dir;
  std::string data;
  for (int i = 1; i <= 20; ++i) data += "1\t" + std::to_string(i) + "\t5\t" + std::to_string(i) + "\n";
  for (int i = 21; i <= 30; ++i) data += "2\t" + std::to_string(i) + "\t5\t" + std::to_string(i) + "\n";
  write_ml100k(dir, data, 30);
  const Dataset ds = load_dataset(tiny_config(dir), kSeed);
  SamplerConfig s = sampler_config();
  s.num_candidates = 11;
  for (const Example& e : make_examples(ds, s, kSeed)) {
    EXPECT_EQ(std::set<int32_t>(e.candidates.begin(), e.candidates.end()).size(), 11u);
    EXPECT_EQ(e.candidates[e.target_index], e.target);
  }
}

TEST(Graph, TrainEdgesBothWaysAndNoEvaluationTargets) {
  const Dataset& ds = ml100k();
  const InteractionGraph g = build_train_graph(ds);
  EXPECT_EQ(g.num_edges(), ds.num_interactions() - 2 * ds.num_users());
  EXPECT_EQ(check_train_graph(g, ds), "");
  for (int32_t u = 0; u < ds.num_users(); ++u) {
    const ItemSpan s = ds.sequence(u);
    for (int64_t j = 0; j < s.size; ++j) {
      EXPECT_EQ(g.has_edge(u, s[j]), j < s.size - 2);
      if (j < s.size - 2) {
        const ItemSpan users = g.users_of(s[j]);
        EXPECT_TRUE(std::binary_search(users.begin(), users.end(), u));
      }
    }
  }
}

TEST(Graph, CheckerCatchesAnEvaluationEdge) {
  const Dataset& ds = ml100k();
  InteractionGraph g = build_train_graph(ds);
  // Replace user 0's first train item by its test target in the user->item direction.
  const ItemSpan s = ds.sequence(0);
  g.user_items[g.user_offsets[0]] = s[s.size - 1];
  std::sort(g.user_items.begin() + g.user_offsets[0], g.user_items.begin() + g.user_offsets[1]);
  EXPECT_NE(check_train_graph(g, ds), "");
}

}  // namespace
}  // namespace r2rec::testing
