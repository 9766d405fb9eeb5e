#include "trainers/baselines/itemknn.h"

#include <algorithm>
#include <cmath>

namespace r2rec {

ItemKnn::ItemKnn(const ItemKnnConfig& config, const Catalog& catalog) : config_(config), catalog_(catalog) {
  const int32_t I = catalog.num_items(), U = catalog.num_users();
  std::vector<int64_t> degree(I + 1, 0);
  for (int32_t item : catalog.user_train_items) ++degree[item + 1];
  item_offsets_.assign(I + 1, 0);
  for (int32_t i = 0; i < I; ++i) item_offsets_[i + 1] = item_offsets_[i] + degree[i + 1];
  item_users_.resize(item_offsets_[I]);
  std::vector<int64_t> fill(item_offsets_.begin(), item_offsets_.end() - 1);
  for (int32_t u = 0; u < U; ++u) {
    for (int64_t k = catalog.user_train_offsets[u]; k < catalog.user_train_offsets[u + 1]; ++k) {
      item_users_[fill[catalog.user_train_items[k]]++] = u;  // users ascending: sorted lists
    }
  }
  counts_.assign(I, 0.0f);
}

std::vector<float> ItemKnn::similarity_row(int32_t item) {
  // Co-occurrence counts of `item` with every item: walk its users' item lists (cost = sum of their lengths).
  const auto& off = catalog_.user_train_offsets;
  touched_.clear();
  for (int64_t k = item_offsets_[item]; k < item_offsets_[item + 1]; ++k) {
    const int32_t u = item_users_[k];
    for (int64_t t = off[u]; t < off[u + 1]; ++t) {
      const int32_t j = catalog_.user_train_items[t];
      if (counts_[j] == 0.0f) touched_.push_back(j);
      counts_[j] += 1.0f;
    }
  }
  std::vector<float> row(counts_.size(), 0.0f);
  const double ni = static_cast<double>(item_offsets_[item + 1] - item_offsets_[item]);
  for (int32_t j : touched_) {
    if (j != item) {
      const double nj = static_cast<double>(item_offsets_[j + 1] - item_offsets_[j]);
      row[j] = static_cast<float>(counts_[j] / (std::sqrt(ni * nj) + config_.shrink));
    }
    counts_[j] = 0.0f;
  }
  if (config_.neighbors > 0 && static_cast<int64_t>(touched_.size()) > config_.neighbors) {
    // Keep the top `neighbors` similarities (ties: lower item id first), zero the rest.
    std::vector<int32_t> order(touched_.begin(), touched_.end());
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; });
    for (size_t k = static_cast<size_t>(config_.neighbors); k < order.size(); ++k) row[order[k]] = 0.0f;
  }
  return row;
}

std::vector<double> ItemKnn::score(const Example& example, const std::vector<int32_t>& prefix) {
  std::vector<double> scores;
  scores.reserve(example.candidates.size());
  for (int32_t c : example.candidates) {
    const std::vector<float> row = similarity_row(c);
    double s = 0.0;
    for (int32_t h : prefix) s += row[h];
    scores.push_back(s);
  }
  return scores;
}

}  // namespace r2rec
