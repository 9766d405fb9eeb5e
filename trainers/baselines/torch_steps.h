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
  // Collective (every rank constructs its model and steps together). The gradient sum is built here, before any
  // forward pass: building it copies rank 0's parameter values into the other ranks' tensors in place, which
  // would invalidate the autograd graph of a forward already taken (it did, at the first SASRec step on rank 1:
  // "modified by an inplace operation", and the job waited for that rank until its timeout).
  BatchSteps(std::vector<torch::Tensor> params, std::unique_ptr<torch::optim::Optimizer> optimizer,
             const DataParallelGroup& group)
      : params_(std::move(params)),
        optimizer_(std::move(optimizer)),
        group_(group),
        grad_sum_(std::make_unique<GradientSum>(params_, group_)) {}

  // One global batch. `loss` is this rank's slice's share of the global-batch mean loss, undefined when the
  // slice is empty (the rank still joins the gradient sum): backward, gradients summed, optimizer step.
  void step(const torch::Tensor& loss) {
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
