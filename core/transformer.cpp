#include "core/transformer.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"

namespace r2rec {

TransformerConfig TransformerConfig::from_hf_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  auto need = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
      throw DataError(path + ": " + key + ": expected a positive integer");
    }
    return j[key].get<int64_t>();
  };
  TransformerConfig c;
  c.model_type = j.value("model_type", std::string("llama"));
  if (c.model_type != "qwen2" && c.model_type != "llama") {
    throw DataError(path + ": model_type: '" + c.model_type + "' is not a Llama/Qwen2 decoder (qwen2, llama)");
  }
  c.vocab_size = need("vocab_size");
  c.hidden_size = need("hidden_size");
  c.intermediate_size = need("intermediate_size");
  c.num_layers = need("num_hidden_layers");
  c.num_heads = need("num_attention_heads");
  c.num_kv_heads = j.contains("num_key_value_heads") ? need("num_key_value_heads") : c.num_heads;
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? need("head_dim") : c.hidden_size / c.num_heads;
  c.max_position = j.contains("max_position_embeddings") ? need("max_position_embeddings") : 2048;
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  c.tie_embeddings = j.value("tie_word_embeddings", c.model_type == "qwen2");
  c.qkv_bias = c.model_type == "qwen2" ? true : j.value("attention_bias", false);
  if (c.num_heads % c.num_kv_heads != 0) throw DataError(path + ": num_key_value_heads must divide num_attention_heads");
  if (c.head_dim % 2 != 0) throw DataError(path + ": head_dim must be even (rotary positions)");
  return c;
}

std::string TransformerConfig::to_hf_json() const {
  nlohmann::ordered_json j;
  j["architectures"] = {model_type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position;
  j["rope_theta"] = rope_theta;
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_embeddings;
  j["hidden_act"] = "silu";
  if (model_type == "llama") j["attention_bias"] = qkv_bias;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps(eps) { weight = register_parameter("weight", torch::ones({dim})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const auto dtype = x.scalar_type();
  torch::Tensor h = x.to(dtype == torch::kDouble ? torch::kDouble : torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(dtype);
}

std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& positions, int64_t head_dim, double theta,
                                                      torch::ScalarType dtype) {
  const auto compute = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  torch::Tensor inv_freq =
      1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(compute)) / head_dim);
  torch::Tensor freqs = positions.to(compute).unsqueeze(-1) * inv_freq;  // [B, T, dh/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);      // [B, 1, T, dh]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

AttentionImpl::AttentionImpl(const TransformerConfig& c)
    : heads(c.num_heads), kv_heads(c.num_kv_heads), head_dim(c.head_dim) {
  q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, heads * head_dim).bias(c.qkv_bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, kv_heads * head_dim).bias(c.qkv_bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, kv_heads * head_dim).bias(c.qkv_bias)));
  o_proj = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(heads * head_dim, c.hidden_size).bias(false)));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor q = q_proj(x).view({B, T, heads, head_dim}).transpose(1, 2);     // [B, H, T, dh]
  torch::Tensor k = k_proj(x).view({B, T, kv_heads, head_dim}).transpose(1, 2);  // [B, Hkv, T, dh]
  torch::Tensor v = v_proj(x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, cos, sin);
  k = apply_rotary(k, cos, sin);
  if (kv_heads != heads) {  // grouped-query: kv head g serves query heads g*r .. g*r+r-1
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
  out = at::scaled_dot_product_attention(q, k, v, mask);
#else
  const auto compute = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  torch::Tensor scores = q.matmul(k.transpose(-2, -1)).to(compute) / std::sqrt(static_cast<double>(head_dim));
  if (mask.defined()) scores = scores + mask.to(compute);
  out = torch::softmax(scores, -1).to(x.scalar_type()).matmul(v);
#endif
  return o_proj(out.transpose(1, 2).reshape({B, T, heads * head_dim}));
}

MlpImpl::MlpImpl(const TransformerConfig& c) {
  gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.intermediate_size).bias(false)));
  up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.intermediate_size).bias(false)));
  down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(c.intermediate_size, c.hidden_size).bias(false)));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

