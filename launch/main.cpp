// r2rec: one binary, one subcommand per pipeline stage (docs/design.md §2).
//
//   r2rec <command> --config FILE [key.sub=value ...] [--run-dir DIR]
//
// Exit codes: 0 ok, 2 user error (command line, config, input data), 3 runtime or communication failure.
// Every error is one line on stderr: "r2rec <command>: <file>:<line>: <key>: <what>".
#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>

#include "core/config.h"
#include "core/error.h"
#include "core/runtime.h"
#include "core/version.h"
#include "distributed/watchdog.h"
#include "launch/commands.h"

using namespace r2rec;

namespace {

// The first line of a message (library exceptions such as c10::Error append multi-line traces).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// An r2rec error message on one line: embedded line breaks (from quoted input) become spaces.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

bool is_env_rank_zero() {
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!r) r = std::getenv("SLURM_PROCID");
  return !r || std::string(r) == "0";
}

struct Subcommand {
  CLI::App* app = nullptr;
  // Body run after MPI is up and the config is loaded; returns the exit code.
  std::function<int(CommandContext&, const char* argv0)> run;
  bool needs_mpi = true;
  bool trains = false;  // batch sizes must divide over the learner ranks
  bool watched = true;  // multi-rank runs get a watchdog (heartbeats under <run.dir>/heartbeats)
};

void add_common(CLI::App* app, CommonOptions& common, bool config_required) {
  auto* opt = app->add_option("-c,--config", common.config_path, "YAML config file (see docs/config.md)");
  if (config_required) opt->required();
  app->add_option("--run-dir", common.run_dir, "Run directory for outputs and logs (sets run.dir)");
  app->add_option("overrides", common.overrides, "Config overrides, key.sub=value, applied in order after the file");
}

}  // namespace

