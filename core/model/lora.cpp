#include "core/model/lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/json_fields.h"
#include "core/model/safetensors.h"

namespace r2rec {
namespace {

std::string last_name(const std::string& module) { return module.substr(module.rfind('.') + 1); }

const char* kPeftPrefix = "base_model.model.";

}  // namespace

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                                 "gate_proj", "up_proj", "down_proj", "lm_head"};
  return names;
}

int add_lora(TransformerImpl& model, const LoraSpec& spec) {
  for (const auto& t : spec.targets) {
    const auto& known = lora_target_names();
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      throw ConfigError("model.lora.targets: '" + t +
                        "' is not a projection (q_proj, k_proj, v_proj, o_proj, "
                        "gate_proj, up_proj, down_proj, lm_head)");
    }
  }
  if (spec.rank <= 0) throw ConfigError("model.lora.rank: must be positive to add adapters");
  if (model.config.tie_embeddings &&
      std::find(spec.targets.begin(), spec.targets.end(), "lm_head") != spec.targets.end()) {
    throw ConfigError("model.lora.targets: lm_head needs untied embeddings (the output projection is the embedding)");
  }
  for (auto& [name, proj] : model.projections()) {
    if (proj->has_lora()) throw RuntimeFailure("add_lora: " + name + " already has a LoRA adapter (merge it first)");
  }
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  const double alpha = spec.rslora ? spec.alpha * std::sqrt(static_cast<double>(spec.rank)) : spec.alpha;
  int added = 0;
  for (auto& [name, proj] : model.projections()) {
    const std::string last = last_name(name);
    if (std::find(spec.targets.begin(), spec.targets.end(), last) == spec.targets.end()) continue;
    // add_lora computes scale = alpha / rank; rsLoRA's alpha / sqrt(rank) is the same with alpha * sqrt(rank).
    proj->add_lora(spec.rank, alpha, spec.dropout);
    proj->lora_A.set_requires_grad(true);
    proj->lora_B.set_requires_grad(true);
    ++added;
  }
  return added;
}

void merge_lora(TransformerImpl& model) {
  for (auto& [name, proj] : model.projections()) proj->merge_lora();
  for (auto& p : model.parameters()) p.set_requires_grad(true);
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(TransformerImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model.named_parameters()) {
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  }
  return out;
}

std::optional<LoraSpec> lora_spec_of(TransformerImpl& model) {
  std::optional<LoraSpec> spec;
  for (auto& [name, proj] : model.projections()) {
    if (!proj->has_lora()) continue;
    if (!spec) {
      spec = LoraSpec{};
      spec->targets.clear();
      spec->rank = proj->lora_A.size(0);
      spec->alpha = proj->lora_scale * static_cast<double>(spec->rank);
      spec->dropout = proj->lora_dropout;
    }
    const std::string last = last_name(name);
    if (std::find(spec->targets.begin(), spec->targets.end(), last) == spec->targets.end())
      spec->targets.push_back(last);
  }
  return spec;
}

