// `r2rec run`: every stage in order from one config — prepare, annotate, pretrain, sft, rl, the cheap baselines,
// the trained baselines of run.baselines, then eval of each checkpoint the run made (pretrain -> llm-base, sft ->
// llm-sft, rl -> llm-rl). Each stage is a no-op when its outputs are current (prepare: config hash; annotate:
// shards and task settings; pretrain, sft, rl: fingerprints of their inputs and settings; a trained baseline: the
// fingerprint in its report entry), so a re-run only redoes what changed, then evaluates.
#include <glog/logging.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "core/version.h"
#include "launch/commands.h"
#include "trainers/baselines/cheap_baselines.h"
#include "trainers/task/reward.h"

namespace r2rec {

int command_run(CommandContext& ctx, const char* argv0) {
  // Say a bad reward list before the stages that come first (every rank sees the same config).
  run_agreed([&] { make_rewards(ctx.config.rl); });
  // A DONE left by an earlier run of this directory would tell launch/r2rec-resume this one is finished.
  run_agreed([&] {
    std::error_code ec;
    if (ctx.process->rank == 0) std::filesystem::remove(ctx.layout.done_marker(), ec);
  });
  for (auto stage : {command_prepare, command_annotate}) {
    const int rc = stage(ctx, argv0);
    if (rc != kExitOk) return rc;
  }
  // pretrain.init_items=bpr starts the item rows from BPR-MF's factors: train it first when they are missing.
  if (ctx.config.pretrain.init_items == "bpr" &&
      !agree_on_rank0(std::filesystem::exists(ctx.layout.baseline_factors("bpr")))) {
    run_trained_baseline(ctx, "bpr");
  }
  for (auto stage : {command_pretrain, command_sft, command_rl}) {
    const int rc = stage(ctx, argv0);
    if (rc != kExitOk) return rc;
  }
  for (const auto& method : cheap_baseline_names()) run_cheap_baseline(ctx, method);
  for (const auto& method : ctx.config.run.baselines) run_trained_baseline(ctx, method, /*skip_if_current=*/true);
  for (const char* stage : {"pretrain", "sft", "rl"}) {
    const std::string model = ctx.layout.stage_model(stage);
    if (!agree_on_rank0(std::filesystem::exists(model + "/config.json"))) continue;  // pretrain may be skipped
    const int rc = command_eval(ctx, argv0, model);
    if (rc != kExitOk) return rc;
  }
  print_report(ctx);
  // The plot of the training curves (launch/r2rec-plot, matplotlib): a missing script or library is one line.
  if (ctx.process->rank == 0) {
    const char* env = std::getenv("R2REC_PLOT");
    const std::string script = env ? env : std::string(R2REC_SOURCE_DIR) + "/launch/r2rec-plot";
    auto quoted = [](const std::string& s) {
      std::string q = "'";
      for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
      return q + "'";
    };
    if (!script.empty() && std::filesystem::exists(script) && std::filesystem::exists("/usr/bin/python3")) {
      const int rc = std::system(("/usr/bin/python3 " + quoted(script) + " " + quoted(ctx.layout.root())).c_str());
      if (rc != 0) LOG(WARNING) << "run: " << script << " failed (exit " << rc << "); no plot";
    } else {
      LOG(WARNING) << "run: " << script << " or /usr/bin/python3 not found; no plot (R2REC_PLOT names the script)";
    }
  }
  // The marker launch/r2rec-resume waits for: every stage of this run is done.
  run_agreed([&] {
    if (ctx.process->rank == 0) write_file_atomic(ctx.layout.done_marker(), "done\n");
  });
  if (ctx.process->rank == 0) {
    std::cout << "run: report in " << ctx.layout.report_json() << "; checkpoints in " << ctx.layout.root()
              << "/{pretrain,sft,rl}/model; one user's recommendation explained: r2rec explain --run-dir "
              << ctx.layout.root() << " --user 1\n"
              << std::flush;
  }
  return kExitOk;
}

}  // namespace r2rec
