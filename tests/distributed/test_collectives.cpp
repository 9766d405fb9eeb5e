// The collective test suite: every Communicator op, every dtype, odd sizes, under mpirun -np 1/2/3/4 (MPI
// backend). Built with R2REC_TEST_NCCL=1 the same tests run the NCCL backend on device buffers (label gpu,
// world size 1; skipped without a CUDA device).
//
// Element k of rank r is v(r, k) = ((r+1)·k + r) mod m, m chosen per dtype so that every sum over ≤ 4
// ranks is exact (m = 97; 13 for bf16/f16, whose 8/11-bit significands hold integers ≤ 256/2048 exactly;
// 60 for u8, so 4·59 < 256). Expected values are computed from that formula, never from another collective.
// Every wait has a deadline (kDeadline), so a hang fails the test instead of stalling it.
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/watchdog.h"
#if R2REC_HAVE_NCCL
#include "distributed/nccl_communicator.h"
#endif

#ifndef R2REC_TEST_NCCL
#define R2REC_TEST_NCCL 0
#endif

namespace r2rec {
namespace {

constexpr double kDeadline = 30.0;  // seconds, per op
const DType kAllDTypes[] = {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64, DType::kU8};

bool backend_available() {
#if R2REC_TEST_NCCL
  return cuda_device_present();
#else
  return true;
#endif
}

Communicator& comm() {
  static std::unique_ptr<Communicator> c = [] {
    CommOptions options;
    options.timeout_s = kDeadline;
    return make_communicator(R2REC_TEST_NCCL ? "nccl" : "mpi", options);
  }();
  return *c;
}

// ---- values ------------------------------------------------------------------------------------------
int modulus(DType d) { return d == DType::kBF16 || d == DType::kF16 ? 13 : d == DType::kU8 ? 60 : 97; }
double v(DType d, int r, size_t k) { return static_cast<double>(((r + 1) * k + r) % modulus(d)); }

void put(DType d, void* p, size_t i, double x) {
  switch (d) {
    case DType::kF32:
      static_cast<float*>(p)[i] = static_cast<float>(x);
      break;
    case DType::kF64:
      static_cast<double*>(p)[i] = x;
      break;
    case DType::kBF16: {
      c10::BFloat16 h(static_cast<float>(x));
      std::memcpy(static_cast<char*>(p) + 2 * i, &h, 2);
      break;
    }
    case DType::kF16: {
      c10::Half h(static_cast<float>(x));
      std::memcpy(static_cast<char*>(p) + 2 * i, &h, 2);
      break;
    }
    case DType::kI32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(x);
      break;
    case DType::kI64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(x);
      break;
    case DType::kU8:
      static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(x);
      break;
  }
}

double get(DType d, const void* p, size_t i) {
  switch (d) {
    case DType::kF32:
      return static_cast<const float*>(p)[i];
    case DType::kF64:
      return static_cast<const double*>(p)[i];
    case DType::kBF16: {
      c10::BFloat16 h;
      std::memcpy(&h, static_cast<const char*>(p) + 2 * i, 2);
      return static_cast<float>(h);
    }
    case DType::kF16: {
      c10::Half h;
      std::memcpy(&h, static_cast<const char*>(p) + 2 * i, 2);
      return static_cast<float>(h);
    }
    case DType::kI32:
      return static_cast<const int32_t*>(p)[i];
    case DType::kI64:
      return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kU8:
      return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

bool is_int(DType d) { return d == DType::kI32 || d == DType::kI64 || d == DType::kU8; }

// Relative tolerance of a value that is not an exact integer (averages): half an ulp of the dtype.
double tolerance(DType d) {
  switch (d) {
    case DType::kBF16:
      return 1.0 / 256;
    case DType::kF16:
      return 1.0 / 2048;
    case DType::kF32:
      return 1e-6;
    default:
      return 1e-12;
  }
}

// count elements of dtype d in host memory, mirrored on the device for NCCL.
class Buf {
 public:
  Buf(size_t count, DType d) : d_(d), count_(count), host_(std::max<size_t>(count, 1) * dtype_size(d), 0) {
#if R2REC_TEST_NCCL
    dev_ = cuda_alloc(host_.size());
#endif
  }
  ~Buf() {
#if R2REC_TEST_NCCL
    cuda_free(dev_);
#endif
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void set(size_t i, double x) { put(d_, host_.data(), i, x); }
  double at(size_t i) const { return get(d_, host_.data(), i); }
  void* ptr() { return dev_ ? dev_ : host_.data(); }
  void* host() { return host_.data(); }
  void upload() {
#if R2REC_TEST_NCCL
    cuda_copy_to_device(dev_, host_.data(), host_.size());
#endif
  }
  void download() {
#if R2REC_TEST_NCCL
    cuda_copy_to_host(host_.data(), dev_, host_.size());
#endif
  }
  size_t count() const { return count_; }

 private:
  DType d_;
  size_t count_;
  std::vector<char> host_;
  void* dev_ = nullptr;
};

// 0, 1, fewer than the ranks, not divisible by the world size, and a medium size.
std::vector<size_t> sizes(int n) {
  std::vector<size_t> s = {0, 1, 7, 1000, 4099};
  if (n > 2) s.push_back(static_cast<size_t>(n - 1));
  return s;
}

class Collectives : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!backend_available()) GTEST_SKIP() << "no CUDA device";
    c = &comm();
    n = c->size();
    r = c->rank();
  }
  Communicator* c = nullptr;
  int n = 1, r = 0;
};

TEST_F(Collectives, AllReduceEveryDTypeOpAndSize) {
  for (DType d : kAllDTypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
      for (size_t count : sizes(n)) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " " + reduce_op_name(op) + " count " + std::to_string(count));
        Buf b(count, d);
        for (size_t k = 0; k < count; ++k) b.set(k, v(d, r, k));
        b.upload();
        c->all_reduce(b.ptr(), count, d, op)->wait(kDeadline);
        b.download();
        for (size_t k = 0; k < count; ++k) {
          double sum = 0, mx = -1e300, mn = 1e300;
          for (int s = 0; s < n; ++s) {
            sum += v(d, s, k);
            mx = std::max(mx, v(d, s, k));
            mn = std::min(mn, v(d, s, k));
          }
          if (op == ReduceOp::kAvg) {
            const double avg = is_int(d) ? std::floor(sum / n) : sum / n;
            ASSERT_NEAR(b.at(k), avg, tolerance(d) * avg) << "element " << k;
          } else {
            ASSERT_EQ(b.at(k), op == ReduceOp::kSum ? sum : op == ReduceOp::kMax ? mx : mn) << "element " << k;
          }
        }
      }
    }
  }
}

