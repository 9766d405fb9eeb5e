#include "core/model/transformer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/json_fields.h"
#include "core/model/cpu_kernels.h"
#include "core/model/lm_head_loss.h"
#include "core/model/safetensors.h"

namespace r2rec {

TransformerConfig TransformerConfig::from_hf_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw DataError(path + ": expected a JSON object");
  // An optional field of the fallback's type: absent or null gives the fallback, another type is refused by name.
  auto optional = [&](const char* key, auto fallback) { return json_field::optional(j, key, fallback, path + ": "); };
  auto need = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
      throw DataError(path + ": " + key + ": expected a positive integer");
    }
    return j[key].get<int64_t>();
  };
  TransformerConfig c;
  c.model_type = optional("model_type", std::string("llama"));
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
  c.rope_theta = optional("rope_theta", 10000.0);
  c.rms_norm_eps = optional("rms_norm_eps", 1e-6);
  c.tie_embeddings = optional("tie_word_embeddings", c.model_type == "qwen2");
  c.qkv_bias = c.model_type == "qwen2" ? true : optional("attention_bias", false);
  c.smeared_keys = optional("r2rec_smeared_keys", false);
  c.copy_lookup = optional("r2rec_copy_lookup", int64_t{0});
  if (c.copy_lookup < 0 || c.copy_lookup > 64) throw DataError(path + ": r2rec_copy_lookup: expected 0..64");
  if (c.num_heads % c.num_kv_heads != 0)
    throw DataError(path + ": num_key_value_heads must divide num_attention_heads");
  if (c.head_dim % 2 != 0) throw DataError(path + ": head_dim must be even (rotary positions)");
  // Limits before allocation: a config.json describing more float32 weights than this machine holds is refused
  // here, naming the file, rather than inside the allocator (the model is built in float32 on the CPU today).
  const double params = c.parameter_count();
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (memory > 0 && params * 4 > memory) {
    char line[200];
    std::snprintf(line, sizeof line,
                  ": describes %.3g parameters (%.1f GiB of float32 weights), more than this "
                  "machine's %.1f GiB of memory",
                  params, params * 4 / (1 << 30), memory / (1 << 30));
    throw DataError(path + line);
  }
  return c;
}

