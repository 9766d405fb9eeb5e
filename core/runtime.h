// The compute runtime of this process: libtorch version, BLAS library, intra-op threads, CUDA.
// Kept free of torch includes so the CLI and tests can use it without torch's compile cost.
#pragma once

#include <cstdint>
#include <string>

namespace r2rec {

struct RuntimeInfo {
  std::string torch_version;  // "1.13.0"
  std::string blas_info;      // libtorch's build-time BLAS (at::show_config's BLAS_INFO)
  std::string blas_library;   // the BLAS shared object actually mapped into this process
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  bool cuda_available = false;
  int cuda_devices = 0;
};

// Intra-op thread count for a rank: `requested` when > 0, else the cores this process may run on
// (sched affinity), shared among the `local_size` ranks of the node when they all see the same cores.
int choose_thread_count(int64_t requested, int local_size);

// The intra-op thread count a rank runs fastest with: `requested` when > 0; else the faster of 1 and the cores
// available (choose_thread_count), timed now on a probe shaped like a small decoder's matmuls (forward and
// backward, medians of 5; local ranks probe side by side, unsynchronised); more threads only when at least 15%
// faster (on a 2-vCPU VM 2 threads per process measured ~2x slower than 1). Each rank decides for itself, and
// the thread count can change float summation order: runs that must repeat or resume bit for bit set
// distributed.threads (the shipped configs set 1). `report` gets the timings in words ("" when nothing was
// timed). Leaves the pool at the returned size.
int measured_thread_count(int64_t requested, int local_size, std::string* report);

// Sets libtorch's intra-op thread pool size (call before the first parallel op), and OpenBLAS's own pool to
// the same size.
void set_intra_op_threads(int n);

// glibc malloc settings for tensor workloads, once per process before the first tensor: blocks up to 32 MB come
// from the heap instead of fresh mmaps, and freed memory is kept (up to 1 GB at the top of the heap) rather than
// handed back to the kernel, so a training or decode loop that frees and reallocates the same activation sizes
// every step stops paying a page fault per 4 KB each time (measured on KV-cache decode and the SFT loop, see
// docs/benchmarks.md). Returns false where mallopt refused (another allocator, or a non-glibc libc).
bool tune_allocator();
// tune_allocator's settings (bytes), also handed to the benchmarks' Python baselines.
inline constexpr int kMallocMmapThreshold = 32 << 20, kMallocTrimThreshold = 1 << 30, kMallocTopPad = 64 << 20;

RuntimeInfo runtime_info();

}  // namespace r2rec
