#include "trainers/recommender.h"

#include <algorithm>

#include "core/error.h"
#include "distributed/communicator.h"
#include "trainers/bpr.h"
#include "trainers/itemknn.h"
#include "trainers/sasrec.h"

namespace r2rec {

Collectives Collectives::single() {
  Collectives c;
  c.sum_floats = [](float*, int64_t) {};
  c.sum_doubles = [](double*, int64_t) {};
  return c;
}

Collectives Collectives::over(Communicator& comm, double bucket_mb, double timeout_s) {
  Collectives c;
  c.rank = comm.rank();
  c.world_size = comm.size();
  c.comm = &comm;
  c.bucket_mb = bucket_mb;
  c.timeout_s = timeout_s;
  Communicator* p = &comm;
  c.sum_floats = [p](float* d, int64_t n) { p->all_reduce(d, static_cast<size_t>(n), ReduceOp::kSum)->wait(); };
  c.sum_doubles = [p](double* d, int64_t n) { p->all_reduce(d, static_cast<size_t>(n), ReduceOp::kSum)->wait(); };
  return c;
}

RankingMetrics sum_over_ranks(const RankingMetrics& local, const Collectives& c) {
  std::vector<double> sums = local.sums();
  sums.push_back(static_cast<double>(local.count()));
  c.sum_doubles(sums.data(), static_cast<int64_t>(sums.size()));
  const int64_t count = static_cast<int64_t>(sums.back());
  sums.pop_back();
  RankingMetrics merged(local.ks());
  merged.set_sums(sums, count);
  return merged;
}

std::vector<int32_t> scoring_prefix(const Catalog& catalog, const Example& example) {
  const int64_t b = catalog.user_train_offsets[example.user], e = catalog.user_train_offsets[example.user + 1];
  const int64_t take = std::max<int64_t>(0, std::min<int64_t>(example.position, e - b));
  std::vector<int32_t> prefix(catalog.user_train_items.begin() + b, catalog.user_train_items.begin() + b + take);
  // Positions between the train split and the target (the validation item for a test example) are the tail
  // of the example's stored history.
  const int64_t extra =
      std::max<int64_t>(0, std::min<int64_t>(example.position - take, static_cast<int64_t>(example.history.size())));
  prefix.insert(prefix.end(), example.history.end() - extra, example.history.end());
  return prefix;
}

UnseenItemSampler::UnseenItemSampler(const Catalog& catalog) : catalog_(catalog), sorted_(catalog.user_train_items) {
  for (int32_t u = 0; u < catalog.num_users(); ++u) {
    std::sort(sorted_.begin() + catalog.user_train_offsets[u], sorted_.begin() + catalog.user_train_offsets[u + 1]);
  }
}

int32_t UnseenItemSampler::draw(int32_t user, Rng& rng) const {
  const auto b = sorted_.begin() + catalog_.user_train_offsets[user];
  const auto e = sorted_.begin() + catalog_.user_train_offsets[user + 1];
  for (;;) {
    const int32_t j = static_cast<int32_t>(rng.below(static_cast<uint64_t>(catalog_.num_items())));
    if (!std::binary_search(b, e, j)) return j;
  }
}

std::unique_ptr<Recommender> make_recommender(const std::string& method, const BaselineConfig& config,
                                              const Catalog& catalog, uint64_t seed, const Collectives& collectives) {
  if (method == "itemknn") return std::make_unique<ItemKnn>(config.itemknn, catalog);
  if (method == "bpr") return make_bpr(config.bpr, catalog, seed, collectives);
  if (method == "sasrec") return make_sasrec(config.sasrec, catalog, seed, collectives);
  throw ConfigError("baseline --method: unknown method '" + method +
                    "' (random, popularity, chainvote, sasrec, bpr, itemknn)");
}

}  // namespace r2rec
