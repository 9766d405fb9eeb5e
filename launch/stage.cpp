#include "launch/stage.h"

#include <glog/logging.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/owned_dir.h"
#include "core/progress.h"
#include "trainers/eval/lm_eval.h"
#include "trainers/lm/train_state.h"

namespace r2rec {

namespace {

// Current: the stage's model exists and its record holds `fingerprint` (rank 0 decides for all; false with
// run.force).
bool stage_is_current(const CommandContext& ctx, const std::string& stage, const std::string& fingerprint) {
  return agree_on_rank0(ctx.process->rank == 0 && !ctx.config.run.force &&
                        std::filesystem::exists(ctx.layout.stage_model(stage) + "/config.json") &&
                        stage_fingerprint_on_disk(ctx, stage) == fingerprint);
}

// Removes the stage's record (rank 0, agreed).
void forget_stage(const CommandContext& ctx, const std::string& stage) {
  run_agreed([&] {
    std::error_code ec;
    if (ctx.process->rank == 0) std::filesystem::remove(ctx.layout.stage_json(stage), ec);
  });
}

// The settings keys that differ between an interrupted run's checkpoint and `settings` ("" when unknown).
std::string changed_settings(const CommandContext& ctx, const std::string& settings_yaml, const Config& settings) {
  std::string keys;
  const std::string tmp = temp_path_for(ctx.layout.scratch("checkpoint-settings.yaml"));
  try {
    write_file_atomic(tmp, settings_yaml);
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
  return keys;
}

}  // namespace

std::string StageInputs::fingerprint() const {
  std::string text = to_yaml(settings);
  for (const std::string& d : digests) text += d;
  return hex64(fnv1a(text));
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

TrainingStage::TrainingStage(const CommandContext& ctx, std::string name, const StageInputs& inputs, int64_t save_every)
    : ctx_(ctx), name_(std::move(name)), fingerprint_(inputs.fingerprint()) {
  const std::string& stage = name_;
  plan_.dir = ctx.layout.stage_checkpoints(stage);
  plan_.stage = stage;
  plan_.every = save_every;
  plan_.keep = ctx.config.run.keep_checkpoints;
  plan_.fingerprint = fingerprint_;
  plan_.settings_yaml = to_yaml(inputs.settings);
  if (const char* f = std::getenv("R2REC_FAULT")) plan_.fault = f;
  if (stage_is_current(ctx, stage, fingerprint_)) {
    if (ctx.process->rank == 0) {
      std::cout << stage << ": " << ctx.layout.stage_model(stage)
                << " is up to date; nothing to do (run.force=true retrains)\n"
                << std::flush;
    }
    skip_ = true;
    return;
  }
  std::string resume;
  int64_t resume_step = 0;
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    check_replaceable(ctx.layout.stage_model(stage), model_dir_name);
    const std::optional<CheckpointInfo> newest = newest_checkpoint(plan_.dir);
    if (!newest) return;
    if (ctx.config.run.force) {
      clear_checkpoints(plan_.dir);
      return;
    }
    if (newest->fingerprint == fingerprint_) {
      resume = newest->path;
      resume_step = newest->step;
      std::cout << stage << ": resuming from " << newest->path << " (step " << newest->step << ")\n" << std::flush;
      return;
    }
    if (newest->fingerprint == stage_fingerprint_on_disk(ctx, stage)) {  // a finished run's, with other settings
      clear_checkpoints(plan_.dir);
      return;
    }
    const std::string keys = changed_settings(ctx, newest->settings_yaml, inputs.settings);
    throw ConfigError(newest->path + ": an interrupted " + stage + " run with other " +
                      (keys.empty() ? std::string("inputs (the data, traces, tokenizer or start model)")
                                    : "settings (" + keys + ")") +
                      ": run with those to resume it, or with run.force=true to start afresh");
  });
  plan_.resume_from = broadcast_from_rank0(resume);
  plan_.resume_step = std::stoll(broadcast_from_rank0(std::to_string(resume_step)));
  forget_stage(ctx, stage);
  metrics_ = std::make_unique<MetricsLog>(ctx.layout.metrics_jsonl(), ctx.layout.tensorboard(), stage,
                                          plan_.resume_step, ctx.process->rank == 0);
}

TrainingStage::~TrainingStage() = default;

void TrainingStage::step(int64_t done, int64_t total, const Scalars& scalars, const std::string& line) {
  if (!progress_) progress_ = std::make_unique<Progress>(name_, total, "steps", ctx_.process->rank == 0, done - 1);
  progress_->update(done);
  if (!line.empty() && ctx_.process->rank == 0) LOG(INFO) << name_ << ": " << line;
  if (metrics_) metrics_->log(done, scalars);
}

void TrainingStage::finish_steps() {
  if (progress_) progress_->finish();
}

void TrainingStage::write_record(const nlohmann::ordered_json& fields, const std::string& summary) const {
  if (ctx_.process->rank != 0) return;
  nlohmann::ordered_json j;
  j["fingerprint"] = fingerprint_;
  for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
  write_file_atomic(ctx_.layout.stage_json(name_), j.dump(2) + "\n");
  std::cout << summary << std::flush;
}

Scalars validation_scalars(const CommandContext& ctx, const std::string& stage, int64_t step, TransformerImpl& model,
                           const Tokenizer& tokenizer, const DataParallelGroup& group) {
  const Config& c = ctx.config;
  ShardReader reader(split_reader_options(ctx.layout.data(), static_cast<int>(Split::kValid), group.rank(),
                                          group.size(), c.eval.valid_examples));
  LmEvalOptions o;
  o.ks = {1};
  o.max_new_tokens = c.eval.generate ? c.eval.max_new_tokens : 0;
  o.batch_size = c.eval.batch_size;
  const LmEvalResult r = evaluate_lm(model, tokenizer, reader, task_format(c), o, group);
  Scalars out;
  if (c.eval.generate) out.emplace_back("val_hr1", r.generation.hr(1));
  out.emplace_back("val_hr1_likelihood", r.likelihood.hr(1));
  if (group.rank() == 0) {
    LOG(INFO) << stage << ": step " << step << " validation on " << r.examples << " valid examples: "
              << (c.eval.generate ? "HR@1 " + std::to_string(r.generation.hr(1)) + " by generation, " : "") << "HR@1 "
              << r.likelihood.hr(1) << " by likelihood (" << r.seconds << " s)";
  }
  return out;
}

}  // namespace r2rec
