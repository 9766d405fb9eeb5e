#include "core/model/transformer.h"

#include <algorithm>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/model/cpu_kernels.h"
#include "core/model/safetensors.h"

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
  if (c.num_heads % c.num_kv_heads != 0)
    throw DataError(path + ": num_key_value_heads must divide num_attention_heads");
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

std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& positions, int64_t head_dim, double theta,
                                                      torch::ScalarType dtype) {
  const auto compute = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  torch::Tensor inv_freq =
      1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(compute)) / head_dim);
  torch::Tensor freqs = positions.to(compute).unsqueeze(-1) * inv_freq;  // [B, T, dh/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);       // [B, 1, T, dh]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

ProjectionImpl::ProjectionImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));  // torch.nn.Linear's default
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor ProjectionImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::linear(x, weight, bias);
  if (lora_A.defined()) {
    const torch::Tensor h = lora_dropout > 0 && is_training() ? torch::dropout(x, lora_dropout, /*train=*/true) : x;
    y = y + torch::linear(torch::linear(h, lora_A), lora_B) * lora_scale;
  }
  return y;
}

void ProjectionImpl::add_lora(int64_t rank, double alpha, double dropout) {
  if (rank <= 0) throw std::invalid_argument("LoRA rank must be positive");
  if (lora_A.defined()) throw std::logic_error("projection already has a LoRA adapter");
  lora_A = register_parameter("lora_A", torch::empty({rank, in_features}, weight.options().requires_grad(false)));
  lora_B = register_parameter("lora_B", torch::zeros({out_features, rank}, weight.options().requires_grad(false)));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));  // PEFT's init: A as nn.Linear, B = 0
  }
  lora_scale = alpha / static_cast<double>(rank);
  lora_dropout = dropout;
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
}

torch::Tensor ProjectionImpl::merged_weight() const {
  torch::NoGradGuard no_grad;
  if (!lora_A.defined()) return weight.detach();
  return weight.detach() + lora_B.detach().matmul(lora_A.detach()) * lora_scale;
}

void ProjectionImpl::merge_lora() {
  if (!lora_A.defined()) return;
  {
    torch::NoGradGuard no_grad;
    weight.copy_(merged_weight());
  }
  parameters_.erase("lora_A");
  parameters_.erase("lora_B");
  lora_A = lora_B = torch::Tensor();
  lora_scale = lora_dropout = 0.0;
  weight.set_requires_grad(true);
  if (bias.defined()) bias.set_requires_grad(true);
}

