#include "trainers/lm/model_folder.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/model/lora.h"
#include "core/owned_dir.h"
#include "trainers/task/task.h"

namespace r2rec {
namespace fs = std::filesystem;

Transformer build_model(const Config& config, int64_t vocab_size) {
  const ModelConfig& m = config.model;
  TransformerConfig tc;
  if (!m.path.empty()) {
    tc = TransformerConfig::from_hf_json(m.path + "/config.json");
  } else {
    tc.vocab_size = (vocab_size + 63) / 64 * 64;
    tc.hidden_size = m.hidden_size;
    tc.intermediate_size = m.intermediate_size;
    tc.num_layers = m.num_layers;
    tc.num_heads = m.num_heads;
    tc.num_kv_heads = m.num_kv_heads;
    tc.head_dim = m.hidden_size / m.num_heads;
    tc.max_position = m.max_position;
    tc.rope_theta = m.rope_theta;
    tc.rms_norm_eps = m.rms_norm_eps;
    tc.tie_embeddings = m.tie_embeddings;
    tc.qkv_bias = m.qkv_bias;
    tc.smeared_keys = m.smeared_keys;
    tc.copy_lookup = m.copy_lookup;
    tc.model_type = m.qkv_bias ? "qwen2" : "llama";
  }
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  Transformer model(tc);
  if (!m.path.empty()) model->load_hf(m.path);
  add_configured_lora(*model, m.lora, static_cast<uint64_t>(config.run.seed));
  model->activation_checkpointing = m.activation_checkpointing;
  return model;
}

void grow_vocabulary(TransformerImpl& model, const Tokenizer& tokenizer, const Catalog& catalog) {
  const int64_t old_rows = model.config.vocab_size;
  const int64_t rows = std::max(old_rows, (tokenizer.vocab_size() + 63) / 64 * 64);
  torch::NoGradGuard no_grad;
  // Every entity token is new to a pretrained model (its id may fall in the old padding rows too): an item's row
  // is the mean of its title's sub-word rows, any other entity's the mean of the old rows.
  std::vector<std::pair<int64_t, std::vector<int64_t>>> init;  // id -> the rows to average (empty: all old rows)
  for (int32_t i = 0; i < catalog.num_items(); ++i) {
    const auto id = tokenizer.token_id(item_token(catalog, i));
    if (!id) continue;
    std::vector<int64_t> parts;
    for (TokenId t : tokenizer.encode(catalog.item_titles[i], /*parse_special=*/false))
      if (t < old_rows) parts.push_back(t);
    init.emplace_back(*id, std::move(parts));
  }
  for (int32_t u = 0; u < catalog.num_users(); ++u) {
    if (const auto id = tokenizer.token_id(user_token(catalog, u))) init.emplace_back(*id, std::vector<int64_t>{});
  }
  auto grow = [&](torch::Tensor& weight) {
    const torch::Tensor old = weight.detach();
    const torch::Tensor mean = old.mean(0);
    torch::Tensor w = rows > old_rows ? torch::cat({old, mean.expand({rows - old_rows, old.size(1)})}, 0) : old.clone();
    for (const auto& [id, parts] : init) {
      w[id].copy_(parts.empty() ? mean : old.index_select(0, torch::tensor(parts).to(old.device())).mean(0));
    }
    weight.set_data(w);
  };
  grow(model.embed_tokens->weight);
  if (!model.config.tie_embeddings) {
    grow(model.lm_head->weight);
    model.lm_head->out_features = rows;
  }
  model.embed_tokens->options.num_embeddings(rows);
  model.config.vocab_size = rows;
}

void add_configured_lora(TransformerImpl& model, const LoraConfig& lora, uint64_t seed) {
  if (lora.rank <= 0) return;
  LoraSpec spec;
  spec.rank = lora.rank;
  spec.alpha = lora.alpha;
  spec.dropout = lora.dropout;
  spec.targets = lora.targets;
  torch::manual_seed(seed);
  add_lora(model, spec);
}

LoadedModel load_model_folder(const std::string& dir, const std::string& tokenizer_path_in,
                              const std::string& adapter_dir, bool tokenizer_first) {
  LoadedModel out;
  out.dir = dir;
  const std::string config_path = dir + "/config.json";
  if (!fs::exists(config_path))
    throw DataError(config_path + ": not found (a checkpoint folder holds config.json and *.safetensors)");
  std::string tokenizer_path = tokenizer_first ? tokenizer_path_in : "";
  for (const char* name : {"tokenizer.json", "tokenizer.json.gz", "vocab.json"}) {
    if (tokenizer_path.empty() && fs::exists(dir + "/" + name)) tokenizer_path = dir;
  }
  if (tokenizer_path.empty()) tokenizer_path = tokenizer_path_in;
  if (tokenizer_path.empty()) {
    throw DataError(dir +
                    ": no tokenizer.json (pass --tokenizer PATH); commands that read a config use tokenizer.path");
  }
  out.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
  const TransformerConfig config = TransformerConfig::from_hf_json(config_path);
  if (out.tokenizer->vocab_size() > config.vocab_size) {
    throw DataError(tokenizer_path + ": the tokenizer has " + std::to_string(out.tokenizer->vocab_size()) +
                    " ids but " + config_path + " has vocab_size " + std::to_string(config.vocab_size));
  }
  out.model = Transformer(config);
  out.model->load_hf(dir);
  if (!adapter_dir.empty()) load_lora_adapter(*out.model, adapter_dir);
  return out;
}

int64_t end_of_turn_id(const Tokenizer& tokenizer) {
  const std::vector<int64_t> ids = end_of_turn_tokens(tokenizer);
  return ids.empty() ? -1 : ids.front();
}

void save_model_folder(TransformerImpl& model, const Tokenizer& tokenizer, const std::string& dir) {
  const std::string tmp = dir + ".tmp";
  check_replaceable(dir, model_dir_name);  // before any work: a folder r2rec did not write is refused untouched
  make_owned_dir(tmp, model_dir_name);
  model.save_hf(tmp);
  tokenizer.save(tmp + "/tokenizer.json");
  nlohmann::ordered_json g;
  const int64_t eot = end_of_turn_id(tokenizer);
  if (eot >= 0) g["eos_token_id"] = eot;
  g["do_sample"] = false;
  write_file_atomic(tmp + "/generation_config.json", g.dump(2) + "\n");
  seal_owned_dir(tmp);
  replace_owned_dir(dir, tmp, model_dir_name);
}

}  // namespace r2rec
