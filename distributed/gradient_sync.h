// GradientSynchronizer: data-parallel gradient averaging over the learner group, c10d Reducer style.
//
// Setup (constructor, collective over `comm`):
//   1. check_same_parameters: same count, shapes, dtypes and requires_grad on every rank, else CommError on
//      every rank naming the first differing parameter index and both shapes;
//   2. broadcast_parameters: rank 0's initial values overwrite every replica, so all start equal;
//   3. assign_buckets over the parameters that require grad (cap = bucket_mb); bucket j is one flat
//      tensor flat_j[numel_j] of its dtype, and parameter k = params_j[i] owns the slice
//      flat_j[offsets_j[i] .. + numel_k), viewed as k's shape ("gradient as bucket view"): .grad() of each
//      parameter is set to that view, so autograd accumulates straight into the bucket;
//   4. a post-hook on each parameter's grad accumulator (AccumulateGrad), which runs once per backward right
//      after the gradient was added to .grad().
//
// One synchronised step (sync enabled):
//   backward: each hook marks its parameter ready (copying .grad() into its slice when .grad() is not the
//     view, e.g. after zero_grad(set_to_none)). With overlap on, once every parameter of bucket j is ready
//     AND buckets 0..j-1 are launched, all_reduce(flat_j, avg) is launched at once, asynchronously; a later
//     bucket that fills first waits for the earlier ones, so every rank launches 0, 1, 2, ... in that order.
//     Open MPI progresses non-blocking collectives only inside MPI calls, so a progress thread polls the
//     buckets in flight during backward (GradSyncOptions::progress_thread), or else each hook does.
//   finish(): parameters whose hook did not fire (unused in this step on this rank) contribute their
//     current .grad() or zeros; the remaining buckets are launched in order; all are waited with the
//     deadline; afterwards .grad() of every parameter is the view of its slice, holding
//        grad_k = (1/W) Σ_r grad_k^(r)          (W = comm.size(); avg done by the backend)
//     or the plain sum Σ_r grad_k^(r) with GradSyncOptions::op = kSum (trainers that normalise their loss by
//     the global token count already divide by the whole batch).
//     Every rank issues exactly the same collectives in the same order, whatever its local graph was.
//   Between a synchronised backward and finish(), .grad() of a launched bucket is being reduced in place:
//   do not read or write it there.
//
// Gradient accumulation: set_sync(false) (or a NoSyncScope) makes backward accumulate locally only (hooks
// do nothing, finish() returns at once); the micro-step after set_sync(true) reduces the sum of all
// micro-steps. A parameter whose hook fires twice in one synchronised step (two backward passes without
// no_sync) is an error: its bucket may already be on the wire.
//
// Threading: hooks run on the thread calling backward() (CPU autograd does); that thread must be the one
// that issues the communicator's ops.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "distributed/buckets.h"
#include "distributed/communicator.h"
#include "distributed/dp_group.h"

namespace r2rec {

struct GradSyncOptions {
  double bucket_mb = 25.0;       // DistributedConfig::bucket_mb: bucket cap; smaller = earlier first launch,
                                 // more collectives (per-call latency). 0 = one bucket per parameter.
  double timeout_s = 300.0;      // DistributedConfig::timeout_s: deadline of each bucket's wait in finish()
  bool overlap = true;           // launch buckets from the backward hooks; false: all of them in finish()
  ReduceOp op = ReduceOp::kAvg;  // kAvg (mean over ranks) or kSum
  // With overlap on the MPI backend under MPI_THREAD_MULTIPLE: a helper thread polls the buckets in flight
  // every `progress_poll_us` during backward (Open MPI advances a non-blocking collective only inside an MPI
  // call, and the hooks alone poll only between layers). The thread touches only launched Works, and
  // finish() joins it before waiting on them itself. Used only where Communicator::supports_progress_thread().
  // Measured (bench_gradient_sync, np 2, 24 MB MLP, 4 MB buckets, loaded 2-core box, 8 runs): step time
  // ratio no-overlap / overlap 0.99-1.52 (median 1.12) with the thread, 0.89-1.41 (median 0.96) without.
  bool progress_thread = true;
  int progress_poll_us = 50;
};

class GradientSynchronizer {
 public:
  // Collective over `comm` (the learner group). `comm` must outlive this object.
  GradientSynchronizer(std::vector<torch::Tensor> params, Communicator& comm, const GradSyncOptions& options = {});
  ~GradientSynchronizer();  // removes the hooks
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  // false: backward accumulates locally (earlier micro-steps of gradient accumulation).
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }

