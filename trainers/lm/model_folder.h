// Model folders (Hugging Face layout): a new model of the configured shape (or the pretrained one at model.path), a
// model folder loaded with its tokenizer (and optionally a PEFT LoRA adapter), and a model folder written so that
// `transformers` and `r2rec generate` load it. Every command that touches a model folder goes through here.
// ("Checkpoint" in r2rec means the full training state a stage resumes from: trainers/lm/train_state.h.)
//
// A model folder (docs/model.md): config.json + model.safetensors (sharded above 5 GB, with
// model.safetensors.index.json), tokenizer.json, generation_config.json (eos = the end-of-turn token).
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/shard.h"

namespace r2rec {

// A new model of the configured shape (model.*) for `vocab_size` token ids (rounded up to a multiple of 64), or
// the model folder at model.path as it is (grow_vocabulary makes room for more ids); LoRA adapters added when
// model.lora.rank > 0; activation checkpointing as configured. Parameters are initialised from run.seed, identically on
// every rank.
Transformer build_model(const Config& config, int64_t vocab_size);

// Makes a pretrained model ready for the task's entity tokens appended to its tokenizer: the embedding (and an
// untied LM head) grows to `tokenizer`'s ids (rounded up to a multiple of 64), and every entity token's row —
// new, or one of the checkpoint's padding rows — starts from the mean of the embedding rows of its title's
// sub-word tokens (items; the title encoded with `tokenizer`), or from the mean of all old rows (users).
void grow_vocabulary(TransformerImpl& model, const Tokenizer& tokenizer, const Catalog& catalog);

// Adds the LoRA adapters model.lora asks for (rank > 0; nothing otherwise), initialised from `seed`.
void add_configured_lora(TransformerImpl& model, const LoraConfig& lora, uint64_t seed);

struct LoadedModel {
  Transformer model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::string dir;
};

// Loads the model folder `dir` (DataError naming what is missing) with its tokenizer: the folder's own
// (tokenizer.json, tokenizer.json.gz or vocab.json + merges.txt), or `tokenizer_path` ("" = none) when the
// folder has none — or always, with `tokenizer_first` (an explicit --tokenizer). With `adapter_dir`, a PEFT
// LoRA adapter on top. Checks that the tokenizer's ids fit the model's vocabulary.
LoadedModel load_model_folder(const std::string& dir, const std::string& tokenizer_path = "",
                              const std::string& adapter_dir = "", bool tokenizer_first = false);

// The end-of-turn token SFT appends and generation stops at (<|im_end|>, else <|endoftext|>); -1 when none.
int64_t end_of_turn_id(const Tokenizer& tokenizer);

// Writes `model` (LoRA merged) and `tokenizer` as a model folder `dir`, through `dir`.tmp and a rename
// (the previous folder survives any failure before the rename).
void save_model_folder(TransformerImpl& model, const Tokenizer& tokenizer, const std::string& dir);

}  // namespace r2rec
