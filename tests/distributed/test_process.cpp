// Process info and topology under mpirun -np 1/2/3: ranks, local ranks, roles, sync group.
#include <gtest/gtest.h>
#include <mpi.h>

#include <set>

#include "core/error.h"
#include "distributed/process.h"
#include "distributed/topology.h"

namespace r2rec {
namespace {

TEST(Process, MatchesMpiWorld) {
  int argc = 0;
  char** argv = nullptr;
  MpiSession session(&argc, &argv);  // MPI is already up (test main): the session only reads it
  const ProcessInfo& p = session.info();
  int rank = -1, size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(p.rank, rank);
  EXPECT_EQ(p.world_size, size);
  EXPECT_EQ(p.launcher, "mpirun");
  ASSERT_GE(p.local_rank, 0);
  ASSERT_LT(p.local_rank, p.local_size);
  // All ranks of a single-node test share the node: local ranks are 0..size-1, each once.
  std::vector<int> locals(size);
  MPI_Allgather(&p.local_rank, 1, MPI_INT, locals.data(), 1, MPI_INT, MPI_COMM_WORLD);
  EXPECT_EQ(std::set<int>(locals.begin(), locals.end()).size(), static_cast<size_t>(size));
  EXPECT_EQ(p.local_size, size);
  EXPECT_FALSE(p.node.empty());
}

TEST(Topology, ColocatedEveryRankHasBothRoles) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Topology t = make_topology(DistributedConfig{}, size);
  for (int r = 0; r < size; ++r) EXPECT_EQ(t.role_of(r), Role::kBoth);
  EXPECT_EQ(t.learners.size(), static_cast<size_t>(size));
  EXPECT_EQ(t.sync.size(), static_cast<size_t>(size));  // learner 0, then every other rank
  EXPECT_EQ(t.sync.front(), 0);
}

TEST(Topology, SplitRoles) {
  DistributedConfig d;
  d.colocated = false;
  d.learner_ranks = 2;
  d.rollout_ranks = 3;
  Topology t = make_topology(d, 5);
  EXPECT_EQ(t.learners, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.rollouts, (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(t.sync, (std::vector<int>{0, 2, 3, 4}));
  EXPECT_EQ(t.role_of(1), Role::kLearner);
  EXPECT_EQ(t.role_of(4), Role::kRollout);
  EXPECT_STREQ(role_name(t.role_of(4)), "rollout");
  EXPECT_THROW(make_topology(d, 4), ConfigError);
}

}  // namespace
}  // namespace r2rec