double TransformerConfig::parameter_count() const {
  const double h = static_cast<double>(hidden_size), d = static_cast<double>(head_dim);
  const double attention = h * d * static_cast<double>(num_heads) * 2 + h * d * static_cast<double>(num_kv_heads) * 2;
  const double mlp = 3 * h * static_cast<double>(intermediate_size);
  return static_cast<double>(vocab_size) * h * (tie_embeddings ? 1 : 2) +
         static_cast<double>(num_layers) * (attention + mlp);
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
  if (smeared_keys) j["r2rec_smeared_keys"] = true;
  if (copy_lookup > 0) j["r2rec_copy_lookup"] = copy_lookup;
  return j.dump(2) + "\n";
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if (cpu_kernel_applies(x, weight) && x.is_contiguous()) return rms_norm_rows(x, weight, eps);  // one pass
  const auto dtype = x.scalar_type();
  torch::Tensor h = x.to(dtype == torch::kDouble ? torch::kDouble : torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(dtype);
}

MlpImpl::MlpImpl(const TransformerConfig& c) {
  gate_proj = register_module("gate_proj", Projection(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", Projection(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", Projection(c.intermediate_size, c.hidden_size, false));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

DecoderLayerImpl::DecoderLayerImpl(const TransformerConfig& c) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", Mlp(c));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& mask, KvSlot* slot, const torch::Tensor& previous) {
  torch::Tensor h = x + self_attn->forward(input_layernorm(x), cos, sin, mask, slot, previous);
  return h + mlp(post_attention_layernorm(h));
}

TransformerImpl::TransformerImpl(const TransformerConfig& c) : config(c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  for (int64_t l = 0; l < c.num_layers; ++l)
    layers.push_back(register_module("layer" + std::to_string(l), DecoderLayer(c)));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  if (!c.tie_embeddings) {
    lm_head = register_module("lm_head", Projection(c.hidden_size, c.vocab_size, false));
  }
  if (c.copy_lookup > 0) {  // normal(0, 0.02) and zero like the others below: a boost of softplus(0) at first
    copy_gate_weight = register_parameter("copy_gate_weight", torch::zeros({c.hidden_size}));
    copy_gate_bias = register_parameter("copy_gate_bias", torch::zeros({c.copy_lookup}));
  }
  // Hugging Face's initialisation: normal(0, 0.02) weights, zero biases, unit norms.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("bias") != std::string::npos)
      p.value().zero_();
    else if (p.key().find("layernorm") == std::string::npos && p.key().rfind("norm.", 0) != 0 &&
             p.key().find("key_smear") == std::string::npos)
      p.value().normal_(0.0, 0.02);
  }
}

namespace {

// Activation checkpointing of one decoder layer: the forward runs without keeping activations; backward runs
// the layer again with autograd on and back-propagates through it (into the layer's parameters directly, as
// PyTorch's reentrant checkpoint does). The state of the generator of the input's device (CPU or that CUDA
// device) is saved so that LoRA dropout draws the same mask again. `anchor` is an empty tensor that requires grad, so
// the backward runs even when neither the input nor anything upstream requires grad (LoRA over frozen embeddings).
struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& mask, const torch::Tensor& previous,
                               const torch::Tensor& anchor, int64_t layer_address) {
    (void)anchor;
    ctx->save_for_backward({x});
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask;
    const torch::Tensor mixed = previous.numel() > 0 ? previous : torch::Tensor();  // empty: no smeared keys
    ctx->saved_data["previous"] = mixed;
    ctx->saved_data["layer"] = layer_address;
    {
      auto gen = at::globalContext().defaultGenerator(x.device());  // the generator dropout draws from
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_address);
    return layer->forward(x, cos, sin, mask, nullptr, mixed);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    torch::Tensor x = saved.detach().requires_grad_(saved.requires_grad());
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto gen = at::globalContext().defaultGenerator(saved.device());
    torch::Tensor rng_now;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      rng_now = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
    }
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = layer->forward(x, ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor(),
                         ctx->saved_data["mask"].toTensor(), nullptr, ctx->saved_data["previous"].toTensor());
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(rng_now);
    }
    if (y.requires_grad()) torch::autograd::backward({y}, {grad_out[0]});
    torch::Tensor gx = x.requires_grad() && x.grad().defined() ? x.grad() : torch::Tensor();
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

constexpr double kLowest = std::numeric_limits<float>::lowest();

}  // namespace

torch::Tensor TransformerImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const auto iopt = torch::TensorOptions().device(input_ids.device());
  torch::Tensor x = embed_tokens(input_ids);
  torch::Tensor positions, previous;  // previous: [B, 1, T, 1], 1 where the token before is of the same sequence
  torch::Tensor causal = torch::ones({T, T}, iopt.dtype(torch::kBool)).tril();  // query t sees keys <= t
  torch::Tensor allowed = causal.unsqueeze(0).expand({B, T, T});
  if (attention_mask.defined() && attention_mask.max().item<int64_t>() > 1) {
    // Packed rows: the mask holds segment ids (1, 2, ... per sequence, 0 padding). A query sees the earlier keys
    // of its own sequence only, and positions restart at 0 with each sequence: every sequence is computed as if
    // it were alone in its row.
    const torch::Tensor seg = attention_mask.to(torch::kLong);
    const torch::Tensor same = allowed & (seg.unsqueeze(2) == seg.unsqueeze(1));  // [B, T(query), T(key)]
    positions = same.sum(-1) - 1;
    allowed = same & seg.gt(0).unsqueeze(1);
    allowed = allowed | torch::eye(T, iopt.dtype(torch::kBool)).unsqueeze(0);
  } else if (attention_mask.defined()) {
    const torch::Tensor valid = attention_mask.to(torch::kLong);
    positions = (valid.cumsum(1) - 1).clamp_min(0);                            // padding does not shift positions
    allowed = allowed & valid.to(torch::kBool).unsqueeze(1);                   // keys that are real tokens
    allowed = allowed | torch::eye(T, iopt.dtype(torch::kBool)).unsqueeze(0);  // a padding query sees itself
  } else {
    positions = torch::arange(T, iopt.dtype(torch::kLong)).unsqueeze(0).expand({B, T});
  }
  if (config.smeared_keys) {  // a token after the first of its (packed) sequence, not padding
    previous = positions.gt(0);
    if (attention_mask.defined()) previous = previous & attention_mask.gt(0);
    previous = previous.to(x.scalar_type()).view({B, 1, T, 1});
  }
  const torch::Tensor mask =
      torch::zeros({B, 1, T, T}, x.options()).masked_fill(allowed.logical_not().unsqueeze(1), kLowest);
  auto [cos, sin] = rotary_tables(positions, config.head_dim, config.rope_theta, x.scalar_type());
  const bool checkpoint = activation_checkpointing && is_training() && torch::GradMode::is_enabled();
  const torch::Tensor anchor = checkpoint ? torch::empty({0}, x.options().requires_grad(true)) : torch::Tensor();
  for (auto& layer : layers) {
    // An autograd Function takes defined tensors only: no previous-token mask travels as an empty one.
    x = checkpoint ? CheckpointedLayer::apply(x, cos, sin, mask, previous.defined() ? previous : torch::empty({0}),
                                              anchor, reinterpret_cast<int64_t>(layer.get()))
                   : layer->forward(x, cos, sin, mask, nullptr, previous);
  }
  return norm(x);
}

