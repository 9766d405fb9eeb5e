// `r2rec baseline --method M` and `r2rec run`: score methods on the stored candidate lists, every rank its
// share, sums reduced on rank 0, results merged into <run.dir>/report.json.
#include <glog/logging.h>
#include <mpi.h>

#include <chrono>
#include <iostream>

#include "core/error.h"
#include "launch/command.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "trainers/cheap_baselines.h"
#include "trainers/report.h"

namespace r2rec {

namespace {

int split_value(const std::string& name) { return name == "valid" ? static_cast<int>(Split::kValid) : static_cast<int>(Split::kTest); }

// Scores one cheap baseline over the configured split on every rank; returns the merged metrics on rank 0.
void run_cheap_baseline(const CommandContext& ctx, const std::string& method) {
  const Config& c = ctx.config;
  const auto t0 = std::chrono::steady_clock::now();
  RankingMetrics metrics(c.eval.ks);
  run_agreed([&] {
    ReaderOptions options;
    options.dir = shard_output_dir(c);
    options.split = split_value(c.eval.split);
    options.rank = ctx.process->rank;
    options.world_size = ctx.process->world_size;
    options.shuffle = false;
    options.seed = static_cast<uint64_t>(c.run.seed);
    options.limit = c.eval.max_examples;
    ShardReader reader(options);
    metrics = score_cheap_baseline(method, reader, c.eval.ks, static_cast<uint64_t>(c.run.seed));
  });
  // Sum the per-rank sums and counts on rank 0.
  std::vector<double> sums = metrics.sums();
  sums.push_back(static_cast<double>(metrics.count()));
  std::vector<double> total(sums.size(), 0.0);
  MPI_Reduce(sums.data(), total.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  if (ctx.process->rank != 0) return;
  const int64_t count = static_cast<int64_t>(total.back());
  total.pop_back();
  metrics.set_sums(total, count);
  MethodResult result;
  result.method = method;
  result.split = c.eval.split;
  result.metrics = metrics.summary();
  result.examples = count;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  update_report(c.run.dir, c.data.name, c.sampler.num_candidates, result);
  LOG(INFO) << "baseline " << method << " on " << c.eval.split << ": HR@1 " << metrics.hr(c.eval.ks.front())
            << " over " << count << " examples";
}

void print_report(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << report_table(ctx.config.run.dir, ctx.config.eval.split) << std::flush;
}

}  // namespace

int command_baseline(CommandContext& ctx, const char* argv0, const std::string& method) {
  if (!is_cheap_baseline(method)) {
    throw RuntimeFailure("baseline --method " + method + " is not in this version yet (this version has: random, "
                         "popularity, chainvote)");
  }
  open_run_dir(ctx, argv0, "baseline");
  run_cheap_baseline(ctx, method);
  print_report(ctx);
  return kExitOk;
}

int command_run(CommandContext& ctx, const char* argv0) {
  const int rc = command_prepare(ctx, argv0);
  if (rc != kExitOk) return rc;
  for (const auto& method : cheap_baseline_names()) run_cheap_baseline(ctx, method);
  print_report(ctx);
  if (ctx.process->rank == 0) {
    std::cout << "run: report in " << ctx.config.run.dir << "/report.json. Not in this version yet: annotate, sft, "
                 "rl, eval of the language model (README: Status).\n" << std::flush;
  }
  return kExitOk;
}

}  // namespace r2rec
