// CSR construction by counting sort: O(U + I + E), no comparison sort needed.
#include "sampler/graph.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace r2rec {

bool InteractionGraph::has_edge(int32_t user, int32_t item) const {
  const ItemSpan items = items_of(user);
  return std::binary_search(items.begin(), items.end(), item);
}

InteractionGraph build_train_graph(const Dataset& ds) {
  InteractionGraph g;
  g.num_users = ds.num_users();
  g.num_items = ds.num_items();
  g.user_offsets.assign(g.num_users + 1, 0);
  g.item_offsets.assign(g.num_items + 1, 0);
  for (int32_t u = 0; u < g.num_users; ++u) {
    const ItemSpan s = ds.sequence(u);
    const int64_t train = std::max<int64_t>(0, s.size - 2);
    g.user_offsets[u + 1] = g.user_offsets[u] + train;
    for (int64_t j = 0; j < train; ++j) ++g.item_offsets[s[j] + 1];
  }
  const int64_t edges = g.user_offsets[g.num_users];
  if (edges > std::numeric_limits<int32_t>::max())
    throw DataError("train graph: " + std::to_string(edges) + " edges exceed the int32 limit");
  for (int32_t i = 0; i < g.num_items; ++i) g.item_offsets[i + 1] += g.item_offsets[i];
  g.user_items.resize(edges);
  g.item_users.resize(edges);
  std::vector<int64_t> fill(g.item_offsets.begin(), g.item_offsets.end() - 1);
  for (int32_t u = 0; u < g.num_users; ++u) {  // users ascending, so each item's user list comes out sorted
    const ItemSpan s = ds.sequence(u);
    int32_t* row = g.user_items.data() + g.user_offsets[u];
    const int64_t train = g.user_offsets[u + 1] - g.user_offsets[u];
    for (int64_t j = 0; j < train; ++j) {
      row[j] = s[j];
      g.item_users[fill[s[j]]++] = u;
    }
    std::sort(row, row + train);
  }
  return g;
}

std::string check_train_graph(const InteractionGraph& g, const Dataset& ds) {
  auto where = [&](int32_t u, int32_t i) {
    return " (user '" + ds.user_tokens[u] + "', item '" + ds.item_tokens[i] + "')";
  };
  for (int32_t u = 0; u < g.num_users; ++u) {
    const ItemSpan items = g.items_of(u);
    for (int64_t k = 0; k < items.size; ++k) {
      if (k > 0 && items[k - 1] >= items[k]) return "user list not strictly ascending" + where(u, items[k]);
      const ItemSpan users = g.users_of(items[k]);
      if (!std::binary_search(users.begin(), users.end(), u))
        return "edge missing from item->users" + where(u, items[k]);
    }
    const ItemSpan s = ds.sequence(u);
    for (int64_t j = std::max<int64_t>(0, s.size - 2); j < s.size; ++j)
      if (g.has_edge(u, s[j]))
        return std::string(j == s.size - 1 ? "test" : "validation") + " target edge in the train graph" +
               where(u, s[j]);
  }
  int64_t reverse_edges = 0;
  for (int32_t i = 0; i < g.num_items; ++i) {
    const ItemSpan users = g.users_of(i);
    reverse_edges += users.size;
    for (int64_t k = 0; k < users.size; ++k) {
      if (k > 0 && users[k - 1] >= users[k]) return "item list not strictly ascending" + where(users[k], i);
      if (!g.has_edge(users[k], i)) return "edge missing from user->items" + where(users[k], i);
    }
  }
  if (reverse_edges != g.num_edges()) return "edge counts differ between directions";
  return "";
}

}  // namespace r2rec
