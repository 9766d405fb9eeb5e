// `r2rec info [--json]`: what this rank runs on — versions, BLAS, threads, CUDA/NCCL, MPI place, role.
// With --json every rank prints exactly one JSON object on one line (ranks in any order).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/runtime.h"
#include "core/version.h"
#include "distributed/nccl_info.h"
#include "launch/commands.h"

namespace r2rec {

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
  j["mpi_library"] = p.mpi_library;
  j["mpi_thread_level"] = mpi_thread_level_name(p.mpi_thread_level);
  std::string text;
  if (json) {
    text = j.dump() + "\n";
  } else {
    text = "rank " + std::to_string(p.rank) + ":\n";
    for (const auto& [key, value] : j.items())
      text += "  " + key + ": " + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stdout);  // one write per rank keeps lines whole
  std::fflush(stdout);
  return 0;
}

int command_check(const CommandContext& ctx) {
  if (ctx.process->rank == 0) std::cout << to_yaml(ctx.config) << std::flush;
  return kExitOk;
}

}  // namespace r2rec