namespace {

// The LM head's weight [V, d] as the fused head uses it; undefined where lm_head has a LoRA adapter.
torch::Tensor plain_head_weight(TransformerImpl& m) {
  if (m.config.tie_embeddings) return m.embed_tokens->weight;
  return m.lm_head->has_lora() || m.lm_head->bias.defined() ? torch::Tensor() : m.lm_head->weight;
}

torch::Tensor plain_logits(TransformerImpl& m, const torch::Tensor& hidden) {
  return m.config.tie_embeddings ? torch::matmul(hidden, m.embed_tokens->weight.t()) : m.lm_head(hidden);
}

void check_copy(const TransformerImpl& m, const torch::Tensor& hidden, const std::vector<CopyProposal>* copy) {
  if (m.config.copy_lookup == 0) return;
  if (copy == nullptr || hidden.dim() != 2 || static_cast<int64_t>(copy->size()) != hidden.size(0)) {
    throw std::logic_error("transformer: the look-up copy needs hidden rows [n, d] and one proposal per row");
  }
}

}  // namespace

torch::Tensor TransformerImpl::copy_boost(const torch::Tensor& hidden, const std::vector<CopyProposal>& copy) {
  const int64_t n = static_cast<int64_t>(copy.size());
  torch::Tensor bucket = torch::zeros({n}, torch::kLong), on = torch::zeros({n}, torch::kFloat);
  int64_t* bucket_p = bucket.data_ptr<int64_t>();
  float* on_p = on.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (copy[i].match == 0) continue;
    bucket_p[i] = std::min<int64_t>(copy[i].match, config.copy_lookup) - 1;
    on_p[i] = 1.0f;
  }
  const torch::Device device = hidden.device();
  const auto ft = hidden.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor a =
      torch::mv(hidden.to(ft), copy_gate_weight.to(ft)) + copy_gate_bias.to(ft).index_select(0, bucket.to(device));
  return torch::softplus(a).clamp_max(kCopyMaxBoost) * on.to(device, ft);
}

torch::Tensor TransformerImpl::lm_logits(const torch::Tensor& hidden, const std::vector<CopyProposal>* copy) {
  torch::Tensor logits = plain_logits(*this, hidden);
  check_copy(*this, hidden, copy);
  if (config.copy_lookup == 0) return logits;
  std::vector<int64_t> rows, cols;
  for (size_t i = 0; i < copy->size(); ++i)
    for (const int64_t v : (*copy)[i].tokens) rows.push_back(static_cast<int64_t>(i)), cols.push_back(v);
  if (rows.empty()) return logits;
  const torch::Device device = hidden.device();
  const torch::Tensor r = torch::tensor(rows, torch::kLong).to(device),
                      c = torch::tensor(cols, torch::kLong).to(device);
  const torch::Tensor s = copy_boost(hidden, *copy).index_select(0, r).to(logits.scalar_type());
  return logits.index_put({r, c}, logits.index({r, c}) + s);
}

