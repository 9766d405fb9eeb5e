// `r2rec sft`: data-parallel supervised fine-tuning on <run.dir>/traces/traces.h5 (trainers/lm/sft.h).
//
// Start: a pretrained model.path (its tokenizer gets the task's entity tokens and the model grows their rows,
// trainers/lm/model_folder.h grow_vocabulary); else <run.dir>/pretrain/model (pretrain.steps > 0) with its tokenizer;
// else a new model of the model.* shape with the run's learnt tokenizer (launch/run_tokenizer.cpp).
// Output: <run.dir>/sft/model (config.json, model.safetensors, tokenizer.json, generation_config.json — loads in
// `transformers` and `r2rec generate`), written at the end and every sft.save_every steps; <run.dir>/sft/sft.json
// with the per-step losses and throughput.
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
#include "trainers/lm/sft.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

// The traces' contents (every prompt and completion), FNV-1a 64.
std::string traces_digest(const TraceSet& traces) {
  uint64_t h = kFnvOffset;
  for (int64_t i = 0; i < traces.size(); ++i) h = fnv1a(traces.completions[i], fnv1a(traces.prompts[i], h));
  return hex64(h);
}

// What the checkpoint depends on: the traces' contents, the starting point (the pretrain record's fingerprint),
// the tokenizer and every task/model/tokenizer/sft/seed setting, so `r2rec run` retrains exactly when one of
// them changed.
StageInputs sft_inputs(const Config& c, const std::string& digest, const std::string& start,
                       const std::string& tokenizer_text) {
  StageInputs in;  // defaults everywhere except the fields that matter
  Config& k = in.settings;
  k.task = c.task;
  k.tokenizer = c.tokenizer;
  k.model = c.model;
  k.sft = c.sft;
  k.sft.save_every = 0;  // when checkpoints are written or validation runs does not change the result
  k.sft.eval_every = 0;
  k.run.seed = c.run.seed;
  in.digests = {digest, start, tokenizer_text};
  return in;
}

}  // namespace

