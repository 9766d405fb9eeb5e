// Ranking metrics over a stored candidate list (docs/design.md §6): every method — the LLM by likelihood or by
// generation, classical baselines, random, popularity, chain-vote — scores the same C candidates of an
// example, and these turn the scores into HR@k and NDCG@k.
//
// Rank of the target = 1 + number of candidates scored strictly higher + ties broken pessimistically by
// half (expected rank under a random tie-break is 1 + higher + equal/2). HR@k = [rank <= k];
// NDCG@k = 1 / log2(rank + 1) when rank <= k (one relevant item, so the ideal DCG is 1).
// With ties the expected-rank convention keeps a constant scorer at exactly random's expectation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sampler/split.h"

namespace r2rec {

class DataParallelGroup;

// One example's outcome under one method, kept so that two methods can be compared example by example (the
// paired bootstrap, trainers/eval/stats.h) in the run's examples.jsonl (trainers/eval/examples_file.h).
struct ExampleOutcome {
  int64_t id = 0;  // the example's id (sampler/split.h)
  int32_t user = 0;
  uint64_t list_hash = 0;  // candidates_hash(): which candidate list (and target) was scored
  double hit = 0;          // HR@1 of this example (its expectation over random tie-breaks)
  double rank = 0;         // expected rank of the target; 0 for a single choice (generation), which has none
};

// FNV-1a of the example's candidate ids and target index: equal lists give equal hashes across runs and machines.
uint64_t candidates_hash(const Example& example);

// Expected 1-based rank of scores[target] among `scores` (ties split evenly, see above).
double expected_rank(const std::vector<double>& scores, int64_t target);

// Accumulates HR@k / NDCG@k over examples for a fixed set of cut-offs.
class RankingMetrics {
 public:
  explicit RankingMetrics(std::vector<int64_t> ks);

  // Adds one example; for tied scores the contribution is the expectation over random tie-breaks.
  void add(const std::vector<double>& scores, int64_t target);
  // Adds one example whose answer is a single choice (generation): a hit iff choice == target.
  void add_choice(int64_t choice, int64_t target);
  // The same, keeping the example's outcome (outcomes()).
  void add(const std::vector<double>& scores, const Example& example);
  void add_choice(int64_t choice, const Example& example);
  // Merges counts (and outcomes) from another accumulator over the same ks (e.g. another rank's share).
  void merge(const RankingMetrics& other);

  int64_t count() const { return count_; }
  const std::vector<int64_t>& ks() const { return ks_; }
  double hr(int64_t k) const;
  double ndcg(int64_t k) const;
  // {"HR@1": ..., "NDCG@1": ..., ...}
  std::map<std::string, double> summary() const;

  // Raw sums, for reductions across ranks: [hr_sum(k0), ndcg_sum(k0), hr_sum(k1), ...].
  std::vector<double> sums() const;
  void set_sums(const std::vector<double>& sums, int64_t count);

  // The outcomes of the examples added with their Example, in the order added (sum_over_ranks: by id).
  const std::vector<ExampleOutcome>& outcomes() const { return outcomes_; }
  void set_outcomes(std::vector<ExampleOutcome> outcomes) { outcomes_ = std::move(outcomes); }

 private:
  size_t index_of(int64_t k) const;
  std::vector<int64_t> ks_;
  std::vector<double> hr_sum_, ndcg_sum_;
  int64_t count_ = 0;
  std::vector<ExampleOutcome> outcomes_;
};

// Every rank's metrics summed over `group` (each rank passes its share; all ranks get the total), and every rank's
// outcomes gathered, sorted by example id. Collective.
RankingMetrics sum_over_ranks(const RankingMetrics& local, const DataParallelGroup& group);

}  // namespace r2rec