TEST_F(Collectives, AllReduceSum64MB) {
  const size_t count = 16u << 20;  // 16 Mi f32 = 64 MB
  Buf b(count, DType::kF32);
  // Here v = ((r+1)·(k mod 97) + r) mod 97 keeps the fill cheap; the sum over ranks is exact in f32.
  float* host = static_cast<float*>(b.host());
  for (size_t k = 0; k < count; ++k) host[k] = static_cast<float>(((r + 1) * (k % 97) + r) % 97);
  b.upload();
  c->all_reduce(b.ptr(), count, DType::kF32, ReduceOp::kSum)->wait(kDeadline);
  b.download();
  for (size_t k = 0; k < count; ++k) {
    int sum = 0;
    for (int s = 0; s < n; ++s) sum += ((s + 1) * static_cast<int>(k % 97) + s) % 97;
    ASSERT_EQ(b.at(k), sum) << "element " << k;
  }
}

TEST_F(Collectives, BroadcastFromLastRank) {
  const int root = n - 1;  // non-zero whenever n > 1
  for (DType d : kAllDTypes) {
    for (size_t count : sizes(n)) {
      SCOPED_TRACE(std::string(dtype_name(d)) + " count " + std::to_string(count));
      Buf b(count, d);
      for (size_t k = 0; k < count; ++k) b.set(k, r == root ? v(d, root, k) + 1 : 0);
      b.upload();
      c->broadcast(b.ptr(), count, d, root)->wait(kDeadline);
      b.download();
      for (size_t k = 0; k < count; ++k) ASSERT_EQ(b.at(k), v(d, root, k) + 1) << "element " << k;
    }
  }
}

