// `r2rec eval [--model DIR]`: the language model on eval.split's stored candidate lists (trainers/eval/lm_eval.h),
// every rank its share. DIR defaults to <run.dir>/sft/model; its tokenizer.json is used (else tokenizer.path).
// Results join <run.dir>/report.json next to the baselines: "<name>" (likelihood ranking of the direct form:
// HR@k, NDCG@k) and "<name>-gen" (HR@1 by generation with constrained answers, the unconstrained valid-answer
// rate, the share that needed "<answer>" appended), <name> = "llm-base" for <run.dir>/pretrain/model, "llm-sft"
// for the SFT checkpoint, "llm-rl" for <run.dir>/rl/model and "llm" for any other.
#include <glog/logging.h>

#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/progress.h"
#include "distributed/communicator.h"
#include "launch/commands.h"
#include "trainers/eval/lm_eval.h"
#include "trainers/eval/report.h"
#include "trainers/lm/model_folder.h"

namespace r2rec {
namespace fs = std::filesystem;

int command_eval(CommandContext& ctx, const char* argv0, const std::string& model_option) {
  open_run_dir(ctx, argv0, "eval");
  const Config& c = ctx.config;
  const std::string sft_dir = ctx.layout.stage_model("sft");
  const std::string model_dir = model_option.empty() ? sft_dir : model_option;
  const auto same = [&](const std::string& stage) {
    return fs::weakly_canonical(model_dir) == fs::weakly_canonical(ctx.layout.stage_model(stage));
  };
  const std::string name = same("sft") ? "llm-sft" : same("rl") ? "llm-rl" : same("pretrain") ? "llm-base" : "llm";
  LoadedModel loaded;
  std::unique_ptr<ShardReader> reader;
  run_agreed([&] {
    if (!fs::exists(model_dir + "/config.json")) {
      throw DataError(model_dir + "/config.json: not found (run `r2rec sft` first, or pass --model DIR)");
    }
    loaded = load_model_folder(model_dir, c.tokenizer.path);
    reader = std::make_unique<ShardReader>(
        reader_options(ctx, split_from_name(c.eval.split), /*rank_share=*/true, /*for_eval=*/true));
  });
  TransformerImpl& model = *loaded.model;
  const Tokenizer& tokenizer = *loaded.tokenizer;
  const DataParallelGroup group = data_parallel_group(ctx);
  LmEvalResult r;
  run_agreed([&] {
    LmEvalOptions o;
    o.ks = c.eval.ks;
    o.max_new_tokens = c.eval.generate ? c.eval.max_new_tokens : 0;
    o.batch_size = c.eval.batch_size;
    o.counterfactual = c.eval.generate && c.eval.counterfactual;
    o.seed = static_cast<uint64_t>(c.run.seed);
    // Rank 0's share stands for the job's (the shares differ by at most one example).
    std::unique_ptr<Progress> progress;
    o.on_batch = [&](int64_t done, int64_t share) {
      if (!progress) progress = std::make_unique<Progress>("eval", share, "examples", ctx.process->rank == 0);
      progress->update(done);
    };
    r = evaluate_lm(model, tokenizer, *reader, task_format(c), o, group);
    if (progress) progress->finish();
  });
  if (ctx.process->rank != 0) return kExitOk;
  MethodResult lik;
  lik.method = name;
  lik.split = c.eval.split;
  lik.metrics = r.likelihood.summary();
  lik.examples = r.examples;
  lik.seconds = r.seconds;
  lik.outcomes = r.likelihood.outcomes();
  record_result(ctx, lik);
  if (c.eval.generate) {
    MethodResult gen;
    gen.method = name + "-gen";
    gen.split = c.eval.split;
    gen.metrics = {{"HR@1", r.generation.hr(1)},
                   {"valid", r.examples ? static_cast<double>(r.valid) / r.examples : 0.0},
                   {"forced", r.examples ? static_cast<double>(r.forced) / r.examples : 0.0},
                   {"consistent", r.examples ? static_cast<double>(r.consistent) / r.examples : 0.0}};
    // A share of no claims is not 0: without a citation (a count claim) the report shows "-".
    if (r.citations > 0) gen.metrics["grounded"] = static_cast<double>(r.grounded_citations) / r.citations;
    if (r.votes_lines > 0) gen.metrics["true_votes"] = static_cast<double>(r.true_votes) / r.votes_lines;
    if (c.eval.counterfactual) {
      gen.metrics["cf_tested"] = r.examples ? static_cast<double>(r.cf_examples) / r.examples : 0.0;
      if (r.cf_examples > 0) {  // none tested: the report shows "-", not a share of 0
        gen.metrics["cf_cited"] = static_cast<double>(r.cf_changed_cited) / r.cf_examples;
        gen.metrics["cf_uncited"] = static_cast<double>(r.cf_changed_uncited) / r.cf_examples;
      }
    }
    gen.examples = r.examples;
    gen.seconds = r.seconds;
    gen.outcomes = r.generation.outcomes();
    record_result(ctx, gen);
  }
  write_report_markdown(ctx);
  std::printf("eval: %s on %s, %lld examples, %.1f s (%lld tokens generated)\n", model_dir.c_str(),
              c.eval.split.c_str(), static_cast<long long>(r.examples), r.seconds,
              static_cast<long long>(r.generated_tokens));
  if (c.eval.generate) {
    std::printf(
        "  generation  HR@1 %.4f (answers constrained to the candidates), valid answers %.1f%% unconstrained, "
        "%.1f%% needed <answer> appended\n",
        r.generation.hr(1), 100.0 * r.valid / std::max<int64_t>(1, r.examples),
        100.0 * r.forced / std::max<int64_t>(1, r.examples));
    std::printf(
        "  reasoning   %lld chains cited, %.1f%% grounded in the prompt; count claims (votes lines, candidate "
        "counts) true to the prompt: %lld of %lld; answers its own stated evidence favours: %.1f%%\n",
        static_cast<long long>(r.citations), 100.0 * r.grounded_citations / std::max<int64_t>(1, r.citations),
        static_cast<long long>(r.true_votes), static_cast<long long>(r.votes_lines),
        100.0 * r.consistent / std::max<int64_t>(1, r.examples));
    if (c.eval.counterfactual)
      std::printf(
          "  faithfulness %lld completions cite prompt chains; their answer changes in %.1f%% with the cited chains "
          "removed, in %.1f%% with as many uncited chains removed\n",
          static_cast<long long>(r.cf_examples), 100.0 * r.cf_changed_cited / std::max<int64_t>(1, r.cf_examples),
          100.0 * r.cf_changed_uncited / std::max<int64_t>(1, r.cf_examples));
  }
  std::printf("  likelihood (direct form)");
  for (int64_t k : c.eval.ks) std::printf("  HR@%lld %.4f", static_cast<long long>(k), r.likelihood.hr(k));
  for (int64_t k : c.eval.ks) std::printf("  NDCG@%lld %.4f", static_cast<long long>(k), r.likelihood.ndcg(k));
  std::printf("\n");
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace r2rec
