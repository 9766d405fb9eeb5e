// HR@k / NDCG@k against hand-computed values, including ties.
#include <gtest/gtest.h>

#include <cmath>

#include "trainers/eval/metrics.h"

namespace r2rec {
namespace {

TEST(Metrics, RankOneIsAHitEverywhere) {
  RankingMetrics m({1, 3});
  m.add({0.9, 0.1, 0.2}, 0);
  EXPECT_DOUBLE_EQ(m.hr(1), 1.0);
  EXPECT_DOUBLE_EQ(m.ndcg(1), 1.0);
  EXPECT_DOUBLE_EQ(m.ndcg(3), 1.0);
}

TEST(Metrics, RankThreeByFormula) {
  RankingMetrics m({1, 3, 5});
  m.add({0.5, 0.9, 0.1, 0.7, 0.0}, 0);  // two higher: rank 3
  EXPECT_DOUBLE_EQ(m.hr(1), 0.0);
  EXPECT_DOUBLE_EQ(m.hr(3), 1.0);
  EXPECT_DOUBLE_EQ(m.ndcg(3), 1.0 / std::log2(4.0));
  EXPECT_DOUBLE_EQ(m.ndcg(1), 0.0);
  EXPECT_DOUBLE_EQ(expected_rank({0.5, 0.9, 0.1, 0.7, 0.0}, 0), 3.0);
}

TEST(Metrics, AllTiedEqualsRandomExpectation) {
  // A constant scorer over C candidates must score exactly what a random ranking scores in expectation.
  const int C = 20;
  RankingMetrics m({1, 5, 10});
  m.add(std::vector<double>(C, 0.0), 7);
  EXPECT_NEAR(m.hr(1), 1.0 / C, 1e-12);
  EXPECT_NEAR(m.hr(5), 5.0 / C, 1e-12);
  double ndcg10 = 0;
  for (int r = 1; r <= 10; ++r) ndcg10 += 1.0 / std::log2(r + 1.0) / C;
  EXPECT_NEAR(m.ndcg(10), ndcg10, 1e-12);
  EXPECT_DOUBLE_EQ(expected_rank(std::vector<double>(C, 0.0), 7), 1 + (C - 1) / 2.0);
}

TEST(Metrics, AveragesAndMergesAcrossExamples) {
  RankingMetrics a({1}), b({1});
  a.add({1.0, 0.0}, 0);
  a.add({0.0, 1.0}, 0);
  b.add_choice(3, 3);
  b.add_choice(2, 3);
  a.merge(b);
  EXPECT_EQ(a.count(), 4);
  EXPECT_DOUBLE_EQ(a.hr(1), 0.5);
  RankingMetrics c({1});
  c.set_sums(a.sums(), a.count());
  EXPECT_DOUBLE_EQ(c.hr(1), 0.5);
  EXPECT_EQ(c.summary().at("HR@1"), 0.5);
}

TEST(Metrics, NonFiniteScoresNeverHit) {
  RankingMetrics m({1, 3});
  m.add({std::nan(""), 0.1, 0.2}, 0);  // a diverged model's NaN target ranks last, not first
  EXPECT_DOUBLE_EQ(m.hr(1), 0.0);
  EXPECT_DOUBLE_EQ(m.hr(3), 1.0);
  EXPECT_DOUBLE_EQ(expected_rank({std::nan(""), 0.1, 0.2}, 0), 3.0);
}

}  // namespace
}  // namespace r2rec