int main(int argc, char** argv) {
  r2rec::tune_allocator();  // before any tensor exists (core/runtime.h)
  CLI::App app{"r2rec " R2REC_VERSION ": teach a language model to recommend by reasoning over interaction chains"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("r2rec ") + R2REC_VERSION + " (" + R2REC_GIT_REV + ")");
  CommonOptions common;
  std::map<std::string, Subcommand> commands;

  auto stage = [&](const std::string& name, const std::string& help, bool config_required = true) -> Subcommand& {
    Subcommand& s = commands[name];
    s.app = app.add_subcommand(name, help);
    add_common(s.app, common, config_required);
    return s;
  };

  // Pipeline stages.
  stage("prepare", "Read a dataset, filter, split, sample candidates and chains, write HDF5 shards").run =
      [](CommandContext& ctx, const char* argv0) { return command_prepare(ctx, argv0); };
  stage("annotate", "Write SFT reasoning traces by progressive masked prompting (template or model teacher)").run =
      [](CommandContext& ctx, const char* argv0) { return command_annotate(ctx, argv0); };
  stage("pretrain", "Pretrain a from-scratch model on the train split's sequences, titles and chain walks").run =
      [](CommandContext& ctx, const char* argv0) { return command_pretrain(ctx, argv0); };
  stage("sft", "Data-parallel supervised fine-tuning on the traces").run = [](CommandContext& ctx, const char* argv0) {
    return command_sft(ctx, argv0);
  };
  stage("rl", "GRPO: rollout workers generate and score, learners update, weights synced back").run =
      [](CommandContext& ctx, const char* argv0) { return command_rl(ctx, argv0); };
  std::string eval_model;
  Subcommand& eval = stage("eval", "HR@1 by generation, HR@k/NDCG@k by likelihood, valid-answer rate, baselines");
  eval.app->add_option("--model", eval_model, "Checkpoint folder to evaluate (default: <run.dir>/sft/model)");
  eval.run = [&eval_model](CommandContext& ctx, const char* argv0) { return command_eval(ctx, argv0, eval_model); };
  std::string method = "popularity";
  Subcommand& baseline = stage("baseline", "Train and score a classical recommender on the stored candidate lists");
  baseline.app->add_option("--method", method, "random | popularity | chainvote | sasrec | bpr | lightgcn | itemknn")
      ->required();
  baseline.run = [&method](CommandContext& ctx, const char* argv0) { return command_baseline(ctx, argv0, method); };
  stage("run", "Every stage in order from one config: prepare, annotate, pretrain, sft, rl, baselines, eval").run =
      [](CommandContext& ctx, const char* argv0) { return command_run(ctx, argv0); };
  ExplainOptions explain_options;
  Subcommand& explain = stage("explain",
                              "One user's example: prompt, chains, the model's reasoning and answer, which chains it "
                              "cites and whether each citation is grounded (config: <run-dir>/config.yaml)",
                              /*config_required=*/false);
  explain.app->add_option("--user", explain_options.user, "The dataset's own user id")->required();
  explain.app->add_option("--split", explain_options.split, "train | valid | test")->capture_default_str();
  explain.app->add_option("--model", explain_options.model_dir,
                          "Checkpoint folder (default: the newest of <run.dir>/rl/model, sft/model, pretrain/model)");
  explain.app->add_flag("--json", explain_options.json, "One JSON object instead of text");
  explain.watched = false;
  explain.run = [&explain_options](CommandContext& ctx, const char*) { return command_explain(ctx, explain_options); };

  // Tools.
  std::string tokenizer_path;
  GenerateOptions gen;
  Subcommand& generate =
      stage("generate", "Complete prompts read from stdin (one per line, \\n escapes) with a checkpoint", false);
  CLI::App* g = generate.app;
  g->add_option("--model", gen.model_dir, "Hugging Face checkpoint folder (config.json, *.safetensors)")->required();
  g->add_option("--tokenizer", gen.tokenizer_path,
                "tokenizer.json(.gz), folder, or vocab.json+merges.txt (default: the model folder)");
  g->add_option("--adapter", gen.adapter_dir,
                "PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)");
  g->add_option("--max-new-tokens", gen.max_new_tokens, "Tokens to generate at most per prompt")->capture_default_str();
  g->add_option("--temperature", gen.temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  g->add_option("--top-p", gen.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  g->add_option("--top-k", gen.top_k, "Sample among the k most likely tokens (0 = off)")->capture_default_str();
  g->add_option("--seed", gen.seed, "Prompt i samples with seed + i")->capture_default_str();
  g->add_option("--stop", gen.stop_strings, "Stop string (repeatable); the completion is cut before it");
  g->add_option("--stop-token", gen.stop_tokens, "Stop token id (repeatable), besides the checkpoint's eos_token_id");
  g->add_option("--batch-size", gen.batch_size, "Prompts decoded together")->capture_default_str();
  g->add_option("--threads", gen.threads, "Intra-op threads (0 = the cores this process may use)")
      ->capture_default_str();
  g->add_flag("--chat", gen.chat, "Wrap each line as the user turn of a ChatML conversation");
  g->add_option("--system", gen.system, "System turn for --chat");
  g->add_flag("--json", gen.json, "One JSON object per prompt: prompt, prompt_ids, ids, logprobs, text, finish");
  generate.needs_mpi = false;
  generate.run = [&gen](CommandContext&, const char*) { return command_generate(gen); };
  bool decode = false;
  Subcommand& tokenize = stage("tokenize", "Encode stdin lines to token ids (or decode ids with --decode)", false);
  tokenize.app->add_option("--tokenizer", tokenizer_path, "tokenizer.json(.gz), folder, or vocab.json+merges.txt")
      ->required();
  tokenize.app->add_flag("--decode", decode, "Read lines of space-separated ids and print the text");
  tokenize.needs_mpi = false;
  tokenize.run = [&](CommandContext&, const char*) { return command_tokenize(tokenizer_path, decode); };

  CompareOptions cmp;
  Subcommand& compare = commands["compare"];
  compare.app = app.add_subcommand("compare",
                                   "Methods over runs (one per seed): every method's mean with a 95% t interval, or "
                                   "A against B, paired over the same examples (bootstrap interval)");
  compare.app->add_option("methods", cmp.methods,
                          "Two methods of the report, A then B (e.g. llm-rl-gen bpr); none: every method's mean");
  compare.app->add_option("--run-dir", cmp.run_dirs, "A run directory (repeat: one per seed)")->required();
  compare.app->add_option("--against-run-dir", cmp.against_run_dirs,
                          "B from this run instead (repeat: one per --run-dir, same seeds): two configurations, "
                          "paired over the same examples");
  compare.app->add_option("--split", cmp.split, "valid | test")->capture_default_str();
  compare.app->add_option("--resamples", cmp.resamples, "Bootstrap resamples")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}));
  compare.app->add_option("--seed", cmp.seed, "Bootstrap seed")->capture_default_str();
  compare.app->add_flag("--json", cmp.json, "One JSON object instead of text");
  compare.needs_mpi = false;
  compare.run = [&cmp](CommandContext&, const char*) { return command_compare(cmp); };

  bool json = false;
  Subcommand& info =
      stage("info", "Print what each rank runs on: versions, BLAS, threads, CUDA/NCCL, MPI, role", false);
  info.app->add_flag("--json", json, "One JSON object per rank, one line each");
  info.run = [&json](CommandContext& ctx, const char*) { return command_info(ctx, json); };
  info.watched = false;
  for (const char* training : {"pretrain", "sft", "rl", "run"}) commands[training].trains = true;
  Subcommand& check = stage("check", "Validate a config for this world size and print it resolved", false);
  check.trains = true;
  check.watched = false;
  check.run = [](CommandContext& ctx, const char*) { return command_check(ctx); };
  bool doc_yaml = false;
  Subcommand& doc = stage(
      "config-doc", "Print the configuration reference (docs/config.md, or --yaml: configs/defaults.yaml)", false);
  doc.app->add_flag("--yaml", doc_yaml, "A commented YAML file of every key at its default");
  doc.needs_mpi = false;
  doc.run = [&doc_yaml](CommandContext&, const char*) {
    std::cout << (doc_yaml ? config_template_yaml() : config_reference_markdown());
    return 0;
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    if (is_env_rank_zero()) {
      std::fprintf(stderr, "r2rec: error: %s (r2rec --help lists commands and options)\n",
                   first_line(e.what()).c_str());
    }
    return kExitUsage;
  }

  std::string name;
  for (auto& [n, s] : commands) {
    if (s.app->parsed()) name = n;
  }
  Subcommand& cmd = commands.at(name);
  if (!cmd.needs_mpi) {
    try {
      CommandContext none;
      return cmd.run(none, argv[0]);
    } catch (const Error& e) {
      std::fprintf(stderr, "r2rec %s: %s\n", name.c_str(), one_line(e.what()).c_str());
      return e.exit_code();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "r2rec %s: internal error: %s\n", name.c_str(), first_line(e.what()).c_str());
      return kExitRuntime;
    }
  }

  std::unique_ptr<MpiSession> mpi;
  // Declared outside the try: while an error is reported and the job ended, this rank's heartbeat must
  // still be there for its peers' diagnosis (distributed/watchdog.h).
  std::unique_ptr<Watchdog> watchdog;
  int world_size = 1;
  try {
    mpi = std::make_unique<MpiSession>(&argc, &argv);
    world_size = mpi->info().world_size;
    if (name == "explain" && common.config_path.empty()) {
      if (common.run_dir.empty())
        throw ConfigError("explain: pass --run-dir DIR (its config.yaml is used) or --config");
      common.config_path = RunLayout::config_yaml_of(common.run_dir);
      if (!std::filesystem::exists(common.config_path)) {
        throw ConfigError(common.config_path + ": not found (is --run-dir a run directory? or pass --config)");
      }
    }
    CommandContext ctx = load_context(mpi->info(), common, argv[0], cmd.trains);
    if (world_size > 1 && cmd.watched) {
      WatchdogOptions options;
      options.dir = ctx.layout.heartbeats();
      options.role = role_name(ctx.role);
      std::error_code ec;
      if (ctx.process->rank == 0) std::filesystem::create_directories(ctx.config.run.dir, ec);
      watchdog = std::make_unique<Watchdog>(options);
    }
    PhaseScope phase(name);
    return cmd.run(ctx, argv[0]);
  } catch (const Error& e) {
    if (*e.what()) std::fprintf(stderr, "r2rec %s: %s\n", name.c_str(), one_line(e.what()).c_str());
    // Failures agreed on by every rank (run_agreed: config, input data) end each rank normally. Any other
    // failure may have struck this rank alone: end the job so no peer waits for it forever.
    if (world_size > 1 && !e.agreed()) MpiSession::abort_job(e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "r2rec %s: internal error: %s\n", name.c_str(), first_line(e.what()).c_str());
    if (world_size > 1) MpiSession::abort_job(kExitRuntime);
    return kExitRuntime;
  }
}
