// What every r2rec subcommand starts from: the process, the resolved config, the topology and role, the run
// directory, and the one data-parallel group the trainers reach the network through.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/run_layout.h"
#include "distributed/agreement.h"
#include "distributed/dp_group.h"
#include "distributed/process.h"
#include "distributed/topology.h"
#include "sampler/shard_reader.h"
#include "sampler/split.h"

namespace r2rec {

class Communicator;

// Options common to every subcommand, filled by CLI11 in main.cpp.
struct CommonOptions {
  std::string config_path;             // --config
  std::vector<std::string> overrides;  // key.sub=value ...
  std::string run_dir;                 // --run-dir (overrides run.dir)
};

struct CommandContext {
  const ProcessInfo* process = nullptr;
  Config config;
  RunLayout layout{Config{}};
  Topology topology;
  Role role = Role::kBoth;
};

// Loads and validates the config on every rank and agrees on the outcome: when any rank fails, the
// lowest failing rank's message is thrown as ConfigError on rank 0 and every other rank exits quietly
// with the same code (see main.cpp). Does not touch the run directory.
// `training`: the stage trains, so batch sizes must divide over the learner ranks (validate_for_world).
CommandContext load_context(const ProcessInfo& process, const CommonOptions& options, const char* argv0, bool training);

// For stages that write outputs: creates run.dir, starts per-rank log files there, sets the thread count,
// prints the resolved config on rank 0 and saves it as <run.dir>/config.yaml.
void open_run_dir(CommandContext& context, const char* argv0, const std::string& stage);

// The data-parallel group over every rank (distributed/dp_group.h), from distributed.backend, bucket_mb and
// timeout_s: the only way a subcommand hands the network to a trainer. Collective.
DataParallelGroup data_parallel_group(const CommandContext& ctx);
// The options data_parallel_group uses (for a group over a sub-communicator, e.g. split GRPO's learners).
DataParallelOptions data_parallel_options(const CommandContext& ctx);
// r2rec's MPI communicator over every rank, with distributed.timeout_s (collective): split GRPO's world (the
// trajectory channel) and its sub-groups.
std::shared_ptr<Communicator> world_communicator(const CommandContext& ctx);

// Reader options for `split` of the run's shards (RunLayout::data()): with `rank_share` this rank's share of
// the split (every rank a disjoint part), else the whole split on every rank; in id order (no shuffle);
// eval.max_examples caps the split when `for_eval`.
ReaderOptions reader_options(const CommandContext& ctx, Split split, bool rank_share, bool for_eval);

}  // namespace r2rec
