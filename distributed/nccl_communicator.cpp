// Every CUDA and NCCL call of r2rec lives in this translation unit (compiled only with NCCL).
#include "distributed/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/mpi_check.h"

namespace r2rec {
namespace {

[[noreturn]] void throw_cuda(cudaError_t rc, const char* call, const char* file, int line) {
  throw CommError(std::string("nccl: ") + call + " failed at " + file + ":" + std::to_string(line) + ": " +
                  cudaGetErrorString(rc));
}
[[noreturn]] void throw_nccl(ncclResult_t rc, const char* call, const char* file, int line) {
  throw CommError(std::string("nccl: ") + call + " failed at " + file + ":" + std::to_string(line) + ": " +
                  ncclGetErrorString(rc));
}
#define R2REC_CUDA_CHECK(call)                                                      \
  do {                                                                              \
    const cudaError_t r2rec_rc_ = (call);                                           \
    if (r2rec_rc_ != cudaSuccess) throw_cuda(r2rec_rc_, #call, __FILE__, __LINE__); \
  } while (0)
#define R2REC_NCCL_CHECK(call)                                                      \
  do {                                                                              \
    const ncclResult_t r2rec_rc_ = (call);                                          \
    if (r2rec_rc_ != ncclSuccess) throw_nccl(r2rec_rc_, #call, __FILE__, __LINE__); \
  } while (0)

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kF64:
      return ncclFloat64;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
    case DType::kI32:
      return ncclInt32;
    case DType::kI64:
      return ncclInt64;
    case DType::kU8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

char* at_elem(void* p, size_t i, DType d) { return static_cast<char*>(p) + i * dtype_size(d); }

// State shared by a communicator and its outstanding Works (a Work may outlive a timed-out communicator).
struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  float* scratch = nullptr;  // [1] for barrier
  bool aborted = false;

  void abort() {
    if (!aborted && comm) ncclCommAbort(comm);  // unblocks kernels waiting on a dead peer
    aborted = true;
  }
  ~NcclState() {
    if (stream && !aborted) cudaStreamSynchronize(stream);
    if (comm && !aborted) ncclCommDestroy(comm);
    if (scratch) cudaFree(scratch);
    if (stream) cudaStreamDestroy(stream);
  }
};

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> state, std::string op, size_t count, DType dtype, double timeout_s)
      : Work(std::move(op), count, dtype, timeout_s), state_(std::move(state)) {
    R2REC_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  }
  ~NcclWork() override {
    if (event_) cudaEventDestroy(event_);
  }
  void record() { R2REC_CUDA_CHECK(cudaEventRecord(event_, state_->stream)); }

 protected:
  bool poll() override {
    if (state_->aborted) throw CommError("nccl: " + op() + ": the communicator was aborted by an earlier failure");
    const cudaError_t rc = cudaEventQuery(event_);
    if (rc == cudaSuccess) return true;
    if (rc != cudaErrorNotReady) throw_cuda(rc, "cudaEventQuery", __FILE__, __LINE__);
    ncclResult_t async = ncclSuccess;
    R2REC_NCCL_CHECK(ncclCommGetAsyncError(state_->comm, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      const std::string last = ncclGetLastError(state_->comm);
      state_->abort();
      throw CommError("nccl: " + op() + " failed: " + ncclGetErrorString(async) + (last.empty() ? "" : ": " + last));
    }
    return false;
  }
  void abort() override { state_->abort(); }

 private:
  std::shared_ptr<NcclState> state_;
  cudaEvent_t event_ = nullptr;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<NcclState> state, double timeout_s) : state_(std::move(state)) {
    timeout_s_ = timeout_s;
    R2REC_NCCL_CHECK(ncclCommUserRank(state_->comm, &rank_));
    R2REC_NCCL_CHECK(ncclCommCount(state_->comm, &size_));
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }
  MemoryKind memory() const override { return MemoryKind::kCuda; }

