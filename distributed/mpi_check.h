// The one checked seam for MPI calls: R2REC_MPI_CHECK(call) runs `call` and, when it does not return
// MPI_SUCCESS, throws CommError "mpi: <call> failed at <file>:<line>: <MPI_Error_string>". MPI reports errors as
// return codes only on communicators whose error handler is MPI_ERRORS_RETURN (MpiSession sets it on
// MPI_COMM_WORLD; MpiCommunicator on its duplicate), so every call that can fail goes through here.
// Calls that only query state and cannot fail in a meaningful way (MPI_Initialized, MPI_Finalized,
// MPI_Query_thread) and the calls made on the way out (MPI_Finalize, MPI_Abort, MPI_*_free in destructors)
// are not wrapped: there is nobody left to throw to.
#pragma once

#include <mpi.h>

namespace r2rec {

[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line);

}  // namespace r2rec

#define R2REC_MPI_CHECK(call)                                                                             \
  do {                                                                                                    \
    const int r2rec_mpi_rc_ = (call);                                                                     \
    if (r2rec_mpi_rc_ != MPI_SUCCESS) ::r2rec::throw_mpi_error(r2rec_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)
