// `r2rec pretrain`: next-token pretraining of the from-scratch model on the train split's corpus
// (trainers/lm/pretrain.h, trainers/task/corpus.h) before SFT, so it holds collaborative knowledge the way a pretrained
// LLM holds world knowledge. Skipped with a pretrained model.path or pretrain.steps = 0.
// Tokenizer: the run's (launch/run_tokenizer.cpp), learnt from the traces, so annotate runs first.
// Output: <run.dir>/pretrain/model (a checkpoint folder SFT starts from; its zero-shot result is the report's
// llm-base row) and pretrain.json (fingerprint, per-step losses, throughput). Current — same shards, traces,
// tokenizer, model shape, pretrain.* and seed — is a no-op unless run.force.
#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "launch/commands.h"
#include "launch/stage.h"
#include "sampler/manifest.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/pretrain.h"

namespace r2rec {
namespace fs = std::filesystem;

int command_pretrain(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "pretrain");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  if (!c.model.path.empty() || c.pretrain.steps == 0) {
    if (rank == 0) {
      std::cout << "pretrain: skipped (" << (c.model.path.empty() ? "pretrain.steps is 0" : "model.path is pretrained")
                << ")\n"
                << std::flush;
    }
    return kExitOk;
  }
  const TaskFormat format = task_format(c);
  TraceSet traces;
  Catalog catalog;
  std::string prepare_hash;
  run_agreed([&] {
    const Manifest manifest = read_manifest(ctx.layout.data());
    prepare_hash = manifest.config_hash;
    ShardMeta meta;
    catalog = read_catalog((fs::path(ctx.layout.data()) / manifest.catalog.name).string(), &meta);
    traces = read_traces(ctx.layout.traces_h5());
  });
  const std::string tokenizer_path = run_tokenizer(ctx, traces, catalog);
  StageInputs inputs;  // defaults everywhere except the fields the checkpoint depends on
  inputs.settings.task = c.task;
  inputs.settings.tokenizer = c.tokenizer;
  inputs.settings.model = c.model;
  inputs.settings.pretrain = c.pretrain;
  inputs.settings.pretrain.save_every = 0;  // when checkpoints are written does not change the result
  inputs.settings.run.seed = c.run.seed;
  std::string tokenizer_text;
  run_agreed([&] { tokenizer_text = tokenizer_json(Tokenizer::load(tokenizer_path).spec()); });
  inputs.digests = {prepare_hash, tokenizer_text};
  const std::string out = ctx.layout.stage_model("pretrain");
  TrainingStage stage(ctx, "pretrain", inputs, c.pretrain.save_every);
  if (stage.skip()) return kExitOk;
  std::unique_ptr<Tokenizer> tokenizer;
  Transformer model{nullptr};
  run_agreed([&] {
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
    model = build_model(c, tokenizer->vocab_size());
    if (c.pretrain.init_items == "bpr") {
      init_item_rows(*model, *tokenizer, catalog, ctx.layout.baseline_factors("bpr"),
                     static_cast<uint64_t>(c.run.seed));
    }
  });
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  LOG(INFO) << "pretrain: model " << model->config.num_layers << " layers x " << model->config.hidden_size << ", vocab "
            << model->config.vocab_size << ", " << params << " parameters";
  const DataParallelGroup group = data_parallel_group(ctx);
  PretrainResult result;
  stage.plan().tokenizer = tokenizer.get();
  run_agreed([&] {
    const auto on_step = [&](const LmStep& s) {
      const bool shown = s.step < 3 || (s.step + 1) % 100 == 0;
      stage.step(s.step + 1, s.total, lm_step_scalars(s),
                 shown ? "step " + std::to_string(s.step + 1) + "/" + std::to_string(c.pretrain.steps) + " loss " +
                             std::to_string(s.loss) + " (" + std::to_string(s.seconds) + " s)"
                       : "");
    };
    result = train_pretrain(*model, c, catalog, format, *tokenizer, group, on_step, &stage.plan());
    stage.finish_steps();
  });
  run_agreed([&] {
    if (rank != 0) return;
    save_model_folder(*model, *tokenizer, out);
    nlohmann::ordered_json j;
    j["steps"] = result.steps;
    j["ranks"] = ctx.process->world_size;
    j["gradient_buckets"] = result.gradient_buckets;
    j["resumed_from"] = result.resumed_from;
    j["parameters"] = params;
    j["rows_per_pass"] = result.rows_per_pass;
    j["tokens_per_pass"] = result.tokens_per_pass;
    j["seconds"] = result.seconds;
    j["tokens_per_second"] = result.tokens_per_second;
    j["first_loss"] = result.losses.front();
    j["last_loss"] = result.losses.back();
    j["losses"] = result.losses;
    char summary[512];
    std::snprintf(summary, sizeof(summary),
                  "pretrain: %lld steps on a %lld-token corpus pass, %d rank(s)\n  loss %.4f -> %.4f, %.1f s, %.0f "
                  "tokens/s\n  checkpoint %s\n",
                  static_cast<long long>(result.steps), static_cast<long long>(result.tokens_per_pass),
                  ctx.process->world_size, result.losses.front(), result.losses.back(), result.seconds,
                  result.tokens_per_second, out.c_str());
    stage.write_record(j, summary);
  });
  return kExitOk;
}

}  // namespace r2rec
