// `r2rec baseline --method M` and `r2rec run`: score methods on the stored candidate lists, every rank its
// share, sums reduced on rank 0, results merged into <run.dir>/report.json.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <iostream>

#include "core/error.h"
#include "distributed/communicator.h"
#include "launch/command.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "trainers/cheap_baselines.h"
#include "trainers/report.h"
#include "trainers/trained_baseline.h"

namespace r2rec {

// The trainers' cross-rank sums over r2rec's MPI communicator (CPU tensors), with the configured deadline.
Collectives communicator_collectives(const CommandContext& ctx, std::shared_ptr<Communicator>* keep) {
  CommOptions options;
  options.timeout_s = ctx.config.distributed.timeout_s;
  options.local_rank = ctx.process->local_rank;
  std::shared_ptr<Communicator> comm = make_communicator("mpi", options);
  *keep = comm;
  Collectives c;
  c.rank = comm->rank();
  c.world_size = comm->size();
  c.sum_floats = [comm](float* data, int64_t n) { comm->all_reduce(data, static_cast<size_t>(n), ReduceOp::kSum)->wait(); };
  c.sum_doubles = [comm](double* data, int64_t n) { comm->all_reduce(data, static_cast<size_t>(n), ReduceOp::kSum)->wait(); };
  return c;
}

namespace {

// Scores one cheap baseline over the configured split, every rank its share; rank 0 writes the report entry.
void run_cheap_baseline(const CommandContext& ctx, const std::string& method) {
  const Config& c = ctx.config;
  const auto t0 = std::chrono::steady_clock::now();
  RankingMetrics local(c.eval.ks);
  run_agreed([&] {
    ReaderOptions options;
    options.dir = shard_output_dir(c);
    options.split = static_cast<int>(split_from_name(c.eval.split));
    options.rank = ctx.process->rank;
    options.world_size = ctx.process->world_size;
    options.shuffle = false;
    options.seed = static_cast<uint64_t>(c.run.seed);
    options.limit = c.eval.max_examples;
    ShardReader reader(options);
    local = score_cheap_baseline(method, reader, c.eval.ks, static_cast<uint64_t>(c.run.seed));
  });
  std::shared_ptr<Communicator> comm;
  const RankingMetrics metrics = sum_over_ranks(local, communicator_collectives(ctx, &comm));
  if (ctx.process->rank != 0) return;
  MethodResult result;
  result.method = method;
  result.split = c.eval.split;
  result.metrics = metrics.summary();
  result.examples = metrics.count();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  update_report(c.run.dir, c.data.name, c.sampler.num_candidates, result);
  LOG(INFO) << "baseline " << method << " on " << c.eval.split << ": HR@" << c.eval.ks.front() << " "
            << metrics.hr(c.eval.ks.front()) << " over " << metrics.count() << " examples";
}

// Trains and scores sasrec / bpr / itemknn; rank 0 writes the report entry.
void run_trained_baseline(const CommandContext& ctx, const std::string& method) {
  const Config& c = ctx.config;
  TrainedBaselineResult r;
  std::shared_ptr<Communicator> comm;
  const Collectives collectives = communicator_collectives(ctx, &comm);
  const auto t0 = std::chrono::steady_clock::now();
  run_agreed([&] { r = train_and_score(method, c, shard_output_dir(c), collectives); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (ctx.process->rank != 0) return;
  MethodResult result;
  result.method = method;
  result.split = c.eval.split;
  result.metrics = r.eval.summary();
  result.examples = r.eval.count();
  result.seconds = seconds;  // training and scoring
  update_report(c.run.dir, c.data.name, c.sampler.num_candidates, result);
  if (r.epochs > 0) {
    std::cout << method << ": " << r.epochs << " epochs in " << r.train_seconds << " s (" << r.samples_per_second
              << " training samples/s per rank), best validation NDCG@10 " << r.best_valid_ndcg10 << " at epoch "
              << r.best_epoch << "; " << seconds << " s in all\n";
  } else {
    std::cout << method << ": no training; scored in " << seconds << " s\n";
  }
}

void print_report(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << report_table(ctx.config.run.dir, ctx.config.eval.split) << std::flush;
}

}  // namespace

int command_baseline(CommandContext& ctx, const char* argv0, const std::string& method) {
  if (!is_cheap_baseline(method) && method != "sasrec" && method != "bpr" && method != "itemknn") {
    throw ConfigError("baseline --method: unknown method '" + method +
                      "' (random, popularity, chainvote, sasrec, bpr, itemknn)");
  }
  open_run_dir(ctx, argv0, "baseline");
  if (is_cheap_baseline(method)) {
    run_cheap_baseline(ctx, method);
  } else {
    run_trained_baseline(ctx, method);
  }
  print_report(ctx);
  return kExitOk;
}

int command_run(CommandContext& ctx, const char* argv0) {
  if (!ctx.config.distributed.colocated) {  // say it before hours of prepare (every rank sees the same config)
    run_agreed([] { throw ConfigError("distributed.colocated: run trains with every rank as a learner (sft); use colocated mode"); });
  }
  // Every stage below is a no-op when its outputs are current (prepare: config hash; annotate: shards and
  // teacher; sft: fingerprint of traces and settings), so a re-run only redoes what changed, then evaluates.
  for (auto stage : {command_prepare, command_annotate, command_sft}) {
    const int rc = stage(ctx, argv0);
    if (rc != kExitOk) return rc;
  }
  for (const auto& method : cheap_baseline_names()) run_cheap_baseline(ctx, method);
  const int rc = command_eval(ctx, argv0, "");
  if (rc != kExitOk) return rc;
  print_report(ctx);
  if (ctx.process->rank == 0) {
    std::cout << "run: report in " << ctx.config.run.dir << "/report.json; checkpoint in " << ctx.config.run.dir
              << "/sft/model. Not in this version yet: rl, the model teacher, explain (README: Status).\n" << std::flush;
  }
  return kExitOk;
}

}  // namespace r2rec
