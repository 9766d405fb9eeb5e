// `r2rec info [--json]`: what this rank runs on — versions, BLAS, threads, CUDA/NCCL, MPI place, role.
// With --json every rank prints exactly one JSON object on one line (ranks in any order).
#include <mpi.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "core/version.h"
#include "distributed/nccl_info.h"
#include "launch/command.h"

namespace r2rec {

namespace {
std::string mpi_library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string s(buf, len);
  const size_t comma = s.find(',');  // Open MPI: "Open MPI v4.1.4, package: ..., ident: ..."
  return s.substr(0, comma);
}
const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "single";
    case MPI_THREAD_FUNNELED: return "funneled";
    case MPI_THREAD_SERIALIZED: return "serialized";
    case MPI_THREAD_MULTIPLE: return "multiple";
  }
  return "unknown";
}
}  // namespace

int command_info(const CommandContext& ctx, bool json) {
  const ProcessInfo& p = *ctx.process;
  const RuntimeInfo rt = runtime_info();
  nlohmann::ordered_json j;
  j["version"] = R2REC_VERSION;
  j["git"] = R2REC_GIT_REV;
  j["rank"] = p.rank;
  j["world_size"] = p.world_size;
  j["local_rank"] = p.local_rank;
  j["local_size"] = p.local_size;
  j["node"] = p.node;
  j["launcher"] = p.launcher;
  j["role"] = role_name(ctx.role);
  j["torch_version"] = rt.torch_version;
  j["blas"] = rt.blas_info;
  j["blas_library"] = rt.blas_library;
  j["intra_op_threads"] = rt.intra_op_threads;
  j["inter_op_threads"] = rt.inter_op_threads;
  j["cuda_available"] = rt.cuda_available;
  j["cuda_devices"] = rt.cuda_devices;
  j["nccl_compiled"] = nccl_compiled();
  j["nccl_version"] = nccl_version();
  j["mpi_library"] = mpi_library_version();
  j["mpi_thread_level"] = thread_level_name(p.mpi_thread_level);
  std::string text;
  if (json) {
    text = j.dump() + "\n";
  } else {
    text = "rank " + std::to_string(p.rank) + ":\n";
    for (const auto& [key, value] : j.items()) text += "  " + key + ": " + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stdout);  // one write per rank keeps lines whole
  std::fflush(stdout);
  return 0;
}

}  // namespace r2rec
