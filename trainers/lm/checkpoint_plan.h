// What a training stage tells its trainer about full-state checkpoints, and which checkpoint is the newest
// whole one (trainers/lm/train_state.h has the layout); no torch here, so launch's headers can carry it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace r2rec {

class Tokenizer;

struct CheckpointPlan {
  std::string dir;            // <run.dir>/<stage>/checkpoints ("" = no checkpoints)
  std::string stage;          // "sft", "pretrain"
  int64_t every = 0;          // optimizer steps between checkpoints (0 = none)
  int64_t keep = 2;           // newest checkpoints kept
  std::string fingerprint;    // the stage's (launch/*_command.cpp)
  std::string settings_yaml;  // to_yaml of the settings the fingerprint covers
  const Tokenizer* tokenizer = nullptr;
  std::string base_model;   // with LoRA: the folder the adapters apply to (adapter_config.json's base model)
  std::string resume_from;  // a checkpoint folder to continue from ("" = start afresh)
  int64_t resume_step = 0;  // its step (0 = afresh)
  // Testing hook (R2REC_FAULT, docs/checkpoints.md): "kill-after-checkpoint=N" SIGKILLs rank 0 right after
  // checkpoint N is in place; "kill-in-checkpoint=N" while checkpoint N is half written.
  std::string fault;
};

struct CheckpointInfo {
  std::string path;
  int64_t step = 0;
  std::string fingerprint;
  std::string settings_yaml;
  nlohmann::json state;  // state.json
};

// The newest whole checkpoint under `dir` (none when the folder is absent or holds none). Damaged or partial
// ones are skipped with a warning naming them and what is wrong.
std::optional<CheckpointInfo> newest_checkpoint(const std::string& dir);

// Removes the checkpoints under `dir` that r2rec wrote (anything else stays), and `dir` when nothing else is left.
void clear_checkpoints(const std::string& dir);

}  // namespace r2rec
