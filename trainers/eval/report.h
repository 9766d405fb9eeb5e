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
#include <vector>

#include "trainers/eval/metrics.h"
#include "trainers/eval/stats.h"

namespace r2rec {

struct MethodResult {
  std::string method;
  std::string split;                      // "valid" | "test"
  std::map<std::string, double> metrics;  // "HR@1" -> value, ...
  int64_t examples = 0;
  double seconds = 0;
  std::vector<ExampleOutcome> outcomes;  // per example, for examples.jsonl (trainers/eval/examples_file.h)
  std::string fingerprint;               // what the entry depends on (a cached stage's key); "" = none kept
  // Trained methods: the settings they trained with ("baseline.bpr.dim" -> "64", YAML flow text) and the
  // validation curve early stopping read ((epoch, NDCG@10), best_epoch the one restored). Empty = none.
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<std::pair<int64_t, double>> valid_curve;
  int64_t best_epoch = 0;
};

// Merges `result` into the report at `path` (<run.dir>/report.json, creating it). Throws RuntimeFailure on I/O
// errors; a report that exists but is not valid JSON is a DataError naming it (never silently overwritten).
void update_report(const std::string& path, const std::string& dataset, int64_t num_candidates,
                   const MethodResult& result);

// The "fingerprint" of `method`'s entry on `split` ("" when the report, the entry or the field is absent).
std::string report_fingerprint(const std::string& path, const std::string& split, const std::string& method);

// The report as an aligned text table (methods as rows, metrics as columns) for the terminal.
std::string report_table(const std::string& path, const std::string& split);

// Each `llm-*` method of `split` against the best classical baseline of that split (highest HR@1 in the report
// among the methods that are neither `llm-*` nor `random`): the paired bootstrap (trainers/eval/stats.h) of the
// difference in HR@1 over the examples both scored on the same lists, from examples.jsonl at `examples_path`.
// Empty when either side has no outcomes there.
struct Comparison {
  std::string method, baseline;
  double method_hr1 = 0, baseline_hr1 = 0;
  Interval difference;  // method minus baseline
};
std::vector<Comparison> compare_with_best_baseline(const std::string& report_path, const std::string& examples_path,
                                                   const std::string& split, int64_t resamples, uint64_t seed);

// compare_with_best_baseline() for every split of the report, by split name (10,000 resamples).
std::map<std::string, std::vector<Comparison>> compare_every_split(const std::string& report_path,
                                                                   const std::string& examples_path, uint64_t seed);

// report.md: a title, `protocol` (a paragraph in words: dataset, filtering, split, candidates, seed), then one
// Markdown table per split in the report (every method; HR@k, NDCG@k, valid; "-" where a method has none), each
// followed by that split's `comparisons` (compare_every_split()) as a second table when there are any, and a line
// naming the methods' definitions (docs/training.md, docs/baselines.md). "" when the report is absent.
std::string report_markdown(const std::string& path, const std::string& protocol,
                            const std::map<std::string, std::vector<Comparison>>& comparisons = {});

}  // namespace r2rec
