// The Llama / Qwen2 decoder (DESIGN.md §4), written with libtorch and named like Hugging Face's modules, so
// its state dict is a `transformers` checkpoint's:
//
//   model.embed_tokens.weight                        [V, d]
//   model.layers.{l}.input_layernorm.weight          [d]            RMSNorm, eps rms_norm_eps
//   model.layers.{l}.self_attn.{q,k,v,o}_proj.weight q [H*dh, d], k/v [Hkv*dh, d], o [d, H*dh]; q/k/v bias if qkv_bias
//   model.layers.{l}.post_attention_layernorm.weight [d]
//   model.layers.{l}.mlp.{gate,up,down}_proj.weight  gate/up [F, d], down [d, F]   SwiGLU: down(silu(gate x) * up x)
//   model.norm.weight                                [d]
//   lm_head.weight                                   [V, d]         absent when tie_word_embeddings
//
// Attention: rotary positions (rotate-half convention, inverse frequencies theta^(-2i/dh)), grouped-query
// (each of the Hkv key/value heads serves H/Hkv query heads), causal, with a key-padding mask for ragged
// batches; softmax in float32. Libtorch >= 2.0 uses at::scaled_dot_product_attention; 1.13 (Debian) uses the
// exact composition softmax(QK^T/sqrt(dh) + mask) V.
#pragma once

#include <torch/torch.h>

#include <string>

namespace r2rec {

struct TransformerConfig {
  int64_t vocab_size = 4096;
  int64_t hidden_size = 256;
  int64_t intermediate_size = 688;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 64;            // hidden_size / num_heads unless the checkpoint says otherwise
  int64_t max_position = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_embeddings = true;
  bool qkv_bias = false;            // Qwen2: true
  std::string model_type = "qwen2"; // "qwen2" | "llama"

  // From a Hugging Face config.json (DataError naming the file and key on a missing/bad field).
  static TransformerConfig from_hf_json(const std::string& path);
  // The config.json text transformers reads back.
  std::string to_hf_json() const;
};

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // x * rsqrt(mean(x^2) + eps) * weight, in float32
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const TransformerConfig& c);
  // x [B, T, d]; cos/sin [B, 1, T, dh] for the positions of x; mask [B, 1, T, T] additive (0 / lowest float).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Rotary tables for `positions` [B, T] (int64): cos, sin [B, 1, T, dh] (the half-frequencies repeated twice).
std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& positions, int64_t head_dim, double theta,
                                                      torch::ScalarType dtype);
// x [B, heads, T, dh] rotated by cos/sin [B, 1, T, dh] (rotate-half convention).
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

struct TransformerImpl : torch::nn::Module {
  explicit TransformerImpl(const TransformerConfig& c);
  // input_ids [B, T]; attention_mask [B, T] (1 = token, 0 = left/right padding) or undefined. Positions count
  // only real tokens (padding does not shift them). Returns logits [B, T, V].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});

  // Hugging Face parameter names -> tensors (lm_head.weight omitted when tied).
  std::vector<std::pair<std::string, torch::Tensor>> hf_state_dict();
  // Loads every parameter from a safetensors checkpoint folder/file (DataError naming file and tensor on a
  // missing tensor or shape mismatch). Extra tensors in the file are ignored.
  void load_hf(const std::string& checkpoint);
  // Writes config.json + model.safetensors (sharded above max_shard_bytes) into `dir`.
  void save_hf(const std::string& dir, uint64_t max_shard_bytes = 5ull << 30);

  TransformerConfig config;
  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<DecoderLayer> layers;
  RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // unused (weight shared) when tied
};
TORCH_MODULE(Transformer);

}  // namespace r2rec