  [[nodiscard]] WorkPtr all_reduce(void* data, size_t count, DType dtype, ReduceOp op) override {
    auto w = begin(std::string("all_reduce(") + reduce_op_name(op) + ")", count, dtype);
    if (count == 0) return end(w);
    R2REC_NCCL_CHECK(ncclAllReduce(data, data, count, nccl_type(dtype), nccl_op(op), state_->comm, state_->stream));
    return end(w);
  }
  [[nodiscard]] WorkPtr broadcast(void* data, size_t count, DType dtype, int root) override {
    check_peer(root, "broadcast");
    auto w = begin("broadcast(root " + std::to_string(root) + ")", count, dtype);
    if (count == 0) return end(w);
    R2REC_NCCL_CHECK(ncclBroadcast(data, data, count, nccl_type(dtype), root, state_->comm, state_->stream));
    return end(w);
  }
  [[nodiscard]] WorkPtr all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    auto w = begin("all_gather", count * size_, dtype);
    if (count == 0) return end(w);
    R2REC_NCCL_CHECK(ncclAllGather(send, recv, count, nccl_type(dtype), state_->comm, state_->stream));
    return end(w);
  }
  [[nodiscard]] WorkPtr all_gatherv(const void* send, void* recv, const std::vector<size_t>& counts,
                                    DType dtype) override {
    check_counts(counts);
    size_t total = 0;
    for (size_t c : counts) total += c;
    auto w = begin("all_gatherv", total, dtype);
    // One broadcast per owner, grouped so NCCL runs them as one launch; the owner's send buffer is its
    // source and its block of recv the destination.
    if (total == 0) return end(w);
    R2REC_NCCL_CHECK(ncclGroupStart());
    size_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      if (counts[r] == 0) continue;  // every rank knows the counts, so all skip the same broadcasts
      const void* src = r == rank_ ? send : nullptr;
      R2REC_NCCL_CHECK(ncclBroadcast(src, at_elem(recv, offset, dtype), counts[r], nccl_type(dtype), r, state_->comm,
                                     state_->stream));
      offset += counts[r];
    }
    R2REC_NCCL_CHECK(ncclGroupEnd());
    return end(w);
  }
  [[nodiscard]] WorkPtr reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                                       ReduceOp op) override {
    auto w = begin(std::string("reduce_scatter(") + reduce_op_name(op) + ")", recv_count * size_, dtype);
    if (recv_count == 0) return end(w);
    R2REC_NCCL_CHECK(
        ncclReduceScatter(send, recv, recv_count, nccl_type(dtype), nccl_op(op), state_->comm, state_->stream));
    return end(w);
  }
  [[nodiscard]] WorkPtr send(const void* data, size_t count, DType dtype, int peer, int tag) override {
    check_p2p(peer, tag, "send");
    auto w = begin("send(to rank " + std::to_string(peer) + ")", count, dtype);
    if (count == 0) return end(w);  // the matching recv of 0 elements skips NCCL too
    R2REC_NCCL_CHECK(ncclGroupStart());
    R2REC_NCCL_CHECK(ncclSend(data, count, nccl_type(dtype), peer, state_->comm, state_->stream));
    R2REC_NCCL_CHECK(ncclGroupEnd());
    return end(w);
  }
  [[nodiscard]] WorkPtr recv(void* data, size_t count, DType dtype, int peer, int tag) override {
    check_p2p(peer, tag, "recv");
    auto w = begin("recv(from rank " + std::to_string(peer) + ")", count, dtype);
    if (count == 0) return end(w);
    R2REC_NCCL_CHECK(ncclGroupStart());
    R2REC_NCCL_CHECK(ncclRecv(data, count, nccl_type(dtype), peer, state_->comm, state_->stream));
    R2REC_NCCL_CHECK(ncclGroupEnd());
    return end(w);
  }
  [[nodiscard]] WorkPtr barrier() override {
    auto w = begin("barrier", 0, DType::kF32);
    R2REC_NCCL_CHECK(
        ncclAllReduce(state_->scratch, state_->scratch, 1, ncclFloat32, ncclSum, state_->comm, state_->stream));
    return end(w);
  }
  std::unique_ptr<Communicator> split(const std::vector<int>& ranks) override {
    for (size_t i = 0; i < ranks.size(); ++i) {
      check_peer(ranks[i], "split");
      if (i > 0 && ranks[i] <= ranks[i - 1]) fail("split: ranks must be ascending and distinct");
    }
    const auto it = std::find(ranks.begin(), ranks.end(), rank_);
    const bool member = it != ranks.end();
    auto child = std::make_shared<NcclState>();
    R2REC_NCCL_CHECK(ncclCommSplit(state_->comm, member ? 0 : NCCL_SPLIT_NOCOLOR,
                                   member ? static_cast<int>(it - ranks.begin()) : 0, &child->comm, nullptr));
    if (!member) return nullptr;
    R2REC_CUDA_CHECK(cudaStreamCreateWithFlags(&child->stream, cudaStreamNonBlocking));
    R2REC_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&child->scratch), sizeof(float)));
    return std::make_unique<NcclCommunicator>(child, timeout_s_);
  }

  using Communicator::all_gather;
  using Communicator::all_gatherv;
  using Communicator::all_reduce;
  using Communicator::broadcast;
  using Communicator::recv;
  using Communicator::reduce_scatter;
  using Communicator::send;

 private:
  std::shared_ptr<NcclWork> begin(const std::string& op, size_t count, DType dtype) {
    if (state_->aborted) fail(op + ": the communicator was aborted by an earlier failure");
    return std::make_shared<NcclWork>(state_, op, count, dtype, timeout_s_);
  }
  // Records the Work's completion event after whatever was enqueued (nothing for size-0 ops: the event
  // then completes with the stream's earlier work).
  WorkPtr end(const std::shared_ptr<NcclWork>& w) {
    w->record();
    return w;
  }
  void check_p2p(int peer, int tag, const char* op) const {
    check_peer(peer, op);
    if (tag != 0)
      fail(std::string(op) + " with tag " + std::to_string(tag) +
           " is not supported (NCCL matches point-to-point messages by order; use tag 0)");
  }

  std::shared_ptr<NcclState> state_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool cuda_device_present() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options) {
  int rank = 0, size = 1;
  R2REC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  R2REC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  // Agree first: one rank without a device must not leave the others waiting in the bootstrap.
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess) devices = 0;
  int min_devices = devices;
  R2REC_MPI_CHECK(MPI_Allreduce(&devices, &min_devices, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (min_devices == 0) {
    throw CommError(std::string("nccl: no CUDA device (") +
                    (devices == 0
                         ? "this rank: " + std::string(probe == cudaSuccess ? "0 devices" : cudaGetErrorString(probe))
                         : "another rank has none") +
                    "); use distributed.backend=mpi");
  }
  R2REC_CUDA_CHECK(cudaSetDevice(options.local_rank % devices));

  ncclUniqueId id;
  if (rank == 0) R2REC_NCCL_CHECK(ncclGetUniqueId(&id));
  R2REC_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD));
  auto state = std::make_shared<NcclState>();
  R2REC_CUDA_CHECK(cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking));
  R2REC_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&state->scratch), sizeof(float)));
  R2REC_NCCL_CHECK(ncclCommInitRank(&state->comm, size, id, rank));
  return std::make_unique<NcclCommunicator>(state, options.timeout_s);
}

void* cuda_alloc(size_t bytes) {
  void* p = nullptr;
  R2REC_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
  return p;
}
void cuda_free(void* device_ptr) {
  if (device_ptr) cudaFree(device_ptr);
}
void cuda_copy_to_device(void* device_dst, const void* host_src, size_t bytes) {
  R2REC_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
}
void cuda_copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  R2REC_CUDA_CHECK(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost));
}

}  // namespace r2rec
