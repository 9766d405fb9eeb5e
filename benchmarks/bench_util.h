// Helpers shared by the benchmark programs (header-only).
#pragma once

#include <algorithm>
#include <vector>

#ifdef R2REC_BENCH_MPI
#include <mpi.h>
#endif

namespace r2rec::bench {

// Median of timings (the upper middle for an even count), the figure every benchmark reports.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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
