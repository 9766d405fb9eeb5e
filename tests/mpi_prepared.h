// For tests run under mpirun: rank 0 prepares ML-100K shards into a temporary folder (prepare_in_process) and
// every rank learns the folder; each rank also holds the same PreparedData for expected values.
#pragma once

#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "sampler/prepare.h"
#include "tests/test_support.h"

namespace r2rec::testing {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int w = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &w);
  return w;
}

struct MpiPrepared {
  std::unique_ptr<TempDir> dir;  // rank 0 owns (and removes) the folder
  std::string path;
  Config config;
  PreparedData data;

  explicit MpiPrepared(const std::vector<std::string>& overrides = {}) {
    char buf[4096] = {0};
    if (world_rank() == 0) {
      dir = std::make_unique<TempDir>("r2rec-prepared");
      std::snprintf(buf, sizeof(buf), "%s", dir->path().c_str());
    }
    MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
    path = buf;
    std::vector<std::string> all = {"data.path=" + data_dir() + "/ml-100k", "sampler.num_shards=4",
                                    "sampler.output_dir=" + path};
    all.insert(all.end(), overrides.begin(), overrides.end());
    config = load_config("", all);
    if (world_rank() == 0) prepare_in_process(config, path);
    data = build_prepared_data(config);
    MPI_Barrier(MPI_COMM_WORLD);
  }
};

}  // namespace r2rec::testing
