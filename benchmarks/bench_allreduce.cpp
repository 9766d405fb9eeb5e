// bench_allreduce: raw MPI_Allreduce ("raw"), raw MPI_Iallreduce + MPI_Wait ("nb", the same Open MPI
// component our backend uses) and r2rec's MPI backend all_reduce (MPI_Iallreduce + polled Work, "ours")
// on the same bytes, f32 sum, 1 MB .. 64 MB. Run: mpirun -np 2 ./benchmarks/bench_allreduce [reps]
//
// Per size: one warm-up, then `reps` rounds (default 7), raw and ours interleaved so both see the same
// machine noise; each round's time is the slowest rank's (MPI_MAX); the median round is reported.
//   algbw = bytes / time;  busbw = algbw × 2(n−1)/n  (the bytes each rank's link carries in a ring
//   all-reduce, nccl-tests' convention);  ratio = busbw(ours) / busbw(raw).
//
// Measured 2026-11-26 on the shared 2-core build box (load average 3-6, so every number moves ±2×),
// Open MPI 4.1 over shared memory (vader, single-copy off), np 2, median of 9 (busbw GB/s):
//   size    raw          nb          ours         ours/raw     ours/nb
//    1 MB   5.6-6.1      4.1         3.7-4.1      0.63-0.70    0.93-0.98
//    4 MB   0.45-3.8     0.36-0.41   0.24-0.77    0.07-0.95    0.58-1.15  (bimodal: peer descheduled or not)
//   16 MB   0.13-0.80    0.13-0.23   0.17-0.57    0.47-1.29    1.04-1.30
//   64 MB   0.10-0.32    0.11-0.16   0.13-0.28    0.77-1.33    0.77-1.20
// Since 2026-12-02 the program (like r2rec) starts with set_mpi_defaults (distributed/mpi_defaults.h): libnbc's
// Rabenseifner all-reduce. Same day, 2-core Xeon VM, np 2, medians of 5, ours/raw at 1/4/16/64 MB: libnbc's
// automatic choice 0.74/0.61/0.61/0.68, ring 1.04/1.05/1.15/1.01, Rabenseifner 0.96/0.99/1.02/0.99.
// Reading: ours tracks the bare MPI_Iallreduce + MPI_Wait (ours/nb ≈ 1), so the Work/polling layer costs
// next to nothing; the gap to the blocking MPI_Allreduce at 1 MB is Open MPI's coll/libnbc schedule
// against coll/tuned. Yielding between polls instead of spinning cost 5-10× at 4 MB under load.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define R2REC_BENCH_MPI 1
#include "benchmarks/bench_util.h"
#include "distributed/mpi_communicator.h"
#include "distributed/mpi_defaults.h"

namespace {

using r2rec::bench::median;
using r2rec::bench::slowest;

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  r2rec::set_mpi_defaults();  // what r2rec runs with (distributed/mpi_defaults.h)
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 7;
  {
    r2rec::MpiCommunicator comm(MPI_COMM_WORLD, 600.0);
    if (rank == 0)
      std::printf("%-8s %10s %10s %10s %14s %14s %14s %8s %8s\n", "size", "raw ms", "nb ms", "ours ms", "raw busbw",
                  "nb busbw", "ours busbw", "ours/raw", "ours/nb");
    for (size_t mb : {1, 4, 16, 64}) {
      const size_t count = mb * (1u << 20) / sizeof(float);
      std::vector<float> buf(count, 1.0f);
      std::vector<double> raw, nb, ours;
      for (int rep = -1; rep < reps; ++rep) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const double t_raw = slowest(MPI_Wtime() - t0);
        std::fill(buf.begin(), buf.end(), 1.0f);  // keep values finite
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        const double t_nb = slowest(MPI_Wtime() - t0);
        std::fill(buf.begin(), buf.end(), 1.0f);
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        comm.all_reduce(buf.data(), count, r2rec::DType::kF32, r2rec::ReduceOp::kSum)->wait();
        const double t_ours = slowest(MPI_Wtime() - t0);
        std::fill(buf.begin(), buf.end(), 1.0f);
        if (rep >= 0) {
          raw.push_back(t_raw);
          nb.push_back(t_nb);
          ours.push_back(t_ours);
        }
      }
      const double bytes = static_cast<double>(count * sizeof(float));
      const double factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
      const double bus_raw = bytes / median(raw) * factor / 1e9, bus_nb = bytes / median(nb) * factor / 1e9,
                   bus_ours = bytes / median(ours) * factor / 1e9;
      if (rank == 0)
        std::printf("%5zu MB %10.3f %10.3f %10.3f %9.2f GB/s %9.2f GB/s %9.2f GB/s %8.2f %8.2f\n", mb,
                    median(raw) * 1e3, median(nb) * 1e3, median(ours) * 1e3, bus_raw, bus_nb, bus_ours,
                    bus_ours / bus_raw, bus_ours / bus_nb);
      if (rank == 0 && mb == 16) {  // the figure run_all.sh reports: a gradient bucket's size class
        std::vector<double> bw;
        for (double t : ours) bw.push_back(bytes / t * factor / 1e9);
        r2rec::bench::print_result("allreduce_bus_bw", "GB/s", bw, bus_raw,
                                   "16 MB f32 sum, " + std::to_string(n) +
                                       " ranks, r2rec's MPI communicator vs raw MPI_Allreduce (bus bandwidth)");
      }
    }
  }
  MPI_Finalize();
  return 0;
}
