// Independent checks of sampled chains (declared in chains.h): the leakage rule and each kind's structure.
// They re-derive everything from the dataset and graph, sharing no code with the step rules.
#include <algorithm>
#include <string>

#include "sampler/chains.h"

namespace r2rec {
namespace {

std::string at(int64_t chain, int64_t hop) {
  return "chain " + std::to_string(chain) + " hop " + std::to_string(hop) + ": ";
}

// Position of `item` in the user's sequence, or -1.
int64_t position_of(const Dataset& ds, int32_t user, int32_t item) {
  const ItemSpan s = ds.sequence(user);
  for (int64_t j = 0; j < s.size; ++j)
    if (s[j] == item) return j;
  return -1;
}

}  // namespace

std::string check_no_leakage(const Example& ex, const ChainBuffer& chains, int64_t first, int64_t count,
                             const Dataset& ds) {
  for (int64_t c = first; c < first + count; ++c) {
    const int64_t b = chains.offsets[c], len = chains.length(c);
    for (int64_t h = 0; h + 1 < len; ++h) {
      const int64_t a = b + h, z = b + h + 1;
      int32_t user, item;
      if (chains.types[a] == static_cast<uint8_t>(NodeType::kUser) &&
          chains.types[z] == static_cast<uint8_t>(NodeType::kItem)) {
        user = chains.nodes[a], item = chains.nodes[z];
      } else if (chains.types[a] == static_cast<uint8_t>(NodeType::kItem) &&
                 chains.types[z] == static_cast<uint8_t>(NodeType::kUser)) {
        item = chains.nodes[a], user = chains.nodes[z];
      } else {
        continue;  // not an edge at all: check_chains reports it
      }
      if (user != ex.user) continue;
      if (item == ex.target)
        return at(c, h) + "target edge (u0 " + std::to_string(user) + ", item " + std::to_string(item) + ")";
      const int64_t j = position_of(ds, user, item);
      if (j >= ex.position)
        return at(c, h) + "edge (u0 " + std::to_string(user) + ", item " + std::to_string(item) + ") at position " +
               std::to_string(j) + " >= target position " + std::to_string(ex.position);
    }
  }
  return "";
}

std::string check_chains(const Example& ex, const ChainBuffer& chains, int64_t first, int64_t count,
                         const InteractionGraph& g, const Dataset& ds, const ChainOptions& opt) {
  const ItemSpan seq = ds.sequence(ex.user);
  const int64_t visible = std::min<int64_t>(ex.position, std::max<int64_t>(0, seq.size - 2));
  auto is_visible = [&](int32_t item) {
    return std::find(seq.begin(), seq.begin() + visible, item) != seq.begin() + visible;
  };
  auto is_candidate = [&](int32_t item) {
    return std::find(ex.candidates.begin(), ex.candidates.end(), item) != ex.candidates.end();
  };
  std::vector<int32_t> near;  // u0's nearest users, for neighbour chains
  for (int64_t c = first; c < first + count; ++c) {
    const int64_t b = chains.offsets[c], len = chains.length(c);
    const int32_t* n = chains.nodes.data() + b;
    const uint8_t* t = chains.types.data() + b;
    if (len < 2) return at(c, 0) + "fewer than 2 nodes";
    if (len - 1 > opt.max_hops && chains.kinds[c] == static_cast<uint8_t>(ChainKind::kWalk))
      return at(c, 0) + "walk longer than max_hops";
    if (n[0] != ex.user || t[0] != static_cast<uint8_t>(NodeType::kUser)) return at(c, 0) + "does not start at u0";
    for (int64_t h = 0; h + 1 < len; ++h) {
      if (t[h] == t[h + 1]) return at(c, h) + "node types do not alternate";
      const int32_t u = t[h] == static_cast<uint8_t>(NodeType::kUser) ? n[h] : n[h + 1];
      const int32_t i = t[h] == static_cast<uint8_t>(NodeType::kUser) ? n[h + 1] : n[h];
      if (u < 0 || u >= g.num_users || i < 0 || i >= g.num_items) return at(c, h) + "node id out of range";
      if (!g.has_edge(u, i))
        return at(c, h) + "(user " + std::to_string(u) + ", item " + std::to_string(i) + ") is not a train edge";
    }
    switch (static_cast<ChainKind>(chains.kinds[c])) {
      case ChainKind::kClosed: {
        if (len != 5) return at(c, 0) + "closed chain without 4 hops";
        if (n[4] != ex.user) return at(c, 4) + "closed chain does not return to u0";
        if (n[2] == ex.user) return at(c, 2) + "closed chain's u1 is u0";
        if (n[1] == n[3]) return at(c, 3) + "closed chain's i0 == i1";
        if (!is_visible(n[1]) || !is_visible(n[3])) return at(c, 1) + "closed chain item not visible to u0";
        int64_t shared = 0;
        for (int32_t i : g.items_of(n[2])) shared += is_visible(i);
        if (shared < opt.min_shared_items) return at(c, 2) + "u1 shares fewer than min_shared_items items";
        break;
      }
      case ChainKind::kBridge:
        if (len != 4) return at(c, 0) + "bridge chain without 3 hops";
        if (n[2] == ex.user) return at(c, 2) + "bridge chain's u1 is u0";
        if (!is_visible(n[1])) return at(c, 1) + "bridge chain's first item not visible to u0";
        if (!is_candidate(n[3])) return at(c, 3) + "bridge chain does not end at a candidate";
        break;
      case ChainKind::kWalk:
        for (int64_t x = 0; x < len; ++x)
          for (int64_t y = x + 1; y < len; ++y)
            if (n[x] == n[y] && t[x] == t[y]) return at(c, y) + "walk visits a node twice";
        if (!is_visible(n[1])) return at(c, 1) + "walk's first item not visible to u0";
        break;
      case ChainKind::kTransition: {
        if (len != 4) return at(c, 0) + "transition chain without 3 hops";
        if (n[2] == ex.user) return at(c, 2) + "transition chain's u1 is u0";
        const int64_t recent = std::min<int64_t>(visible, opt.recent_items);
        if (std::find(seq.begin() + visible - recent, seq.begin() + visible, n[1]) == seq.begin() + visible)
          return at(c, 1) + "transition chain's first item is not among u0's recent visible items";
        if (!is_candidate(n[3])) return at(c, 3) + "transition chain does not end at a candidate";
        const ItemSpan s1 = ds.sequence(n[2]);
        const int64_t end1 = std::max<int64_t>(0, s1.size - 2);
        const int64_t a = std::find(s1.begin(), s1.begin() + end1, n[1]) - s1.begin();
        const int64_t b = std::find(s1.begin(), s1.begin() + end1, n[3]) - s1.begin();
        if (b <= a || b > a + opt.transition_window)
          return at(c, 3) +
                 "transition chain's candidate is not within transition_window after its item in u1's sequence";
        break;
      }
      case ChainKind::kNeighbour: {
        if (len != 4) return at(c, 0) + "neighbour chain without 3 hops";
        if (!is_visible(n[1])) return at(c, 1) + "neighbour chain's item not visible to u0";
        if (!is_candidate(n[3])) return at(c, 3) + "neighbour chain does not end at a candidate";
        if (near.empty()) {  // once per example
          std::vector<int32_t> counts(static_cast<size_t>(g.num_users), 0);
          near = neighbours(g, ex.user, {seq.data, visible}, opt.neighbours, &counts);
        }
        if (std::find(near.begin(), near.end(), n[2]) == near.end())
          return at(c, 2) + "neighbour chain's u1 is not among u0's " + std::to_string(opt.neighbours) +
                 " nearest users";
        break;
      }
      default:
        return at(c, 0) + "unknown chain kind";
    }
  }
  return "";
}

}  // namespace r2rec
