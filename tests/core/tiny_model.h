// Tiny Llama/Qwen2 models with non-trivial weights for the model tests.
#pragma once

#include <torch/torch.h>

#include "core/transformer.h"

namespace r2rec {
namespace testing {

// vocab 23, d 16, 2 layers, 4 heads / 2 kv heads of 4; Qwen2 style (tied, QKV bias) or Llama style.
inline TransformerConfig tiny(bool qwen) {
  TransformerConfig c;
  c.vocab_size = 23;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.rope_theta = 1000.0;
  c.rms_norm_eps = 1e-6;
  c.tie_embeddings = qwen;
  c.qkv_bias = qwen;
  c.model_type = qwen ? "qwen2" : "llama";
  return c;
}

inline Transformer make_model(const TransformerConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  Transformer m(c);
  // Non-trivial norms and biases so that every term of the gradient matters.
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) {
    if (p.key().find("norm") != std::string::npos || p.key().find("bias") != std::string::npos) {
      p.value().copy_(torch::randn_like(p.value()) * 0.3 + (p.key().find("norm") != std::string::npos ? 1.0 : 0.0));
    } else {
      p.value().copy_(torch::randn_like(p.value()) * 0.3);
    }
  }
  return m;
}

}  // namespace testing
}  // namespace r2rec
