// The small ML-100K slice the language-model pipeline tests run through the binary (test_pipeline, test_resume):
// 1 example per user, a 1-layer 32-wide model, 12 SFT steps of 8 traces, 24 eval examples, 16
// validation examples.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/files.h"
#include "tests/test_support.h"

namespace r2rec::testing {

inline std::vector<std::string> slice(const std::string& run_dir) {
  return {"--config",
          source_dir() + "/configs/ml-100k.yaml",
          "--run-dir",
          run_dir,
          "data.path=" + data_dir() + "/ml-100k",
          "sampler.train_examples_per_user=1",
          "sampler.num_shards=2",
          "tokenizer.vocab_size=512",
          "pretrain.steps=0",  // SFT from scratch here; `r2rec run` in test_prepare covers pretrain
          "model.hidden_size=32",
          "model.num_layers=1",
          "model.num_heads=2",
          "model.num_kv_heads=1",
          "model.intermediate_size=64",
          "sft.batch_size=8",
          "sft.micro_batch_size=2",
          "sft.max_steps=12",
          "sft.learning_rate=0.003",
          "sft.warmup_steps=2",
          "eval.max_examples=24",
          "eval.max_new_tokens=48",
          "eval.valid_examples=16",
          "distributed.threads=1"};
}

// `r2rec <command> <args>` under `mpirun -np <np>` (np > 1), with `env` ("NAME=value") added to the environment.
inline CommandResult r2rec(const std::string& command, const std::vector<std::string>& args, int np = 1,
                           const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("/usr/bin/env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  if (np > 1) argv.insert(argv.end(), {mpiexec(), "-np", std::to_string(np)});
  argv.push_back(r2rec_binary());
  argv.push_back(command);
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

inline nlohmann::json json_file(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace r2rec::testing
