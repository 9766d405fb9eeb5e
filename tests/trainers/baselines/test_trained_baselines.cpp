// Classical recommenders: scoring prefixes, item-kNN by formula, and SASRec / BPR-MF / LightGCN training that is
// deterministic, learns (beats popularity on ML-100K validation), and is data-parallel: 2 ranks with summed
// gradients give the 1-process model (no dropout), up to float summation order.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <cmath>

#include "sampler/shard_reader.h"
#include "tests/mpi_prepared.h"
#include "trainers/baselines/bpr.h"
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

// The world, gradients summed by one flat host all-reduce after backward (flat), or by the trainers' default
// GradientSynchronizer, buckets launched from the backward hooks.
DataParallelGroup mpi_group(bool flat = true) {
  DataParallelOptions o;
  o.flat_gradients = flat;
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
  c.baseline.lightgcn.epochs = 6;
  c.baseline.lightgcn.eval_every = 3;
  c.baseline.lightgcn.dim = 16;
  c.baseline.lightgcn.learning_rate = 1e-2;
  c.baseline.lightgcn.batch_size = 512;
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
  for (const char* method : {"bpr", "lightgcn", "sasrec", "itemknn"}) {
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

// BPR-MF scores an example whose pre-target history holds an item training never saw (a test example's
// validation item) with the user's vector folded in: one Newton step from the trained vector with the new item's
// gradient, against the Hessian of the BPR objective over the whole history (every other item a negative). Here
// the gradient comes from autograd and the Hessian from finite differences of it, independently of bpr.cpp's
// closed forms. The new item ranks higher after it, and an example with the train history alone is scored as
// before.
TEST(TrainedBaselines, BprFoldsANewHistoryItemIntoTheUser) {
  if (world_size() != 1) GTEST_SKIP() << "single-process property";
  const Catalog cat = catalog();
  Config c = small("bpr");
  auto folded = make_bpr(c.baseline.bpr, cat, 7, DataParallelGroup::single());
  c.baseline.bpr.fold_in = false;
  auto plain = make_bpr(c.baseline.bpr, cat, 7, DataParallelGroup::single());
  for (int64_t e = 1; e <= 4; ++e) {
    folded->train_epoch(e);
    plain->train_epoch(e);
  }
  int64_t dim = 0;
  const std::vector<float> f = plain->item_factors(&dim);
  const torch::Tensor q = torch::from_blob(const_cast<float*>(f.data()), {cat.num_items(), dim}).to(torch::kDouble);
  Example ex;
  for (int32_t i = 0; i < cat.num_items(); ++i) ex.candidates.push_back(i);
  int improved = 0, users = 0;
  for (int32_t u = 0; u < cat.num_users(); u += 97) {
    ex.user = u;
    std::vector<int32_t> prefix(cat.user_train_items.begin() + cat.user_train_offsets[u],
                                cat.user_train_items.begin() + cat.user_train_offsets[u + 1]);
    EXPECT_EQ(folded->score(ex, prefix), plain->score(ex, prefix)) << "user " << u;
    std::vector<char> in(static_cast<size_t>(cat.num_items()), 0);
    for (int32_t i : prefix) in[static_cast<size_t>(i)] = 1;
    int32_t x = 0;
    while (in[static_cast<size_t>(x)]) ++x;  // an item u never touched, now the newest of the history
    prefix.push_back(x);
    in[static_cast<size_t>(x)] = 1;
    const std::vector<double> before = plain->score(ex, prefix), after = folded->score(ex, prefix);
    EXPECT_EQ(folded->score(ex, prefix), after) << "refit is not deterministic";
    // The vectors behind the scores (scores = Q p, Q of full column rank).
    const auto vector_of = [&](const std::vector<double>& s) {
      return std::get<0>(
                 torch::linalg::lstsq(q, torch::tensor(s, torch::kDouble).unsqueeze(1), c10::nullopt, c10::nullopt))
          .squeeze(1);
    };
    std::vector<int64_t> pos, neg;
    for (int32_t i = 0; i < cat.num_items(); ++i) (in[static_cast<size_t>(i)] ? pos : neg).push_back(i);
    const torch::Tensor qp = q.index_select(0, torch::tensor(pos)), qn = q.index_select(0, torch::tensor(neg));
    const torch::Tensor qx = q[x].unsqueeze(0);
    const double reg = c.baseline.bpr.reg;
    // Gradient by autograd of sum_i mean_j softplus(x_j - x_i) + reg/2 |p|^2 per positive, over `rows`.
    const auto grad_of = [&](const torch::Tensor& rows, const torch::Tensor& at) {
      torch::Tensor p = at.clone().requires_grad_();
      const torch::Tensor loss = torch::softplus(qn.mv(p).unsqueeze(0) - rows.mv(p).unsqueeze(1)).mean(1).sum() +
                                 reg * 0.5 * static_cast<double>(rows.size(0)) * p.pow(2).sum();
      return torch::autograd::grad({loss}, {p})[0];
    };
    const torch::Tensor p0 = vector_of(before);
    torch::Tensor h = torch::zeros({dim, dim}, torch::kDouble);
    for (int64_t k = 0; k < dim; ++k) {  // central differences of the whole history's gradient
      torch::Tensor e = torch::zeros({dim}, torch::kDouble);
      e[k] = 1e-4;
      h.select(1, k).copy_((grad_of(qp, p0 + e) - grad_of(qp, p0 - e)) / 2e-4);
    }
    const torch::Tensor want = p0 - torch::linalg::solve(h, grad_of(qx, p0).unsqueeze(1), true).squeeze(1);
    const torch::Tensor got = vector_of(after);
    EXPECT_LT((got - want).norm().item<double>(), 1e-3 * want.norm().item<double>() + 1e-5) << "user " << u;
    EXPECT_GT((got - p0).norm().item<double>(), 1e-3 * p0.norm().item<double>()) << "user " << u << " not moved";
    const auto rank_of_x = [&](const std::vector<double>& s) {
      int64_t r = 0;
      for (int32_t j = 0; j < cat.num_items(); ++j) r += !in[static_cast<size_t>(j)] && s[j] > s[x];
      return r;
    };
    improved += rank_of_x(after) < rank_of_x(before);
    ++users;
  }
  EXPECT_EQ(improved, users) << "the new item did not rise for every user";
}

TEST(TrainedBaselines, DataParallelEqualsOneProcess) {
  // Without dropout the 2-rank step (each rank half the batch, gradients summed) is the 1-process step, with
  // either way of summing (the synchroniser's path once failed SASRec's first step on rank 1, flat never did).
  for (const bool flat : {true, false})
    for (const char* method : {"bpr", "lightgcn", "sasrec"}) {
      SCOPED_TRACE(std::string(method) + (flat ? " (flat)" : " (synchroniser)"));
      Config c = small(method);
      c.baseline.sasrec.dropout = 0.0;
      c.baseline.sasrec.epochs = 2;
      c.baseline.bpr.epochs = 2;
      c.baseline.lightgcn.epochs = 2;
      const TrainedBaselineResult dp = train_and_score(method, c, shared().path, mpi_group(flat));
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