AttentionImpl::AttentionImpl(const TransformerConfig& c)
    : heads(c.num_heads), kv_heads(c.num_kv_heads), head_dim(c.head_dim), block(c.attention_block) {
  q_proj = register_module("q_proj", Projection(c.hidden_size, heads * head_dim, c.qkv_bias));
  k_proj = register_module("k_proj", Projection(c.hidden_size, kv_heads * head_dim, c.qkv_bias));
  v_proj = register_module("v_proj", Projection(c.hidden_size, kv_heads * head_dim, c.qkv_bias));
  o_proj = register_module("o_proj", Projection(heads * head_dim, c.hidden_size, false));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& mask, KvSlot* slot) {
  const int64_t B = x.size(0), T = x.size(1);
  const auto compute = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  torch::Tensor q_lin = q_proj(x), k_lin = k_proj(x), v_lin = v_proj(x);  // [B, T, heads * dh]
  torch::Tensor v = v_lin.view({B, T, kv_heads, head_dim}).transpose(1, 2);
  torch::Tensor q, k, out;
  if (slot != nullptr && cpu_kernel_applies(q_lin, cos) && cpu_kernel_applies(k_lin, sin)) {
    // Without autograd on the CPU: rotated straight from the projections' layout, keys into the cache.
    q = torch::empty({B, heads, T, head_dim}, q_lin.options());
    rotary_into(q_lin, cos, sin, q);
    torch::Tensor into = slot->k.narrow(2, slot->start, T);
    rotary_into(k_lin, cos, sin, into);
  } else {
    q = apply_rotary(q_lin.view({B, T, heads, head_dim}).transpose(1, 2), cos, sin);     // [B, H, T, dh]
    k = apply_rotary(k_lin.view({B, T, kv_heads, head_dim}).transpose(1, 2), cos, sin);  // [B, Hkv, T, dh]
    if (slot != nullptr) slot->k.narrow(2, slot->start, T).copy_(k);
  }
  if (slot != nullptr) {
    // Decoding: this step's keys/values are in the cache (written above and here); attend over the filled
    // prefix. Query heads are grouped by their key/value head ([B, Hkv, r*T, dh]) so the cache is never copied
    // r times.
    slot->v.narrow(2, slot->start, T).copy_(v);
    const int64_t S = slot->start + T, r = heads / kv_heads;
    const torch::Tensor keys = slot->k.narrow(2, 0, S), values = slot->v.narrow(2, 0, S);
    const torch::Tensor qg = q.reshape({B, kv_heads, r * T, head_dim});
    if (slot->prefix_kt.defined()) {
      // Shared prompt: the rows of one prompt attend to its keys/values in one product ([U, Hkv, G*M, Pp]),
      // so the prompt columns are read once per prompt, not once per row; then the row's own columns. One
      // softmax over both parts, as over the concatenated columns. Everything as wide as the prompt stays in
      // this grouped layout (scores, mask, softmax, the product with the values): only tensors as wide as the
      // row's own columns, and the outputs, move between the row and the grouped layout.
      const PrefixGroups& g = *slot->groups;
      const int64_t U = g.prompts, G = g.group, Pp = slot->prefix_kt.size(3), M = r * T;
      auto to_groups = [&](const torch::Tensor& t) {  // [B, Hkv, M, X] -> [U, Hkv, G*M, X]
        const torch::Tensor rows = g.identity ? t : t.index_select(0, g.gather);
        return rows.reshape({U, G, kv_heads, M, t.size(3)}).transpose(1, 2).reshape({U, kv_heads, G * M, t.size(3)});
      };
      auto from_groups = [&](const torch::Tensor& t) {  // [U, Hkv, G*M, X] -> [B, Hkv, M, X]
        const torch::Tensor slots =
            t.reshape({U, kv_heads, G, M, t.size(3)}).transpose(1, 2).reshape({U * G, kv_heads, M, t.size(3)});
        return g.identity ? slots : slots.index_select(0, g.scatter);
      };
      const torch::Tensor qs = qg * inv_sqrt;  // scaling the queries, not the (wider) scores
      // The row's own columns: B*Hkv products of M x dh times dh x S. When no gradient is wanted (decoding)
      // small_bmm does them in one pass; a batched matmul would make a library call per product.
      const bool small = cpu_kernel_applies(qs, keys);
      auto batch3 = [&](const torch::Tensor& t) { return t.reshape({B * kv_heads, t.size(2), t.size(3)}); };
      torch::Tensor own =
          (small ? small_bmm_nt(batch3(qs), batch3(keys)).view({B, kv_heads, M, S}) : qs.matmul(keys.transpose(-2, -1)))
              .to(compute);  // [B, Hkv, M, S]
      own = (own.reshape({B, kv_heads, r, T, S}) + mask.to(compute).unsqueeze(2)).reshape({B, kv_heads, M, S});
      torch::Tensor shared = to_groups(qs).matmul(slot->prefix_kt).to(compute).contiguous();  // [U, Hkv, G*M, Pp]
      torch::Tensor own_grouped = to_groups(own).contiguous();                                // [U, Hkv, G*M, S]
      if (small) {  // in place, without joining the two parts
        torch::Tensor shared_rows = shared.view({-1, Pp}), own_rows = own_grouped.view({-1, S});
        softmax_two_part_(shared_rows, slot->prefix_mask.view({U, Pp}), kv_heads * G * M, own_rows);
      } else {
        shared.add_(slot->prefix_mask.to(compute));  // the product's own output: autograd needs only its inputs
        const torch::Tensor probs = torch::softmax(torch::cat({shared, own_grouped}, -1), -1).to(x.scalar_type());
        shared = probs.narrow(-1, 0, Pp), own_grouped = probs.narrow(-1, Pp, S);
      }
      const torch::Tensor own_probs = from_groups(own_grouped);  // [B, Hkv, M, S]
      const torch::Tensor own_out =
          small ? small_bmm_nn(batch3(own_probs), batch3(values)).view(qg.sizes()) : own_probs.matmul(values);
      out = (from_groups(shared.matmul(slot->prefix_v)) + own_out).reshape({B, heads, T, head_dim});
    } else {
      torch::Tensor scores = qg.matmul(keys.transpose(-2, -1)).to(compute) * inv_sqrt;
      scores = scores.view({B, kv_heads, r, T, S}) + mask.to(compute).unsqueeze(2);
      torch::Tensor probs = torch::softmax(scores, -1).to(x.scalar_type()).view({B, kv_heads, r * T, S});
      out = probs.matmul(values).view({B, heads, T, head_dim});
    }
  } else {
#if TORCH_VERSION_MAJOR >= 2
    if (kv_heads != heads) {  // grouped-query: kv head g serves query heads g*r .. g*r+r-1
      k = k.repeat_interleave(heads / kv_heads, 1);
      v = v.repeat_interleave(heads / kv_heads, 1);
    }
    out = at::scaled_dot_product_attention(q, k, v, mask);
#else
    // Query rows [s, s+n) against keys [0, s+n): with a (causal) mask the later keys are masked anyway, so the
    // blocks above the diagonal are skipped. Without a mask every block sees every key.
    const int64_t r = heads / kv_heads, step = mask.defined() && block > 0 && T > 2 * block ? block : T;
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < T; s += step) {
      const int64_t n = std::min(step, T - s), S = mask.defined() ? s + n : T;
      const torch::Tensor qb = q.narrow(2, s, n).reshape({B, kv_heads, r * n, head_dim});
      torch::Tensor scores = qb.matmul(k.narrow(2, 0, S).transpose(-2, -1)).to(compute) * inv_sqrt;
      scores = scores.view({B, kv_heads, r, n, S});
      if (mask.defined()) scores = scores + mask.narrow(2, s, n).narrow(3, 0, S).to(compute).unsqueeze(2);
      const torch::Tensor probs = torch::softmax(scores, -1).to(x.scalar_type()).view({B, kv_heads, r * n, S});
      parts.push_back(probs.matmul(v.narrow(2, 0, S)).view({B, heads, n, head_dim}));
    }
    out = parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
#endif
  }
  return o_proj(out.transpose(1, 2).reshape({B, T, heads * head_dim}));
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
                                        const torch::Tensor& mask, KvSlot* slot) {
  torch::Tensor h = x + self_attn->forward(input_layernorm(x), cos, sin, mask, slot);
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
  // Hugging Face's initialisation: normal(0, 0.02) weights, zero biases, unit norms.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("bias") != std::string::npos)
      p.value().zero_();
    else if (p.key().find("layernorm") == std::string::npos && p.key().rfind("norm.", 0) != 0)
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
                               const torch::Tensor& sin, const torch::Tensor& mask, const torch::Tensor& anchor,
                               int64_t layer_address) {
    (void)anchor;
    ctx->save_for_backward({x});
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["layer"] = layer_address;
    {
      auto gen = at::globalContext().defaultGenerator(x.device());  // the generator dropout draws from
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_address);
    return layer->forward(x, cos, sin, mask);
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
                         ctx->saved_data["mask"].toTensor());
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(rng_now);
    }
    if (y.requires_grad()) torch::autograd::backward({y}, {grad_out[0]});
    torch::Tensor gx = x.requires_grad() && x.grad().defined() ? x.grad() : torch::Tensor();
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

