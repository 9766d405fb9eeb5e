// Interaction chains: alternating user/item paths on the train graph that start at an example's user u0.
//
// Kinds (sampler.chain_types):
//   closed  u0 -> i0 -> u1 -> i1 -> u0   (4 hops) u1 != u0 shares i0 != i1 with u0's visible items and at least
//                                        sampler.min_shared_items of them in all (counted exactly)
//   bridge  u0 -> i -> u1 -> c           (3 hops) i visible to u0, u1 != u0, c one of the example's candidates
//   walk    u0 -> i1 -> u1 -> i2 -> ...  up to sampler.max_hops hops, no node twice; stops early where no unvisited
//                                        neighbour is found, kept when it has >= min(3, max_hops) hops
//   transition u0 -> i -> u1 -> c        (3 hops) i one of u0's last sampler.history_len visible items (the ones
//                                        the prompt shows), u1 != u0, c a candidate among the
//                                        sampler.transition_window items u1 took right after i (u1's train
//                                        sequence, chronological): "who took what you just took, took c next"
//   neighbour u0 -> i -> u1 -> c         (3 hops) u1 one of u0's sampler.neighbours nearest users (most items
//                                        shared with V, ties to the lower id; neighbours()), i uniform over the
//                                        items u1 shares with V, c a candidate u1 took: "a user who shares most
//                                        of your history took c" (user-based collaborative filtering)
//
// One generic loop (ChainSampler::run_plan) drives every kind; a kind is a plan: the list of step rules that
// each append one node or give up. u0's visible items V = s[0..L-1] with L = min(p, n-2) (p = target position,
// n = |s|): what u0 did before the target AND is a train edge. Step rules may only leave or enter u0 through V.
//
// LEAKAGE RULE: no chain of an example contains an edge (u0, s[j]) with j >= p — in particular not the target
// edge (u0, s[p]). Train examples need this enforced here because s[p..n-3] are train-graph edges; check_no_leakage
// verifies it independently of the sampler.
//
// Mix: chain slot k = 0..K-1 tries kinds[k mod T], then the next kinds in the configured order; each try makes at
// most attempts_per_chain attempts (a duplicate of a chain already made for the example counts as a failed
// attempt). A slot where every kind fails stays empty: fewer than K chains, counted in ChainStats::missing.
// Work per example is bounded by K * T * attempts_per_chain attempts.
//
// Determinism: example (user u, position p) draws from Rng(stream_key(seed, kChains, u, p)), so the same seed
// gives byte-identical chains whatever the thread, rank or call order.
//
// Flat output, no allocation per chain: chain c is nodes[offsets[c] .. offsets[c+1]) with types alongside.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "sampler/dataset.h"
#include "sampler/graph.h"
#include "sampler/split.h"

namespace r2rec {

enum class NodeType : uint8_t { kUser = 0, kItem = 1 };
enum class ChainKind : uint8_t { kClosed = 0, kBridge = 1, kWalk = 2, kTransition = 3, kNeighbour = 4 };
constexpr int kNumChainKinds = 5;
constexpr int kMaxChainHops = 16;

const char* chain_kind_name(ChainKind kind);  // "closed" | "bridge" | "walk" | "transition" | "neighbour"

struct ChainBuffer {
  std::vector<int64_t> offsets = {0};  // [chains+1]
  std::vector<int32_t> nodes;          // [total nodes] user or item ids
  std::vector<uint8_t> types;          // [total nodes] NodeType
  std::vector<uint8_t> kinds;          // [chains] ChainKind

  int64_t size() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t length(int64_t c) const { return offsets[c + 1] - offsets[c]; }  // nodes; hops = length - 1
  void clear() {
    offsets.assign(1, 0);
    nodes.clear();
    types.clear();
    kinds.clear();
  }
};

struct ChainOptions {
  int32_t chains_per_example = 4;  // K
  int32_t max_hops = 4;            // walk length cap, in edges (2..kMaxChainHops)
  std::vector<ChainKind> kinds = {ChainKind::kClosed, ChainKind::kBridge, ChainKind::kWalk};
  int32_t min_shared_items = 2;     // closed chains: |items(u1) ∩ V| >= this (and >= 2 by shape)
  int32_t attempts_per_chain = 16;  // bounded retries of one kind for one slot
  int32_t recent_items = 10;        // transition chains: i among u0's last this many visible items
  int32_t transition_window = 10;   // transition chains: c among the this many items u1 took after i
  int32_t neighbours = 20;          // neighbour chains: u1 among u0's this many nearest users
};

// u0's `k` nearest users: the users u != u0 sharing at least one item with `visible`, ordered by how many they share
// (most first, ties to the lower id), the first k. `counts` is scratch of graph.num_users zeros, left zeroed.
// Cost: the sum of the visible items' degrees.
std::vector<int32_t> neighbours(const InteractionGraph& graph, int32_t u0, ItemSpan visible, int32_t k,
                                std::vector<int32_t>* counts);

// From sampler.* keys. Throws ConfigError on an unknown chain type or max_hops out of range.
ChainOptions chain_options(const SamplerConfig& sampler);

struct ChainStats {
  int64_t examples = 0;
  int64_t requested = 0;  // examples * K
  int64_t produced = 0;
  int64_t missing = 0;                   // requested - produced
  int64_t by_kind[kNumChainKinds] = {};  // produced, per ChainKind
  int64_t attempts = 0;                  // attempts of the generic loop, successful or not
};

class ChainSampler {
 public:
  // Keeps references to graph and dataset (they must outlive the sampler). One sampler per thread.
  ChainSampler(const InteractionGraph& graph, const Dataset& dataset, ChainOptions options, uint64_t seed);

