// Small libtorch helpers for trainers (include only from .cpp files that already use torch).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "distributed/gradient_sync.h"
#include "trainers/recommender.h"

namespace r2rec {

// Sums the gradients of `params` over all ranks through one flat float buffer, after backward (the path for
// Collectives without a communicator). Trainers normalise their loss by the GLOBAL sample count, so the summed
// gradient is exactly the single-process gradient of the whole batch.
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

// The data-parallel gradient sum of one optimizer step, whatever the Collectives are:
//   with c.comm: a GradientSynchronizer (op = sum) over it, so buckets go on the wire from the backward hooks
//     of the step's last micro-batch while backward continues (the earlier micro-batches accumulate locally);
//   without one and several ranks: sum_gradients after backward; one rank: nothing.
// Per step: before each micro-batch's backward call micro_batch(is_last); after the last one, finish() (also
// on a rank that ran no micro-batch this step: it contributes zeros). Constructing it is collective (the
// synchronizer checks that every rank has the same parameters and copies rank 0's values to all).
class GradientSum {
 public:
  GradientSum(std::vector<torch::Tensor> params, const Collectives& c) : params_(std::move(params)), c_(c) {
    if (c.comm == nullptr || c.world_size <= 1) return;
    GradSyncOptions o;
    o.op = ReduceOp::kSum;
    o.bucket_mb = c.bucket_mb;
    o.timeout_s = c.timeout_s;
    sync_ = std::make_unique<GradientSynchronizer>(params_, *c.comm, o);
  }
  void micro_batch(bool last) {
    if (sync_) sync_->set_sync(last);
  }
  void finish() {
    if (sync_) {
      sync_->set_sync(true);
      sync_->finish();
    } else {
      sum_gradients(params_, c_);
    }
  }
  // Zeroes the gradients in place (in place of Optimizer::zero_grad, whose detach_() refuses the synchroniser's
  // bucket views; libtorch 1.13 has no set_to_none there).
  void zero_grad() {
    torch::NoGradGuard no_grad;
    for (auto& p : params_)
      if (p.grad().defined()) p.mutable_grad().zero_();
  }
  // Buckets of the synchroniser (0 without one).
  size_t buckets() const { return sync_ ? sync_->buckets().size() : 0; }

 private:
  std::vector<torch::Tensor> params_;
  Collectives c_;
  std::unique_ptr<GradientSynchronizer> sync_;
};

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
