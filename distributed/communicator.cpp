#include "distributed/communicator.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "distributed/mpi_communicator.h"
#if R2REC_HAVE_NCCL
#include "distributed/nccl_communicator.h"
#endif
#include "distributed/watchdog.h"

namespace r2rec {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF64:
      return "f64";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
    case DType::kU8:
      return "u8";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kBF16:
    case DType::kF16:
      return 2;
    case DType::kU8:
      return 1;
  }
  return 0;
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

std::string bytes_label(size_t count, DType dtype) {
  const double bytes = static_cast<double>(count) * static_cast<double>(dtype_size(dtype));
  char buf[64];
  if (bytes < 1024.0)
    std::snprintf(buf, sizeof(buf), "%.0f B", bytes);
  else if (bytes < 1024.0 * 1024.0)
    std::snprintf(buf, sizeof(buf), "%.1f KB", bytes / 1024.0);
  else if (bytes < 1024.0 * 1024.0 * 1024.0)
    std::snprintf(buf, sizeof(buf), "%.1f MB", bytes / 1048576.0);
  else
    std::snprintf(buf, sizeof(buf), "%.2f GB", bytes / 1073741824.0);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Work

Work::Work(std::string op, size_t count, DType dtype, double default_timeout_s)
    : op_(std::move(op)), count_(count), dtype_(dtype), default_timeout_s_(default_timeout_s) {}

Work::~Work() = default;

void Work::finish() {
  done_ = true;
  for (auto& fn : then_) fn();
  then_.clear();
}

bool Work::is_completed() {
  if (done_) return true;
  if (failed_) return false;
  if (poll()) finish();
  return done_;
}

void Work::wait(double timeout_s) {
  if (done_) return;
  const std::string label = op_ + " of " + bytes_label(count_, dtype_);
  if (failed_) throw CommError(label + ": waited on again after it timed out");
  // The op is the watchdog's before the first poll: Open MPI progresses only inside MPI_Test, and a progress call
  // that does not return (a CI run saw a rank stay 117 s in a weight sync "outside any communication op" while its
  // peer was SIGSTOPped) must still meet the backstop at deadline + grace. The record is rewritten (one pwrite)
  // only when the op does not complete at that first poll, so a completed op costs a lock, not a syscall.
  Watchdog* dog = Watchdog::active();
  if (dog) dog->op_begin(label, timeout_s, /*publish=*/false);
  struct EndOp {
    Watchdog* dog;
    ~EndOp() {
      if (dog) dog->op_end();
    }
  } end_op{dog};
  if (poll()) {
    finish();
    return;
  }
  if (dog) dog->publish();  // peers diagnosing right now see which op this rank waits in

  // Poll. Open MPI progresses a non-blocking collective only inside MPI_Test, so the first second spins on
  // poll() alone, like a blocking MPI call does; later polls sleep 20 µs in between, so a long wait (a slow
  // peer) leaves the core to others. Measured on the 2-core build box at load ~5 (np 2, 4 MB f32):
  // yielding between polls (sched_yield) took 10-20 ms against 1-2 ms spinning: each yield handed the
  // core to another process for a whole time slice.
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  const auto spin_until = start + std::chrono::milliseconds(1000);
  auto next_peer_check = start + std::chrono::milliseconds(250);
  // Ends the wait for good: the request is cancelled and `what` (after "<phase>: <label> ") thrown.
  const auto give_up = [&](const std::string& what) {
    failed_ = true;
    abort();
    const std::string phase = current_phase().empty() ? "(no phase)" : current_phase();
    throw CommError(phase + ": " + label + " " + what);
  };
  while (!poll()) {
    const auto now = Clock::now();
    if (dog && now >= next_peer_check) {  // a peer that failed on its own will never join this op
      next_peer_check = now + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(dog->peer_check_interval_s()));
      const std::string failed = dog->failed_peers();
      if (!failed.empty()) give_up("abandoned: " + failed);
    }
    if (now >= deadline) {
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%g", timeout_s);
      give_up(std::string("timed out after ") + secs + " s; " +
              (dog ? dog->diagnose(op_) : "no watchdog running, so the missing rank is unknown"));
    }
    if (now >= spin_until) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  finish();
}

// ---------------------------------------------------------------------------------------------------------
// Argument checks shared by the backends

void Communicator::fail(const std::string& what) const { throw CommError(std::string(backend()) + ": " + what); }

void Communicator::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= size())
    fail(std::string(op) + ": rank " + std::to_string(peer) + " is outside this group of " + std::to_string(size()));
}

void Communicator::check_counts(const std::vector<size_t>& counts) const {
  if (static_cast<int>(counts.size()) != size())
    fail("all_gatherv: " + std::to_string(counts.size()) + " counts given for a group of " + std::to_string(size()));
}

// ---------------------------------------------------------------------------------------------------------
// at::Tensor front-ends

namespace {

DType dtype_of(const at::Tensor& t, const char* backend) { return tensor_dtype(t, backend); }

}  // namespace

