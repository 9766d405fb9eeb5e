// The skeleton every training stage (pretrain, sft, rl) follows, so each command keeps only what differs:
//
//   StageInputs in{settings, {digest of each input, ...}};        // what the stage's result depends on
//   TrainingStage stage(ctx, "sft", in, c.sft.save_every);         // current? resume? (below)
//   if (stage.skip()) return kExitOk;
//   ... load the start model; stage.plan().tokenizer = ...;        // the trainer's checkpoint plan
//   on each step (rank 0): stage.step(done, total, scalars, line)  // progress line, metrics.jsonl + TensorBoard
//   stage.finish_steps();
//   stage.write_record(fields, summary)                            // rank 0: <stage>.json and the summary
//
// One form for a stage's inputs: the settings it depends on (a Config with defaults everywhere else) and the
// digests of its inputs in order (shards, traces, tokenizer, the stage it starts from); the fingerprint is
// FNV-1a 64 of the settings' YAML followed by the digests.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics_log.h"
#include "launch/context.h"
#include "trainers/lm/checkpoint_plan.h"
#include "trainers/task/traces.h"

namespace r2rec {

struct TransformerImpl;
class Tokenizer;
class Progress;

struct StageInputs {
  Config settings;                   // the settings the result depends on (defaults elsewhere)
  std::vector<std::string> digests;  // the stage's inputs, in order
  std::string fingerprint() const;
};

// The "fingerprint" field of a stage's record <run.dir>/<stage>/<stage>.json ("" when absent or unreadable).
std::string stage_fingerprint_on_disk(const CommandContext& ctx, const std::string& stage);

class TrainingStage {
 public:
  // How a stage starts (full-state checkpoints in <run.dir>/<stage>/checkpoints, trainers/lm/train_state.h).
  // Its model folder must be r2rec's to replace (checked now, before training). Then:
  //   current (its model exists and its record holds this fingerprint; never with run.force)
  //     -> skip() (rank 0 prints "<stage>: <model> is up to date; ...");
  //   the newest whole checkpoint has this fingerprint                 -> the plan resumes from it;
  //   it has another one, which the stage's completed record also has  -> the old checkpoints go, start afresh;
  //   it has another one and no completed run wrote it (an interrupted run with other settings)
  //     -> ConfigError naming the checkpoint and the settings that differ, unless run.force (start afresh).
  // Unless skipped, the stage's record is removed before this returns, so a model left by an interrupted run
  // is never current. Collective.
  TrainingStage(const CommandContext& ctx, std::string name, const StageInputs& inputs, int64_t save_every);
  ~TrainingStage();
  TrainingStage(const TrainingStage&) = delete;
  TrainingStage& operator=(const TrainingStage&) = delete;

  bool skip() const { return skip_; }
  const std::string& fingerprint() const { return fingerprint_; }
  // The trainer's checkpoint plan (dir, every, keep, fingerprint, settings, resume_from, R2REC_FAULT); the
  // command sets its tokenizer and base model.
  CheckpointPlan& plan() { return plan_; }

  // After step `done` (1-based) of `total`: the progress line (started at the first call, counting from the
  // resumed step), one metrics.jsonl line and TensorBoard event, and `line` in the log when it is not empty —
  // each on rank 0 alone (rank 0 is also split GRPO's learner 0); other ranks may call it or not.
  void step(int64_t done, int64_t total, const Scalars& scalars, const std::string& line);
  void finish_steps();  // the final progress line

  // Rank 0: <run.dir>/<stage>/<stage>.json = {"fingerprint": ..., then `fields`}, written atomically, and
  // `summary` on stdout. Other ranks: nothing.
  void write_record(const nlohmann::ordered_json& fields, const std::string& summary) const;

 private:
  const CommandContext& ctx_;
  std::string name_, fingerprint_;
  bool skip_ = false;
  CheckpointPlan plan_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<Progress> progress_;
};

// Validation during training (sft.eval_every, rl.eval_every): HR@1 of `model` on the first eval.valid_examples of
// the valid split (never test), each rank of `group` its share, summed (every rank of it calls). Scalars
// "val_hr1" (generation, with eval.generate) and "val_hr1_likelihood"; rank 0 logs them with the time taken.
// Greedy and in eval mode: it draws no random number and leaves the model's mode as it was.
Scalars validation_scalars(const CommandContext& ctx, const std::string& stage, int64_t step, TransformerImpl& model,
                           const Tokenizer& tokenizer, const DataParallelGroup& group);

// The run's tokenizer path (launch/run_tokenizer.cpp): tokenizer.path or model.path's own with the task's entity
// tokens added, or a BPE learnt from `traces` by rank 0 into <run.dir>/tokenizer. Collective.
std::string run_tokenizer(CommandContext& ctx, const TraceSet& traces, const Catalog& catalog);

}  // namespace r2rec
