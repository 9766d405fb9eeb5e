#include "launch/command.h"

#include <glog/logging.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/logging.h"
#include "core/owned_dir.h"
#include "core/runtime.h"
#include "distributed/communicator.h"
#include "trainers/checkpoint_plan.h"
#include "trainers/lm_eval.h"
#include "trainers/recommender.h"

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
  if (ec) throw RuntimeFailure(run.dir + ": cannot create run directory: " + ec.message());
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

std::shared_ptr<Communicator> world_communicator(const CommandContext& ctx) {
  CommOptions options;
  options.timeout_s = ctx.config.distributed.timeout_s;
  options.local_rank = ctx.process->local_rank;
  return make_communicator("mpi", options);
}

Collectives communicator_collectives(const CommandContext& ctx, std::shared_ptr<Communicator>* keep) {
  *keep = world_communicator(ctx);
  return Collectives::over(**keep, ctx.config.distributed.bucket_mb, ctx.config.distributed.timeout_s);
}

Scalars validation_scalars(const CommandContext& ctx, const std::string& stage, int64_t step, TransformerImpl& model,
                           const Tokenizer& tokenizer, const Collectives& col) {
  const Config& c = ctx.config;
  ShardReader reader(split_reader_options(ctx.layout.data(), static_cast<int>(Split::kValid), col.rank, col.world_size,
                                          c.eval.valid_examples));
  LmEvalOptions o;
  o.ks = {1};
  o.max_new_tokens = c.eval.generate ? c.eval.max_new_tokens : 0;
  o.batch_size = c.eval.batch_size;
  const LmEvalResult r = evaluate_lm(model, tokenizer, reader, task_format(c), o, col);
  Scalars out;
  if (c.eval.generate) out.emplace_back("val_hr1", r.generation.hr(1));
  out.emplace_back("val_hr1_likelihood", r.likelihood.hr(1));
  if (col.rank == 0) {
    LOG(INFO) << stage << ": step " << step << " validation on " << r.examples << " valid examples: "
              << (c.eval.generate ? "HR@1 " + std::to_string(r.generation.hr(1)) + " by generation, " : "") << "HR@1 "
              << r.likelihood.hr(1) << " by likelihood (" << r.seconds << " s)";
  }
  return out;
}

ReaderOptions reader_options(const CommandContext& ctx, Split split, bool rank_share, bool for_eval) {
  return split_reader_options(ctx.layout.data(), static_cast<int>(split), rank_share ? ctx.process->rank : 0,
                              rank_share ? ctx.process->world_size : 1, for_eval ? ctx.config.eval.max_examples : 0);
}

std::string stage_fingerprint_on_disk(const CommandContext& ctx, const std::string& stage) {
  try {
    const std::string path = ctx.layout.stage_json(stage);
    if (!std::filesystem::exists(path)) return "";
    return nlohmann::json::parse(read_file(path)).value("fingerprint", "");
  } catch (const std::exception&) {
    return "";
  }
}

bool stage_is_current(const CommandContext& ctx, const std::string& stage, const std::string& fingerprint) {
  return agree_on_rank0(ctx.process->rank == 0 && !ctx.config.run.force &&
                        std::filesystem::exists(ctx.layout.stage_model(stage) + "/config.json") &&
                        stage_fingerprint_on_disk(ctx, stage) == fingerprint);
}

void forget_stage(const CommandContext& ctx, const std::string& stage) {
  run_agreed([&] {
    std::error_code ec;
    if (ctx.process->rank == 0) std::filesystem::remove(ctx.layout.stage_json(stage), ec);
  });
}

StageStart start_stage(const CommandContext& ctx, const std::string& stage, const std::string& fingerprint,
                       const Config& settings, int64_t save_every) {
  StageStart start;
  CheckpointPlan& plan = start.plan;
  plan.dir = ctx.layout.stage_dir(stage) + "/checkpoints";
  plan.stage = stage;
  plan.every = save_every;
  plan.keep = ctx.config.run.keep_checkpoints;
  plan.fingerprint = fingerprint;
  plan.settings_yaml = to_yaml(settings);
  if (const char* f = std::getenv("R2REC_FAULT")) plan.fault = f;
  if (stage_is_current(ctx, stage, fingerprint)) {
    if (ctx.process->rank == 0) {
      std::cout << stage << ": " << ctx.layout.stage_model(stage)
                << " is up to date; nothing to do (run.force=true retrains)\n"
                << std::flush;
    }
    start.skip = true;
    return start;
  }
  std::string resume;
  int64_t resume_step = 0;
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    check_replaceable(ctx.layout.stage_model(stage), model_dir_name);
    const std::optional<CheckpointInfo> newest = newest_checkpoint(plan.dir);
    if (!newest) return;
    if (ctx.config.run.force) {
      clear_checkpoints(plan.dir);
      return;
    }
    if (newest->fingerprint == fingerprint) {
      resume = newest->path;
      resume_step = newest->step;
      std::cout << stage << ": resuming from " << newest->path << " (step " << newest->step << ")\n" << std::flush;
      return;
    }
    if (newest->fingerprint == stage_fingerprint_on_disk(ctx, stage)) {  // a finished run's, with other settings
      clear_checkpoints(plan.dir);
      return;
    }
    std::string keys;
    const std::string tmp = temp_path_for(ctx.layout.root() + "/checkpoint-settings.yaml");
    try {
      write_file_atomic(tmp, newest->settings_yaml);
      const Config then = load_config(tmp);
      for (const std::string& k : changed_keys(then, settings)) {
        if (k.rfind("run.", 0) == 0 && k != "run.seed") continue;  // run.dir: resolved against the temporary file
        keys += (keys.empty() ? "" : ", ") + k;
      }
    } catch (const std::exception&) {
      keys.clear();
    }
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw ConfigError(newest->path + ": an interrupted " + stage + " run with other " +
                      (keys.empty() ? std::string("inputs (the data, traces, tokenizer or start model)")
                                    : "settings (" + keys + ")") +
                      ": run with those to resume it, or with run.force=true to start afresh");
  });
  plan.resume_from = broadcast_from_rank0(resume);
  plan.resume_step = std::stoll(broadcast_from_rank0(std::to_string(resume_step)));
  forget_stage(ctx, stage);
  return start;
}

int command_check(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << to_yaml(ctx.config) << std::flush;
  return kExitOk;
}

}  // namespace r2rec
