// Tiny Llama/Qwen2 models with non-trivial weights for the model tests.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/model/transformer.h"

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

// The same with smeared keys (TransformerConfig::smeared_keys); make_model gives key_smear random values too.
inline TransformerConfig smeared(TransformerConfig c) {
  c.smeared_keys = true;
  return c;
}

// The same with the look-up copy (TransformerConfig::copy_lookup) over matches of up to 3 tokens; make_model gives
// its gate random values too, which the tests raise so that the boost moves the distribution.
inline TransformerConfig copying(TransformerConfig c) {
  c.copy_lookup = 3;
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

// Central finite differences (step 1e-6) of `loss_of` against the gradients already in `params` (float64),
// probing about `per_param` entries of each. Returns the worst |fd - analytic| / max(1, |analytic|); `checked`
// counts the probes.
template <class Loss>
double worst_finite_difference_error(const std::vector<torch::Tensor>& params, Loss loss_of, int64_t per_param,
                                     int* checked) {
  double worst = 0;
  for (const auto& p : params) {
    torch::Tensor flat = p.data().view({-1});
    const torch::Tensor grad = p.grad().view({-1});
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / per_param)) {
      const double saved = flat[i].item<double>(), h = 1e-6;
      torch::NoGradGuard g;
      flat[i] = saved + h;
      const double up = loss_of().template item<double>();
      flat[i] = saved - h;
      const double down = loss_of().template item<double>();
      flat[i] = saved;
      const double fd = (up - down) / (2 * h), an = grad[i].item<double>();
      worst = std::max(worst, std::abs(fd - an) / std::max(1.0, std::abs(an)));
      ++*checked;
    }
  }
  return worst;
}

}  // namespace testing
}  // namespace r2rec
