// bench_param_broadcast: the weight sync of split GRPO (distributed/param_broadcast.h: learner 0 -> rollout
// ranks, versioned, bucketed, checksummed) against one raw MPI_Bcast of the same bytes from one contiguous
// buffer, in the same run. Run: mpirun -np 2 ./benchmarks/bench_param_broadcast [reps]
//
// Both broadcasters as split GRPO builds them: zero-copy (BroadcastOptions::alias), one with the per-bucket
// checksums (the default) and one without.
// Models (random weights, fp32, every parameter sent):
//   default   the r2rec default model (docs/config.md model.*) with ML-100K's vocabulary (512 + 1349 items + 943 users)
//   qwen0.5b  Qwen2.5-0.5B's shape: vocab 151936, hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, tied
//             embeddings, q/k/v bias (494 M parameters, 1.98 GB)
// Per model: one warm-up, then `reps` rounds (default 5) of raw, ours with checksums (the default) and ours
// without, interleaved so all three see the same machine noise; each round's time is the slowest rank's; the
// medians are reported. ratio = raw time / ours time (>= 0.9 is the goal: the versioning, bucketing and copy
// into the parameters cost at most 10% over a bare broadcast).
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define R2REC_BENCH_MPI 1
#include "benchmarks/bench_util.h"
#include "core/model/transformer.h"
#include "distributed/mpi_communicator.h"
#include "distributed/mpi_defaults.h"
#include "distributed/param_broadcast.h"

namespace {

using r2rec::bench::median;
using r2rec::bench::slowest;

r2rec::TransformerConfig shape(const std::string& name) {
  r2rec::TransformerConfig c;
  if (name == "default") {
    c.vocab_size = (512 + 1349 + 943 + 63) / 64 * 64;
    return c;
  }
  c.vocab_size = 151936;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_layers = 24;
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position = 32768;
  c.rope_theta = 1e6;
  c.qkv_bias = true;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  r2rec::set_mpi_defaults();  // what r2rec runs with (distributed/mpi_defaults.h)
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 5;
  torch::set_num_threads(1);
  {
    r2rec::MpiCommunicator comm(MPI_COMM_WORLD, 600.0);
    if (rank == 0)
      std::printf("np %d, medians of %d\n%-9s %9s %10s %10s %12s %10s %10s %10s %8s %8s\n", n, reps, "model", "MB",
                  "raw ms", "ours ms", "ours-nocs ms", "raw GB/s", "ours GB/s", "nocs GB/s", "ratio", "nocs");
    for (const std::string name : {"default", "qwen0.5b"}) {
      torch::manual_seed(1);
      r2rec::Transformer model(shape(name));
      std::vector<torch::Tensor> params;
      int64_t count = 0;
      for (auto& p : model->parameters()) {
        params.push_back(p);
        count += p.numel();
      }
      const double bytes = static_cast<double>(count) * 4;
      std::vector<float> raw_buf(static_cast<size_t>(count), 1.0f);
      r2rec::BroadcastOptions with, without;  // as split GRPO builds it (zero-copy), with and without checksums
      with.alias = without.alias = true;
      without.checksum = false;
      r2rec::ParameterBroadcaster checked(params, comm, with);
      std::vector<torch::Tensor> copies;  // the second broadcaster aliases its own copy of the weights
      for (const auto& p : params) copies.push_back(p.detach().clone());
      r2rec::ParameterBroadcaster plain(copies, comm, without);
      std::vector<double> raw, ours, nocs;
      int64_t version = 0;
      for (int rep = -1; rep < reps; ++rep) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Bcast(raw_buf.data(), static_cast<int>(count), MPI_FLOAT, 0, MPI_COMM_WORLD);
        const double t_raw = slowest(MPI_Wtime() - t0);
        ++version;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        checked.broadcast(version);
        const double t_ours = slowest(MPI_Wtime() - t0);
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        plain.broadcast(version);
        const double t_nocs = slowest(MPI_Wtime() - t0);
        if (rep >= 0) {
          raw.push_back(t_raw);
          ours.push_back(t_ours);
          nocs.push_back(t_nocs);
        }
      }
      if (rank == 0)
        std::printf("%-9s %9.1f %10.2f %10.2f %12.2f %10.2f %10.2f %10.2f %8.2f %8.2f\n", name.c_str(), bytes / 1e6,
                    median(raw) * 1e3, median(ours) * 1e3, median(nocs) * 1e3, bytes / median(raw) / 1e9,
                    bytes / median(ours) / 1e9, bytes / median(nocs) / 1e9, median(raw) / median(ours),
                    median(raw) / median(nocs));
    }
  }
  MPI_Finalize();
  return 0;
}
