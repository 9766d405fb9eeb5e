// GoogleTest main for tests launched with `mpirun -np N`: every rank runs every test; only rank 0 prints
// gtest's report; the process exits non-zero on every rank when any rank failed, so mpirun reports it.
#include <gtest/gtest.h>
#include <mpi.h>

#include "distributed/mpi_defaults.h"

int main(int argc, char** argv) {
  int provided = 0;
  r2rec::set_mpi_defaults();  // as r2rec's MpiSession
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) std::fprintf(stderr, "a test failed on another rank (its log is above)\n");
  MPI_Finalize();
  return any_failed;
}
