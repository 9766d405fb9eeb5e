// The comparison tools against hand computations: per-example outcomes, examples.jsonl written and read back,
// Student's t interval, the paired bootstrap, and the report's comparison with the best baseline.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "tests/test_support.h"
#include "trainers/eval/examples_file.h"
#include "trainers/eval/report.h"
#include "trainers/eval/stats.h"

namespace r2rec {
namespace {

Example example(int64_t id, int32_t user, int32_t target_index) {
  Example e;
  e.id = id;
  e.user = user;
  e.candidates = {10, 11, 12, 13};
  e.target_index = target_index;
  e.target = e.candidates[static_cast<size_t>(target_index)];
  return e;
}

TEST(Outcomes, HitAndExpectedRankWithTies) {
  RankingMetrics m({1, 3});
  m.add({0.5, 0.9, 0.5, 0.1}, example(7, 3, 0));  // one above, one tied: rank 2.5, never first
  m.add({0.9, 0.9, 0.1, 0.1}, example(8, 3, 1));  // tied for first with one: hit 1/2, rank 1.5
  m.add_choice(2, example(9, 4, 2));              // a choice: hit, no rank
  m.add_choice(1, example(10, 4, 2));             // a miss
  ASSERT_EQ(m.outcomes().size(), 4u);
  EXPECT_EQ(m.outcomes()[0].id, 7);
  EXPECT_DOUBLE_EQ(m.outcomes()[0].hit, 0.0);
  EXPECT_DOUBLE_EQ(m.outcomes()[0].rank, 2.5);
  EXPECT_DOUBLE_EQ(m.outcomes()[1].hit, 0.5);
  EXPECT_DOUBLE_EQ(m.outcomes()[1].rank, 1.5);
  EXPECT_DOUBLE_EQ(m.outcomes()[2].hit, 1.0);
  EXPECT_DOUBLE_EQ(m.outcomes()[2].rank, 0.0);
  EXPECT_DOUBLE_EQ(m.outcomes()[3].hit, 0.0);
  double hits = 0;
  for (const auto& o : m.outcomes()) hits += o.hit;
  EXPECT_DOUBLE_EQ(hits / 4, m.hr(1)) << "the outcomes add up to HR@1";
  // The list hash: the same candidates and target give the same hash; another target another one.
  EXPECT_EQ(candidates_hash(example(1, 1, 2)), candidates_hash(example(2, 5, 2)));
  EXPECT_NE(candidates_hash(example(1, 1, 2)), candidates_hash(example(1, 1, 3)));
}

TEST(Stats, StudentTByHand) {
  // mean 0.42, s = 0.02, t(0.975, 2) = 4.302652729911275: half-width 4.302652729911275 * 0.02 / sqrt(3).
  const Interval i = t_interval({0.40, 0.42, 0.44});
  const double half = 4.302652729911275 * 0.02 / std::sqrt(3.0);
  EXPECT_NEAR(i.mean, 0.42, 1e-12);
  EXPECT_NEAR(i.lo, 0.42 - half, 1e-9);
  EXPECT_NEAR(i.hi, 0.42 + half, 1e-9);
  EXPECT_EQ(i.n, 3);
  // One value: the point itself.
  const Interval one = t_interval({0.3});
  EXPECT_DOUBLE_EQ(one.lo, 0.3);
  EXPECT_DOUBLE_EQ(one.hi, 0.3);
  EXPECT_THROW(t_interval({}), ConfigError);
}

TEST(Stats, PairedBootstrapByHand) {
  // A constant difference has a degenerate interval at it.
  const Interval c = paired_bootstrap({1, 1, 0, 1}, {0, 0, -1, 0}, 200, 1);
  EXPECT_DOUBLE_EQ(c.mean, 1.0);
  EXPECT_DOUBLE_EQ(c.lo, 1.0);
  EXPECT_DOUBLE_EQ(c.hi, 1.0);
  // Two examples with differences 0 and 1: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4,
  // so the 2.5% and 97.5% quantiles of many resamples are 0 and 1.
  const Interval two = paired_bootstrap({0, 1}, {0, 0}, 20000, 7);
  EXPECT_DOUBLE_EQ(two.mean, 0.5);
  EXPECT_DOUBLE_EQ(two.lo, 0.0);
  EXPECT_DOUBLE_EQ(two.hi, 1.0);
  // Many examples: the interval approaches mean ± 1.96 · sd / sqrt(n) (the normal approximation). 1000 examples:
  // both hit 350, A alone 100, B alone 50, so d is +1 100 times and -1 50 times: mean 0.05, variance
  // E[d^2] - 0.05^2 = 0.15 - 0.0025.
  std::vector<double> a(1000, 0.0), b(1000, 0.0);
  for (int i = 0; i < 350; ++i) a[i] = b[i] = 1;  // both hit
  for (int i = 350; i < 450; ++i) a[i] = 1;       // A only: 100
  for (int i = 450; i < 500; ++i) b[i] = 1;       // B only: 50
  const Interval big = paired_bootstrap(a, b, 20000, 3);
  const double se = std::sqrt((0.15 - 0.05 * 0.05) / 1000.0);
  EXPECT_NEAR(big.mean, 0.05, 1e-12);
  EXPECT_NEAR(big.lo, 0.05 - 1.96 * se, 0.15 * se);
  EXPECT_NEAR(big.hi, 0.05 + 1.96 * se, 0.15 * se);
  EXPECT_TRUE(big.excludes_zero());
  // A pure function of its inputs and seed.
  const Interval again = paired_bootstrap(a, b, 20000, 3);
  EXPECT_EQ(big.lo, again.lo);
  EXPECT_EQ(big.hi, again.hi);
  // Other seeds give the same interval up to Monte Carlo error (~0.0005 here at 20,000 resamples): resamples
  // drawn from overlapping streams once moved the ends by ~0.01.
  for (uint64_t seed : {0ull, 1ull, 99ull}) {
    const Interval other = paired_bootstrap(a, b, 20000, seed);
    EXPECT_NEAR(other.lo, big.lo, 0.003) << "seed " << seed;
    EXPECT_NEAR(other.hi, big.hi, 0.003) << "seed " << seed;
  }
  EXPECT_THROW(paired_bootstrap({1, 0}, {1}, 10, 1), ConfigError);
}

TEST(ExamplesFile, WrittenAndReadBack) {
  testing::TempDir dir;
  const std::string path = dir.file("examples.jsonl");
  RankingMetrics pop({1}), lm({1});
  pop.add({0.1, 0.9, 0.2, 0.3}, example(1, 11, 1));  // pop hits user 11
  pop.add({0.9, 0.1, 0.2, 0.3}, example(2, 12, 1));  // misses user 12 (rank 4)
  pop.add({0.9, 0.1, 0.2, 0.3}, example(3, 13, 0));  // hits user 13
  lm.add_choice(0, example(1, 11, 1));               // lm misses 11
  lm.add_choice(1, example(2, 12, 1));               // hits 12
  lm.add_choice(0, example(3, 13, 0));               // hits 13
  update_examples(path, "test", "popularity", pop.outcomes());
  update_examples(path, "test", "llm-rl-gen", lm.outcomes());
  update_examples(path, "valid", "popularity", pop.outcomes());
  auto table = read_examples(path, "test");
  ASSERT_EQ(table.size(), 2u);
  ASSERT_EQ(table["popularity"].size(), 3u);
  EXPECT_DOUBLE_EQ(table["popularity"][2].rank, 4.0);
  EXPECT_EQ(table["popularity"][2].user, 12);
  EXPECT_EQ(table["llm-rl-gen"][2].list_hash, candidates_hash(example(2, 12, 1)));
  std::vector<double> ha, hb;
  paired_hits(table, "llm-rl-gen", "popularity", &ha, &hb);
  EXPECT_EQ(ha, (std::vector<double>{0, 1, 1}));
  EXPECT_EQ(hb, (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(read_examples(path, "valid").size(), 1u);

  // Writing a method again replaces its outcomes; a new list for an example drops the others' outcomes there.
  RankingMetrics lm2({1});
  Example relisted = example(3, 13, 0);
  relisted.candidates = {20, 21, 22, 23};
  lm2.add_choice(0, relisted);
  update_examples(path, "test", "llm-rl-gen", lm2.outcomes());
  table = read_examples(path, "test");
  EXPECT_EQ(table["llm-rl-gen"].size(), 1u);
  EXPECT_EQ(table["popularity"].size(), 2u) << "example 3 was scored on another list by popularity";
  paired_hits(table, "llm-rl-gen", "popularity", &ha, &hb);
  EXPECT_TRUE(ha.empty());

  // Not examples.jsonl: a DataError naming the file and line; the file is left as it was.
  const std::string bad =
      dir.write("bad.jsonl", "{\"split\":\"test\",\"id\":1,\"list\":\"00000000000000ab\",\"methods\":{}}\nnot json\n");
  try {
    update_examples(bad, "test", "popularity", pop.outcomes());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(bad), "{\"split\":\"test\",\"id\":1,\"list\":\"00000000000000ab\",\"methods\":{}}\nnot json\n");
  // A method entry without a numeric hit is not an outcome either.
  const std::string odd = dir.write("odd.jsonl",
                                    "{\"split\":\"test\",\"id\":1,\"list\":\"00000000000000ab\","
                                    "\"methods\":{\"bpr\":3}}\n");
  EXPECT_THROW(read_examples(odd, "test"), DataError);
}

TEST(ExamplesFile, ReportComparesEveryLmRowWithTheBestBaseline) {
  testing::TempDir dir;
  const std::string report = dir.file("report.json"), examples = dir.file("examples.jsonl");
  // 40 examples: popularity hits the first 10, bpr the first 20, the LM the first 30.
  RankingMetrics pop({1}), bpr({1}), lm({1}), rnd({1});
  for (int i = 0; i < 40; ++i) {
    const Example e = example(i, i, 0);
    pop.add_choice(i < 10 ? 0 : 1, e);
    bpr.add_choice(i < 20 ? 0 : 1, e);
    lm.add_choice(i < 30 ? 0 : 1, e);
    rnd.add_choice(0, e);  // random is never the opponent, however lucky
  }
  for (auto [name, m] : {std::pair<const char*, RankingMetrics*>{"popularity", &pop},
                         {"bpr", &bpr},
                         {"llm-rl-gen", &lm},
                         {"random", &rnd}}) {
    MethodResult r;
    r.method = name;
    r.split = "test";
    r.metrics = m->summary();
    r.examples = m->count();
    update_report(report, "toy", 4, r);
    update_examples(examples, "test", name, m->outcomes());
  }
  const auto cs = compare_with_best_baseline(report, examples, "test", 5000, 1);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].method, "llm-rl-gen");
  EXPECT_EQ(cs[0].baseline, "bpr");
  EXPECT_DOUBLE_EQ(cs[0].method_hr1, 0.75);
  EXPECT_DOUBLE_EQ(cs[0].baseline_hr1, 0.5);
  EXPECT_DOUBLE_EQ(cs[0].difference.mean, 0.25);
  EXPECT_TRUE(cs[0].difference.excludes_zero());  // 10 of 40 discordant, all one way
  const std::string md = report_markdown(report, "protocol", compare_every_split(report, examples, 1));
  EXPECT_NE(md.find("best classical baseline of this table (`bpr`)"), std::string::npos) << md;
  EXPECT_NE(md.find("| llm-rl-gen | 0.7500 | 0.5000 | +0.2500 ["), std::string::npos) << md;
}

// A trained baseline's entry keeps the settings it trained with and the validation curve early stopping read, so a
// grid over settings (benchmarks/baseline_grid.sh) reads its choice and curve back from report.json.
TEST(Report, TrainedEntriesKeepTheirSettingsAndValidationCurve) {
  testing::TempDir dir;
  const std::string report = dir.file("report.json");
  MethodResult r;
  r.method = "bpr";
  r.split = "valid";
  r.metrics = {{"HR@1", 0.42}};
  r.examples = 943;
  Config c;
  c.baseline.bpr.dim = 32;
  r.settings = config_values(c, "baseline.bpr.");
  r.valid_curve = {{5, 0.61}, {10, 0.68}, {15, 0.67}};
  r.best_epoch = 10;
  update_report(report, "ml-100k", 20, r);
  const nlohmann::json j = nlohmann::json::parse(read_file(report));
  const nlohmann::json& m = j["splits"]["valid"]["methods"]["bpr"];
  EXPECT_EQ(m["settings"]["baseline.bpr.dim"], 32);
  EXPECT_EQ(m["settings"]["baseline.bpr.learning_rate"], 0.001);
  EXPECT_EQ(m["settings"]["baseline.bpr.fold_in"], true);
  EXPECT_EQ(m["settings"].size(), config_values(c, "baseline.bpr.").size());
  for (const auto& [key, value] : m["settings"].items()) EXPECT_EQ(key.rfind("baseline.bpr.", 0), 0u) << key;
  EXPECT_EQ(m["best_epoch"], 10);
  EXPECT_EQ(m["valid_curve"].dump(), "[[5,0.61],[10,0.68],[15,0.67]]");
  const std::string md = report_markdown(report, "protocol", {});
  EXPECT_NE(md.find("- `bpr`: dim 32; epochs 100;"), std::string::npos) << md;
  EXPECT_NE(md.find("validation NDCG@10 by epoch: 5 0.6100, 10 0.6800, 15 0.6700, best at epoch 10"), std::string::npos)
      << md;
  // An untrained method's entry has neither.
  r.method = "popularity";
  r.settings.clear();
  r.valid_curve.clear();
  update_report(report, "ml-100k", 20, r);
  const nlohmann::json k = nlohmann::json::parse(read_file(report));
  EXPECT_FALSE(k["splits"]["valid"]["methods"]["popularity"].contains("settings"));
  EXPECT_FALSE(k["splits"]["valid"]["methods"]["popularity"].contains("valid_curve"));
}

}  // namespace
}  // namespace r2rec
