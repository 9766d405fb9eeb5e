// report.json: one table of every method scored on a run's candidate lists, filled in by `eval`,
// `baseline` and `run`. Each writer replaces its own method's entry and keeps the others, so the report shows
// every method side by side. Written atomically.
//
//   {"dataset": "ml-100k", "num_candidates": 20,
//    "splits": {"test": {"examples": 943,
//                        "methods": {"popularity": {"HR@1": 0.21, "NDCG@10": 0.43, ...,
//                                                   "examples": 943, "seconds": 0.01}, ...}}}}
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace r2rec {

struct MethodResult {
  std::string method;
  std::string split;                      // "valid" | "test"
  std::map<std::string, double> metrics;  // "HR@1" -> value, ...
  int64_t examples = 0;
  double seconds = 0;
};

// Merges `result` into the report at `path` (<run.dir>/report.json, creating it). Throws RuntimeFailure on I/O
// errors; a report that exists but is not valid JSON is a DataError naming it (never silently overwritten).
void update_report(const std::string& path, const std::string& dataset, int64_t num_candidates,
                   const MethodResult& result);

// The report as an aligned text table (methods as rows, metrics as columns) for the terminal.
std::string report_table(const std::string& path, const std::string& split);

// report.md: a title, `protocol` (a paragraph in words: dataset, filtering, split, candidates, seed), then one
// Markdown table per split in the report (every method; HR@k, NDCG@k, valid; "-" where a method has none), and
// a line naming the methods' definitions (docs/training.md, docs/baselines.md). "" when the report is absent.
std::string report_markdown(const std::string& path, const std::string& protocol);

}  // namespace r2rec
