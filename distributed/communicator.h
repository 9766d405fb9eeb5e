// Communicator: *who talks to whom* (a group of ranks over one backend), separate from *what is sent*.
//
// Every op erases to (pointer, count, dtype[, op]) and returns an asynchronous Work handle; typed and
// at::Tensor front-ends are thin wrappers over the flat-buffer ops. Backends (chosen at run time by
// make_communicator):
//   "mpi"  : CPU memory, non-blocking MPI collectives (mpi_communicator.h)
//   "nccl" : CUDA device memory, NCCL on a private CUDA stream, bootstrapped over MPI (nccl_communicator.h)
// An op or dtype a backend lacks throws CommError naming backend, op and dtype.
//
// Buffer layouts (n = size(), r = rank(), all counts in elements):
//   all_reduce     data[count]                                   in place
//   broadcast      data[count]                                   in place; root's data is sent
//   all_gather     send[count]           -> recv[n * count]      recv[r*count .. ) = send of rank r
//   all_gatherv    send[counts[r]]       -> recv[sum counts]     rank r's block at sum(counts[0..r))
//   reduce_scatter send[n * recv_count]  -> recv[recv_count]     recv = op over ranks of block r of send
//   send / recv    data[count] to / from `peer` with `tag` (tag >= 0)
// Every rank of the group must issue the same collectives in the same order with the same count/dtype/op.
// Integer sums wrap on overflow (as in MPI and NCCL); avg of integers truncates.
//
// The Work contract (after c10d's Work; every op is [[nodiscard]]: a dropped Work is an op nobody waits for, a
// hang or a reused buffer waiting to happen):
//   - the buffers must stay valid and untouched until the op completes (the tensor front-ends keep the
//     tensors alive inside the Work);
//   - is_completed() polls without blocking; it returns true once results are in the buffers;
//   - wait(timeout_s) blocks until completion or the deadline; on the deadline it throws CommError
//     "<phase>: <op> of <bytes> timed out after <t> s; <who did not answer>" (see watchdog.h), and on a
//     library error CommError with the library's message. A Work that timed out is poisoned: the job is
//     expected to end (MpiSession::abort_job(kExitRuntime)); the communicator may not be used again.
//   - wait() without argument uses the communicator's default timeout (DistributedConfig::timeout_s).
//   - a Work is used by one thread at a time; ops of one communicator are issued from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;  // only the tensor front-ends (communicator.cpp) need the full type
}

namespace r2rec {

enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kI64, kU8 };
enum class ReduceOp : uint8_t { kSum, kAvg, kMax, kMin };
enum class MemoryKind : uint8_t { kHost, kCuda };

const char* dtype_name(DType dtype);      // "f32", "bf16", ...
size_t dtype_size(DType dtype);           // bytes per element
const char* reduce_op_name(ReduceOp op);  // "sum", "avg", "max", "min"
// "4.0 MB", "12 B": the size of count elements of dtype, for messages.
std::string bytes_label(size_t count, DType dtype);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kF64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kI64;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kU8;
};

// Asynchronous handle of one op. See the contract above.
class Work {
 public:
  Work(std::string op, size_t count, DType dtype, double default_timeout_s);
  virtual ~Work();
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  bool is_completed();
  void wait(double timeout_s);
  void wait() { wait(default_timeout_s_); }

  const std::string& op() const { return op_; }  // "all_reduce", "broadcast(root 2)", ...
  // Keeps `owner` (e.g. a tensor) alive until this Work is destroyed.
  void hold(std::shared_ptr<void> owner) { held_.push_back(std::move(owner)); }
  // Runs `fn` once, right after the backend reports completion (e.g. the division of an average).
  void then(std::function<void()> fn) { then_.push_back(std::move(fn)); }

 protected:
  // Backend hooks. poll(): true once done (may throw CommError on a library error).
  // abort(): called once on a timeout, before the CommError is thrown (e.g. ncclCommAbort).
  virtual bool poll() = 0;
  virtual void abort() {}

 private:
  void finish();

