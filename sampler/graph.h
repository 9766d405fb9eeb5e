// The bipartite user-item interaction graph of the TRAINING split, in CSR form both ways.
//
// Edges: for each user u with sequence s[0..n-1], the pairs (u, s[j]) for j = 0..n-3 — the items before the
// validation target s[n-2] and the test target s[n-1]. Those two are never edges, so no chain can reach
// evaluation answers through the graph. (u's later training targets s[p..n-3] ARE edges; the chain sampler
// hides them from u's own examples, see chains.h.)
//
//   user_offsets [U+1], user_items [E]: user u's items, ascending ids, at user_items[user_offsets[u] ..)
//   item_offsets [I+1], item_users [E]: item i's users, ascending ids
// E < 2^31 is checked; offsets are int64 so the layout would not change if that limit were lifted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampler/dataset.h"

namespace r2rec {

struct InteractionGraph {
  int32_t num_users = 0;
  int32_t num_items = 0;
  std::vector<int64_t> user_offsets;
  std::vector<int32_t> user_items;
  std::vector<int64_t> item_offsets;
  std::vector<int32_t> item_users;

  int64_t num_edges() const { return static_cast<int64_t>(user_items.size()); }
  ItemSpan items_of(int32_t user) const {
    return {user_items.data() + user_offsets[user], user_offsets[user + 1] - user_offsets[user]};
  }
  ItemSpan users_of(int32_t item) const {
    return {item_users.data() + item_offsets[item], item_offsets[item + 1] - item_offsets[item]};
  }
  // Binary search in the user's sorted item list.
  bool has_edge(int32_t user, int32_t item) const;
};

// Builds the graph of every user's s[0..n-3].
InteractionGraph build_train_graph(const Dataset& dataset);

// Checks the graph against the dataset: both directions hold the same edges, lists sorted and unique, and no
// validation/test target edge (u, s[n-2]) or (u, s[n-1]) is present. Returns "" or the first violation.
std::string check_train_graph(const InteractionGraph& graph, const Dataset& dataset);

}  // namespace r2rec