constexpr double kLowest = std::numeric_limits<float>::lowest();

}  // namespace

torch::Tensor TransformerImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const auto iopt = torch::TensorOptions().device(input_ids.device());
  torch::Tensor x = embed_tokens(input_ids);
  torch::Tensor positions;
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
  const torch::Tensor mask =
      torch::zeros({B, 1, T, T}, x.options()).masked_fill(allowed.logical_not().unsqueeze(1), kLowest);
  auto [cos, sin] = rotary_tables(positions, config.head_dim, config.rope_theta, x.scalar_type());
  const bool checkpoint = activation_checkpointing && is_training() && torch::GradMode::is_enabled();
  const torch::Tensor anchor = checkpoint ? torch::empty({0}, x.options().requires_grad(true)) : torch::Tensor();
  for (auto& layer : layers) {
    x = checkpoint ? CheckpointedLayer::apply(x, cos, sin, mask, anchor, reinterpret_cast<int64_t>(layer.get()))
                   : layer->forward(x, cos, sin, mask);
  }
  return norm(x);
}

torch::Tensor TransformerImpl::lm_logits(const torch::Tensor& hidden) {
  return config.tie_embeddings ? torch::matmul(hidden, embed_tokens->weight.t()) : lm_head(hidden);
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return lm_logits(hidden_states(input_ids, attention_mask));
}

