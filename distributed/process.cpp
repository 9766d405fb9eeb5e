#include "distributed/process.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "distributed/mpi_check.h"
#include "distributed/mpi_defaults.h"

namespace r2rec {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == '\0') ? static_cast<int>(x) : fallback;
}

}  // namespace

[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = std::snprintf(msg, sizeof(msg), "error %d", rc);
  throw CommError(std::string("mpi: ") + call + " failed at " + file + ":" + std::to_string(line) + ": " +
                  std::string(msg, static_cast<size_t>(len)));
}

const char* mpi_thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "single";
    case MPI_THREAD_FUNNELED:
      return "funneled";
    case MPI_THREAD_SERIALIZED:
      return "serialized";
    case MPI_THREAD_MULTIPLE:
      return "multiple";
  }
  return "unknown";
}

std::string detect_launcher() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) return "mpirun";
  if (std::getenv("SLURM_PROCID") && std::getenv("SLURM_NTASKS")) return "slurm";
  return "none";
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    set_mpi_defaults();
    R2REC_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
    info_.mpi_thread_level = provided;
    finalize_ = true;
  } else {
    MPI_Query_thread(&info_.mpi_thread_level);
  }
  // Errors come back as codes that R2REC_MPI_CHECK turns into CommError, instead of aborting inside MPI.
  R2REC_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  R2REC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &info_.rank));
  R2REC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &info_.world_size));

  // Local rank: trust the launcher, else ask MPI which ranks share this node's memory.
  info_.launcher = detect_launcher();
  int local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", -1));
  int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("SLURM_NTASKS_PER_NODE", -1));
  if (local_rank < 0 || local_size < 1) {
    MPI_Comm node_comm;
    R2REC_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info_.rank, MPI_INFO_NULL, &node_comm));
    R2REC_MPI_CHECK(MPI_Comm_rank(node_comm, &local_rank));
    R2REC_MPI_CHECK(MPI_Comm_size(node_comm, &local_size));
    MPI_Comm_free(&node_comm);
  }
  info_.local_rank = local_rank;
  info_.local_size = local_size;

  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int version_len = 0;
  R2REC_MPI_CHECK(MPI_Get_library_version(version, &version_len));
  const std::string library(version, static_cast<size_t>(version_len));
  info_.mpi_library = library.substr(0, library.find(','));  // Open MPI: "Open MPI v4.1.4, package: ..., ident: ..."

  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  info_.node = host;
}

MpiSession::~MpiSession() {
  if (finalize_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

void MpiSession::abort_job(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace r2rec
