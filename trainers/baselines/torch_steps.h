// What the torch-trained baselines (BPR-MF, SASRec) share: one optimizer step per global batch with the gradients
// summed over the data-parallel group, the epoch's mean loss over ranks, and the best validation pass's weights
// kept and brought back (early stopping). Include only from .cpp files that already use torch.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

#include "distributed/dp_group.h"
#include "distributed/gradient_sync.h"

namespace r2rec {

class BatchSteps {
 public:
  BatchSteps(std::vector<torch::Tensor> params, std::unique_ptr<torch::optim::Optimizer> optimizer,
             const DataParallelGroup& group)
      : params_(std::move(params)), optimizer_(std::move(optimizer)), group_(group) {}

  // One global batch. `loss` is this rank's slice's share of the global-batch mean loss, undefined when the
  // slice is empty (the rank still joins the gradient sum): backward, gradients summed, optimizer step.
  void step(const torch::Tensor& loss) {
    // Built at the first step: collective, every rank trains.
    if (!grad_sum_) grad_sum_ = std::make_unique<GradientSum>(params_, group_);
    grad_sum_->zero_grad();
    if (loss.defined()) {
      grad_sum_->micro_batch(true);
      loss.backward();
      loss_sum_ += loss.item<double>();
    }
    grad_sum_->finish();
    optimizer_->step();
    ++steps_;
  }

  // The mean batch loss of the steps since the last call, summed over the ranks' shares (collective).
  double epoch_loss() {
    double mean = steps_ ? loss_sum_ / static_cast<double>(steps_) : 0.0;
    group_.sum(&mean, 1);
    loss_sum_ = 0;
    steps_ = 0;
    return mean;
  }

  void remember_best() {
    torch::NoGradGuard no_grad;
    best_.clear();
    for (const auto& p : params_) best_.push_back(p.detach().clone());
  }
  void restore_best() {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < params_.size() && k < best_.size(); ++k) params_[k].copy_(best_[k]);
  }

 private:
  std::vector<torch::Tensor> params_, best_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  DataParallelGroup group_;
  std::unique_ptr<GradientSum> grad_sum_;
  double loss_sum_ = 0;
  int64_t steps_ = 0;
};

}  // namespace r2rec
