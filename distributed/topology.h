// Who does what: the learner group, the rollout group and the sync group (learner 0 + rollout ranks), from
// the `distributed` config section and the world size.
//
//   colocated (default): every rank is learner and rollout worker, time-sliced; learners = world.
//   split: ranks [0, L) learn, ranks [L, L+R) roll out; L + R must equal the world size.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace r2rec {

enum class Role { kLearner, kRollout, kBoth };

const char* role_name(Role role);  // "learner", "rollout", "learner+rollout"

struct Topology {
  int world_size = 1;
  bool colocated = true;
  std::vector<int> learners;  // world ranks, ascending
  std::vector<int> rollouts;  // world ranks, ascending
  std::vector<int> sync;      // learner 0 followed by the rollout ranks that are not learner 0

  Role role_of(int rank) const;
  bool is_learner(int rank) const;
  bool is_rollout(int rank) const;
};

// Throws ConfigError when the config does not fit `world_size` (see validate_for_world).
Topology make_topology(const DistributedConfig& config, int world_size);

}  // namespace r2rec