void KvCache::keep_rows(const torch::Tensor& rows) {
  for (auto& t : k) t = t.index_select(0, rows);
  for (auto& t : v) t = t.index_select(0, rows);
  key_valid = key_valid.index_select(0, rows);
  if (!prefix.defined()) return;
  const torch::Tensor host = rows.to(torch::kCPU).to(torch::kLong).contiguous();
  const int64_t* r = host.data_ptr<int64_t>();
  std::vector<int64_t> renumber(static_cast<size_t>(prefix.valid.size(0)), -1), used, row_prompt;
  for (int64_t i = 0; i < host.numel(); ++i) {
    int64_t& u = renumber[static_cast<size_t>(prefix.row_prompt[static_cast<size_t>(r[i])])];
    if (u < 0) u = static_cast<int64_t>(used.size()), used.push_back(prefix.row_prompt[static_cast<size_t>(r[i])]);
    row_prompt.push_back(u);
  }
  prefix.row_prompt = std::move(row_prompt);
  if (static_cast<int64_t>(used.size()) == prefix.valid.size(0)) {
    bool same = true;
    for (size_t u = 0; u < used.size(); ++u) same = same && used[u] == static_cast<int64_t>(u);
    if (same) return;
  }
  const torch::Tensor keep = torch::tensor(used, torch::kLong).to(prefix.valid.device());
  for (auto& t : prefix.kt) t = t.index_select(0, keep);
  for (auto& t : prefix.v) t = t.index_select(0, keep);
  prefix.valid = prefix.valid.index_select(0, keep);
}

KvCache TransformerImpl::new_cache(int64_t batch, int64_t capacity) {
  KvCache cache;
  const auto opt = embed_tokens->weight.options().requires_grad(false);
  for (size_t l = 0; l < layers.size(); ++l) {
    cache.k.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opt));
    cache.v.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opt));
  }
  cache.key_valid = torch::zeros({batch, capacity}, opt.dtype(torch::kBool));
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
  return cache;
}

namespace {

PrefixGroups prefix_groups(const std::vector<int64_t>& row_prompt, int64_t prompts, torch::Device device) {
  PrefixGroups g;
  g.prompts = prompts;
  std::vector<int64_t> count(static_cast<size_t>(prompts), 0);
  for (int64_t u : row_prompt) g.group = std::max(g.group, ++count[static_cast<size_t>(u)]);
  const int64_t B = static_cast<int64_t>(row_prompt.size());
  g.identity = prompts * g.group == B;
  for (int64_t b = 0; b < B && g.identity; ++b) g.identity = row_prompt[static_cast<size_t>(b)] == b / g.group;
  if (g.identity) return g;
  std::vector<int64_t> gather(static_cast<size_t>(prompts * g.group), 0), scatter(static_cast<size_t>(B));
  std::fill(count.begin(), count.end(), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t u = row_prompt[static_cast<size_t>(b)], slot = u * g.group + count[static_cast<size_t>(u)]++;
    gather[static_cast<size_t>(slot)] = b;
    scatter[static_cast<size_t>(b)] = slot;
  }
  g.gather = torch::tensor(gather, torch::kLong).to(device);
  g.scatter = torch::tensor(scatter, torch::kLong).to(device);
  return g;
}

}  // namespace

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
  for (size_t l = 0; l < layers.size(); ++l) {
    KvSlot slot;
    slot.k = cache.k[l], slot.v = cache.v[l], slot.start = start;
    if (cache.prefix.defined())
      slot.prefix_kt = cache.prefix.kt[l], slot.prefix_v = cache.prefix.v[l], slot.prefix_mask = prefix_mask,
      slot.groups = &groups;
    x = layers[l]->forward(x, cos, sin, mask, &slot);
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
    out.emplace_back(p + "post_attention_layernorm.weight", L->post_attention_layernorm->weight);
    out.emplace_back(p + "mlp.gate_proj.weight", L->mlp->gate_proj->weight);
    out.emplace_back(p + "mlp.up_proj.weight", L->mlp->up_proj->weight);
    out.emplace_back(p + "mlp.down_proj.weight", L->mlp->down_proj->weight);
  }
  out.emplace_back("model.norm.weight", norm->weight);
  if (!config.tie_embeddings) out.emplace_back("lm_head.weight", lm_head->weight);
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
