#include "distributed/topology.h"

#include <algorithm>

#include "core/error.h"

namespace r2rec {

const char* role_name(Role role) {
  switch (role) {
    case Role::kLearner:
      return "learner";
    case Role::kRollout:
      return "rollout";
    case Role::kBoth:
      return "learner+rollout";
  }
  return "?";
}

bool Topology::is_learner(int rank) const { return std::binary_search(learners.begin(), learners.end(), rank); }
bool Topology::is_rollout(int rank) const { return std::binary_search(rollouts.begin(), rollouts.end(), rank); }
Role Topology::role_of(int rank) const {
  const bool l = is_learner(rank), r = is_rollout(rank);
  return l && r ? Role::kBoth : (l ? Role::kLearner : Role::kRollout);
}

Topology make_topology(const DistributedConfig& config, int world_size) {
  Topology t;
  t.world_size = world_size;
  t.colocated = config.colocated;
  if (config.colocated) {
    for (int r = 0; r < world_size; ++r) {
      t.learners.push_back(r);
      t.rollouts.push_back(r);
    }
  } else {
    if (config.learner_ranks + config.rollout_ranks != world_size) {
      throw ConfigError("distributed.learner_ranks: learner_ranks + rollout_ranks = " +
                        std::to_string(config.learner_ranks + config.rollout_ranks) + " must equal the world size " +
                        std::to_string(world_size));
    }
    for (int r = 0; r < world_size; ++r) (r < config.learner_ranks ? t.learners : t.rollouts).push_back(r);
  }
  t.sync.push_back(t.learners.front());
  for (int r : t.rollouts) {
    if (r != t.learners.front()) t.sync.push_back(r);
  }
  return t;
}

}  // namespace r2rec
