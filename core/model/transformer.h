// The Llama / Qwen2 decoder (docs/design.md §4), written with libtorch and named like Hugging Face's modules, so
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
// exact composition softmax(QK^T/sqrt(dh) + mask) V in causal query blocks (TransformerConfig::attention_block).
// Both the block path and the cached (decoding) path group the query heads of each key/value head instead of
// copying keys/values H/Hkv times.
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
  int64_t head_dim = 64;  // hidden_size / num_heads unless the checkpoint says otherwise
  int64_t max_position = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_embeddings = true;
  bool qkv_bias = false;             // Qwen2: true
  std::string model_type = "qwen2";  // "qwen2" | "llama"
  // Not a checkpoint field: causal attention over a whole sequence (training, teacher forcing) runs in query
  // blocks of this many rows, each against the keys up to its last row, so the masked products above the
  // diagonal are skipped (~45% of the attention work at 600 tokens). Sequences up to twice this run in one
  // block; 0 = always one block.
  int64_t attention_block = 64;

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

// A bias-optional linear map named like torch.nn.Linear (weight [out, in], bias [out]) that can carry a LoRA
// adapter (Hu et al. 2021, PEFT layout): y = x W^T + b + scale * dropout(x) A^T B^T, A [r, in] (Kaiming-uniform,
// as PEFT), B [out, r] (zeros, so a new adapter changes nothing), scale = alpha / r. With an adapter the base
// weight and bias are frozen.
struct ProjectionImpl : torch::nn::Module {
  ProjectionImpl(int64_t in_features, int64_t out_features, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

  bool has_lora() const { return lora_A.defined(); }
  void add_lora(int64_t rank, double alpha, double dropout);
  // W += scale * B A; the adapter is removed and the weight (and bias) become trainable again.
  void merge_lora();
  // The weight with the adapter folded in (W itself when there is none); not part of autograd.
  torch::Tensor merged_weight() const;

  torch::Tensor weight, bias, lora_A, lora_B;
  int64_t in_features, out_features;
  double lora_scale = 0.0, lora_dropout = 0.0;
};
TORCH_MODULE(Projection);

// How the B rows of a prefix-shared cache map onto its U prompts, for one cached forward: the rows of prompt u
// sit at slots [u*G, (u+1)*G) of a [U*G] layout (G = the most rows any prompt has; spare slots repeat row 0 and
// are never read back). `gather` [U*G] gives each slot's row, `scatter` [B] each row's slot; `identity` when the
// rows already are that layout (rows u*G .. u*G+G-1 share prompt u), so no index is needed.
struct PrefixGroups {
  int64_t prompts = 0, group = 0;
  bool identity = true;
  torch::Tensor gather, scatter;
};

// One layer's slice of a KV cache during a cached forward: keys/values [B, Hkv, capacity, dh] (written in place
// at columns [start, start + T)), attention over columns [0, start + T); with a shared prefix, first over the
// row's prompt: its keys transposed prefix_kt [U, Hkv, dh, Pp], its values prefix_v [U, Hkv, Pp, dh] and
// prefix_mask [U, 1, 1, Pp] (additive: 0 / lowest float on its left padding).
struct KvSlot {
  torch::Tensor k, v;
  int64_t start = 0;
  torch::Tensor prefix_kt, prefix_v, prefix_mask;  // undefined without a shared prefix
  const PrefixGroups* groups = nullptr;            // set with prefix_kt
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const TransformerConfig& c);
  // x [B, T, d]; cos/sin [B, 1, T, dh] for the positions of x; mask additive (0 / lowest float), [B, 1, T, S] with
  // S = T without a cache, S = slot->start + T with one (a shared prefix's columns have slot->prefix_mask).
  // Without a cache a defined mask must be causal (hidden_states' is): query blocks skip the keys after them.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KvSlot* slot = nullptr);
  Projection q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim, block;
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Projection gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KvSlot* slot = nullptr);
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

// Prompt keys/values shared by several rows of a KvCache (prefix-shared decoding: the G completions of one
// prompt share its prefill): per layer keys transposed `kt` [U, Hkv, dh, Pp] (the layout the score product
// reads fastest) and values `v` [U, Hkv, Pp, dh] for U distinct prompts (left-padded), `valid` [U, Pp] their
// real tokens, `row_prompt[b]` the prompt of cache row b. Empty (valid undefined) in a plain cache.
struct SharedPrefix {
  std::vector<torch::Tensor> kt, v;
  torch::Tensor valid;
  std::vector<int64_t> row_prompt;
  bool defined() const { return valid.defined(); }
  int64_t length() const { return defined() ? valid.size(1) : 0; }
};

