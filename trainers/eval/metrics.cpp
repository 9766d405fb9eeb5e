#include "trainers/eval/metrics.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/hash.h"
#include "distributed/dp_group.h"

namespace r2rec {

namespace {
// Candidates other than the target scored strictly higher than it, and scored equal to it.
void count_above(const std::vector<double>& scores, int64_t target, int64_t* higher, int64_t* equal) {
  CHECK(target >= 0 && target < static_cast<int64_t>(scores.size())) << "target " << target << " of " << scores.size();
  // A non-finite score (a diverged model) ranks below every finite one: NaN must never count as a hit.
  auto value = [](double s) { return std::isfinite(s) ? s : -std::numeric_limits<double>::infinity(); };
  const double t = value(scores[target]);
  *higher = *equal = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (static_cast<int64_t>(i) == target) continue;
    const double s = value(scores[i]);
    if (s > t)
      ++*higher;
    else if (s == t)
      ++*equal;
  }
}
}  // namespace

double expected_rank(const std::vector<double>& scores, int64_t target) {
  int64_t higher, equal;
  count_above(scores, target, &higher, &equal);
  return 1.0 + higher + equal / 2.0;
}

uint64_t candidates_hash(const Example& example) {
  uint64_t h = fnv1a_words(kFnvOffset, example.candidates.data(), example.candidates.size() * sizeof(int32_t));
  return fnv1a_words(h, &example.target_index, sizeof(example.target_index));
}

RankingMetrics::RankingMetrics(std::vector<int64_t> ks)
    : ks_(std::move(ks)), hr_sum_(ks_.size(), 0.0), ndcg_sum_(ks_.size(), 0.0) {}

void RankingMetrics::add(const std::vector<double>& scores, int64_t target) {
  int64_t higher, equal;
  count_above(scores, target, &higher, &equal);
  // Under a uniformly random tie-break the target's rank is higher + 1 + j, j uniform in [0, equal].
  const double p = 1.0 / static_cast<double>(equal + 1);
  for (size_t n = 0; n < ks_.size(); ++n) {
    for (int64_t j = 0; j <= equal; ++j) {
      const int64_t rank = higher + 1 + j;
      if (rank > ks_[n]) break;
      hr_sum_[n] += p;
      ndcg_sum_[n] += p / std::log2(static_cast<double>(rank) + 1.0);
    }
  }
  ++count_;
}

void RankingMetrics::add_choice(int64_t choice, int64_t target) {
  if (choice == target) {
    for (size_t n = 0; n < ks_.size(); ++n) {
      hr_sum_[n] += 1.0;
      ndcg_sum_[n] += 1.0;  // rank 1
    }
  }
  ++count_;
}

void RankingMetrics::add(const std::vector<double>& scores, const Example& example) {
  add(scores, example.target_index);
  int64_t higher, equal;
  count_above(scores, example.target_index, &higher, &equal);
  ExampleOutcome o;
  o.id = example.id;
  o.user = example.user;
  o.list_hash = candidates_hash(example);
  o.hit = higher == 0 ? 1.0 / static_cast<double>(equal + 1) : 0.0;
  o.rank = 1.0 + static_cast<double>(higher) + static_cast<double>(equal) / 2.0;
  outcomes_.push_back(o);
}

void RankingMetrics::add_choice(int64_t choice, const Example& example) {
  add_choice(choice, example.target_index);
  ExampleOutcome o;
  o.id = example.id;
  o.user = example.user;
  o.list_hash = candidates_hash(example);
  o.hit = choice == example.target_index ? 1.0 : 0.0;
  outcomes_.push_back(o);
}

void RankingMetrics::merge(const RankingMetrics& other) {
  CHECK(other.ks_ == ks_) << "merging metrics over different cut-offs";
  for (size_t n = 0; n < ks_.size(); ++n) {
    hr_sum_[n] += other.hr_sum_[n];
    ndcg_sum_[n] += other.ndcg_sum_[n];
  }
  count_ += other.count_;
  outcomes_.insert(outcomes_.end(), other.outcomes_.begin(), other.outcomes_.end());
}

