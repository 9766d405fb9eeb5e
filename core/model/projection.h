// The decoder's linear maps, with optional LoRA adapters (core/model/lora.h manages them model-wide).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace r2rec {

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

}  // namespace r2rec