torch::Tensor TransformerImpl::target_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                               const std::vector<CopyProposal>* copy) {
  check_copy(*this, hidden, copy);
  const torch::Tensor w = plain_head_weight(*this);
  torch::Tensor lq;
  if (w.defined()) {
    lq = lm_head_logprobs(hidden, w, targets);
  } else {
    const torch::Tensor logits = plain_logits(*this, hidden).to(torch::kFloat);
    lq = logits.gather(1, targets.unsqueeze(1)).squeeze(1) - torch::logsumexp(logits, 1);
  }
  if (config.copy_lookup == 0) return lq;
  // log p(y) = lq_y + s [y in F] - log(1 + P_F (e^s - 1)), P_F = sum_f exp(lq_f) and lq_f = z_f - z_y + lq_y: only
  // the proposed tokens' scores z_f are formed, never the [n, V] logits.
  const int64_t n = hidden.size(0);
  int64_t K = 1;
  for (const auto& p : *copy) K = std::max<int64_t>(K, static_cast<int64_t>(p.tokens.size()));
  torch::Tensor F = torch::zeros({n, K}, torch::kLong), keep = torch::zeros({n, K}, torch::kFloat);
  torch::Tensor in_f = torch::zeros({n}, torch::kFloat);
  const torch::Tensor tg = targets.to(torch::kCPU).contiguous();
  const int64_t* tg_p = tg.data_ptr<int64_t>();
  int64_t* f_p = F.data_ptr<int64_t>();
  float* keep_p = keep.data_ptr<float>();
  float* in_p = in_f.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& toks = (*copy)[i].tokens;
    for (size_t k = 0; k < toks.size(); ++k) {
      const int64_t at = i * K + static_cast<int64_t>(k);
      f_p[at] = toks[k], keep_p[at] = 1.0f;
    }
    in_p[i] = std::binary_search(toks.begin(), toks.end(), tg_p[i]) ? 1.0f : 0.0f;
  }
  const torch::Device device = hidden.device();
  const torch::Tensor cols = torch::cat({targets.to(device).unsqueeze(1), F.to(device)}, 1);  // [n, 1 + K]
  const torch::Tensor z =
      (w.defined()
           ? torch::bmm(w.index_select(0, cols.reshape({-1})).view({n, K + 1, -1}), hidden.unsqueeze(2)).squeeze(2)
           : plain_logits(*this, hidden).gather(1, cols))  // LoRA or a bias on the head
          .to(lq.scalar_type());
  const torch::Tensor lq_f = z.narrow(1, 1, K) - z.narrow(1, 0, 1) + lq.unsqueeze(1);
  const torch::Tensor p_f = (lq_f.exp() * keep.to(device, lq.scalar_type())).sum(1).clamp_max(1.0);
  const torch::Tensor s = copy_boost(hidden, *copy);
  return lq + s * in_f.to(device, lq.scalar_type()) - torch::log1p(p_f * torch::expm1(s));
}

torch::Tensor TransformerImpl::target_nll(const torch::Tensor& hidden, const torch::Tensor& targets,
                                          const torch::Tensor& row_weights, const std::vector<CopyProposal>* copy) {
  const torch::Tensor w = plain_head_weight(*this);
  if (w.defined() && config.copy_lookup == 0) return lm_head_nll(hidden, w, targets, row_weights);
  return -(target_logprobs(hidden, targets, copy) * row_weights.to(torch::kFloat)).sum();
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const torch::Tensor hidden = hidden_states(input_ids, attention_mask);
  if (config.copy_lookup == 0) return lm_logits(hidden);
  const int64_t B = hidden.size(0), T = hidden.size(1);
  std::vector<int64_t> at(static_cast<size_t>(B * T));
  for (int64_t i = 0; i < B * T; ++i) at[static_cast<size_t>(i)] = i;
  const std::vector<CopyProposal> copy = copy_proposals_at(input_ids, attention_mask, at, config.copy_lookup);
  return lm_logits(hidden.reshape({B * T, -1}), &copy).view({B, T, -1});
}