void save_lora_adapter(TransformerImpl& model, const LoraSpec& spec, const std::string& dir,
                       const std::string& base_model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<std::string> targets;
  for (auto& [name, proj] : model.projections()) {
    if (!proj->has_lora()) continue;
    tensors.emplace_back(kPeftPrefix + name + ".lora_A.weight", proj->lora_A.detach().to(torch::kFloat).contiguous());
    tensors.emplace_back(kPeftPrefix + name + ".lora_B.weight", proj->lora_B.detach().to(torch::kFloat).contiguous());
    const std::string last = last_name(name);
    if (std::find(targets.begin(), targets.end(), last) == targets.end()) targets.push_back(last);
  }
  if (tensors.empty()) throw RuntimeFailure("save_lora_adapter: the model has no LoRA adapters");
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["r"] = spec.rank;
  j["lora_alpha"] = spec.alpha;
  j["lora_dropout"] = spec.dropout;
  j["target_modules"] = targets;
  j["use_rslora"] = spec.rslora;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["modules_to_save"] = nullptr;
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

LoraSpec load_lora_adapter(TransformerImpl& model, const std::string& dir) {
  const std::string config_path = dir + "/adapter_config.json";
  if (!std::filesystem::exists(config_path)) throw DataError(config_path + ": not found (not a PEFT adapter folder)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(config_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  auto fail = [&](const std::string& field, const std::string& what) -> DataError {
    return DataError(config_path + ": " + field + ": " + what);
  };
  for (auto& [name, proj] : model.projections()) {
    if (proj->has_lora()) throw RuntimeFailure(config_path + ": the model already has a LoRA adapter on " + name);
  }
  if (!j.is_object()) throw fail("(top level)", "expected an object");
  // Optional fields must have the right type when present (nlohmann's value() would throw its own error).
  const std::string where = config_path + ": ";
  json_field::optional(j, "peft_type", std::string(), where);
  const bool rslora = json_field::optional(j, "use_rslora", false, where);
  const bool fan_in_fan_out = json_field::optional(j, "fan_in_fan_out", false, where);
  const double dropout = json_field::optional(j, "lora_dropout", 0.0, where);
  if (!j.contains("peft_type") || j["peft_type"] != "LORA") throw fail("peft_type", "expected \"LORA\"");
  LoraSpec spec;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
    throw fail("r", "expected a positive integer");
  spec.rank = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number()) throw fail("lora_alpha", "expected a number");
  spec.alpha = j["lora_alpha"].get<double>();
  spec.dropout = dropout;
  spec.rslora = rslora;
  if (!j.contains("target_modules") || !j["target_modules"].is_array()) {
    throw fail("target_modules", "expected a list of module names (regular expressions are not supported)");
  }
  spec.targets.clear();
  for (const auto& t : j["target_modules"]) {
    if (!t.is_string()) throw fail("target_modules", "expected strings");
    const std::string name = t.get<std::string>();
    const auto& known = lora_target_names();
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw fail("target_modules", "'" + name + "' is not a projection r2rec has");
    spec.targets.push_back(name);
  }
  if (fan_in_fan_out) {
    throw fail("fan_in_fan_out", "true is not supported (GPT-2 Conv1D layout)");
  }
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty()) {
    throw fail("modules_to_save", "fully trained extra modules are not supported");
  }
  if (model.config.tie_embeddings &&
      std::find(spec.targets.begin(), spec.targets.end(), "lm_head") != spec.targets.end()) {
    throw fail("target_modules", "lm_head needs a model with untied embeddings");
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (j.contains(key) && !j[key].is_null() && !j[key].empty())
      throw fail(key, "per-module ranks/alphas are not supported");
  }
  if (j.contains("use_dora") && j["use_dora"].is_boolean() && j["use_dora"].get<bool>())
    throw fail("use_dora", "DoRA is not supported");
  if (j.contains("bias") && j["bias"].is_string() && j["bias"].get<std::string>() != "none")
    throw fail("bias", "only \"none\" is supported");

  const std::string weights_path = dir + "/adapter_model.safetensors";
  if (!std::filesystem::exists(weights_path)) throw DataError(weights_path + ": not found");
  SafetensorsFile file(weights_path);
  // Load everything first, so a bad file leaves the model untouched.
  std::vector<std::pair<Projection, std::pair<torch::Tensor, torch::Tensor>>> loaded;
  for (auto& [name, proj] : model.projections()) {
    if (std::find(spec.targets.begin(), spec.targets.end(), last_name(name)) == spec.targets.end()) continue;
    const std::string a = kPeftPrefix + name + ".lora_A.weight", b = kPeftPrefix + name + ".lora_B.weight";
    for (const auto& n : {a, b}) {
      if (!file.has(n)) throw DataError(weights_path + ": tensor '" + n + "' is missing");
    }
    loaded.push_back(
        {proj, {file.load_f32(a, {spec.rank, proj->in_features}), file.load_f32(b, {proj->out_features, spec.rank})}});
  }
  if (loaded.empty()) throw fail("target_modules", "names no projection of this model");
  add_lora(model, spec);
  torch::NoGradGuard no_grad;
  for (auto& [proj, ab] : loaded) {
    proj->lora_A.copy_(ab.first.to(proj->lora_A.scalar_type()));
    proj->lora_B.copy_(ab.second.to(proj->lora_B.scalar_type()));
  }
  return spec;
}

}  // namespace r2rec