TEST_F(Collectives, AllGather) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kI64, DType::kU8}) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{5}, size_t{1001}}) {
      SCOPED_TRACE(std::string(dtype_name(d)) + " count " + std::to_string(count));
      Buf send(count, d), recv(count * n, d);
      for (size_t k = 0; k < count; ++k) send.set(k, v(d, r, k));
      send.upload();
      c->all_gather(send.ptr(), recv.ptr(), count, d)->wait(kDeadline);
      recv.download();
      for (int s = 0; s < n; ++s)
        for (size_t k = 0; k < count; ++k) ASSERT_EQ(recv.at(s * count + k), v(d, s, k)) << "rank " << s << " k " << k;
    }
  }
}

TEST_F(Collectives, AllGathervUnevenCounts) {
  // counts (3s+1) mod 4 = 1, 0, 3, 2: one rank sends nothing; then a single-owner case.
  std::vector<std::vector<size_t>> cases(2, std::vector<size_t>(n));
  for (int s = 0; s < n; ++s) {
    cases[0][s] = static_cast<size_t>((3 * s + 1) % 4);
    cases[1][s] = s == n - 1 ? 9 : 0;
  }
  for (DType d : {DType::kF32, DType::kBF16, DType::kI64}) {
    for (const auto& counts : cases) {
      const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
      Buf send(counts[r], d), recv(total, d);
      for (size_t k = 0; k < counts[r]; ++k) send.set(k, v(d, r, k));
      send.upload();
      c->all_gatherv(send.ptr(), recv.ptr(), counts, d)->wait(kDeadline);
      recv.download();
      size_t offset = 0;
      for (int s = 0; s < n; ++s) {
        for (size_t k = 0; k < counts[s]; ++k)
          ASSERT_EQ(recv.at(offset + k), v(d, s, k)) << dtype_name(d) << " rank " << s;
        offset += counts[s];
      }
    }
  }
}

TEST_F(Collectives, ReduceScatter) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kI64}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
      for (size_t rc : {size_t{0}, size_t{1}, size_t{5}, size_t{333}}) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " " + reduce_op_name(op) + " recv_count " + std::to_string(rc));
        Buf send(rc * n, d), recv(rc, d);
        for (size_t j = 0; j < rc * n; ++j) send.set(j, v(d, r, j));
        send.upload();
        c->reduce_scatter(send.ptr(), recv.ptr(), rc, d, op)->wait(kDeadline);
        recv.download();
        for (size_t k = 0; k < rc; ++k) {
          double sum = 0, mx = -1e300;
          for (int s = 0; s < n; ++s) {
            sum += v(d, s, r * rc + k);
            mx = std::max(mx, v(d, s, r * rc + k));
          }
          if (op == ReduceOp::kAvg) {
            const double avg = is_int(d) ? std::floor(sum / n) : sum / n;
            ASSERT_NEAR(recv.at(k), avg, tolerance(d) * avg);
          } else {
            ASSERT_EQ(recv.at(k), op == ReduceOp::kSum ? sum : mx);
          }
        }
      }
    }
  }
}

TEST_F(Collectives, SendRecvRing) {
  if (R2REC_TEST_NCCL && n == 1) GTEST_SKIP() << "NCCL self send/recv needs one group";
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  for (DType d : {DType::kF32, DType::kI64, DType::kBF16}) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{1000}}) {
      Buf out(count, d), in(count, d);
      for (size_t k = 0; k < count; ++k) out.set(k, v(d, r, k));
      out.upload();
      // Even ranks send first, odd ranks receive first: no cycle of blocked sends on an in-order stream.
      WorkPtr a, b;
      if (r % 2 == 0) {
        a = c->send(out.ptr(), count, d, next, 0);
        b = c->recv(in.ptr(), count, d, prev, 0);
      } else {
        b = c->recv(in.ptr(), count, d, prev, 0);
        a = c->send(out.ptr(), count, d, next, 0);
      }
      a->wait(kDeadline);
      b->wait(kDeadline);
      in.download();
      for (size_t k = 0; k < count; ++k) ASSERT_EQ(in.at(k), v(d, prev, k)) << dtype_name(d) << " k " << k;
    }
  }
}

TEST_F(Collectives, BarrierAndPolling) {
  c->barrier()->wait(kDeadline);
  Buf b(3, DType::kF32);
  b.upload();
  WorkPtr w = c->all_reduce(b.ptr(), 3, DType::kF32, ReduceOp::kSum);
  const double start = MPI_Wtime();
  while (!w->is_completed()) ASSERT_LT(MPI_Wtime() - start, kDeadline) << "is_completed never became true";
  w->wait(kDeadline);  // a completed Work returns at once
  EXPECT_TRUE(w->is_completed());
}

