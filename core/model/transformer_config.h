// The decoder's shape (Hugging Face config.json fields), read and written by core/model/transformer.cpp.
#pragma once

#include <cstdint>
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
  // r2rec's own extension (config.json "r2rec_smeared_keys", docs/model.md "Smeared keys"): every attention key is
  // sigmoid(s_h) * k_t + (1 - sigmoid(s_h)) * k_{t-1}, with s_h a learnt scalar per key/value head
  // (self_attn.key_smear), so one layer can attend to "the token after an earlier copy of this one" — the look-up
  // a grounded citation needs. transformers has no such layer: a model folder with it runs in r2rec only.
  bool smeared_keys = false;
  // r2rec's own extension (config.json "r2rec_copy_lookup", core/model/copy_lookup.h): the logits of the tokens that
  // followed an earlier match of the sequence's suffix (up to this many tokens) are raised by a learnt amount
  // (model.copy_gate.{weight,bias}). 0 = off. Like smeared keys, a model folder with it runs in r2rec only.
  int64_t copy_lookup = 0;
  // Not a checkpoint field: causal attention over a whole sequence (training, teacher forcing) runs in query
  // blocks of this many rows, each against the keys up to its last row, so the masked products above the
  // diagonal are skipped (~45% of the attention work at 600 tokens). Sequences up to twice this run in one
  // block; 0 = always one block.
  int64_t attention_block = 64;

  // From a Hugging Face config.json (DataError naming the file and key on a missing/bad field).
  static TransformerConfig from_hf_json(const std::string& path);
  // Weights of the decoder (embeddings, attention and MLP projections; norms and biases left out), in double so a
  // hostile config.json cannot overflow it.
  double parameter_count() const;
  // The config.json text transformers reads back.
  std::string to_hf_json() const;
};

}  // namespace r2rec
