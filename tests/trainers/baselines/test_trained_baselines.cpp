// Classical recommenders: scoring prefixes, item-kNN by formula, and SASRec / BPR-MF training that is
// deterministic, learns (beats popularity on ML-100K validation), and is data-parallel: 2 ranks with summed
// gradients give the 1-process model (no dropout), up to float summation order.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>

#include "sampler/shard_reader.h"
#include "tests/mpi_prepared.h"
#include "trainers/baselines/itemknn.h"
#include "trainers/baselines/recommender.h"
#include "trainers/baselines/trained_baseline.h"

namespace r2rec {
namespace {
using testing::world_rank;
using testing::world_size;

testing::MpiPrepared& shared() {
  static testing::MpiPrepared s({"eval.split=valid"});
  return s;
}

// The world, gradients summed by one flat host all-reduce after backward.
DataParallelGroup mpi_group() {
  DataParallelOptions o;
  o.flat_gradients = true;
  return DataParallelGroup::world(o);
}

Catalog catalog() { return read_catalog(shared().path + "/items.h5", nullptr); }

TEST(ScoringPrefix, IsTheUsersSequenceBeforeTheTarget) {
  const Catalog cat = catalog();
  for (const Example& ex : shared().data.examples) {
    if (ex.user % 50 != 0) continue;
    const ItemSpan seq = shared().data.dataset.sequence(ex.user);
    const std::vector<int32_t> want(seq.begin(), seq.begin() + ex.position);
    EXPECT_EQ(scoring_prefix(cat, ex), want) << "example " << ex.id << " split " << static_cast<int>(ex.split);
  }
}

TEST(ItemKnn, CosineByFormula) {
  // 3 users: u0 {0,1,2}, u1 {0,1}, u2 {1,3}. |U_0|=2, |U_1|=3, |U_2|=1, |U_3|=1.
  Catalog c;
  c.item_tokens = {"a", "b", "c", "d"};
  c.item_titles = c.item_tokens;
  c.user_tokens = {"x", "y", "z"};
  c.item_train_count = {2, 3, 1, 1};
  c.user_train_items = {0, 1, 2, 0, 1, 1, 3};
  c.user_train_offsets = {0, 3, 5, 7};
  ItemKnnConfig cfg;
  ItemKnn knn(cfg, c);
  const std::vector<float> row = knn.similarity_row(1);
  EXPECT_NEAR(row[0], 2 / std::sqrt(3.0 * 2.0), 1e-6);
  EXPECT_NEAR(row[2], 1 / std::sqrt(3.0 * 1.0), 1e-6);
  EXPECT_NEAR(row[3], 1 / std::sqrt(3.0 * 1.0), 1e-6);
  EXPECT_EQ(row[1], 0.0f);  // no self-similarity
  cfg.neighbors = 1;
  cfg.shrink = 1.0;
  ItemKnn top1(cfg, c);
  const std::vector<float> r1 = top1.similarity_row(1);
  EXPECT_NEAR(r1[0], 2 / (std::sqrt(6.0) + 1.0), 1e-6);
  EXPECT_EQ(r1[2], 0.0f);
  Example ex;
  ex.candidates = {0, 3};
  const std::vector<double> s = knn.score(ex, {1, 2});  // sim(0,1)+sim(0,2) vs sim(3,1)+sim(3,2)
  EXPECT_NEAR(s[0], 2 / std::sqrt(6.0) + 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(s[1], 1 / std::sqrt(3.0), 1e-6);
}

Config small(const std::string& method) {
  Config c = shared().config;
  c.baseline.sasrec.hidden = 16;
  c.baseline.sasrec.max_len = 20;
  c.baseline.sasrec.epochs = 40;
  c.baseline.sasrec.eval_every = 10;
  c.baseline.sasrec.learning_rate = 5e-3;
  c.baseline.sasrec.batch_size = 32;
  c.baseline.bpr.epochs = 6;
  c.baseline.bpr.eval_every = 3;
  c.baseline.bpr.dim = 16;
  c.baseline.bpr.learning_rate = 1e-2;
  c.baseline.bpr.batch_size = 512;
  (void)method;
  return c;
}

double popularity_valid_ndcg10() {
  ReaderOptions o;
  o.dir = shared().path;
  o.split = static_cast<int>(Split::kValid);
  o.shuffle = false;
  ShardReader reader(o);
  RankingMetrics m({10});
  Example ex;
  while (reader.next(&ex, nullptr)) {
    std::vector<double> s;
    for (int32_t item : ex.candidates) s.push_back(static_cast<double>(reader.catalog().item_train_count[item]));
    m.add(s, ex.target_index);
  }
  return m.ndcg(10);
}

TEST(TrainedBaselines, LearnAndAreDeterministic) {
  if (world_size() != 1) GTEST_SKIP() << "single-process property";
  const double pop = popularity_valid_ndcg10();
  for (const char* method : {"bpr", "sasrec", "itemknn"}) {
    SCOPED_TRACE(method);
    const Config c = small(method);
    const TrainedBaselineResult a = train_and_score(method, c, shared().path, DataParallelGroup::single());
    const TrainedBaselineResult b = train_and_score(method, c, shared().path, DataParallelGroup::single());
    EXPECT_EQ(a.eval.count(), 943);
    EXPECT_EQ(a.eval.ndcg(10), b.eval.ndcg(10)) << "same seed, different result";
    EXPECT_EQ(a.eval.hr(1), b.eval.hr(1));
    // Every example's outcome is kept (examples.jsonl), and they add up to HR@1.
    ASSERT_EQ(a.eval.outcomes().size(), 943u);
    double hits = 0;
    for (const ExampleOutcome& o : a.eval.outcomes()) hits += o.hit;
    EXPECT_NEAR(hits / 943, a.eval.hr(1), 1e-12);
    EXPECT_GT(a.eval.ndcg(10), pop) << "does not beat popularity on validation";
    if (std::string(method) != "itemknn") {
      EXPECT_GT(a.samples_per_second, 0.0);
      ASSERT_FALSE(a.curve.empty());
    }
  }
}

TEST(TrainedBaselines, DataParallelEqualsOneProcess) {
  // Without dropout the 2-rank step (each rank half the batch, gradients summed) is the 1-process step.
  for (const char* method : {"bpr", "sasrec"}) {
    SCOPED_TRACE(method);
    Config c = small(method);
    c.baseline.sasrec.dropout = 0.0;
    c.baseline.sasrec.epochs = 2;
    c.baseline.bpr.epochs = 2;
    const TrainedBaselineResult dp = train_and_score(method, c, shared().path, mpi_group());
    double mine[2] = {dp.eval.ndcg(10), dp.final_loss};
    if (world_rank() == 0) {
      const TrainedBaselineResult one = train_and_score(method, c, shared().path, DataParallelGroup::single());
      EXPECT_NEAR(mine[0], one.eval.ndcg(10), 2e-3);
      EXPECT_NEAR(mine[1], one.final_loss, 1e-3 * std::abs(one.final_loss) + 1e-4);
      // The ranks' outcomes, gathered, are the one process's examples in the same (id) order, on the same lists.
      ASSERT_EQ(dp.eval.outcomes().size(), one.eval.outcomes().size());
      for (size_t i = 0; i < one.eval.outcomes().size(); ++i) {
        EXPECT_EQ(dp.eval.outcomes()[i].id, one.eval.outcomes()[i].id);
        EXPECT_EQ(dp.eval.outcomes()[i].user, one.eval.outcomes()[i].user);
        EXPECT_EQ(dp.eval.outcomes()[i].list_hash, one.eval.outcomes()[i].list_hash);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

}  // namespace
}  // namespace r2rec
