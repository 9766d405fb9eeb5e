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
// Attention (rotary, grouped-query, its three paths): core/model/attention.h; the decoding cache:
// core/model/kv_cache.h; linear maps with LoRA: core/model/projection.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/model/attention.h"
#include "core/model/copy_lookup.h"
#include "core/model/kv_cache.h"
#include "core/model/projection.h"
#include "core/model/transformer_config.h"

namespace r2rec {

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // x * rsqrt(mean(x^2) + eps) * weight, in float32
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Projection gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KvSlot* slot = nullptr, const torch::Tensor& previous = {});
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

struct TransformerImpl : torch::nn::Module {
  explicit TransformerImpl(const TransformerConfig& c);
  // input_ids [B, T]; attention_mask [B, T] (1 = token, 0 = left/right padding) or undefined. Positions count
  // only real tokens (padding does not shift them). Packed rows: segment ids 1, 2, ... (0 = padding) put several
  // sequences in one row, each attending only within itself with positions from 0, as if alone (mask values > 1
  // anywhere select this reading). Returns logits [B, T, V] (with the look-up copy's boosts, found from input_ids).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  // The final-norm hidden states [B, T, d] of forward (logits = lm_logits(hidden)).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  // With the look-up copy (config.copy_lookup > 0) the logits and log-probs of hidden row i depend on what the
  // sequence before it proposes: hidden is [n, d] and `copy` holds one CopyProposal per row (core/model/
  // copy_lookup.h), required then (std::logic_error otherwise); without the look-up it is ignored.
  torch::Tensor lm_logits(const torch::Tensor& hidden, const std::vector<CopyProposal>* copy = nullptr);
  // log p(targets[i] | hidden[i]) [n] float32 for final-norm hidden states [n, d], and sum_i row_weights[i] *
  // -log p(targets[i]) (a scalar): through the chunked head of core/model/lm_head_loss.h, which never forms the
  // [n, V] logits; the plain composition of lm_logits where lm_head carries a LoRA adapter.
  torch::Tensor target_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                const std::vector<CopyProposal>* copy = nullptr);
  torch::Tensor target_nll(const torch::Tensor& hidden, const torch::Tensor& targets, const torch::Tensor& row_weights,
                           const std::vector<CopyProposal>* copy = nullptr);
  // The look-up's logit boost s_i [n] float32 (0 where copy[i] proposes nothing).
  torch::Tensor copy_boost(const torch::Tensor& hidden, const std::vector<CopyProposal>& copy);

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
  Projection lm_head{nullptr};                     // absent when tied
  torch::Tensor copy_gate_weight, copy_gate_bias;  // [d], [copy_lookup]: the look-up copy's gate, when on
};
TORCH_MODULE(Transformer);

}  // namespace r2rec
