// Helpers shared by the benchmark programs (header-only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/runtime.h"

#ifdef R2REC_BENCH_MPI
#include <mpi.h>
#endif

namespace r2rec::bench {

// The command prefix of a PyTorch-Python baseline run with `threads` intra-op threads. It gets what r2rec
// sets in-process (core/runtime.h), so a ratio measures the engines, not the process settings: OpenBLAS's own
// pool sized the same (OPENBLAS_NUM_THREADS; left alone an idle BLAS thread busy-waits next to the working one,
// which on the 2-vCPU VM halved KV-cache decode speed on both sides) and the same glibc malloc thresholds as
// tune_allocator (MALLOC_*_ environment variables).
// R2REC_BENCH_PYTHON (e.g. "/usr/bin/python3 ", for OpenBLAS's default pool of one thread per core) replaces
// the prefix, to see what the baseline does with more cores than ours.
inline std::string python_command(int threads) {
  if (const char* own = std::getenv("R2REC_BENCH_PYTHON")) return std::string(own) + " ";
  return "OPENBLAS_NUM_THREADS=" + std::to_string(std::max(1, threads)) +
         " MALLOC_MMAP_THRESHOLD_=" + std::to_string(kMallocMmapThreshold) +
         " MALLOC_TRIM_THRESHOLD_=" + std::to_string(kMallocTrimThreshold) +
         " MALLOC_TOP_PAD_=" + std::to_string(kMallocTopPad) + " /usr/bin/python3 ";
}

// Median of timings (the upper middle for an even count), the figure every benchmark reports.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One named figure for benchmarks/run_all.sh, on its own line: "RESULT {json}". `samples` are the runs of ours
// in `unit` (its median, min and max are reported; ours = the median); `baseline` is the same figure of the
// baseline measured in the same run (NaN: none), ratio = ours / baseline; `what` says what was measured.
inline void print_result(const std::string& name, const std::string& unit, std::vector<double> samples, double baseline,
                         const std::string& what) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  const double med = samples[samples.size() / 2];
  auto num = [](double v) {
    if (!std::isfinite(v)) return std::string("null");
    char b[64];
    std::snprintf(b, sizeof(b), "%.6g", v);
    return std::string(b);
  };
  std::string esc;
  for (char c : what) esc += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  std::printf(
      "RESULT {\"name\": \"%s\", \"unit\": \"%s\", \"ours\": %s, \"baseline\": %s, \"ratio\": %s, \"runs\": %zu, "
      "\"median\": %s, \"min\": %s, \"max\": %s, \"what\": \"%s\"}\n",
      name.c_str(), unit.c_str(), num(med).c_str(), num(baseline).c_str(),
      num(std::isfinite(baseline) && baseline > 0 ? med / baseline : NAN).c_str(), samples.size(), num(med).c_str(),
      num(samples.front()).c_str(), num(samples.back()).c_str(), esc.c_str());
  std::fflush(stdout);
}

#ifdef R2REC_BENCH_MPI
// The slowest rank's time: a collective step takes as long as its slowest participant.
inline double slowest(double t) {
  double m = t;
  MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}
#endif

}  // namespace r2rec::bench
