#include "launch/context.h"

#include <glog/logging.h>

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/logging.h"
#include "core/runtime.h"
#include "distributed/communicator.h"

namespace r2rec {

CommandContext load_context(const ProcessInfo& process, const CommonOptions& options, const char* argv0,
                            bool training) {
  CommandContext ctx;
  ctx.process = &process;
  run_agreed([&] {
    std::vector<std::string> overrides = options.overrides;
    if (!options.run_dir.empty()) overrides.push_back("run.dir=" + options.run_dir);
    ctx.config = load_config(options.config_path, overrides);
    validate_for_world(ctx.config, process.world_size, training);
    ctx.topology = make_topology(ctx.config.distributed, process.world_size);
    ctx.role = ctx.topology.role_of(process.rank);
  });
  ctx.layout = RunLayout(ctx.config);
  init_logging(argv0, {process.rank, role_name(ctx.role), "", ctx.config.run.log_level, ctx.config.run.log_all_ranks});
  std::string threads;
  measured_thread_count(ctx.config.distributed.threads, process.local_size, &threads);
  if (!threads.empty() && process.rank == 0) LOG(INFO) << threads;
  return ctx;
}

void open_run_dir(CommandContext& ctx, const char* argv0, const std::string& stage) {
  namespace fs = std::filesystem;
  const auto& run = ctx.config.run;
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) throw WriteError(run.dir + ": cannot create run directory: " + ec.message(), ec.value());
  init_logging(argv0, {ctx.process->rank, role_name(ctx.role), ctx.layout.logs(), run.log_level, run.log_all_ranks});
  static bool shown = false;  // `r2rec run` opens the run directory once per stage: show the config once
  if (ctx.process->rank == 0 && !shown) {
    const std::string yaml = to_yaml(ctx.config);
    write_file_atomic(ctx.layout.config_yaml(), yaml);
    LOG(INFO) << stage << ": resolved config in " << ctx.layout.config_yaml() << " (`r2rec check` prints it)";
    shown = true;
  }
  LOG(INFO) << stage << ": rank " << ctx.process->rank << "/" << ctx.process->world_size << " on " << ctx.process->node
            << ", role " << role_name(ctx.role) << ", log " << log_file_path();
}

DataParallelOptions data_parallel_options(const CommandContext& ctx) {
  DataParallelOptions o;
  o.backend = ctx.config.distributed.backend;
  o.bucket_mb = ctx.config.distributed.bucket_mb;
  o.timeout_s = ctx.config.distributed.timeout_s;
  o.local_rank = ctx.process->local_rank;
  return o;
}

DataParallelGroup data_parallel_group(const CommandContext& ctx) {
  return DataParallelGroup::world(data_parallel_options(ctx));
}

std::shared_ptr<Communicator> world_communicator(const CommandContext& ctx) {
  CommOptions options;
  options.timeout_s = ctx.config.distributed.timeout_s;
  options.local_rank = ctx.process->local_rank;
  return make_communicator("mpi", options);
}

ReaderOptions reader_options(const CommandContext& ctx, Split split, bool rank_share, bool for_eval) {
  return split_reader_options(ctx.layout.data(), static_cast<int>(split), rank_share ? ctx.process->rank : 0,
                              rank_share ? ctx.process->world_size : 1, for_eval ? ctx.config.eval.max_examples : 0);
}

}  // namespace r2rec
