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

void run_agreed(const std::function<void()>& step) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  std::exception_ptr error;
  int code = kExitOk;
  try {
    step();
  } catch (const CommError&) {
    throw;  // a peer is gone or a request is still pending: no clean agreement is possible, main aborts
  } catch (Error& e) {
    e.set_agreed();
    error = std::current_exception();
    code = e.exit_code();
  } catch (const std::exception& e) {
    // Library exceptions (filesystem, JSON, allocation) become a one-line runtime failure, agreed like others.
    const std::string what = e.what();
    RuntimeFailure wrapped(what.substr(0, what.find('\n')));
    wrapped.set_agreed();
    error = std::make_exception_ptr(wrapped);
    code = kExitRuntime;
  }
  int failing = code == kExitOk ? world : rank;
  int first = failing;
  if (MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) {
    throw CommError("run_agreed: MPI_Allreduce of the failure flags failed");
  }
  if (first == world) return;
  int agreed = code;
  if (MPI_Bcast(&agreed, 1, MPI_INT, first, MPI_COMM_WORLD) != MPI_SUCCESS) {
    throw CommError("run_agreed: MPI_Bcast of the exit code failed");
  }
  if (rank == first) std::rethrow_exception(error);
  Error quiet("", static_cast<ExitCode>(agreed));
  quiet.set_agreed();
  throw quiet;
}

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
  static bool shown = false;  // `r2rec run` opens the run directory once per stage: show the config once
  if (ctx.process->rank == 0 && !shown) {
    const std::string yaml = to_yaml(ctx.config);
    write_file_atomic((fs::path(run.dir) / "config.yaml").string(), yaml);
    LOG(INFO) << stage << ": resolved config (saved to " << (fs::path(run.dir) / "config.yaml").string() << ")\n" << yaml;
    shown = true;
  }
  LOG(INFO) << stage << ": rank " << ctx.process->rank << "/" << ctx.process->world_size << " on "
            << ctx.process->node << ", role " << role_name(ctx.role) << ", log " << log_file_path();
}

int command_check(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << to_yaml(ctx.config) << std::flush;
  return kExitOk;
}

}  // namespace r2rec
