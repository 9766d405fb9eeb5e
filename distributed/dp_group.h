// DataParallelGroup: a trainer's one door to the network (after c10d's ProcessGroup and XGBoost's CommGroup).
//
// A trainer (SFT, pretrain, GRPO learners, eval, the classical baselines) is handed one group and never builds a
// communicator itself. The group owns two communicators over the same ranks:
//   host   : always MPI, over CPU memory — the scalar sums of a step (loss-token counts, reward sums, metric
//            sums), agreements and anything the CPU computes;
//   device : the backend of distributed.backend — the gradient buckets (GradientSynchronizer) and, in split
//            GRPO, the weight broadcast. "auto" and "mpi" give MPI (today: the same object as host); "nccl"
//            gives NCCL over the ranks' GPUs, and the config refuses it by name until the trainers place their
//            models on a GPU (core/config.cpp), so no trainer can be handed a device communicator its tensors
//            do not live on.
// with distributed.bucket_mb (the gradient buckets' cap) and distributed.timeout_s (each wait's deadline).
//
// Stream contract (what the GPU path needs; after c10d's Work.hpp and llm.c's zero.cuh):
//   - a collective on the device communicator must start only after the work already issued on the producer's
//     stream (backward writing the gradients) has finished;
//   - waiting on its Work must make the *consumer* (the optimizer's stream) wait for the result, not the host.
//   What the backends do today:
//   - MPI (every trainer in this version: the models live on the CPU): buffers are host memory and there are no
//     streams; a non-blocking collective progresses only inside MPI calls (the synchroniser's progress thread
//     polls them during backward); Work::wait() blocks the host until the bytes are in place or the deadline
//     passes (CommError). The contract holds trivially: backward has finished writing when a hook fires.
//   - NCCL (distributed/nccl_communicator.cpp): ops run on the communicator's private stream and Work::wait()
//     polls an event recorded after them from the host. The private stream does not yet wait on the
//     producer's stream, and there is no stream-side wait: before trainers run on a GPU (the config refuses
//     distributed.backend=nccl until then) the producer must be synchronised before the launch, or the backend
//     must grow an event wait on the current stream (issue: the GPU path).
// Host sums (sum()) are blocking: they return with the result in place, or throw CommError on the deadline.
//
// Single process (DataParallelGroup::single(), or a world of 1): rank 0 of 1, every sum is the identity, and
// gradients are left as backward wrote them (GradientSum, distributed/gradient_sync.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace r2rec {

struct DataParallelOptions {
  std::string backend = "mpi";  // distributed.backend: the device communicator ("auto", "mpi", "nccl")
  double bucket_mb = 25.0;      // distributed.bucket_mb: gradient bucket cap
  double timeout_s = 300.0;     // distributed.timeout_s: deadline of every wait
  int local_rank = 0;           // the process's rank on its node (picks the CUDA device)
  // How gradients are summed: false (default) through a GradientSynchronizer over the device communicator,
  // buckets launched from the backward hooks; true through one flat host all-reduce after backward (the
  // reference path the synchroniser is tested against; no overlap).
  bool flat_gradients = false;
};

class DataParallelGroup {
 public:
  // One process: rank 0 of 1, no communicator.
  DataParallelGroup() = default;
  static DataParallelGroup single() { return DataParallelGroup(); }
  // Every rank of MPI_COMM_WORLD (collective; MPI must be up).
  static DataParallelGroup world(const DataParallelOptions& options);
  // Over an existing host communicator (e.g. the learners of split GRPO, a split() of the world); the device
  // communicator is made over the same ranks from options.backend. Collective over `host`.
  static DataParallelGroup over(std::shared_ptr<Communicator> host, const DataParallelOptions& options);

  int rank() const { return rank_; }
  int size() const { return size_; }
  const DataParallelOptions& options() const { return options_; }
  // Null for a single process.
  Communicator* host() const { return host_.get(); }
  Communicator* device() const { return device_.get(); }

  // In-place sums over the group's ranks through the host communicator, waited (identity on one rank).
  void sum(float* data, int64_t count) const;
  void sum(double* data, int64_t count) const;

 private:
  static DataParallelGroup make(std::shared_ptr<Communicator> host, const DataParallelOptions& options, bool world);

  int rank_ = 0;
  int size_ = 1;
  DataParallelOptions options_;
  std::shared_ptr<Communicator> host_;
  std::shared_ptr<Communicator> device_;
};

}  // namespace r2rec
