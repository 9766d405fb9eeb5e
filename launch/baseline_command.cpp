// `r2rec baseline --method M`: score methods on the stored candidate lists, every rank its
// share, sums reduced on rank 0, results merged into <run.dir>/report.json.
#include <glog/logging.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/model/safetensors.h"
#include "distributed/agreement.h"
#include "distributed/communicator.h"
#include "launch/commands.h"
#include "launch/stage.h"
#include "sampler/manifest.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "trainers/baselines/cheap_baselines.h"
#include "trainers/baselines/trained_baseline.h"
#include "trainers/eval/examples_file.h"
#include "trainers/eval/report.h"

namespace r2rec {

// Scores one cheap baseline over the configured split, every rank its share; rank 0 writes the report entry.
void run_cheap_baseline(const CommandContext& ctx, const std::string& method) {
  const Config& c = ctx.config;
  const auto t0 = std::chrono::steady_clock::now();
  RankingMetrics local(c.eval.ks);
  run_agreed([&] {
    ShardReader reader(reader_options(ctx, split_from_name(c.eval.split), /*rank_share=*/true, /*for_eval=*/true));
    local = score_cheap_baseline(method, reader, c.eval.ks, static_cast<uint64_t>(c.run.seed));
  });
  const RankingMetrics metrics = sum_over_ranks(local, data_parallel_group(ctx));
  if (ctx.process->rank != 0) return;
  MethodResult result;
  result.method = method;
  result.split = c.eval.split;
  result.metrics = metrics.summary();
  result.examples = metrics.count();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.outcomes = metrics.outcomes();
  record_result(ctx, result);
  LOG(INFO) << "baseline " << method << " on " << c.eval.split << ": HR@" << c.eval.ks.front() << " "
            << metrics.hr(c.eval.ks.front()) << " over " << metrics.count() << " examples";
}

std::string trained_baseline_fingerprint(const CommandContext& ctx, const std::string& method) {
  const Config& c = ctx.config;
  StageInputs in;  // what the entry depends on: the data, the method and its settings, the seed, the scoring
  in.settings.baseline = c.baseline;
  in.settings.run.seed = c.run.seed;
  in.settings.eval.split = c.eval.split;
  in.settings.eval.ks = c.eval.ks;
  in.settings.eval.max_examples = c.eval.max_examples;
  std::string prepared;
  if (ctx.process->rank == 0) prepared = read_manifest(ctx.layout.data()).config_hash;
  // Ranks split the batches (and draw their own dropout masks): the world size is an input too.
  in.digests = {method, broadcast_from_rank0(prepared), std::to_string(ctx.process->world_size)};
  return in.fingerprint();
}

// Trains and scores sasrec / bpr / itemknn; rank 0 writes the report entry (and bpr's item factors).
void run_trained_baseline(const CommandContext& ctx, const std::string& method, bool skip_if_current) {
  const Config& c = ctx.config;
  const std::string fingerprint = trained_baseline_fingerprint(ctx, method);
  if (skip_if_current &&
      agree_on_rank0(!c.run.force && ctx.process->rank == 0 &&
                     report_fingerprint(ctx.layout.report_json(), c.eval.split, method) == fingerprint)) {
    if (ctx.process->rank == 0) std::cout << method << ": report entry is up to date; not trained again\n";
    return;
  }
  TrainedBaselineResult r;
  const DataParallelGroup group = data_parallel_group(ctx);
  const auto t0 = std::chrono::steady_clock::now();
  run_agreed([&] { r = train_and_score(method, c, ctx.layout.data(), group); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (ctx.process->rank != 0) return;
  MethodResult result;
  result.method = method;
  result.split = c.eval.split;
  result.metrics = r.eval.summary();
  result.examples = r.eval.count();
  result.seconds = seconds;  // training and scoring
  result.outcomes = r.eval.outcomes();
  result.fingerprint = fingerprint;
  result.settings = config_values(c, "baseline." + method + ".");
  result.valid_curve = r.curve;
  result.best_epoch = r.best_epoch;
  record_result(ctx, result);
  if (r.factor_dim > 0) {  // what pretrain.init_items reads
    const std::string path = ctx.layout.baseline_factors(method);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::vector<float> copy = r.item_factors;
    const torch::Tensor t = torch::from_blob(
        copy.data(), {static_cast<int64_t>(copy.size()) / r.factor_dim, r.factor_dim}, torch::kFloat32);
    write_safetensors(path, {{"item_factors", t}},
                      {{"method", method}, {"prepare_hash", read_manifest(ctx.layout.data()).config_hash}});
    std::cout << method << ": item factors in " << path << "\n";
  }
  if (r.epochs > 0) {
    std::cout << method << ": " << r.epochs << " epochs in " << r.train_seconds << " s (" << r.samples_per_second
              << " training samples/s per rank), best validation NDCG@10 " << r.best_valid_ndcg10 << " at epoch "
              << r.best_epoch << "; " << seconds << " s in all\n";
  } else {
    std::cout << method << ": no training; scored in " << seconds << " s\n";
  }
}

std::string protocol_text(const Config& c) {
  std::ostringstream p;
  p << "Dataset `" << c.data.name << "` (" << c.data.path << ")";
  if (c.data.min_rating > 0) p << ", interactions rated below " << c.data.min_rating << " dropped";
  if (c.data.kcore > 0) p << ", iterated " << c.data.kcore << "-core filter";
  p << ", users with fewer than " << c.data.min_history << " interactions dropped. Leave-one-out split per user in "
    << "time order: the last interaction is the test target, the second-last the validation target, the rest "
    << "train (docs/sampler.md). Every method is scored on the same " << c.sampler.num_candidates
    << " candidates per example: the target and " << c.sampler.num_candidates - 1
    << " items the user never touched, drawn uniformly from a stream keyed by the seed, the user and the position. "
    << "Seed: run.seed = " << c.run.seed << " (candidates, chains, initialisation, shuffles, sampling); no method "
    << "sees the test split before it is scored; early stopping and choices use the validation split.\n";
  return p.str();
}

void record_result(const CommandContext& ctx, const MethodResult& result) {
  if (ctx.process->rank != 0) return;
  update_report(ctx.layout.report_json(), ctx.config.data.name, ctx.config.sampler.num_candidates, result);
  update_examples(ctx.layout.examples_jsonl(), result.split, result.method, result.outcomes);
}

namespace {
// report.md from report.json, the protocol and `comparisons` (rank 0).
void write_markdown(const CommandContext& ctx, const std::map<std::string, std::vector<Comparison>>& comparisons) {
  const std::string md = report_markdown(ctx.layout.report_json(), protocol_text(ctx.config), comparisons);
  if (!md.empty()) write_file_atomic(ctx.layout.report_md(), md);
}

std::map<std::string, std::vector<Comparison>> comparisons_of(const CommandContext& ctx) {
  return compare_every_split(ctx.layout.report_json(), ctx.layout.examples_jsonl(),
                             static_cast<uint64_t>(ctx.config.run.seed));
}
}  // namespace

void print_report(const CommandContext& ctx) {
  if (ctx.process->rank != 0) return;
  std::cout << report_table(ctx.layout.report_json(), ctx.config.eval.split);
  const auto comparisons = comparisons_of(ctx);
  auto found = comparisons.find(ctx.config.eval.split);
  for (const Comparison& cmp : found == comparisons.end() ? std::vector<Comparison>() : found->second) {
    std::printf("  %-12s - %s  HR@1 %s (95%% paired bootstrap over %lld examples)%s\n", cmp.method.c_str(),
                cmp.baseline.c_str(), format_interval(cmp.difference, true).c_str(),
                static_cast<long long>(cmp.difference.n), cmp.difference.excludes_zero() ? " *" : "");
  }
  std::cout << std::flush;
  write_markdown(ctx, comparisons);
}

void write_report_markdown(const CommandContext& ctx) {
  if (ctx.process->rank != 0) return;
  write_markdown(ctx, comparisons_of(ctx));
}

int command_baseline(CommandContext& ctx, const char* argv0, const std::string& method) {
  if (!is_cheap_baseline(method) && method != "sasrec" && method != "bpr" && method != "lightgcn" &&
      method != "itemknn") {
    throw ConfigError("baseline --method: unknown method '" + method +
                      "' (random, popularity, chainvote, sasrec, bpr, lightgcn, itemknn)");
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

}  // namespace r2rec