  std::string op_;
  size_t count_;
  DType dtype_;
  double default_timeout_s_;
  bool done_ = false;
  bool failed_ = false;
  std::vector<std::shared_ptr<void>> held_;
  std::vector<std::function<void()>> then_;
};
using WorkPtr = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "mpi" | "nccl"
  virtual MemoryKind memory() const = 0;    // where buffers must live
  // True when ops may be progressed by polling is_completed() from a second thread while the issuing thread
  // computes (MPI with MPI_THREAD_MULTIPLE); false when the backend progresses on its own (NCCL's stream) or
  // a second thread may not enter the library.
  virtual bool supports_progress_thread() const { return false; }
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double seconds) { timeout_s_ = seconds; }

  // ---- flat-buffer ops (layouts in the header comment) ----
  [[nodiscard]] virtual WorkPtr all_reduce(void* data, size_t count, DType dtype, ReduceOp op) = 0;
  [[nodiscard]] virtual WorkPtr broadcast(void* data, size_t count, DType dtype, int root) = 0;
  [[nodiscard]] virtual WorkPtr all_gather(const void* send, void* recv, size_t count, DType dtype) = 0;
  [[nodiscard]] virtual WorkPtr all_gatherv(const void* send, void* recv, const std::vector<size_t>& counts,
                                            DType dtype) = 0;
  [[nodiscard]] virtual WorkPtr reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                                               ReduceOp op) = 0;
  [[nodiscard]] virtual WorkPtr send(const void* data, size_t count, DType dtype, int peer, int tag) = 0;
  [[nodiscard]] virtual WorkPtr recv(void* data, size_t count, DType dtype, int peer, int tag) = 0;
  [[nodiscard]] virtual WorkPtr barrier() = 0;

  // Sub-communicator over `ranks` (ascending ranks of this communicator, e.g. the learner group). Collective over this
  // communicator: every rank calls it with the same list; ranks outside the list get nullptr. The child inherits
  // backend and timeout; its rank i is ranks[i].
  virtual std::unique_ptr<Communicator> split(const std::vector<int>& ranks) = 0;

  // ---- typed front-ends ----
  template <typename T>
  [[nodiscard]] WorkPtr all_reduce(T* data, size_t count, ReduceOp op) {
    return all_reduce(static_cast<void*>(data), count, DTypeOf<T>::value, op);
  }
  template <typename T>
  [[nodiscard]] WorkPtr broadcast(T* data, size_t count, int root) {
    return broadcast(static_cast<void*>(data), count, DTypeOf<T>::value, root);
  }

  // ---- at::Tensor front-ends: contiguous tensors on this backend's memory; the Work holds them ----
  [[nodiscard]] WorkPtr all_reduce(const at::Tensor& t, ReduceOp op);
  [[nodiscard]] WorkPtr broadcast(const at::Tensor& t, int root);
  [[nodiscard]] WorkPtr all_gather(const at::Tensor& send, const at::Tensor& recv);  // recv.numel = n*send.numel
  [[nodiscard]] WorkPtr all_gatherv(const at::Tensor& send, const at::Tensor& recv, const std::vector<size_t>& counts);
  [[nodiscard]] WorkPtr reduce_scatter(const at::Tensor& send, const at::Tensor& recv, ReduceOp op);  // send = n*recv
  [[nodiscard]] WorkPtr send(const at::Tensor& t, int peer, int tag);
  [[nodiscard]] WorkPtr recv(const at::Tensor& t, int peer, int tag);

 protected:
  // Throws CommError "<backend>: <what>" (argument checks shared by the backends).
  [[noreturn]] void fail(const std::string& what) const;
  void check_peer(int peer, const char* op) const;
  void check_counts(const std::vector<size_t>& counts) const;

  double timeout_s_ = 300.0;
};

struct CommOptions {
  double timeout_s = 300.0;  // DistributedConfig::timeout_s: default deadline of Work::wait()
  int local_rank = 0;        // picks the CUDA device (NCCL)
};

// The communicator over all ranks of MPI_COMM_WORLD for `backend` ("mpi", "nccl", or "auto": nccl when
// compiled in and a CUDA device is present, else mpi). Collective over MPI_COMM_WORLD; MPI must be up.
// Throws CommError "nccl: built without NCCL (R2REC_WITH_NCCL=OFF or NCCL not found)" or
// "nccl: no CUDA device (...)", and ConfigError-style CommError for an unknown name.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const CommOptions& options);

// The DType of a tensor's scalar type; CommError "<context>: tensors of dtype <t> are not supported (...)".
DType tensor_dtype(const at::Tensor& t, const std::string& context);

}  // namespace r2rec