  // Appends up to K chains of `example` to `out`; returns how many.
  int sample(const Example& example, ChainBuffer* out);

  // Lower level, for benchmarks and tests: begin() sets up an example (seeding its stream), then each
  // sample_kind() appends at most one chain of `kind` (attempts_per_chain attempts), false when none was found.
  // `out` is the buffer the example's chains go to (duplicates are checked against its chains from here on).
  void begin(const Example& example, const ChainBuffer& out);
  bool sample_kind(ChainKind kind, ChainBuffer* out);

  const ChainStats& stats() const { return stats_; }
  const ChainOptions& options() const { return options_; }

  // The state a step rule sees and extends (public so that step rules are plain functions).
  struct Walk {
    const InteractionGraph* graph = nullptr;
    const Dataset* dataset = nullptr;
    int32_t u0 = 0;
    ItemSpan visible;  // V = s[0..L-1]
    ItemSpan recent;   // the last recent_items of V
    int32_t window = 10;
    const std::vector<int32_t>* candidates = nullptr;
    const uint32_t* visible_mark = nullptr;    // [I] == stamp when the item is in V
    const uint32_t* candidate_mark = nullptr;  // [I] == stamp when the item is a candidate
    uint32_t stamp = 0;
    int32_t min_shared = 2;
    const std::vector<int32_t>* neighbours = nullptr;  // u0's nearest users (neighbour chains)
    int32_t next_user = -1;                            // u1, chosen with i by the neighbour step
    Rng rng{0};
    int32_t len = 0;  // nodes so far
    int32_t nodes[kMaxChainHops + 1] = {};
    uint8_t types[kMaxChainHops + 1] = {};
    std::vector<int32_t>* scratch = nullptr;  // reserved buffer for exact fall-back choices
  };
  using StepRule = bool (*)(Walk& walk);

  struct Plan {
    ChainKind kind = ChainKind::kWalk;
    int32_t num_steps = 0;
    int32_t min_steps = 0;  // fewer completed steps = failed attempt
    StepRule steps[kMaxChainHops] = {};
  };

 private:
  bool run_plan(const Plan& plan, ChainBuffer* out);
  void find_neighbours();  // the example's nearest users, into neighbours_
  bool duplicate(const ChainBuffer& out) const;

  const InteractionGraph& graph_;
  const Dataset& dataset_;
  ChainOptions options_;
  uint64_t seed_;
  Plan plans_[kNumChainKinds];
  std::vector<uint32_t> visible_mark_, candidate_mark_;
  std::vector<int32_t> scratch_;
  bool wants_neighbours_ = false;    // options.kinds has kNeighbour: found in begin()
  bool neighbours_current_ = false;  // neighbours_ belongs to the example begin() set up
  std::vector<int32_t> neighbours_, neighbour_counts_;
  Walk walk_;
  int64_t example_first_chain_ = 0;  // duplicates are checked against out's chains from here
  ChainStats stats_;
};

// Every chain [first, first+count) of `example` checked for the leakage rule alone: returns "" or the first
// violating edge, e.g. "chain 2 hop 0: edge (u0, item 17) at position 9 >= target position 9".
std::string check_no_leakage(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                             const Dataset& dataset);

// Structure of every chain [first, first+count): starts at u0, types alternate, every hop is a train-graph edge,
// and the kind's shape rule holds (closed: returns to u0, u1 != u0, i0 != i1, both visible, sharing >=
// min_shared_items; bridge: ends at a candidate, u1 != u0; walk: no node twice, hops within max_hops; transition:
// i among the recent visible items, c a candidate within transition_window after i in u1's train sequence;
// neighbour: u1 among u0's nearest users, i shared by u0 and u1, c a candidate).
// Returns "" or the first violation.
std::string check_chains(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                         const InteractionGraph& graph, const Dataset& dataset, const ChainOptions& options);

}  // namespace r2rec