KvCache TransformerImpl::new_cache(int64_t batch, int64_t capacity) {
  KvCache cache;
  const auto opt = embed_tokens->weight.options().requires_grad(false);
  for (size_t l = 0; l < layers.size(); ++l) {
    cache.k.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opt));
    cache.v.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opt));
  }
  cache.key_valid = torch::zeros({batch, capacity}, opt.dtype(torch::kBool));
  if (config.smeared_keys)
    for (size_t l = 0; l < layers.size(); ++l)
      cache.last_key.push_back(torch::zeros({batch, config.num_kv_heads, 1, config.head_dim}, opt));
  return cache;
}

KvCache TransformerImpl::fork_cache(KvCache prompts, const std::vector<int64_t>& row_prompt, int64_t capacity) {
  if (prompts.prefix.defined()) throw std::invalid_argument("fork_cache: the prompt cache has a shared prefix itself");
  const int64_t U = prompts.batch();
  for (int64_t u : row_prompt) {
    if (u < 0 || u >= U) {
      throw std::invalid_argument("fork_cache: row prompt " + std::to_string(u) + " outside the " + std::to_string(U) +
                                  " cached prompts");
    }
  }
  KvCache cache = new_cache(static_cast<int64_t>(row_prompt.size()), capacity);
  for (size_t l = 0; l < prompts.k.size(); ++l) {
    cache.prefix.kt.push_back(prompts.k[l].narrow(2, 0, prompts.length).transpose(2, 3).contiguous());
    cache.prefix.v.push_back(prompts.v[l].narrow(2, 0, prompts.length));
  }
  cache.prefix.valid = prompts.key_valid.narrow(1, 0, prompts.length);
  cache.prefix.row_prompt = row_prompt;
  if (!prompts.last_key.empty()) {  // each row's first token smears in its prompt's last key
    const torch::Tensor rows = torch::tensor(row_prompt, torch::kLong).to(prompts.key_valid.device());
    for (size_t l = 0; l < prompts.last_key.size(); ++l) cache.last_key[l] = prompts.last_key[l].index_select(0, rows);
  }
  return cache;
}

torch::Tensor TransformerImpl::forward_cached(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                              const torch::Tensor& valid, KvCache& cache) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1), start = cache.length, S = start + T;
  if (B != cache.batch() || S > cache.capacity()) {
    throw std::invalid_argument("forward_cached: " + std::to_string(B) + " rows x " + std::to_string(S) +
                                " tokens do not fit a cache of " + std::to_string(cache.batch()) + " x " +
                                std::to_string(cache.capacity()));
  }
  if (cache.prefix.defined() && static_cast<int64_t>(cache.prefix.row_prompt.size()) != B)
    throw std::invalid_argument("forward_cached: the shared prefix maps " +
                                std::to_string(cache.prefix.row_prompt.size()) + " rows, the batch has " +
                                std::to_string(B));
  const auto iopt = torch::TensorOptions().device(input_ids.device()).dtype(torch::kLong);
  cache.key_valid.narrow(1, start, T).copy_(valid);
  const torch::Tensor cols = torch::arange(S, iopt).unsqueeze(0), rows = (torch::arange(T, iopt) + start).unsqueeze(1);
  torch::Tensor allowed = (cols <= rows).unsqueeze(0) & cache.key_valid.narrow(1, 0, S).unsqueeze(1);  // [B, T, S]
  allowed = allowed | (cols == rows).unsqueeze(0);  // a padding query sees itself: no empty row
  torch::Tensor x = embed_tokens(input_ids);
  const torch::Tensor mask =
      torch::zeros({B, 1, T, S}, x.options()).masked_fill(allowed.logical_not().unsqueeze(1), kLowest);
  PrefixGroups groups;
  torch::Tensor prefix_mask;  // [U, 1, 1, Pp]: a prompt's columns are the same for all its rows and queries
  if (cache.prefix.defined()) {
    const torch::Tensor& valid = cache.prefix.valid;
    prefix_mask = torch::zeros({valid.size(0), 1, 1, valid.size(1)}, x.options())
                      .masked_fill(valid.logical_not().unsqueeze(1).unsqueeze(1), kLowest);
    groups = prefix_groups(cache.prefix.row_prompt, valid.size(0), input_ids.device());
  }
  auto [cos, sin] = rotary_tables(positions, config.head_dim, config.rope_theta, x.scalar_type());
  torch::Tensor previous;  // [B, 1, T, 1]: the first token's previous key is the cache's last one, if it has any
  if (config.smeared_keys) {
    const torch::Tensor real = valid.to(torch::kBool);
    previous = real & torch::constant_pad_nd(real.narrow(1, 0, T - 1).to(torch::kLong), {1, 0},
                                             start > 0 || cache.prefix.defined() ? 1 : 0)
                          .to(torch::kBool);
    previous = previous.to(x.scalar_type()).view({B, 1, T, 1});
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    KvSlot slot;
    slot.k = cache.k[l], slot.v = cache.v[l], slot.start = start;
    if (config.smeared_keys) slot.last_key = &cache.last_key[l];
    if (cache.prefix.defined())
      slot.prefix_kt = cache.prefix.kt[l], slot.prefix_v = cache.prefix.v[l], slot.prefix_mask = prefix_mask,
      slot.groups = &groups;
    x = layers[l]->forward(x, cos, sin, mask, &slot, previous);
  }
  cache.length = S;
  return norm(x);
}

