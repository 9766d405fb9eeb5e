#include "distributed/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "distributed/mpi_check.h"

namespace r2rec {
namespace {

// ---- 16-bit floats ---------------------------------------------------------------------------------------
// bf16 is the top half of an f32; f16 is IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits).

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float f32_from(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float bf16_to_f32(uint16_t h) { return f32_from(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {  // round to nearest, ties to even; NaN stays a (quiet) NaN
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant × 2^-24
    const float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  if (exp == 31) return f32_from(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  return f32_from(sign | ((exp + 112u) << 23) | (mant << 13));        // rebias 15 -> 127
}

uint16_t f32_to_f16(float f) {  // round to nearest, ties to even
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {  // below 2^-14: subnormal, units of 2^-24 (the ×2^24 is exact)
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(f32_from(a) * 16777216.0f));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = (a - 0x38000000u) >> 13;  // rebias 127 -> 15, keep 10 mantissa bits
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// User-defined reductions for bf16/f16 (MPI has no 16-bit float types; the buffers travel as
// MPI_UINT16_T). MPI calls the function with (in, inout): inout[i] = in[i] (+|max|min) inout[i]. Each pair
// is widened to f32, combined exactly as f32 would, and rounded back once with round-to-nearest-even, so
// a partial sum carries no truncation bias. A reduction over n ranks rounds once per combining step
// (ceil(log2 n) steps for recursive doubling, n-1 for a ring): the same as NCCL's bf16 all-reduce.
template <float (*Widen)(uint16_t), uint16_t (*Narrow)(float), int Kind>
void combine16(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = Widen(a[i]), y = Widen(b[i]);
    const float r = Kind == 0 ? x + y : Kind == 1 ? std::max(x, y) : std::min(x, y);
    b[i] = Narrow(r);
  }
}

MPI_Op op16(DType dtype, ReduceOp op) {
  // Created on first use (MPI is up by then), kept for the life of the process.
  static MPI_Op ops[2][3] = {{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}, {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}};
  static MPI_User_function* fns[2][3] = {
      {combine16<bf16_to_f32, f32_to_bf16, 0>, combine16<bf16_to_f32, f32_to_bf16, 1>,
       combine16<bf16_to_f32, f32_to_bf16, 2>},
      {combine16<f16_to_f32, f32_to_f16, 0>, combine16<f16_to_f32, f32_to_f16, 1>,
       combine16<f16_to_f32, f32_to_f16, 2>}};
  const int d = dtype == DType::kBF16 ? 0 : 1;
  const int k = (op == ReduceOp::kMax) ? 1 : (op == ReduceOp::kMin) ? 2 : 0;
  if (ops[d][k] == MPI_OP_NULL) R2REC_MPI_CHECK(MPI_Op_create(fns[d][k], /*commute=*/1, &ops[d][k]));
  return ops[d][k];
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return MPI_FLOAT;
    case DType::kF64:
      return MPI_DOUBLE;
    case DType::kBF16:
    case DType::kF16:
      return MPI_UINT16_T;
    case DType::kI32:
      return MPI_INT32_T;
    case DType::kI64:
      return MPI_INT64_T;
    case DType::kU8:
      return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(DType dtype, ReduceOp op) {
  if (dtype == DType::kBF16 || dtype == DType::kF16) return op16(dtype, op);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_OP_NULL;
}

// data[i] /= n for count elements (the avg of a completed sum).
void divide(void* data, size_t count, DType dtype, int n) {
  auto each = [&](auto* p) {
    for (size_t i = 0; i < count; ++i) p[i] = static_cast<std::decay_t<decltype(*p)>>(p[i] / n);
  };
  switch (dtype) {
    case DType::kF32:
      each(static_cast<float*>(data));
      break;
    case DType::kF64:
      each(static_cast<double*>(data));
      break;
    case DType::kI32:
      each(static_cast<int32_t*>(data));
      break;
    case DType::kI64:
      each(static_cast<int64_t*>(data));
      break;
    case DType::kU8:
      each(static_cast<uint8_t*>(data));
      break;
    case DType::kBF16:
    case DType::kF16: {
      uint16_t* p = static_cast<uint16_t*>(data);
      const bool bf = dtype == DType::kBF16;
      for (size_t i = 0; i < count; ++i) {
        const float v = (bf ? bf16_to_f32(p[i]) : f16_to_f32(p[i])) / static_cast<float>(n);
        p[i] = bf ? f32_to_bf16(v) : f32_to_f16(v);
      }
      break;
    }
  }
}

// A set of outstanding MPI requests; complete when all are (MPI_Testall).
class MpiWork : public Work {
 public:
  using Work::Work;
  ~MpiWork() override {
    // Requests of non-blocking collectives cannot be freed or cancelled while active (MPI 3.1 §5.12):
    // an abandoned incomplete Work (after a timeout) leaks them; the job is ending anyway.
    if (requests_.empty()) free_types();
  }
  std::vector<MPI_Request> requests_;
  std::vector<MPI_Datatype> types_;  // derived types to free on completion

 protected:
  bool poll() override {
    if (requests_.empty()) return true;
    int flag = 0;
    R2REC_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE));
    if (!flag) return false;
    requests_.clear();
    free_types();
    return true;
  }

 private:
  void free_types() {
    for (MPI_Datatype& t : types_) MPI_Type_free(&t);
    types_.clear();
  }
};

char* at_elem(void* p, size_t i, DType d) { return static_cast<char*>(p) + i * dtype_size(d); }
const char* at_elem(const void* p, size_t i, DType d) { return static_cast<const char*>(p) + i * dtype_size(d); }

}  // namespace

// ---------------------------------------------------------------------------------------------------------

MpiCommunicator::MpiCommunicator(MPI_Comm comm, double timeout_s, size_t max_chunk)
    : max_chunk_(max_chunk ? std::min<size_t>(max_chunk, INT_MAX) : static_cast<size_t>(INT_MAX)) {
  timeout_s_ = timeout_s;
  R2REC_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  R2REC_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  R2REC_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  R2REC_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  thread_multiple_ = level == MPI_THREAD_MULTIPLE;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

WorkPtr MpiCommunicator::all_reduce(void* data, size_t count, DType dtype, ReduceOp op) {
  auto w = std::make_shared<MpiWork>(std::string("all_reduce(") + reduce_op_name(op) + ")", count, dtype, timeout_s_);
  const MPI_Datatype type = mpi_type(dtype);
  const MPI_Op mop = mpi_op(dtype, op);
  for (size_t off = 0; off < count; off += max_chunk_) {
    const int n = static_cast<int>(std::min(max_chunk_, count - off));
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, at_elem(data, off, dtype), n, type, mop, comm_, &w->requests_.back()));
  }
  if (op == ReduceOp::kAvg && size_ > 1) {
    const int n = size_;
    w->then([=] { divide(data, count, dtype, n); });
  }
  return w;
}

WorkPtr MpiCommunicator::broadcast(void* data, size_t count, DType dtype, int root) {
  check_peer(root, "broadcast");
  auto w = std::make_shared<MpiWork>("broadcast(root " + std::to_string(root) + ")", count, dtype, timeout_s_);
  for (size_t off = 0; off < count; off += max_chunk_) {
    const int n = static_cast<int>(std::min(max_chunk_, count - off));
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(MPI_Ibcast(at_elem(data, off, dtype), n, mpi_type(dtype), root, comm_, &w->requests_.back()));
  }
  return w;
}

WorkPtr MpiCommunicator::all_gather(const void* send, void* recv, size_t count, DType dtype) {
  if (count <= max_chunk_) {
    auto w = std::make_shared<MpiWork>("all_gather", count * size_, dtype, timeout_s_);
    if (count == 0) return w;
    w->requests_.emplace_back();
    const MPI_Datatype type = mpi_type(dtype);
    R2REC_MPI_CHECK(MPI_Iallgather(send, static_cast<int>(count), type, recv, static_cast<int>(count), type, comm_,
                                   &w->requests_.back()));
    return w;
  }
  // Large blocks: each rank's block is broadcast from its owner, chunk by chunk (all_gatherv does it).
  return all_gatherv(send, recv, std::vector<size_t>(size_, count), dtype);
}

WorkPtr MpiCommunicator::all_gatherv(const void* send, void* recv, const std::vector<size_t>& counts, DType dtype) {
  check_counts(counts);
  size_t total = 0;
  for (size_t c : counts) total += c;
  auto w = std::make_shared<MpiWork>("all_gatherv", total, dtype, timeout_s_);
  const MPI_Datatype type = mpi_type(dtype);
  if (total <= max_chunk_) {  // every count and displacement fits an int
    std::vector<int> n(size_), displ(size_);
    for (int r = 0, d = 0; r < size_; ++r) {
      n[r] = static_cast<int>(counts[r]);
      displ[r] = d;
      d += n[r];
    }
    if (total == 0) return w;
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(
        MPI_Iallgatherv(send, n[rank_], type, recv, n.data(), displ.data(), type, comm_, &w->requests_.back()));
    return w;
  }
  // Beyond int range: own block copied in place, then one chunked broadcast per owner.
  size_t offset = 0;
  for (int r = 0; r < size_; ++r) {
    char* block = at_elem(recv, offset, dtype);
    if (r == rank_) std::memcpy(block, send, counts[r] * dtype_size(dtype));
    for (size_t off = 0; off < counts[r]; off += max_chunk_) {
      const int n = static_cast<int>(std::min(max_chunk_, counts[r] - off));
      w->requests_.emplace_back();
      R2REC_MPI_CHECK(MPI_Ibcast(at_elem(block, off, dtype), n, type, r, comm_, &w->requests_.back()));
    }
    offset += counts[r];
  }
  return w;
}

WorkPtr MpiCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, ReduceOp op) {
  auto w = std::make_shared<MpiWork>(std::string("reduce_scatter(") + reduce_op_name(op) + ")", recv_count * size_,
                                     dtype, timeout_s_);
  if (recv_count == 0) return w;
  const MPI_Datatype type = mpi_type(dtype);
  const MPI_Op mop = mpi_op(dtype, op);
  if (recv_count <= max_chunk_) {
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(
        MPI_Ireduce_scatter_block(send, recv, static_cast<int>(recv_count), type, mop, comm_, &w->requests_.back()));
  } else {
    // Beyond int range: block r of every rank's send is reduced onto rank r, chunk by chunk.
    for (int r = 0; r < size_; ++r) {
      for (size_t off = 0; off < recv_count; off += max_chunk_) {
        const int n = static_cast<int>(std::min(max_chunk_, recv_count - off));
        w->requests_.emplace_back();
        R2REC_MPI_CHECK(MPI_Ireduce(at_elem(send, r * recv_count + off, dtype),
                                    r == rank_ ? at_elem(recv, off, dtype) : nullptr, n, type, mop, r, comm_,
                                    &w->requests_.back()));
      }
    }
  }
  if (op == ReduceOp::kAvg && size_ > 1) {
    const int n = size_;
    w->then([=] { divide(recv, recv_count, dtype, n); });
  }
  return w;
}

WorkPtr MpiCommunicator::send(const void* data, size_t count, DType dtype, int peer, int tag) {
  check_peer(peer, "send");
  if (tag < 0) fail("send: tag " + std::to_string(tag) + " is negative");
  auto w = std::make_shared<MpiWork>("send(to rank " + std::to_string(peer) + ", tag " + std::to_string(tag) + ")",
                                     count, dtype, timeout_s_);
  // Chunks of one message keep their order: MPI does not overtake on the same (peer, tag, comm).
  size_t off = 0;
  do {
    const int n = static_cast<int>(std::min(max_chunk_, count - off));
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(MPI_Isend(at_elem(data, off, dtype), n, mpi_type(dtype), peer, tag, comm_, &w->requests_.back()));
    off += static_cast<size_t>(n);
  } while (off < count);
  return w;
}

WorkPtr MpiCommunicator::recv(void* data, size_t count, DType dtype, int peer, int tag) {
  check_peer(peer, "recv");
  if (tag < 0) fail("recv: tag " + std::to_string(tag) + " is negative");
  auto w = std::make_shared<MpiWork>("recv(from rank " + std::to_string(peer) + ", tag " + std::to_string(tag) + ")",
                                     count, dtype, timeout_s_);
  size_t off = 0;
  do {  // a size-0 message is still matched, so send and recv of 0 elements pair up
    const int n = static_cast<int>(std::min(max_chunk_, count - off));
    w->requests_.emplace_back();
    R2REC_MPI_CHECK(MPI_Irecv(at_elem(data, off, dtype), n, mpi_type(dtype), peer, tag, comm_, &w->requests_.back()));
    off += static_cast<size_t>(n);
  } while (off < count);
  return w;
}

WorkPtr MpiCommunicator::barrier() {
  auto w = std::make_shared<MpiWork>("barrier", 0, DType::kU8, timeout_s_);
  w->requests_.emplace_back();
  R2REC_MPI_CHECK(MPI_Ibarrier(comm_, &w->requests_.back()));
  return w;
}

std::unique_ptr<Communicator> MpiCommunicator::split(const std::vector<int>& ranks) {
  for (size_t i = 0; i < ranks.size(); ++i) {
    check_peer(ranks[i], "split");
    if (i > 0 && ranks[i] <= ranks[i - 1]) fail("split: ranks must be ascending and distinct");
  }
  if (std::find(ranks.begin(), ranks.end(), rank_) == ranks.end()) return nullptr;
  // Only the members take part (MPI_Comm_create_group), so other ranks are never blocked by it.
  MPI_Group world_group, group;
  R2REC_MPI_CHECK(MPI_Comm_group(comm_, &world_group));
  R2REC_MPI_CHECK(MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &group));
  MPI_Comm sub = MPI_COMM_NULL;
  R2REC_MPI_CHECK(MPI_Comm_create_group(comm_, group, /*tag=*/7301, &sub));
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  auto child = std::make_unique<MpiCommunicator>(sub, timeout_s_, max_chunk_);
  MPI_Comm_free(&sub);
  return child;
}

std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options.timeout_s);
}

}  // namespace r2rec
