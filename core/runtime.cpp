#include "core/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <vector>

namespace r2rec {

int choose_thread_count(int64_t requested, int local_size) {
  if (requested > 0) return static_cast<int>(requested);
  cpu_set_t set;
  CPU_ZERO(&set);
  int affinity = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  // Unbound ranks all see every core: divide them. A launcher that bound us already divided them.
  if (affinity >= online && local_size > 1) affinity = static_cast<int>(online / local_size);
  return std::max(1, affinity);
}

void set_intra_op_threads(int n) {
  n = std::max(1, n);
  at::set_num_threads(n);
  // OpenBLAS keeps its own pool, which at::set_num_threads does not size (Debian's libtorch calls it through the
  // generic BLAS interface): left alone, every matmul of a 1-thread rank wakes a second, busy-waiting BLAS
  // thread. Measured (SFT, 2-layer x 128 model, 1 thread): system time 5.9 s -> 2.9 s per 10 steps, +7% tokens/s.
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
}

bool tune_allocator() {
#if defined(__GLIBC__)
  // M_MMAP_THRESHOLD's largest accepted value on 64-bit glibc is 32 MB (HEAP_MAX_SIZE / 2).
  return mallopt(M_MMAP_THRESHOLD, kMallocMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kMallocTrimThreshold) == 1 &&
         mallopt(M_TOP_PAD, kMallocTopPad) == 1;
#else
  return false;
#endif
}

int measured_thread_count(int64_t requested, int local_size, std::string* report) {
  report->clear();
  const int most = choose_thread_count(requested, local_size);
  if (requested > 0 || most <= 1) {
    set_intra_op_threads(most);
    return most;
  }
  const auto probe = [](int n) {
    set_intra_op_threads(n);
    // No autograd: the backward's shapes are two more matmuls, timed by hand.
    const at::Tensor x = at::randn({512, 256}), w1 = at::randn({256, 704}), w2 = at::randn({704, 256});
    std::vector<double> t;
    for (int r = 0; r < 6; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const at::Tensor h = x.mm(w1).relu();
      const at::Tensor y = h.mm(w2);
      const at::Tensor gh = y.mm(w2.t());  // the backward's shapes
      const at::Tensor gw = x.t().mm(gh);
      (void)gw.sum().item<float>();
      if (r > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  const double one = probe(1), many = probe(most);
  const int chosen = many < 0.85 * one ? most : 1;
  char buf[200];
  std::snprintf(buf, sizeof(buf),
                "%d intra-op thread(s) per rank (measured: 1 thread %.1f ms, %d threads %.1f ms per probe; "
                "distributed.threads sets it)",
                chosen, one * 1e3, most, many * 1e3);
  *report = buf;
  set_intra_op_threads(chosen);
  return chosen;
}

namespace {
std::string mapped_blas_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("openblas") != std::string::npos || path.find("libblas") != std::string::npos ||
        path.find("libmkl") != std::string::npos || path.find("blis") != std::string::npos) {
      return path;
    }
  }
  return "none";
}
}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.torch_version = TORCH_VERSION;
  std::smatch m;
  const std::string config = at::show_config();
  static const std::regex blas_re("BLAS_INFO=([^,\\s]+)");
  info.blas_info = std::regex_search(config, m, blas_re) ? m[1].str() : "unknown";
  info.blas_library = mapped_blas_library();
  info.intra_op_threads = at::get_num_threads();
  info.inter_op_threads = at::get_num_interop_threads();
  info.cuda_available = at::globalContext().hasCUDA();
  info.cuda_devices = info.cuda_available ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  return info;
}

}  // namespace r2rec