DecoderLayerImpl::DecoderLayerImpl(const TransformerConfig& c) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", Mlp(c));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& mask) {
  torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask);
  return h + mlp(post_attention_layernorm(h));
}

TransformerImpl::TransformerImpl(const TransformerConfig& c) : config(c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  for (int64_t l = 0; l < c.num_layers; ++l) layers.push_back(register_module("layer" + std::to_string(l), DecoderLayer(c)));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  if (!c.tie_embeddings) {
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
  // Hugging Face's initialisation: normal(0, 0.02) weights, zero biases, unit norms.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("bias") != std::string::npos) p.value().zero_();
    else if (p.key().find("layernorm") == std::string::npos && p.key().rfind("norm.", 0) != 0) p.value().normal_(0.0, 0.02);
  }
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  torch::Tensor x = embed_tokens(input_ids);
  torch::Tensor positions, mask;
  torch::Tensor causal = torch::ones({T, T}, torch::kBool).tril();  // query t sees keys <= t
  torch::Tensor allowed = causal.unsqueeze(0).expand({B, T, T});
  if (attention_mask.defined()) {
    const torch::Tensor valid = attention_mask.to(torch::kLong);
    positions = (valid.cumsum(1) - 1).clamp_min(0);                 // padding does not shift positions
    allowed = allowed & valid.to(torch::kBool).unsqueeze(1);         // keys that are real tokens
    allowed = allowed | torch::eye(T, torch::kBool).unsqueeze(0);    // a padding query sees itself: no empty row
  } else {
    positions = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T});
  }
  const double lowest = std::numeric_limits<float>::lowest();
  mask = torch::zeros({B, 1, T, T}, x.options()).masked_fill(allowed.logical_not().unsqueeze(1), lowest);
  auto [cos, sin] = rotary_tables(positions, config.head_dim, config.rope_theta, x.scalar_type());
  for (auto& layer : layers) x = layer->forward(x, cos, sin, mask);
  x = norm(x);
  return config.tie_embeddings ? torch::matmul(x, embed_tokens->weight.t()) : lm_head(x);
}

std::vector<std::pair<std::string, torch::Tensor>> TransformerImpl::hf_state_dict() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", embed_tokens->weight);
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto& L = layers[l];
    out.emplace_back(p + "input_layernorm.weight", L->input_layernorm->weight);
    for (auto [name, lin] : {std::pair<const char*, torch::nn::Linear>{"q_proj", L->self_attn->q_proj},
                             {"k_proj", L->self_attn->k_proj}, {"v_proj", L->self_attn->v_proj}, {"o_proj", L->self_attn->o_proj}}) {
      out.emplace_back(p + "self_attn." + name + ".weight", lin->weight);
      if (lin->bias.defined()) out.emplace_back(p + "self_attn." + name + ".bias", lin->bias);
    }
    out.emplace_back(p + "post_attention_layernorm.weight", L->post_attention_layernorm->weight);
    out.emplace_back(p + "mlp.gate_proj.weight", L->mlp->gate_proj->weight);
    out.emplace_back(p + "mlp.up_proj.weight", L->mlp->up_proj->weight);
    out.emplace_back(p + "mlp.down_proj.weight", L->mlp->down_proj->weight);
  }
  out.emplace_back("model.norm.weight", norm->weight);
  if (!config.tie_embeddings) out.emplace_back("lm_head.weight", lm_head->weight);
  return out;
}

void TransformerImpl::load_hf(const std::string& checkpoint) {
  SafetensorsCheckpoint ckpt(checkpoint);
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : hf_state_dict()) {
    param.copy_(ckpt.load_f32(name, param.sizes().vec()).to(param.scalar_type()));
  }
}

void TransformerImpl::save_hf(const std::string& dir, uint64_t max_shard_bytes) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : hf_state_dict()) tensors.emplace_back(name, t.detach().contiguous());
  write_safetensors_checkpoint(dir, tensors, max_shard_bytes, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", config.to_hf_json());
}

}  // namespace r2rec
