// NCCL backend of Communicator: CUDA device memory, NCCL kernels on a private CUDA stream.
//
// Compiled only when R2REC_NCCL_ENABLED (nccl_communicator.cpp holds every CUDA/NCCL call, over raw
// device pointers: the libtorch of a CPU build has no c10::cuda, so the CUDA runtime API is used directly).
//  - Bootstrap: cudaSetDevice(local_rank % device count); rank 0's ncclUniqueId is broadcast over MPI;
//    ncclCommInitRank. All ranks first agree (MPI_Allreduce) that each has a device, so a rank without
//    one makes every rank throw CommError "nccl: no CUDA device ..." instead of hanging in the bootstrap.
//  - Work: a cudaEvent recorded on the stream after the op; is_completed() = cudaEventQuery, also checking
//    ncclCommGetAsyncError. On a timeout or an asynchronous NCCL error the communicator is aborted
//    (ncclCommAbort), so no kernel keeps spinning on a dead peer; the communicator is unusable afterwards.
//  - Ops: all_reduce (sum, avg, max, min: ncclAvg needs NCCL >= 2.10), broadcast, all_gather,
//    all_gatherv (grouped ncclBroadcast, one per owner), reduce_scatter, send/recv (grouped, tag 0 only:
//    NCCL matches point-to-point messages by order, not by tag), barrier (an all-reduce of one float),
//    split (ncclCommSplit, collective over the parent).
#pragma once

#include <cstddef>
#include <memory>

#include "distributed/communicator.h"

namespace r2rec {

// The NCCL communicator over MPI_COMM_WORLD (collective; MPI must be up). Throws CommError
// "nccl: no CUDA device (...)" when some rank has none, or "nccl: <call> failed at file:line: <msg>".
std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options);

// True when this rank has at least one CUDA device (false on a CUDA runtime error). Not collective.
bool cuda_device_present();

// Small CUDA helpers for tests and benchmarks (device = the current device). Throw CommError.
void* cuda_alloc(size_t bytes);
void cuda_free(void* device_ptr);
void cuda_copy_to_device(void* device_dst, const void* host_src, size_t bytes);
void cuda_copy_to_host(void* host_dst, const void* device_src, size_t bytes);

}  // namespace r2rec
