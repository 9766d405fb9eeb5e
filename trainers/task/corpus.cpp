#include "trainers/task/corpus.h"

#include <algorithm>

#include "core/rng.h"

namespace r2rec {
namespace {

std::string user_name(const Catalog& catalog, int32_t user, const TaskFormat& f) {
  return f.user_tokens ? user_token(catalog, user) : "user " + catalog.user_tokens[user];
}

std::string item_name(const Catalog& catalog, int32_t item, const TaskFormat& f) {
  if (f.items == ItemText::kToken) return item_token(catalog, item);
  const std::string title =
      catalog.item_titles[item].empty() ? "item " + catalog.item_tokens[item] : catalog.item_titles[item];
  return f.items == ItemText::kTitle ? title : item_token(catalog, item) + " " + title;
}

}  // namespace

std::vector<std::string> corpus_documents(const Catalog& catalog, const TaskFormat& f, const CorpusOptions& o,
                                          int64_t epoch) {
  const int32_t U = catalog.num_users(), I = catalog.num_items();
  // Item -> users of the train split (CSR).
  std::vector<int64_t> offsets(static_cast<size_t>(I) + 1, 0);
  for (int32_t item : catalog.user_train_items) ++offsets[static_cast<size_t>(item) + 1];
  for (int32_t i = 0; i < I; ++i) offsets[i + 1] += offsets[i];
  std::vector<int32_t> users(catalog.user_train_items.size());
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (int32_t u = 0; u < U; ++u) {
    for (int64_t k = catalog.user_train_offsets[u]; k < catalog.user_train_offsets[u + 1]; ++k)
      users[static_cast<size_t>(fill[catalog.user_train_items[k]]++)] = u;
  }
  Rng rng(stream_key(o.seed, static_cast<uint64_t>(Stream::kPretrain), static_cast<uint64_t>(epoch)));
  std::vector<std::string> docs;
  for (int32_t u = 0; u < U; ++u) {
    const int64_t b = catalog.user_train_offsets[u], e = catalog.user_train_offsets[u + 1];
    if (e == b) continue;
    std::string s;
    if (f.titles()) {
      s = "History (oldest first):\n";
      for (int64_t k = b; k < e; ++k) s += "- " + item_name(catalog, catalog.user_train_items[k], f) + "\n";
    } else {
      s = "History (oldest first): ";
      for (int64_t k = b; k < e; ++k) s += item_token(catalog, catalog.user_train_items[k]);
    }
    docs.push_back(std::move(s));
    if (o.walks_per_user <= 0) continue;
    std::string w = "Chains (U is this user):\n";
    int64_t made = 0;
    for (int64_t k = 0; k < o.walks_per_user; ++k) {
      const int32_t i = catalog.user_train_items[b + static_cast<int64_t>(rng.below(static_cast<uint64_t>(e - b)))];
      const int64_t n_users = offsets[i + 1] - offsets[i];
      const int32_t v =
          users[static_cast<size_t>(offsets[i] + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n_users))))];
      const int64_t vb = catalog.user_train_offsets[v], ve = catalog.user_train_offsets[v + 1];
      if (v == u || ve - vb < 2) continue;
      int32_t j = i;
      for (int t = 0; t < 8 && j == i; ++t)
        j = catalog.user_train_items[vb + static_cast<int64_t>(rng.below(static_cast<uint64_t>(ve - vb)))];
      if (j == i) continue;
      w += std::to_string(++made) + ". U -> " + item_name(catalog, i, f) + " -> " + user_name(catalog, v, f) + " -> " +
           item_name(catalog, j, f) + "\n";
    }
    if (made > 0) docs.push_back(std::move(w));
  }
  if (o.title_share > 0) {
    std::string t;
    int lines = 0;
    for (int32_t i = 0; i < I; ++i) {
      if (rng.uniform() >= o.title_share || catalog.item_titles[i].empty()) continue;
      t += item_token(catalog, i) + " is " + catalog.item_titles[i] + ".\n";
      if (++lines == 8) {
        docs.push_back(std::move(t));
        t.clear();
        lines = 0;
      }
    }
    if (lines > 0) docs.push_back(std::move(t));
  }
  shuffle(docs, rng);
  return docs;
}

std::vector<std::vector<int64_t>> pack_rows(const std::vector<std::vector<int64_t>>& documents, int64_t separator,
                                            int64_t row_len) {
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> row;
  row.reserve(static_cast<size_t>(row_len));
  auto push = [&](int64_t id) {
    row.push_back(id);
    if (static_cast<int64_t>(row.size()) == row_len) {
      rows.push_back(std::move(row));
      row.clear();
      row.reserve(static_cast<size_t>(row_len));
    }
  };
  for (const auto& d : documents) {
    for (int64_t id : d) push(id);
    if (separator >= 0) push(separator);
  }
  return rows;
}

}  // namespace r2rec