std::vector<std::pair<std::string, Projection>> TransformerImpl::projections() {
  std::vector<std::pair<std::string, Projection>> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto& L = layers[l];
    out.emplace_back(p + "self_attn.q_proj", L->self_attn->q_proj);
    out.emplace_back(p + "self_attn.k_proj", L->self_attn->k_proj);
    out.emplace_back(p + "self_attn.v_proj", L->self_attn->v_proj);
    out.emplace_back(p + "self_attn.o_proj", L->self_attn->o_proj);
    out.emplace_back(p + "mlp.gate_proj", L->mlp->gate_proj);
    out.emplace_back(p + "mlp.up_proj", L->mlp->up_proj);
    out.emplace_back(p + "mlp.down_proj", L->mlp->down_proj);
  }
  if (!config.tie_embeddings) out.emplace_back("lm_head", lm_head);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> TransformerImpl::hf_state_dict() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", embed_tokens->weight);
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto& L = layers[l];
    out.emplace_back(p + "input_layernorm.weight", L->input_layernorm->weight);
    for (auto [name, proj] : {std::pair<const char*, Projection>{"q_proj", L->self_attn->q_proj},
                              {"k_proj", L->self_attn->k_proj},
                              {"v_proj", L->self_attn->v_proj},
                              {"o_proj", L->self_attn->o_proj}}) {
      out.emplace_back(p + "self_attn." + name + ".weight", proj->weight);
      if (proj->bias.defined()) out.emplace_back(p + "self_attn." + name + ".bias", proj->bias);
    }
    if (L->self_attn->key_smear.defined()) out.emplace_back(p + "self_attn.key_smear", L->self_attn->key_smear);
    out.emplace_back(p + "post_attention_layernorm.weight", L->post_attention_layernorm->weight);
    out.emplace_back(p + "mlp.gate_proj.weight", L->mlp->gate_proj->weight);
    out.emplace_back(p + "mlp.up_proj.weight", L->mlp->up_proj->weight);
    out.emplace_back(p + "mlp.down_proj.weight", L->mlp->down_proj->weight);
  }
  out.emplace_back("model.norm.weight", norm->weight);
  if (!config.tie_embeddings) out.emplace_back("lm_head.weight", lm_head->weight);
  if (copy_gate_weight.defined()) {
    out.emplace_back("model.copy_gate.weight", copy_gate_weight);
    out.emplace_back("model.copy_gate.bias", copy_gate_bias);
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> TransformerImpl::merged_hf_state_dict() {
  std::unordered_map<std::string, Projection> adapted;
  for (auto& [name, proj] : projections()) {
    if (proj->has_lora()) adapted.emplace(name + ".weight", proj);
  }
  auto out = hf_state_dict();
  for (auto& [name, t] : out) {
    auto it = adapted.find(name);
    t = it != adapted.end() ? it->second->merged_weight() : t.detach();
  }
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
  for (auto& [name, t] : merged_hf_state_dict()) tensors.emplace_back(name, t.contiguous());
  write_safetensors_checkpoint(dir, tensors, max_shard_bytes, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", config.to_hf_json());
}

}  // namespace r2rec