TEST_F(Collectives, SubCommunicatorOfEvenRanks) {
  std::vector<int> evens;
  for (int s = 0; s < n; s += 2) evens.push_back(s);
  std::unique_ptr<Communicator> sub = c->split(evens);
  if (r % 2 == 1) {
    EXPECT_EQ(sub, nullptr);
    return;
  }
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->size(), static_cast<int>(evens.size()));
  EXPECT_EQ(sub->rank(), r / 2);
  EXPECT_EQ(sub->timeout_s(), c->timeout_s());
  Buf b(4, DType::kI64);
  for (size_t k = 0; k < 4; ++k) b.set(k, (r + 1) * static_cast<double>(k));
  b.upload();
  sub->all_reduce(b.ptr(), 4, DType::kI64, ReduceOp::kSum)->wait(kDeadline);
  sub->barrier()->wait(kDeadline);
  b.download();
  double ranks_plus_one = 0;
  for (int s : evens) ranks_plus_one += s + 1;
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(b.at(k), ranks_plus_one * k);
}

#if !R2REC_TEST_NCCL
// ---- MPI backend only ----------------------------------------------------------------------------------

TEST_F(Collectives, ChunkedPathsMatch) {
  // max_chunk 7 sends every op through its > INT_MAX code path (chunked requests, broadcast-based
  // all_gather(v), per-owner MPI_Ireduce for reduce_scatter).
  MpiCommunicator small(MPI_COMM_WORLD, kDeadline, 7);
  for (DType d : {DType::kF32, DType::kBF16, DType::kI64}) {
    SCOPED_TRACE(dtype_name(d));
    Buf a(100, d);
    for (size_t k = 0; k < 100; ++k) a.set(k, v(d, r, k));
    small.all_reduce(a.ptr(), 100, d, ReduceOp::kSum)->wait(kDeadline);
    for (size_t k = 0; k < 100; ++k) {
      double sum = 0;
      for (int s = 0; s < n; ++s) sum += v(d, s, k);
      ASSERT_EQ(a.at(k), sum);
    }
    Buf b(50, d);
    for (size_t k = 0; k < 50; ++k) b.set(k, r == n - 1 ? v(d, n - 1, k) : 0);
    small.broadcast(b.ptr(), 50, d, n - 1)->wait(kDeadline);
    for (size_t k = 0; k < 50; ++k) ASSERT_EQ(b.at(k), v(d, n - 1, k));

    Buf gs(20, d), gr(20 * n, d);
    for (size_t k = 0; k < 20; ++k) gs.set(k, v(d, r, k));
    small.all_gather(gs.ptr(), gr.ptr(), 20, d)->wait(kDeadline);
    for (int s = 0; s < n; ++s)
      for (size_t k = 0; k < 20; ++k) ASSERT_EQ(gr.at(s * 20 + k), v(d, s, k));

    Buf rs(10 * n, d), rr(10, d);
    for (size_t j = 0; j < 10u * n; ++j) rs.set(j, v(d, r, j));
    small.reduce_scatter(rs.ptr(), rr.ptr(), 10, d, ReduceOp::kSum)->wait(kDeadline);
    for (size_t k = 0; k < 10; ++k) {
      double sum = 0;
      for (int s = 0; s < n; ++s) sum += v(d, s, r * 10 + k);
      ASSERT_EQ(rr.at(k), sum);
    }

    Buf out(30, d), in(30, d);
    for (size_t k = 0; k < 30; ++k) out.set(k, v(d, r, k));
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    WorkPtr rw = small.recv(in.ptr(), 30, d, prev, 3);
    small.send(out.ptr(), 30, d, next, 3)->wait(kDeadline);
    rw->wait(kDeadline);
    for (size_t k = 0; k < 30; ++k) ASSERT_EQ(in.at(k), v(d, prev, k));
  }
}

