// This process's place in the job: rank, world size, local rank on its node, node name, launcher.
//
// MpiSession owns MPI_Init/MPI_Finalize for the life of the program (one per process). It works both under
// a launcher (mpirun, srun) and as a singleton (plain `r2rec ...`, world size 1). The local rank comes from
// the launcher's environment (Open MPI OMPI_COMM_WORLD_LOCAL_RANK, Slurm SLURM_LOCALID) and, failing that,
// from a split of MPI_COMM_WORLD by shared-memory node.
#pragma once

#include <string>

namespace r2rec {

struct ProcessInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this node; picks the GPU
  int local_size = 1;
  std::string node;          // host name
  std::string launcher;      // "mpirun", "slurm" or "none"
  int mpi_thread_level = 0;  // MPI_THREAD_* granted by MPI_Init_thread
  std::string mpi_library;   // MPI_Get_library_version up to its first comma, e.g. "Open MPI v4.1.4"
};

// "single" | "funneled" | "serialized" | "multiple" | "unknown" for an MPI_THREAD_* level.
const char* mpi_thread_level_name(int level);

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  const ProcessInfo& info() const { return info_; }

  // Ends the whole job now with `code` (MPI_Abort): used when one rank hit an error that the others
  // cannot learn about through a collective, so nobody waits for it forever.
  [[noreturn]] static void abort_job(int code);

 private:
  ProcessInfo info_;
  bool finalize_ = false;
};

// The launcher as seen in the environment, without MPI: "mpirun", "slurm" or "none".
std::string detect_launcher();

}  // namespace r2rec
