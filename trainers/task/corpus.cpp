#include "trainers/task/corpus.h"

#include <algorithm>

#include "core/rng.h"

namespace r2rec {
namespace {

constexpr int64_t kReadingChains = 8;  // walks in a reading document (~100 tokens on ML-100K)

std::string user_name(const Catalog& catalog, int32_t user, const TaskFormat& f) {
  return f.user_tokens ? user_token(catalog, user) : "user " + catalog.user_tokens[user];
}

std::string item_name(const Catalog& catalog, int32_t item, const TaskFormat& f) {
  if (f.items == ItemText::kToken) return item_token(catalog, item);
  const std::string title =
      catalog.item_titles[item].empty() ? "item " + catalog.item_tokens[item] : catalog.item_titles[item];
  return f.items == ItemText::kTitle ? title : item_token(catalog, item) + " " + title;
}

// Appends the chain U -> i -> v -> j (user u, item i, user v, item j) of `kind`.
void append_chain(ChainBuffer* c, int32_t u, int32_t i, int32_t v, int32_t j, ChainKind kind) {
  const uint8_t item = static_cast<uint8_t>(NodeType::kItem), user = static_cast<uint8_t>(NodeType::kUser);
  c->nodes.insert(c->nodes.end(), {u, i, v, j});
  c->types.insert(c->types.end(), {user, item, user, item});
  c->kinds.push_back(static_cast<uint8_t>(kind));
  c->offsets.push_back(static_cast<int64_t>(c->nodes.size()));
}

// The last node of a random chain of `c` (which must hold one).
int32_t random_chain_end(const ChainBuffer& c, Rng& rng) {
  const int64_t pick = static_cast<int64_t>(rng.below(static_cast<uint64_t>(c.size())));
  return c.nodes[static_cast<size_t>(c.offsets[pick + 1] - 1)];
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
    // A walk u -> i (an item of u) -> v (another user of i) -> j (another item of v); false when the draw fails.
    const auto walk = [&](int32_t* i, int32_t* v, int32_t* j) {
      *i = catalog.user_train_items[b + static_cast<int64_t>(rng.below(static_cast<uint64_t>(e - b)))];
      const int64_t n_users = offsets[*i + 1] - offsets[*i];
      *v = users[static_cast<size_t>(offsets[*i] + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n_users))))];
      const int64_t vb = catalog.user_train_offsets[*v], ve = catalog.user_train_offsets[*v + 1];
      if (*v == u || ve - vb < 2) return false;
      *j = *i;
      for (int t = 0; t < 8 && *j == *i; ++t)
        *j = catalog.user_train_items[vb + static_cast<int64_t>(rng.below(static_cast<uint64_t>(ve - vb)))];
      return *j != *i;
    };
    const auto walk_line = [&](int64_t number, int32_t i, int32_t v, int32_t j) {
      return chain_line({"U", item_name(catalog, i, f), user_name(catalog, v, f), item_name(catalog, j, f)}, number,
                        f) +
             "\n";
    };
    if (o.walks_per_user > 0) {
      std::string w = "Chains (U is this user):\n";
      int64_t made = 0;
      for (int64_t k = 0; k < o.walks_per_user; ++k) {
        int32_t i, v, j;
        if (walk(&i, &v, &j)) w += walk_line(++made, i, v, j);
      }
      if (made > 0) docs.push_back(std::move(w));
    }
    // Reading documents: kReadingChains walks, then one walk's end read back through the first task.cited_chains walks
    // holding it, in the evidence form of the traces (trainers/task/task.h evidence_reasoning).
    for (int64_t r = 0; r < o.reading_per_user; ++r) {
      ChainBuffer chains;
      std::string text = "Chains (U is this user):\n";
      for (int64_t k = 0; k < kReadingChains; ++k) {
        int32_t i, v, j;
        if (!walk(&i, &v, &j)) continue;
        text += walk_line(chains.size() + 1, i, v, j);
        append_chain(&chains, u, i, v, j, ChainKind::kWalk);
      }
      if (chains.size() == 0) continue;
      Example read;
      read.user = u;
      read.candidates = {random_chain_end(chains, rng)};
      docs.push_back(text + "<think>\n" +
                     evidence_reasoning(read, chains, 0, chains.size(), 0, f.cited_chains, catalog, f) + "</think>");
    }
    // Copy documents: the task's conversation for an example of uniformly drawn entities. Chains are bridges as
    // the sampler aims them (U -> a history item -> a user -> a candidate); the trace is the template teacher's.
    for (int64_t r = 0; r < o.copy_per_user; ++r) {
      Example ex;
      ex.user = u;
      std::vector<int32_t> drawn;  // history then candidates: distinct items
      const int64_t want = std::min<int64_t>(o.history_len + o.num_candidates, I);
      while (static_cast<int64_t>(drawn.size()) < want) {
        const int32_t item = static_cast<int32_t>(rng.below(static_cast<uint64_t>(I)));
        if (std::find(drawn.begin(), drawn.end(), item) == drawn.end()) drawn.push_back(item);
      }
      const int64_t h = std::max<int64_t>(0, std::min(o.history_len, want - 1));
      ex.history.assign(drawn.begin(), drawn.begin() + h);
      ex.candidates.assign(drawn.begin() + h, drawn.end());
      ChainBuffer chains;
      for (int64_t k = 0; k < o.chains_per_example && h > 0 && U > 1; ++k) {
        int32_t v = u;
        while (v == u) v = static_cast<int32_t>(rng.below(static_cast<uint64_t>(U)));
        const int32_t i = ex.history[rng.below(ex.history.size())];
        const int32_t j = ex.candidates[rng.below(ex.candidates.size())];
        append_chain(&chains, u, i, v, j, ChainKind::kBridge);
      }
      // The target is the end of a random chain, so every copy trace has chains to read back (a target no chain
      // reaches would be a guess nothing in the document predicts).
      const int32_t end = chains.size() > 0 ? random_chain_end(chains, rng) : ex.candidates[0];
      ex.target_index =
          static_cast<int32_t>(std::find(ex.candidates.begin(), ex.candidates.end(), end) - ex.candidates.begin());
      ex.target = end;
      docs.push_back(render_chat_prompt(ex, chains, 0, chains.size(), catalog, f) +
                     template_trace(ex, chains, 0, chains.size(), catalog, f).text);
    }
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