// Checks a tensor argument and returns its dtype.
static DType checked(const Communicator& c, const at::Tensor& t, const char* op) {
  auto where = [&](const std::string& what) { return CommError(std::string(c.backend()) + ": " + op + ": " + what); };
  if (!t.defined()) throw where("undefined tensor");
  if (!t.is_contiguous()) throw where("tensor must be contiguous");
  const bool cuda = t.is_cuda();
  if (cuda != (c.memory() == MemoryKind::kCuda))
    throw where(std::string("tensor is on ") + (cuda ? "a CUDA device" : "the CPU") + " but this backend needs " +
                (cuda ? "CPU" : "CUDA") + " tensors");
  return dtype_of(t, c.backend());
}

static WorkPtr holding(WorkPtr w, std::initializer_list<const at::Tensor*> tensors) {
  for (const at::Tensor* t : tensors) w->hold(std::make_shared<at::Tensor>(*t));
  return w;
}

WorkPtr Communicator::all_reduce(const at::Tensor& t, ReduceOp op) {
  const DType d = checked(*this, t, "all_reduce");
  return holding(all_reduce(t.data_ptr(), static_cast<size_t>(t.numel()), d, op), {&t});
}

WorkPtr Communicator::broadcast(const at::Tensor& t, int root) {
  const DType d = checked(*this, t, "broadcast");
  return holding(broadcast(t.data_ptr(), static_cast<size_t>(t.numel()), d, root), {&t});
}

WorkPtr Communicator::all_gather(const at::Tensor& send, const at::Tensor& recv) {
  const DType d = checked(*this, send, "all_gather");
  if (checked(*this, recv, "all_gather") != d) fail("all_gather: send and recv tensors differ in dtype");
  if (recv.numel() != send.numel() * size())
    fail("all_gather: recv has " + std::to_string(recv.numel()) + " elements, expected " +
         std::to_string(send.numel() * size()));
  return holding(all_gather(send.data_ptr(), recv.data_ptr(), static_cast<size_t>(send.numel()), d), {&send, &recv});
}

WorkPtr Communicator::all_gatherv(const at::Tensor& send, const at::Tensor& recv, const std::vector<size_t>& counts) {
  const DType d = checked(*this, send, "all_gatherv");
  if (checked(*this, recv, "all_gatherv") != d) fail("all_gatherv: send and recv tensors differ in dtype");
  check_counts(counts);
  const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
  if (static_cast<size_t>(send.numel()) != counts[rank()] || static_cast<size_t>(recv.numel()) != total)
    fail("all_gatherv: tensor sizes do not match counts");
  return holding(all_gatherv(send.data_ptr(), recv.data_ptr(), counts, d), {&send, &recv});
}

WorkPtr Communicator::reduce_scatter(const at::Tensor& send, const at::Tensor& recv, ReduceOp op) {
  const DType d = checked(*this, send, "reduce_scatter");
  if (checked(*this, recv, "reduce_scatter") != d) fail("reduce_scatter: send and recv tensors differ in dtype");
  if (send.numel() != recv.numel() * size())
    fail("reduce_scatter: send has " + std::to_string(send.numel()) + " elements, expected " +
         std::to_string(recv.numel() * size()));
  return holding(reduce_scatter(send.data_ptr(), recv.data_ptr(), static_cast<size_t>(recv.numel()), d, op),
                 {&send, &recv});
}

WorkPtr Communicator::send(const at::Tensor& t, int peer, int tag) {
  const DType d = checked(*this, t, "send");
  return holding(send(t.data_ptr(), static_cast<size_t>(t.numel()), d, peer, tag), {&t});
}

WorkPtr Communicator::recv(const at::Tensor& t, int peer, int tag) {
  const DType d = checked(*this, t, "recv");
  return holding(recv(t.data_ptr(), static_cast<size_t>(t.numel()), d, peer, tag), {&t});
}

// ---------------------------------------------------------------------------------------------------------
// Factory

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const CommOptions& options) {
  if (backend == "mpi") return make_mpi_communicator(options);
#if R2REC_HAVE_NCCL
  if (backend == "nccl") return make_nccl_communicator(options);
  if (backend == "auto") {
    // make_nccl_communicator first agrees over MPI_COMM_WORLD whether every rank has a device, so either
    // every rank gets NCCL or every rank gets the same "no CUDA device" error and falls back to MPI.
    try {
      return make_nccl_communicator(options);
    } catch (const CommError& e) {
      if (std::string(e.what()).rfind("nccl: no CUDA device", 0) != 0) throw;
    }
    return make_mpi_communicator(options);
  }
#else
  if (backend == "nccl")
    throw CommError(
        "nccl: built without NCCL (configure with R2REC_WITH_NCCL=ON and CUDA + NCCL installed); "
        "use distributed.backend=mpi");
  if (backend == "auto") return make_mpi_communicator(options);
#endif
  throw CommError("distributed.backend: unknown backend '" + backend + "' (expected auto, mpi or nccl)");
}

DType tensor_dtype(const at::Tensor& t, const std::string& context) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kF32;
    case at::kDouble:
      return DType::kF64;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kHalf:
      return DType::kF16;
    case at::kInt:
      return DType::kI32;
    case at::kLong:
      return DType::kI64;
    case at::kByte:
      return DType::kU8;
    default:
      break;
  }
  throw CommError(context + ": tensors of dtype " + std::string(c10::toString(t.scalar_type())) +
                  " are not supported (f32, f64, bf16, f16, i32, i64, u8)");
}

}  // namespace r2rec