TEST_F(Collectives, TagsKeepMessagesApart) {
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  int32_t a = 100 + r, b = 200 + r, got_a = -1, got_b = -1;
  // Receive tag 2 before tag 1, although tag 1 was sent first.
  WorkPtr rb = c->recv(&got_b, 1, DType::kI32, prev, 2);
  WorkPtr ra = c->recv(&got_a, 1, DType::kI32, prev, 1);
  c->send(&a, 1, DType::kI32, next, 1)->wait(kDeadline);
  c->send(&b, 1, DType::kI32, next, 2)->wait(kDeadline);
  rb->wait(kDeadline);
  ra->wait(kDeadline);
  EXPECT_EQ(got_a, 100 + prev);
  EXPECT_EQ(got_b, 200 + prev);
}

TEST_F(Collectives, TensorFrontEnds) {
  at::Tensor t = at::arange(10, at::kFloat) * (r + 1);
  c->all_reduce(t, ReduceOp::kSum)->wait();
  const float scale = static_cast<float>(n * (n + 1) / 2);
  EXPECT_TRUE(at::equal(t, at::arange(10, at::kFloat) * scale));

  at::Tensor h = at::full({5}, r + 1, at::kBFloat16);
  c->all_reduce(h, ReduceOp::kMax)->wait();
  EXPECT_EQ(h[4].item<float>(), static_cast<float>(n));

  at::Tensor send = at::full({3}, r, at::kLong), recv = at::empty({3 * n}, at::kLong);
  c->all_gather(send, recv)->wait();
  for (int s = 0; s < n; ++s) EXPECT_EQ(recv[3 * s + 2].item<int64_t>(), s);

  at::Tensor rs_send = at::ones({2 * n}, at::kDouble), rs_recv = at::zeros({2}, at::kDouble);
  c->reduce_scatter(rs_send, rs_recv, ReduceOp::kAvg)->wait();
  EXPECT_DOUBLE_EQ(rs_recv[1].item<double>(), 1.0);

  at::Tensor strided = at::zeros({4, 4}).t();
  try {
    (void)c->all_reduce(strided, ReduceOp::kSum);
    ADD_FAILURE() << "non-contiguous tensor accepted";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("contiguous"), std::string::npos) << e.what();
  }
  try {
    (void)c->all_reduce(at::zeros({2}, at::kBool), ReduceOp::kSum);
    ADD_FAILURE() << "bool tensor accepted";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("tensors of dtype Bool are not supported"), std::string::npos) << e.what();
  }
}

TEST_F(Collectives, ErrorsNameTheProblem) {
  float x = 0;
  EXPECT_THROW(c->send(&x, 1, DType::kF32, n, 0), CommError);
  EXPECT_THROW(c->broadcast(&x, 1, DType::kF32, -1), CommError);
  EXPECT_THROW(c->split({n}), CommError);
  EXPECT_THROW(make_communicator("gloo", CommOptions{}), CommError);
  std::unique_ptr<Communicator> automatic = make_communicator("auto", CommOptions{});
#if R2REC_HAVE_NCCL
  if (!cuda_device_present()) {
    EXPECT_STREQ(automatic->backend(), "mpi");
  }
#else
  EXPECT_STREQ(automatic->backend(), "mpi");
#endif
  try {
    make_communicator("nccl", CommOptions{});  // collective: every rank gets the same answer here
    SUCCEED() << "a CUDA device is present";
  } catch (const CommError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("nccl: built without NCCL") == 0 || m.find("nccl: no CUDA device") == 0) << m;
  }
}

TEST_F(Collectives, TimeoutNamesPhaseOpAndDeadline) {
  // A receive nobody sends to: wait() must give up at its deadline with a message naming it all.
  int32_t in = -1, out = 42;
  PhaseScope phase("collective test");
  WorkPtr w = c->recv(&in, 1, DType::kI32, r, 77);
  const double start = MPI_Wtime();
  try {
    w->wait(0.2);
    ADD_FAILURE() << "wait did not time out";
  } catch (const CommError& e) {
    const std::string m = e.what();
    EXPECT_EQ(
        m.rfind("collective test: recv(from rank " + std::to_string(r) + ", tag 77) of 4 B timed out after 0.2 s", 0),
        0u)
        << m;
    EXPECT_EQ(e.exit_code(), kExitRuntime);
  }
  EXPECT_LT(MPI_Wtime() - start, 5.0);
  EXPECT_THROW(w->wait(0.1), CommError);                  // poisoned
  c->send(&out, 1, DType::kI32, r, 77)->wait(kDeadline);  // lets the abandoned receive match
}
#endif  // !R2REC_TEST_NCCL

}  // namespace
}  // namespace r2rec