  // Call after the last backward of a step: completes the average. No-op while sync() is false.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Indices into the constructor's `params` of the parameters that are synchronised (requires_grad).
  const std::vector<size_t>& synced() const { return synced_; }

  // What the last synchronised step did (for tests and logs).
  struct StepStats {
    std::vector<size_t> launch_order;          // bucket indices, in launch order (always 0, 1, 2, ...)
    std::vector<bool> launched_in_backward;    // per bucket: launched from a hook (true) or from finish()
    std::vector<int64_t> hooks_before_launch;  // per bucket: hooks fired when it was launched
    int64_t hooks_fired = 0;                   // hooks that fired in this step's backward pass(es)
    size_t unused_params = 0;                  // synced parameters whose hook did not fire on this rank
  };
  const StepStats& last_step() const { return last_; }

 private:
  struct Hook;
  void on_grad_ready(size_t slot);  // slot = position in synced_
  void launch_ready_buckets();
  void launch(size_t bucket);
  void poll_in_flight();
  void reset_step();
  void stop_progress();

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  GradSyncOptions options_;
  bool sync_ = true;

  std::vector<size_t> synced_;        // param index for each slot
  std::vector<Bucket> buckets_;       // over slots (Bucket::params are slot indices)
  std::vector<torch::Tensor> flats_;  // flat_j[numel_j]
  std::vector<torch::Tensor> views_;  // per slot: its slice of its bucket, in the parameter's shape
  std::vector<size_t> bucket_of_;     // per slot
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive so hooks persist
  std::vector<uintptr_t> hook_keys_;

  // Per-step state.
  std::vector<bool> ready_;      // per slot
  std::vector<size_t> pending_;  // per bucket: slots not yet ready
  std::vector<WorkPtr> works_;   // per bucket, null until launched
  size_t next_launch_ = 0;       // buckets [0, next_launch_) are launched
  bool in_step_ = false;
  StepStats current_, last_;

  // Progress thread (options_.progress_thread): started at a step's first launch, joined in finish().
  bool use_progress_thread_ = false;
  std::thread progress_;
  std::mutex progress_mu_;
  std::vector<WorkPtr> progress_works_;  // launched Works, handed to the thread under progress_mu_
  std::atomic<bool> progress_stop_{false};
  bool in_backward_launch_ = false;  // launch() called from a hook
};

// Disables synchronisation for its lifetime (the earlier micro-steps of gradient accumulation).
class NoSyncScope {
 public:
  explicit NoSyncScope(GradientSynchronizer& sync) : sync_(sync), previous_(sync.sync()) { sync_.set_sync(false); }
  ~NoSyncScope() { sync_.set_sync(previous_); }
  NoSyncScope(const NoSyncScope&) = delete;
  NoSyncScope& operator=(const NoSyncScope&) = delete;

 private:
  GradientSynchronizer& sync_;
  bool previous_;
};

// The data-parallel gradient sum of one optimizer step over a group (op = sum: the trainers normalise their
// loss by the GLOBAL sample count, so the summed gradient is the single-process gradient of the whole batch):
//   a group of several ranks: a GradientSynchronizer over group.device(), so buckets go on the wire from the
//     backward hooks of the step's last micro-batch while backward continues (earlier micro-batches accumulate
//     locally); with options().flat_gradients, one flat host all-reduce after backward instead;
//   one rank: nothing.
// Per step: before each micro-batch's backward call micro_batch(is_last); after the last one, finish() (also on
// a rank that ran no micro-batch this step: it contributes zeros). Constructing it is collective (the
// synchroniser checks that every rank has the same parameters and copies rank 0's values to all).
class GradientSum {
 public:
  GradientSum(std::vector<torch::Tensor> params, const DataParallelGroup& group);
  void micro_batch(bool last);
  void finish();
  // Zeroes the gradients in place (in place of Optimizer::zero_grad, whose detach_() refuses the synchroniser's
  // bucket views; libtorch 1.13 has no set_to_none there).
  void zero_grad();
  // Buckets of the synchroniser (0 without one).
  size_t buckets() const { return sync_ ? sync_->buckets().size() : 0; }

 private:
  void sum_flat();

  std::vector<torch::Tensor> params_;
  DataParallelGroup group_;
  std::unique_ptr<GradientSynchronizer> sync_;
};

}  // namespace r2rec
