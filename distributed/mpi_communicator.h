// MPI backend of Communicator: CPU memory, non-blocking MPI collectives (MPI_Iallreduce, MPI_Ibcast,
// MPI_Iallgather(v), MPI_Ireduce_scatter_block, MPI_Isend/Irecv, MPI_Ibarrier) on a private duplicate of
// the group's MPI communicator, so Work can be polled against a deadline (MPI_Testall).
//
//  - Every MPI call goes through R2REC_MPI_CHECK: CommError "mpi: <call> failed at file:line: <MPI's
//    error string>"; the communicator's error handler is MPI_ERRORS_RETURN.
//  - Counts above INT_MAX (MPI's `int count`) are split into chunks of at most max_chunk elements, each its
//    own request: all_reduce, broadcast, send/recv chunk the buffer; all_gather chunks each rank's block
//    with a resized datatype so chunk i of rank r lands at recv + (r*count + i*chunk) elements.
//    all_gatherv and reduce_scatter need every count <= max_chunk (else CommError naming the limit).
//  - bf16 and f16 reductions use user-defined MPI_Ops (one per dtype × sum/max/min): each element pair is
//    widened to f32, combined in f32, and rounded back once with round-to-nearest-even (see the .cpp).
//  - avg = sum, then divide by the group size when the Work completes (integers: truncating division).
#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace r2rec {

class MpiCommunicator : public Communicator {
 public:
  // Duplicates `comm` (collective over it). max_chunk: largest element count per MPI call (tests lower it
  // to exercise chunking; the default is INT_MAX).
  MpiCommunicator(MPI_Comm comm, double timeout_s, size_t max_chunk = 0);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }
  MemoryKind memory() const override { return MemoryKind::kHost; }
  bool supports_progress_thread() const override { return thread_multiple_; }
  MPI_Comm comm() const { return comm_; }
  size_t max_chunk() const { return max_chunk_; }

  [[nodiscard]] WorkPtr all_reduce(void* data, size_t count, DType dtype, ReduceOp op) override;
  [[nodiscard]] WorkPtr broadcast(void* data, size_t count, DType dtype, int root) override;
  [[nodiscard]] WorkPtr all_gather(const void* send, void* recv, size_t count, DType dtype) override;
  [[nodiscard]] WorkPtr all_gatherv(const void* send, void* recv, const std::vector<size_t>& counts,
                                    DType dtype) override;
  [[nodiscard]] WorkPtr reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                                       ReduceOp op) override;
  [[nodiscard]] WorkPtr send(const void* data, size_t count, DType dtype, int peer, int tag) override;
  [[nodiscard]] WorkPtr recv(void* data, size_t count, DType dtype, int peer, int tag) override;
  [[nodiscard]] WorkPtr barrier() override;
  std::unique_ptr<Communicator> split(const std::vector<int>& ranks) override;

  using Communicator::all_gather;
  using Communicator::all_gatherv;
  using Communicator::all_reduce;
  using Communicator::broadcast;
  using Communicator::recv;
  using Communicator::reduce_scatter;
  using Communicator::send;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  size_t max_chunk_;
  bool thread_multiple_ = false;  // MPI was initialised with MPI_THREAD_MULTIPLE
};

// The MPI communicator over MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& options);

}  // namespace r2rec
