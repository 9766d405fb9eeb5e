// examples.jsonl: every method's outcome on every example it scored, one line per (split, example), so that any
// two methods can be compared example by example later (the paired bootstrap, trainers/eval/stats.h; `r2rec
// compare`). Filled in by the same writers as report.json (eval, baseline, run); each replaces its own method's
// entries and keeps the others. Written atomically.
//
//   {"split":"test","id":96011,"user":1,"list":"5be2b1d0c6a7e913",
//    "methods":{"popularity":{"hit":0,"rank":4},"llm-rl":{"hit":1,"rank":1},"llm-rl-gen":{"hit":1}}}
//
// `list` is candidates_hash() of the example (trainers/eval/metrics.h): when a method is written for an example
// whose list differs from the line's (the data were prepared again), the line's other methods are dropped, since
// they scored another list. `hit` is HR@1 (its expectation under random tie-breaks); `rank` is the target's
// expected rank, absent for a method that makes one choice (generation).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "trainers/eval/metrics.h"

namespace r2rec {

// Replaces `method`'s outcomes on `split` in the file at `path` (creating it) with `outcomes`. A file that exists
// but is not examples.jsonl is a DataError naming it and the line (never silently overwritten).
void update_examples(const std::string& path, const std::string& split, const std::string& method,
                     const std::vector<ExampleOutcome>& outcomes);

// method -> its outcomes on `split`, by example id. Empty when the file is absent.
std::map<std::string, std::map<int64_t, ExampleOutcome>> read_examples(const std::string& path,
                                                                       const std::string& split);

// The hits of methods `a` and `b` on the examples both scored on the same list, in id order (the pairs a paired
// comparison needs). DataError when either method has no outcomes in `table`.
void paired_hits(const std::map<std::string, std::map<int64_t, ExampleOutcome>>& table, const std::string& a,
                 const std::string& b, std::vector<double>* hits_a, std::vector<double>* hits_b);

}  // namespace r2rec
