// Small libtorch helpers for trainers (include only from .cpp files that already use torch).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainers/recommender.h"

namespace r2rec {

// Sums the gradients of `params` over all ranks through one flat float buffer. Trainers normalise their loss
// by the GLOBAL sample count, so the summed gradient is exactly the single-process gradient of the whole batch.
inline void sum_gradients(const std::vector<torch::Tensor>& params, const Collectives& c) {
  if (c.world_size <= 1) return;
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  std::vector<float> flat(total, 0.0f);
  int64_t off = 0;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      auto g = p.grad().contiguous();
      std::copy(g.data_ptr<float>(), g.data_ptr<float>() + g.numel(), flat.begin() + off);
    }
    off += p.numel();
  }
  c.sum_floats(flat.data(), total);
  off = 0;
  for (const auto& p : params) {
    torch::Tensor sum = torch::from_blob(flat.data() + off, p.sizes(), torch::kFloat32);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(sum);
    } else {
      p.mutable_grad() = sum.clone();
    }
    off += p.numel();
  }
}

// Deep copies of parameter values (for keeping the best weights).
inline std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  torch::NoGradGuard no_grad;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}
inline void restore(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& saved) {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params.size() && k < saved.size(); ++k) params[k].copy_(saved[k]);
}

}  // namespace r2rec