int command_sft(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "sft");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  // Start: a pretrained model.path; else the pretrain stage's checkpoint (pretrain.steps > 0); else a new model.
  const bool from_pretrain = c.model.path.empty() && c.pretrain.steps > 0;
  const std::string pretrained = ctx.layout.stage_model("pretrain");
  TraceSet traces;
  Catalog catalog;
  run_agreed([&] {
    if (c.tokenizer.path.empty() && !c.model.path.empty() && !fs::exists(c.model.path + "/tokenizer.json")) {
      throw ConfigError("tokenizer.path: empty, and model.path " + c.model.path +
                        " has no tokenizer.json: a pretrained model needs its own tokenizer");
    }
    if (from_pretrain && !fs::exists(pretrained + "/config.json")) {
      throw DataError(pretrained +
                      "/config.json: not found (run `r2rec pretrain` first, or set pretrain.steps=0 to "
                      "fine-tune a new model from scratch)");
    }
    traces = read_traces(ctx.layout.traces_h5());
    const Manifest manifest = read_manifest(ctx.layout.data());
    ShardMeta meta;
    catalog = read_catalog((fs::path(ctx.layout.data()) / manifest.catalog.name).string(), &meta);
  });
  const std::string tokenizer_path = from_pretrain ? pretrained : run_tokenizer(ctx, traces, catalog);
  std::string tokenizer_text;
  run_agreed([&] { tokenizer_text = tokenizer_json(Tokenizer::load(tokenizer_path).spec()); });
  const std::string digest = traces_digest(traces);
  const std::string start = from_pretrain ? stage_fingerprint_on_disk(ctx, "pretrain") : c.model.path;
  const std::string out = ctx.layout.stage_model("sft");
  TrainingStage stage(ctx, "sft", sft_inputs(c, digest, broadcast_from_rank0(start), tokenizer_text), c.sft.save_every);
  if (stage.skip()) return kExitOk;

  std::unique_ptr<Tokenizer> tokenizer;
  Transformer model{nullptr};
  run_agreed([&] {
    if (from_pretrain) {
      LoadedModel loaded = load_model_folder(pretrained);
      tokenizer = std::move(loaded.tokenizer);
      model = loaded.model;
      add_configured_lora(*model, c.model.lora, static_cast<uint64_t>(c.run.seed));
      model->activation_checkpointing = c.model.activation_checkpointing;
    } else {
      tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
      model = build_model(c, tokenizer->vocab_size());
      if (!c.model.path.empty()) grow_vocabulary(*model, *tokenizer, catalog);
    }
  });
  if (!tokenizer->token_id("<|im_end|>") && !tokenizer->token_id("<|endoftext|>")) {
    LOG(WARNING) << "sft: " << tokenizer_path
                 << " has neither <|im_end|> nor <|endoftext|>: the model will not learn to stop";
  }
  int64_t params = 0, trainable = 0;
  for (const auto& p : model->parameters()) {
    params += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  LOG(INFO) << "sft: " << traces.size() << " traces, model " << model->config.num_layers << " layers x "
            << model->config.hidden_size << ", vocab " << model->config.vocab_size << ", " << params << " parameters ("
            << trainable << " trainable), from "
            << (from_pretrain          ? pretrained
                : c.model.path.empty() ? "scratch"
                                       : c.model.path);

  const DataParallelGroup group = data_parallel_group(ctx);
  SftResult result;
  stage.plan().tokenizer = tokenizer.get();
  stage.plan().base_model = from_pretrain ? pretrained : c.model.path;
  run_agreed([&] {
    const auto on_step = [&](const LmStep& s) {
      Scalars scalars = lm_step_scalars(s);
      if (c.sft.eval_every > 0 && ((s.step + 1) % c.sft.eval_every == 0 || s.step + 1 == s.total)) {
        for (auto& kv : validation_scalars(ctx, "sft", s.step + 1, *model, *tokenizer, group)) scalars.push_back(kv);
      }
      const bool shown = s.step < 5 || (s.step + 1) % 25 == 0;
      stage.step(s.step + 1, s.total, scalars,
                 shown ? "step " + std::to_string(s.step + 1) + " loss " + std::to_string(s.loss) + " (" +
                             std::to_string(s.seconds) + " s)"
                       : "");
    };
    result = train_sft(*model, c, traces, *tokenizer, group, on_step, &stage.plan());
    stage.finish_steps();
  });
  // Saved by rank 0 inside run_agreed on every rank: the others wait for it (no deadline runs out behind a slow
  // save) and a failed save ends every rank with its message.
  run_agreed([&] {
    if (rank == 0) save_model_folder(*model, *tokenizer, out);
  });
  run_agreed([&] {
    if (rank != 0) return;
    nlohmann::ordered_json j;
    j["traces_digest"] = digest;
    j["start"] = from_pretrain ? pretrained : c.model.path;
    j["traces"] = traces.size();
    j["traces_used"] = result.traces_used;
    j["too_long"] = result.too_long;
    j["steps"] = result.steps;
    j["ranks"] = ctx.process->world_size;
    j["gradient_buckets"] = result.gradient_buckets;
    j["resumed_from"] = result.resumed_from;
    j["parameters"] = params;
    j["trainable_parameters"] = trainable;
    j["seconds"] = result.seconds;
    j["tokens_per_second"] = result.tokens_per_second;
    j["first_loss"] = result.losses.front();
    j["last_loss"] = result.losses.back();
    j["losses"] = result.losses;
    char summary[1024];
    std::snprintf(summary, sizeof(summary),
                  "sft: %lld steps on %lld traces (%lld longer than %lld tokens left out), %d rank(s)\n"
                  "  loss %.4f -> %.4f, %.1f s, %.0f tokens/s\n  checkpoint %s (r2rec generate --model %s --chat)\n",
                  static_cast<long long>(result.steps), static_cast<long long>(result.traces_used),
                  static_cast<long long>(result.too_long), static_cast<long long>(c.sft.max_seq_len),
                  ctx.process->world_size, result.losses.front(), result.losses.back(), result.seconds,
                  result.tokens_per_second, out.c_str(), out.c_str());
    stage.write_record(j, summary);
  });
  return kExitOk;
}

}  // namespace r2rec
