// ShardReader under mpirun -np 1/2/3 over 4 shards: the ranks' shares are disjoint and together are every
// record of the split exactly once; records equal what prepare computed; a saved cursor resumes exactly.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "tests/mpi_prepared.h"

namespace r2rec {
namespace {
using testing::TempDir;

using testing::world_rank;
using testing::world_size;

testing::MpiPrepared& shared() {
  static testing::MpiPrepared s;
  return s;
}

ReaderOptions options_for(int split, bool shuffle) {
  ReaderOptions o;
  o.dir = shared().path;
  o.split = split;
  o.rank = world_rank();
  o.world_size = world_size();
  o.shuffle = shuffle;
  o.seed = 7;
  return o;
}

// All ranks' ids on every rank.
std::vector<int64_t> gather_all(const std::vector<int64_t>& mine) {
  const int W = world_size();
  int n = static_cast<int>(mine.size());
  std::vector<int> counts(W), displs(W);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < W; ++r) {
    displs[r] = total;
    total += counts[r];
  }
  std::vector<int64_t> all(total);
  MPI_Allgatherv(mine.data(), n, MPI_INT64_T, all.data(), counts.data(), displs.data(), MPI_INT64_T, MPI_COMM_WORLD);
  return all;
}

class ReaderShares : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(ReaderShares, DisjointCompleteAndBalanced) {
  const auto [split, shuffle] = GetParam();
  ShardReader reader(options_for(split, shuffle));
  std::vector<int64_t> mine;
  Example ex;
  ChainBuffer chains;
  while (reader.next(&ex, &chains)) {
    mine.push_back(ex.id);
    const Example& want = shared().data.examples.at(ex.id);
    ASSERT_EQ(ex.candidates, want.candidates);
    ASSERT_EQ(ex.history, want.history);
    if (split >= 0) {
      ASSERT_EQ(static_cast<int>(ex.split), split);
    }
  }
  EXPECT_EQ(mine, reader.share_ids(0));
  const std::vector<int64_t> all = gather_all(mine);
  const std::set<int64_t> unique(all.begin(), all.end());
  EXPECT_EQ(unique.size(), all.size()) << "a record was given to two ranks";
  std::set<int64_t> expected;
  for (const auto& e : shared().data.examples) {
    if (split < 0 || static_cast<int>(e.split) == split) expected.insert(e.id);
  }
  EXPECT_EQ(unique, expected) << "the shares do not cover the split";
  EXPECT_EQ(reader.total(), static_cast<int64_t>(expected.size()));
  const int64_t N = reader.total(), W = world_size();
  EXPECT_LE(reader.share_size(), N / W + 1);
  EXPECT_GE(reader.share_size(), N / W);
}

INSTANTIATE_TEST_SUITE_P(SplitsAndOrders, ReaderShares,
                         ::testing::Combine(::testing::Values(-1, 0, 1, 2), ::testing::Bool()));

TEST(Reader, EpochsReshuffleDeterministically) {
  ShardReader a(options_for(0, true)), b(options_for(0, true));
  EXPECT_EQ(a.share_ids(0), b.share_ids(0));
  EXPECT_EQ(a.share_ids(3), b.share_ids(3));
  const auto all0 = gather_all(a.share_ids(0)), all1 = gather_all(a.share_ids(1));
  EXPECT_NE(all0, all1);
  EXPECT_EQ(std::set<int64_t>(all0.begin(), all0.end()), std::set<int64_t>(all1.begin(), all1.end()));
}

TEST(Reader, CursorResumesExactly) {
  ShardReader first(options_for(-1, true));
  first.start_epoch(2);
  Example ex;
  std::vector<int64_t> seen;
  for (int64_t k = 0; k < first.share_size() / 3; ++k) {
    ASSERT_TRUE(first.next(&ex, nullptr));
    seen.push_back(ex.id);
  }
  const ReaderCursor saved = first.cursor();
  EXPECT_EQ(saved.epoch, 2);
  // A new reader (a restarted job) seeks to the saved cursor and yields exactly the rest.
  ShardReader second(options_for(-1, true));
  second.seek(saved);
  std::vector<int64_t> rest;
  while (second.next(&ex, nullptr)) rest.push_back(ex.id);
  seen.insert(seen.end(), rest.begin(), rest.end());
  EXPECT_EQ(seen, first.share_ids(2));
  EXPECT_THROW(second.seek({2, second.share_size() + 1}), DataError);
}

TEST(Reader, LimitTakesTheFirstRecords) {
  ReaderOptions o = options_for(2, false);
  o.limit = 100;
  ShardReader reader(o);
  EXPECT_EQ(reader.total(), 100);
  const auto all = gather_all(reader.share_ids(0));
  EXPECT_EQ(all.size(), 100u);
}

}  // namespace
}  // namespace r2rec