size_t RankingMetrics::index_of(int64_t k) const {
  for (size_t n = 0; n < ks_.size(); ++n) {
    if (ks_[n] == k) return n;
  }
  LOG(FATAL) << "cut-off " << k << " is not tracked";
  return 0;
}

double RankingMetrics::hr(int64_t k) const { return count_ ? hr_sum_[index_of(k)] / count_ : 0.0; }
double RankingMetrics::ndcg(int64_t k) const { return count_ ? ndcg_sum_[index_of(k)] / count_ : 0.0; }

std::map<std::string, double> RankingMetrics::summary() const {
  std::map<std::string, double> out;
  for (int64_t k : ks_) {
    out["HR@" + std::to_string(k)] = hr(k);
    out["NDCG@" + std::to_string(k)] = ndcg(k);
  }
  return out;
}

std::vector<double> RankingMetrics::sums() const {
  std::vector<double> out;
  for (size_t n = 0; n < ks_.size(); ++n) {
    out.push_back(hr_sum_[n]);
    out.push_back(ndcg_sum_[n]);
  }
  return out;
}

void RankingMetrics::set_sums(const std::vector<double>& sums, int64_t count) {
  CHECK_EQ(sums.size(), 2 * ks_.size());
  for (size_t n = 0; n < ks_.size(); ++n) {
    hr_sum_[n] = sums[2 * n];
    ndcg_sum_[n] = sums[2 * n + 1];
  }
  count_ = count;
}

RankingMetrics sum_over_ranks(const RankingMetrics& local, const DataParallelGroup& group) {
  std::vector<double> sums = local.sums();
  sums.push_back(static_cast<double>(local.count()));
  group.sum(sums.data(), static_cast<int64_t>(sums.size()));
  const int64_t count = static_cast<int64_t>(sums.back());
  sums.pop_back();
  RankingMetrics merged(local.ks());
  merged.set_sums(sums, count);
  // The outcomes: every rank learns the others' counts, then fills its own rows of one zeroed table that a sum
  // turns into everyone's (an all-gather through the host sums). The hash travels as two exact 32-bit halves.
  constexpr int64_t kFields = 6;
  std::vector<double> counts(static_cast<size_t>(group.size()), 0.0);
  counts[static_cast<size_t>(group.rank())] = static_cast<double>(local.outcomes().size());
  group.sum(counts.data(), static_cast<int64_t>(counts.size()));
  int64_t offset = 0, total = 0;
  for (int r = 0; r < group.size(); ++r) {
    if (r < group.rank()) offset += static_cast<int64_t>(counts[static_cast<size_t>(r)]);
    total += static_cast<int64_t>(counts[static_cast<size_t>(r)]);
  }
  if (total == 0) return merged;
  std::vector<double> table(static_cast<size_t>(total * kFields), 0.0);
  for (size_t i = 0; i < local.outcomes().size(); ++i) {
    const ExampleOutcome& o = local.outcomes()[i];
    double* row = &table[static_cast<size_t>((offset + static_cast<int64_t>(i)) * kFields)];
    row[0] = static_cast<double>(o.id);
    row[1] = o.user;
    row[2] = static_cast<double>(o.list_hash >> 32);
    row[3] = static_cast<double>(o.list_hash & 0xFFFFFFFFull);
    row[4] = o.hit;
    row[5] = o.rank;
  }
  group.sum(table.data(), static_cast<int64_t>(table.size()));
  std::vector<ExampleOutcome> all(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) {
    const double* row = &table[static_cast<size_t>(i * kFields)];
    ExampleOutcome& o = all[static_cast<size_t>(i)];
    o.id = static_cast<int64_t>(row[0]);
    o.user = static_cast<int32_t>(row[1]);
    o.list_hash = (static_cast<uint64_t>(row[2]) << 32) | static_cast<uint64_t>(row[3]);
    o.hit = row[4];
    o.rank = row[5];
  }
  std::sort(all.begin(), all.end(), [](const ExampleOutcome& x, const ExampleOutcome& y) { return x.id < y.id; });
  merged.set_outcomes(std::move(all));
  return merged;
}

}  // namespace r2rec
