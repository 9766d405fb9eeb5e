#include "launch/command.h"

#include <glog/logging.h>
#include <mpi.h>

#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "core/logging.h"
#include "core/runtime.h"

namespace r2rec {

CommandContext load_context(const ProcessInfo& process, const CommonOptions& options, const char* argv0) {
  CommandContext ctx;
  ctx.process = &process;
  std::string message;
  int code = kExitOk;
  try {
    std::vector<std::string> overrides = options.overrides;
    if (!options.run_dir.empty()) overrides.push_back("run.dir=" + options.run_dir);
    ctx.config = load_config(options.config_path, overrides);
    validate_for_world(ctx.config, process.world_size);
    ctx.topology = make_topology(ctx.config.distributed, process.world_size);
    ctx.role = ctx.topology.role_of(process.rank);
  } catch (const Error& e) {
    message = e.what();
    code = e.exit_code();
  }
  // Every rank learns whether any rank failed, so none goes on alone into a collective.
  int failing_rank = code == kExitOk ? process.world_size : process.rank;
  int first = failing_rank;
  MPI_Allreduce(&failing_rank, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first < process.world_size) {
    int agreed = code;
    MPI_Bcast(&agreed, 1, MPI_INT, first, MPI_COMM_WORLD);
    if (process.rank == first) throw ConfigError(message);
    throw Error("", static_cast<ExitCode>(agreed));  // empty message: main prints nothing
  }
  init_logging(argv0, {process.rank, role_name(ctx.role), "", ctx.config.run.log_level, ctx.config.run.log_all_ranks});
  set_intra_op_threads(choose_thread_count(ctx.config.distributed.threads, process.local_size));
  return ctx;
}

void open_run_dir(CommandContext& ctx, const char* argv0, const std::string& stage) {
  namespace fs = std::filesystem;
  const auto& run = ctx.config.run;
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) throw RuntimeFailure(run.dir + ": cannot create run directory: " + ec.message());
  init_logging(argv0, {ctx.process->rank, role_name(ctx.role), run.dir, run.log_level, run.log_all_ranks});
  if (ctx.process->rank == 0) {
    const std::string yaml = to_yaml(ctx.config);
    write_file_atomic((fs::path(run.dir) / "config.yaml").string(), yaml);
    LOG(INFO) << stage << ": resolved config (saved to " << (fs::path(run.dir) / "config.yaml").string() << ")\n" << yaml;
  }
  LOG(INFO) << stage << ": rank " << ctx.process->rank << "/" << ctx.process->world_size << " on "
            << ctx.process->node << ", role " << role_name(ctx.role) << ", log " << log_file_path();
}

int command_check(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << to_yaml(ctx.config) << std::flush;
  return kExitOk;
}

}  // namespace r2rec