// A KV cache for batched decoding: per layer keys/values [B, Hkv, capacity, dh]; `key_valid` [B, capacity]
// marks the columns that hold real tokens (left padding and finished rows hold none); `length` columns are
// filled. With a shared prefix (TransformerImpl::fork_cache), a row attends to its prompt's cached columns first,
// then to its own. Made by TransformerImpl::new_cache; rows can be dropped with keep_rows (finished sequences).
struct KvCache {
  std::vector<torch::Tensor> k, v;
  torch::Tensor key_valid;
  int64_t length = 0;
  SharedPrefix prefix;
  int64_t capacity() const { return key_valid.defined() ? key_valid.size(1) : 0; }
  int64_t batch() const { return key_valid.defined() ? key_valid.size(0) : 0; }
  // Keeps rows `rows` (int64 indices, in order) of every tensor; prompts no row uses any more are dropped.
  void keep_rows(const torch::Tensor& rows);
};

struct TransformerImpl : torch::nn::Module {
  explicit TransformerImpl(const TransformerConfig& c);
  // input_ids [B, T]; attention_mask [B, T] (1 = token, 0 = left/right padding) or undefined. Positions count
  // only real tokens (padding does not shift them). Packed rows: segment ids 1, 2, ... (0 = padding) put several
  // sequences in one row, each attending only within itself with positions from 0, as if alone (mask values > 1
  // anywhere select this reading). Returns logits [B, T, V].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  // The final-norm hidden states [B, T, d] of forward (logits = lm_logits(hidden)).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  torch::Tensor lm_logits(const torch::Tensor& hidden);

  // An empty cache for `batch` rows of up to `capacity` tokens, in the model's dtype and device.
  KvCache new_cache(int64_t batch, int64_t capacity);
  // A cache of row_prompt.size() rows with `capacity` columns of their own whose shared prefix is `prompts`
  // (a filled plain cache of U prompt rows): row b continues prompt row_prompt[b], which was computed once.
  KvCache fork_cache(KvCache prompts, const std::vector<int64_t>& row_prompt, int64_t capacity);
  // Appends T tokens per row to `cache` and returns the final-norm hidden states [B, T, d] of those tokens.
  // positions [B, T] are the rotary positions; valid [B, T] (bool) marks real tokens (keys other rows or later
  // steps may attend to). A token attends to the valid cached columns (its prompt's shared ones first, when the
  // cache has a shared prefix) and the valid new ones up to itself.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& positions,
                               const torch::Tensor& valid, KvCache& cache);

  // Hugging Face parameter names -> tensors (lm_head.weight omitted when tied). With LoRA adapters these are
  // the base weights; see merged_hf_state_dict for export.
  std::vector<std::pair<std::string, torch::Tensor>> hf_state_dict();
  // Like hf_state_dict, with every LoRA adapter folded into its weight (new tensors; the model is unchanged).
  std::vector<std::pair<std::string, torch::Tensor>> merged_hf_state_dict();
  // Loads every parameter from a safetensors checkpoint folder/file (DataError naming file and tensor on a
  // missing tensor or shape mismatch). Extra tensors in the file are ignored.
  void load_hf(const std::string& checkpoint);
  // Writes config.json + model.safetensors (sharded above max_shard_bytes) into `dir`; LoRA adapters are merged
  // into the written weights, so transformers loads the result as a plain model.
  void save_hf(const std::string& dir, uint64_t max_shard_bytes = 5ull << 30);

  // The projections by Hugging Face name ("model.layers.3.self_attn.q_proj"), in layer order.
  std::vector<std::pair<std::string, Projection>> projections();

  TransformerConfig config;
  // Recompute each decoder layer's activations during backward instead of keeping them (training only).
  bool activation_checkpointing = false;
  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<DecoderLayer> layers;
  RMSNorm norm{nullptr};
  Projection lm_head{nullptr};  // absent when tied
};
TORCH_MODULE(Transformer);

}  // namespace r2rec
