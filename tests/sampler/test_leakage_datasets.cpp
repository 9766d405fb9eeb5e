// The leakage rule on all three real datasets with the chain mix the language-model configs use (bridge chains
// aimed at the candidates, closed chains through similar users; K = 16): every chain of every example of every
// split is a valid chain of its kind and touches none of u0's interactions at or after the target's position
// (check_no_leakage, independent of the sampler). Also reports, per dataset, the share of test prompts whose
// chains reach the target and chain-vote HR@1 on the test split with these chains.
#include <gtest/gtest.h>

#include <cstdio>

#include "sampler/chain_vote.h"
#include "sampler/chains.h"
#include "sampler/graph.h"
#include "sampler/split.h"
#include "tests/sampler/sampler_fixtures.h"

namespace r2rec::testing {
namespace {

struct Case {
  const char* name;
  const char* format;
  const char* folder;
  const char* prefix;
};

class LeakageOnDataset : public ::testing::TestWithParam<Case> {};

TEST_P(LeakageOnDataset, EveryChainOfEveryExampleIsLeakFree) {
  const Case& c = GetParam();
  DataConfig d;
  d.format = c.format;
  d.path = data_dir() + "/" + c.folder;
  d.prefix = c.prefix;
  d.kcore = 5;
  const Dataset ds = load_dataset(d, kSeed);
  SamplerConfig s;
  s.chains_per_example = 16;
  s.chain_types = {"bridge", "bridge", "bridge", "closed"};
  const std::vector<Example> examples = make_examples(ds, s, kSeed);
  const InteractionGraph graph = build_train_graph(ds);
  const ChainOptions options = chain_options(s);
  ChainSampler sampler(graph, ds, options, kSeed);
  const std::vector<int64_t> popularity = item_popularity(graph);
  int64_t test = 0, reached = 0, votes_hit = 0, chains = 0;
  ChainBuffer out;
  for (const Example& e : examples) {
    out.clear();
    const int n = sampler.sample(e, &out);
    chains += n;
    ASSERT_EQ(check_no_leakage(e, out, 0, n, ds), "") << c.name << " example " << e.id;
    ASSERT_EQ(check_chains(e, out, 0, n, graph, ds, options), "") << c.name << " example " << e.id;
    if (e.split != Split::kTest) continue;
    ++test;
    const std::vector<int32_t> votes = chain_votes(e, out, 0, n);
    reached += votes[e.target_index] > 0;
    votes_hit += chain_vote_choice(e, votes, popularity) == e.target_index;
  }
  std::printf(
      "%s: %zu examples, %lld chains, leak-free; test prompts whose chains reach the target %.1f%%, "
      "chain-vote HR@1 %.4f\n",
      c.name, examples.size(), static_cast<long long>(chains), 100.0 * reached / test,
      static_cast<double>(votes_hit) / test);
  EXPECT_GT(reached, test / 4);
}

INSTANTIATE_TEST_SUITE_P(RealDatasets, LeakageOnDataset,
                         ::testing::Values(Case{"ml-100k", "ml-100k", "ml-100k", ""},
                                           Case{"lastfm", "lastfm-hetrec", "lastfm-hetrec2011", ""},
                                           Case{"amazon-games", "recbole-llmrank", "amazon-games-llmrank", "Games-6k"}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace r2rec::testing
