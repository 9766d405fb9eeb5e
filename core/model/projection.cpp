#include "core/model/projection.h"

#include <cmath>
#include <stdexcept>

namespace r2rec {

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

}  // namespace r2rec
