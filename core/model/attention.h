// Attention of the Llama / Qwen2 decoder (core/model/transformer.h): rotary positions (rotate-half convention,
// inverse frequencies theta^(-2i/dh)), grouped-query (each of the Hkv key/value heads serves H/Hkv query heads),
// causal, with a key-padding mask for ragged batches; softmax in float32. Three paths, each a named function:
//   full_sequence   training and teacher forcing, no cache: libtorch >= 2.0 uses at::scaled_dot_product_attention;
//                   1.13 (Debian) the exact composition softmax(QK^T/sqrt(dh) + mask) V in causal query blocks
//                   (TransformerConfig::attention_block), skipping the blocks above the diagonal;
//   cached          decoding with a KV cache: the step's keys/values written into the cache, attention over its
//                   filled columns;
//   shared_prefix   decoding with a prefix-shared cache (a GRPO group's completions share their prompt): the rows
//                   of one prompt attend to its cached keys/values in one product, then to their own columns,
//                   one softmax over both.
// The block path and both cached paths group the query heads of each key/value head instead of copying
// keys/values H/Hkv times.
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "core/model/projection.h"
#include "core/model/transformer_config.h"

namespace r2rec {

// Rotary tables for `positions` [B, T] (int64): cos, sin [B, 1, T, dh] (the half-frequencies repeated twice).
std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& positions, int64_t head_dim, double theta,
                                                      torch::ScalarType dtype);
// x [B, heads, T, dh] rotated by cos/sin [B, 1, T, dh] (rotate-half convention).
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// How the B rows of a prefix-shared cache map onto its U prompts, for one cached forward: the rows of prompt u
// sit at slots [u*G, (u+1)*G) of a [U*G] layout (G = the most rows any prompt has; spare slots repeat row 0 and
// are never read back). `gather` [U*G] gives each slot's row, `scatter` [B] each row's slot; `identity` when the
// rows already are that layout (rows u*G .. u*G+G-1 share prompt u), so no index is needed.
struct PrefixGroups {
  int64_t prompts = 0, group = 0;
  bool identity = true;
  torch::Tensor gather, scatter;
};

// The PrefixGroups of a cache whose row b reads prompt row_prompt[b] of `prompts`.
PrefixGroups prefix_groups(const std::vector<int64_t>& row_prompt, int64_t prompts, torch::Device device);

// One layer's slice of a KV cache during a cached forward: keys/values [B, Hkv, capacity, dh] (written in place
// at columns [start, start + T)), attention over columns [0, start + T); with a shared prefix, first over the
// row's prompt: its keys transposed prefix_kt [U, Hkv, dh, Pp], its values prefix_v [U, Hkv, Pp, dh] and
// prefix_mask [U, 1, 1, Pp] (additive: 0 / lowest float on its left padding).
struct KvSlot {
  torch::Tensor k, v;
  int64_t start = 0;
  torch::Tensor prefix_kt, prefix_v, prefix_mask;  // undefined without a shared prefix
  const PrefixGroups* groups = nullptr;            // set with prefix_kt
  torch::Tensor* last_key = nullptr;               // smeared keys: the cache's last unsmeared key, read and replaced
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const TransformerConfig& c);
  // x [B, T, d]; cos/sin [B, 1, T, dh] for the positions of x; mask additive (0 / lowest float), [B, 1, T, S] with
  // S = T without a cache, S = slot->start + T with one (a shared prefix's columns have slot->prefix_mask).
  // Without a cache a defined mask must be causal (hidden_states' is): query blocks skip the keys after them.
  // With smeared keys, `previous` [B, 1, T, 1] is 1 where token t's key mixes in the key before it (same sequence;
  // for t = 0 of a cached step, the cache's last key) and 0 where there is none.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KvSlot* slot = nullptr, const torch::Tensor& previous = {});
  Projection q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  torch::Tensor key_smear;  // [Hkv] logits of the own-key share (TransformerConfig::smeared_keys); else undefined
  int64_t heads, kv_heads, head_dim, block;

 private:
  // Each returns [B, H, T, dh] from rotated queries q [B, H, T, dh] (and, without a cache, keys k and values v
  // [B, Hkv, T, dh]; with one, the slot's filled columns hold this step's keys and values).
  torch::Tensor full_sequence(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const torch::Tensor& mask,
                              torch::ScalarType out_type) const;
  torch::Tensor cached(const torch::Tensor& q, const torch::Tensor& mask, const KvSlot& slot,
                       torch::ScalarType out_type) const;
  torch::Tensor shared_prefix(const torch::Tensor& q, const torch::Tensor& mask, const KvSlot& slot,
                              torch::ScalarType out_type) const;
};
TORCH_MODULE(Attention);

}  // namespace r2rec
