// LoRA adapters on the decoder's projections (Hu et al. 2021), saved and loaded in PEFT's layout so adapters
// trained here load with `peft.PeftModel.from_pretrained` and PEFT adapters load here:
//
//   <dir>/adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "lora_dropout", "target_modules",
//                                     "use_rslora", "base_model_name_or_path", "task_type": "CAUSAL_LM", ...}
//   <dir>/adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in]
//                                    base_model.model.<module>.lora_B.weight [out, r]
//
// <module> is the Hugging Face module name, e.g. model.layers.0.self_attn.q_proj. Scale = alpha / r (alpha /
// sqrt(r) with use_rslora). Only the adapters train; export merges them (TransformerImpl::save_hf).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/model/transformer.h"

namespace r2rec {

struct LoraSpec {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool rslora = false;  // scale alpha / sqrt(rank)
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
};

// The module names LoRA can target.
const std::vector<std::string>& lora_target_names();

// Adds an adapter to every projection whose last name is in spec.targets (new A from the default torch
// generator, B = 0) and freezes every other parameter. Returns the number of adapted projections. An unknown
// target -> ConfigError naming it ("model.lora.targets: ...").
int add_lora(TransformerImpl& model, const LoraSpec& spec);

// Folds every adapter into its weight and removes it (all parameters trainable again).
void merge_lora(TransformerImpl& model);

// The parameters with requires_grad, by name (the adapters under LoRA, everything otherwise).
std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(TransformerImpl& model);

// The spec of the adapters `model` carries (rank, alpha = scale x rank, dropout, the targeted names), or nullopt
// when it has none: what save_lora_adapter needs for a model whose spec is not at hand (checkpoints).
std::optional<LoraSpec> lora_spec_of(TransformerImpl& model);

// Writes adapter_config.json + adapter_model.safetensors into `dir` (atomically, file by file).
void save_lora_adapter(TransformerImpl& model, const LoraSpec& spec, const std::string& dir,
                       const std::string& base_model = "");

// Reads a PEFT LoRA adapter folder, adds the adapters it names and loads their weights. DataError naming the
// file and field / tensor when the folder is not a LoRA adapter this model can take (wrong peft_type, a
// pattern or option r2rec does not support, a missing tensor, a shape that does not match).
LoraSpec load_lora_adapter(TransformerImpl& model, const std::string& dir);

}  // namespace r2rec
