// `r2rec run`: every stage in order from one config — prepare, annotate, sft, the cheap baselines, eval. Each
// stage is a no-op when its outputs are current (prepare: config hash; annotate: shards and teacher; sft:
// fingerprint of traces and settings), so a re-run only redoes what changed, then evaluates.
#include <iostream>

#include "core/error.h"
#include "launch/command.h"
#include "trainers/cheap_baselines.h"

namespace r2rec {

int command_run(CommandContext& ctx, const char* argv0) {
  if (!ctx.config.distributed.colocated) {  // say it before hours of prepare (every rank sees the same config)
    run_agreed([] {
      throw ConfigError("distributed.colocated: run trains with every rank as a learner (sft); use colocated mode");
    });
  }
  for (auto stage : {command_prepare, command_annotate, command_sft}) {
    const int rc = stage(ctx, argv0);
    if (rc != kExitOk) return rc;
  }
  for (const auto& method : cheap_baseline_names()) run_cheap_baseline(ctx, method);
  const int rc = command_eval(ctx, argv0, "");
  if (rc != kExitOk) return rc;
  print_report(ctx);
  if (ctx.process->rank == 0) {
    std::cout << "run: report in " << ctx.layout.report_json() << "; checkpoint in " << ctx.layout.stage_model("sft")
              << ". Not in this version yet: rl, the model teacher, explain (README: Status).\n"
              << std::flush;
  }
  return kExitOk;
}

}  // namespace r2rec
