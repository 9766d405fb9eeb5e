// The subcommands' entry points (launch/<name>_command.cpp), called by main.cpp. Each returns the process exit
// code; bad input throws the typed errors of core/error.h, which main turns into one line and that code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "launch/context.h"

namespace r2rec {

struct MethodResult;

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
// With skip_if_current, nothing is done when the report's entry holds the fingerprint of what it depends on (data,
// method, baseline.*, run.seed, eval scoring, world size) and run.force is off. Collective.
void run_trained_baseline(const CommandContext& ctx, const std::string& method, bool skip_if_current = false);
void print_report(const CommandContext& ctx);
// Rank 0: `result` into report.json and its outcomes into examples.jsonl.
void record_result(const CommandContext& ctx, const MethodResult& result);
// <run.dir>/report.md from report.json and the protocol in words (rank 0; trainers/eval/report.h report_markdown).
void write_report_markdown(const CommandContext& ctx);

// `r2rec compare A B --run-dir D [--run-dir D2 ...]` (launch/compare_command.cpp): a paired comparison of two
// methods from the runs' examples.jsonl. No MPI.
struct CompareOptions {
  std::vector<std::string> methods;  // A, B
  std::vector<std::string> run_dirs;
  // B's outcomes from these runs instead (one per --run-dir, in the same seed order): two configurations compared
  // seed by seed, e.g. the same method with and without chains in its prompt.
  std::vector<std::string> against_run_dirs;
  std::string split = "test";
  int64_t resamples = 10000;
  uint64_t seed = 0;
  bool json = false;
};
int command_compare(const CompareOptions& options);

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
