// Shared fixtures of the sampler tests: the real datasets loaded once per test binary, and tiny hand-written
// datasets in a temporary folder.
#pragma once

#include <string>

#include "core/config.h"
#include "sampler/dataset.h"
#include "tests/test_support.h"

namespace r2rec::testing {

constexpr uint64_t kSeed = 1234;

inline DataConfig ml100k_config(int64_t kcore = 5, int64_t min_history = 5) {
  DataConfig d;
  d.format = "ml-100k";
  d.path = data_dir() + "/ml-100k";
  d.kcore = kcore;
  d.min_history = min_history;
  return d;
}

// ML-100K with the default filters (kcore 5, min_history 5), loaded once.
inline const Dataset& ml100k() {
  static const Dataset ds = load_dataset(ml100k_config(), kSeed);
  return ds;
}

// A tiny ML-100K-format folder: u.data from `data`, u.item with ids 1..num_items titled "Item <id>".
inline void write_ml100k(const TempDir& dir, const std::string& data, int num_items) {
  dir.write("u.data", data);
  std::string items;
  for (int i = 1; i <= num_items; ++i)
    items += std::to_string(i) + "|Item " + std::to_string(i) + "|01-Jan-1995||x|0\n";
  dir.write("u.item", items);
}

inline DataConfig tiny_config(const TempDir& dir, int64_t kcore = 0, int64_t min_history = 3) {
  DataConfig d;
  d.format = "ml-100k";
  d.path = dir.path();
  d.kcore = kcore;
  d.min_history = min_history;
  return d;
}

}  // namespace r2rec::testing
