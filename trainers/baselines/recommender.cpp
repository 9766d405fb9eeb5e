#include "trainers/baselines/recommender.h"

#include <algorithm>

#include "core/error.h"
#include "trainers/baselines/bpr.h"
#include "trainers/baselines/itemknn.h"
#include "trainers/baselines/lightgcn.h"
#include "trainers/baselines/sasrec.h"

namespace r2rec {

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

BprTriples::BprTriples(const Catalog& catalog, uint64_t seed, uint64_t stream)
    : seed_(seed), stream_(stream), unseen_(catalog) {
  for (int32_t u = 0; u < catalog.num_users(); ++u) {
    for (int64_t k = catalog.user_train_offsets[u]; k < catalog.user_train_offsets[u + 1]; ++k) {
      user_.push_back(u);
      item_.push_back(catalog.user_train_items[k]);
    }
  }
}

std::vector<BprBatch> BprTriples::epoch(int64_t epoch, int64_t batch_size, int64_t rank, int64_t world) const {
  const int64_t n = size();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Rng shuffler(stream_key(seed_, stream_, static_cast<uint64_t>(epoch)));
  shuffle(order, shuffler);
  std::vector<BprBatch> out;
  for (int64_t start = 0; start < n; start += batch_size) {
    BprBatch b;
    b.global = std::min(n, start + batch_size) - start;
    for (int64_t k = start + rank; k < start + b.global; k += world) {
      const int64_t pair = order[k];
      Rng rng(stream_key(seed_, stream_ + 1, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pair)));
      b.user.push_back(user_[pair]);
      b.item.push_back(item_[pair]);
      b.negative.push_back(unseen_.draw(user_[pair], rng));
    }
    out.push_back(std::move(b));
  }
  return out;
}

std::unique_ptr<Recommender> make_recommender(const std::string& method, const BaselineConfig& config,
                                              const Catalog& catalog, uint64_t seed, const DataParallelGroup& group) {
  if (method == "itemknn") return std::make_unique<ItemKnn>(config.itemknn, catalog);
  if (method == "bpr") return make_bpr(config.bpr, catalog, seed, group);
  if (method == "lightgcn") return make_lightgcn(config.lightgcn, catalog, seed, group);
  if (method == "sasrec") return make_sasrec(config.sasrec, catalog, seed, group);
  throw ConfigError("baseline --method: unknown method '" + method +
                    "' (random, popularity, chainvote, sasrec, bpr, lightgcn, itemknn)");
}

}  // namespace r2rec
