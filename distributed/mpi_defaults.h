// Open MPI settings r2rec runs with unless the environment already sets them; call before MPI_Init.
//
// coll_libnbc_iallreduce_algorithm = 3 (Rabenseifner: reduce-scatter, then all-gather). The MPI backend's
// all_reduce is MPI_Iallreduce (non-blocking, so the watchdog can poll it and gradient buckets overlap the
// backward), served by Open MPI's libnbc, whose automatic choice ran at 0.61x the bus bandwidth of the blocking
// MPI_Allreduce (coll/tuned) for 16 MB over shared memory on 2 ranks; Rabenseifner ran at 0.96-1.02x from 1 MB
// to 64 MB (benchmarks/bench_allreduce, docs/benchmarks.md). Other MPI libraries ignore OMPI_MCA_ variables.
#pragma once

#include <cstdlib>

namespace r2rec {

inline void set_mpi_defaults() { setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", /*overwrite=*/0); }

}  // namespace r2rec
