// What every r2rec subcommand shares: the process, the resolved config, the topology, the run directory.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics_log.h"
#include "core/run_layout.h"
#include "distributed/agreement.h"
#include "distributed/process.h"
#include "distributed/topology.h"
#include "sampler/shard_reader.h"
#include "sampler/split.h"
#include "trainers/checkpoint_plan.h"
#include "trainers/traces.h"

namespace r2rec {

struct Collectives;
class Communicator;
struct TransformerImpl;
class Tokenizer;

// Options common to every subcommand, filled by CLI11 in main.cpp.
struct CommonOptions {
  std::string config_path;             // --config
  std::vector<std::string> overrides;  // key.sub=value ...
  std::string run_dir;                 // --run-dir (overrides run.dir)
};

struct CommandContext {
  const ProcessInfo* process = nullptr;
  Config config;
  RunLayout layout{Config{}};
  Topology topology;
  Role role = Role::kBoth;
};

// Loads and validates the config on every rank and agrees on the outcome: when any rank fails, the
// lowest failing rank's message is thrown as ConfigError on rank 0 and every other rank exits quietly
// with the same code (see main.cpp). Does not touch the run directory.
// `training`: the stage trains, so batch sizes must divide over the learner ranks (validate_for_world).
CommandContext load_context(const ProcessInfo& process, const CommonOptions& options, const char* argv0, bool training);

// For stages that write outputs: creates run.dir, starts per-rank log files there, sets the thread count,
// prints the resolved config on rank 0 and saves it as <run.dir>/config.yaml.
void open_run_dir(CommandContext& context, const char* argv0, const std::string& stage);

// The trainers' cross-rank sums over r2rec's MPI communicator with distributed.timeout_s; `keep` holds the
// communicator alive as long as the Collectives are used.
Collectives communicator_collectives(const CommandContext& ctx, std::shared_ptr<Communicator>* keep);
// r2rec's MPI communicator over every rank, with distributed.timeout_s (collective).
std::shared_ptr<Communicator> world_communicator(const CommandContext& ctx);

// Reader options for `split` of the run's shards (RunLayout::data()): with `rank_share` this rank's share of
// the split (every rank a disjoint part), else the whole split on every rank; in id order (no shuffle);
// eval.max_examples caps the split when `for_eval`.
ReaderOptions reader_options(const CommandContext& ctx, Split split, bool rank_share, bool for_eval);

// A training stage's record <run.dir>/<stage>/<stage>.json: the stage is current when its checkpoint exists and
// the record holds `fingerprint` (rank 0 decides for all; false with run.force). forget_stage removes the
// record (rank 0, agreed) before training starts, so a checkpoint left by an interrupted run is never current.
bool stage_is_current(const CommandContext& ctx, const std::string& stage, const std::string& fingerprint);
void forget_stage(const CommandContext& ctx, const std::string& stage);
// How every training stage starts (pretrain, sft, rl; full-state checkpoints in <run.dir>/<stage>/checkpoints,
// trainers/train_state.h). Its model folder must be r2rec's to replace (checked now, before training). Then:
//   current (stage_is_current; rank 0 prints "<stage>: <model> is up to date; ...") -> skip = true;
//   the newest whole checkpoint has this fingerprint                 -> resume_from = it (rank 0 prints it);
//   it has another one, which the stage's completed record also has  -> the old checkpoints go, start afresh;
//   it has another one and no completed run wrote it (an interrupted run with other settings)
//     -> ConfigError naming the checkpoint and the settings that differ, unless run.force (start afresh).
// `settings` is the config the fingerprint covers (defaults elsewhere). The plan for the trainer is filled in
// (dir, every, keep, fingerprint, settings, resume_from, R2REC_FAULT); the caller sets its tokenizer. Unless
// skipped, the stage's record is forgotten (forget_stage) before it returns.
struct StageStart {
  bool skip = false;
  CheckpointPlan plan;
};
StageStart start_stage(const CommandContext& ctx, const std::string& stage, const std::string& fingerprint,
                       const Config& settings, int64_t save_every);

// The "fingerprint" field of a stage's record ("" when absent or unreadable).
std::string stage_fingerprint_on_disk(const CommandContext& ctx, const std::string& stage);

// Validation during training (sft.eval_every, rl.eval_every): HR@1 of `model` on the first eval.valid_examples of
// the valid split (never test), each rank of `collectives` its share, summed (every rank of it calls). Scalars
// "val_hr1" (generation, with eval.generate) and "val_hr1_likelihood"; rank 0 logs them with the time taken.
// Greedy and in eval mode: it draws no random number and leaves the model's mode as it was.
Scalars validation_scalars(const CommandContext& ctx, const std::string& stage, int64_t step, TransformerImpl& model,
                           const Tokenizer& tokenizer, const Collectives& collectives);

// The run's tokenizer path (launch/run_tokenizer.cpp): tokenizer.path or model.path's own with the task's entity
// tokens added, or a BPE learnt from `traces` by rank 0 into <run.dir>/tokenizer. Collective.
std::string run_tokenizer(CommandContext& ctx, const TraceSet& traces, const Catalog& catalog);

// Subcommand bodies. Each returns the process exit code.
int command_info(const CommandContext& context, bool json);
int command_check(const CommandContext& context);
int command_prepare(CommandContext& context, const char* argv0);
int command_baseline(CommandContext& context, const char* argv0, const std::string& method);
int command_run(CommandContext& context, const char* argv0);
int command_annotate(CommandContext& context, const char* argv0);
int command_pretrain(CommandContext& context, const char* argv0);
int command_sft(CommandContext& context, const char* argv0);
int command_eval(CommandContext& context, const char* argv0, const std::string& model_dir);
int command_rl(CommandContext& context, const char* argv0);

// `r2rec explain` (launch/explain_command.cpp).
struct ExplainOptions {
  std::string user;            // the dataset's own user id
  std::string split = "test";  // train | valid | test
  std::string model_dir;       // "" = the newest of rl/model, sft/model, pretrain/model
  bool json = false;
};
int command_explain(CommandContext& context, const ExplainOptions& options);

// `r2rec baseline` pieces `r2rec run` reuses (launch/baseline_command.cpp): score one cheap baseline into the
// report; print the report table of eval.split.
void run_cheap_baseline(const CommandContext& ctx, const std::string& method);
void run_trained_baseline(const CommandContext& ctx, const std::string& method);
void print_report(const CommandContext& ctx);
// <run.dir>/report.md from report.json and the protocol in words (rank 0; trainers/report.h report_markdown).
void write_report_markdown(const CommandContext& ctx);

// `r2rec tokenize --tokenizer PATH [--decode]`: stdin lines -> ids per line (or ids -> text). No MPI.
int command_tokenize(const std::string& tokenizer_path, bool decode);

// `r2rec generate --model DIR ...` (launch/generate_command.cpp): stdin prompts -> completions. No MPI.
struct GenerateOptions {
  std::string model_dir, tokenizer_path, adapter_dir, system;
  int64_t max_new_tokens = 128;
  double temperature = 0.0;  // greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  int64_t batch_size = 16;
  int64_t threads = 0;  // 0 = the cores this process may use
  std::vector<std::string> stop_strings;
  std::vector<int64_t> stop_tokens;
  bool chat = false;
  bool json = false;
};
int command_generate(const GenerateOptions& options);

}  // namespace r2rec
