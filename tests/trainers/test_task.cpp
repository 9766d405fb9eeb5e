// The R2Rec task text on real ML-100K shards: prompts hold the history, chains and numbered candidates; the
// template teacher's trace is progressive (step k names only nodes 0..k), grounded (cites only prompt chains that
// reach the target) and parses back to the target; malformed answers parse to -1.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/config.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "tests/test_support.h"
#include "trainers/task.h"

namespace r2rec {
namespace {
using testing::TempDir;

struct Records {
  std::vector<Example> examples;
  std::vector<ChainBuffer> chains;
  Catalog catalog;
};

const Records& ml100k_records() {
  static const Records records = [] {
    static TempDir dir;
    const Config config = load_config("", {"data.path=" + testing::data_dir() + "/ml-100k", "sampler.num_shards=2"});
    prepare_in_process(config, dir.path());
    ReaderOptions o;
    o.dir = dir.path();
    o.shuffle = false;
    ShardReader reader(o);
    Records r;
    r.catalog = reader.catalog();
    Example e;
    ChainBuffer c;
    while (reader.next(&e, &c)) {
      r.examples.push_back(e);
      r.chains.push_back(c);
      c.clear();
    }
    return r;
  }();
  return records;
}

std::string name_of(const Records& r, const ChainBuffer& c, int64_t n, int32_t u0) {
  const int32_t id = c.nodes[n];
  if (static_cast<NodeType>(c.types[n]) == NodeType::kItem) return r.catalog.item_titles[id];
  return id == u0 ? "U" : "user " + r.catalog.user_tokens[id];
}

TEST(Task, PromptHoldsHistoryChainsAndNumberedCandidates) {
  const Records& r = ml100k_records();
  ASSERT_EQ(r.examples.size(), 4715u + 943 + 943);
  const Example& e = r.examples.back();
  const ChainBuffer& c = r.chains.back();
  const std::string p = render_prompt(e, c, 0, c.size(), r.catalog);
  for (int32_t item : e.history) EXPECT_NE(p.find("- " + r.catalog.item_titles[item] + "\n"), std::string::npos);
  for (size_t i = 0; i < e.candidates.size(); ++i) {
    EXPECT_NE(p.find("[" + std::to_string(i + 1) + "] " + r.catalog.item_titles[e.candidates[i]] + "\n"),
              std::string::npos);
  }
  for (int64_t k = 0; k < c.size(); ++k) {
    std::string line = "Chain " + std::to_string(k + 1) + ": ";
    for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n)
      line += (n > c.offsets[k] ? " -> " : "") + name_of(r, c, n, e.user);
    EXPECT_NE(p.find(line + "\n"), std::string::npos) << line;
  }
  const std::string chat = render_chat_prompt(e, c, 0, c.size(), r.catalog);
  EXPECT_EQ(chat.rfind("<|im_start|>system\n", 0), 0u);
  EXPECT_EQ(chat.substr(chat.size() - 22), "<|im_start|>assistant\n");
  std::printf("example prompt (test user %d):\n%s\n", e.user, p.c_str());
}

TEST(Task, TemplateTracesAreProgressiveGroundedAndParseToTheTarget) {
  const Records& r = ml100k_records();
  int64_t reached = 0, train = 0;
  for (size_t x = 0; x < r.examples.size(); ++x) {
    const Example& e = r.examples[x];
    const ChainBuffer& c = r.chains[x];
    const Trace t = template_trace(e, c, 0, c.size(), r.catalog);
    ASSERT_EQ(parse_answer(t.text, e, r.catalog), e.target_index) << t.text;
    int32_t reaching = 0;
    for (int64_t k = 0; k < c.size(); ++k) {
      bool hits = false;
      for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n) {
        hits = hits || (static_cast<NodeType>(c.types[n]) == NodeType::kItem && c.nodes[n] == e.target);
      }
      reaching += hits;
      const std::string prefix = "Chain " + std::to_string(k + 1) + ", step ";
      // Grounded: only chains that reach the target are cited.
      EXPECT_EQ(t.text.find(prefix) != std::string::npos, hits) << t.text;
      if (!hits) continue;
      // Progressive: step s names node s and node s-1, and no node after s (unless it has the same name).
      for (int64_t s = 1; s < c.length(k); ++s) {
        const size_t at = t.text.find(prefix + std::to_string(s) + ": ");
        ASSERT_NE(at, std::string::npos);
        const std::string line = t.text.substr(at, t.text.find('\n', at) - at);
        EXPECT_NE(line.find(name_of(r, c, c.offsets[k] + s, e.user)), std::string::npos) << line;
        for (int64_t later = s + 1; later < c.length(k); ++later) {
          const std::string name = name_of(r, c, c.offsets[k] + later, e.user);
          bool same_as_seen = false;
          for (int64_t seen = 0; seen <= s; ++seen)
            same_as_seen = same_as_seen || name == name_of(r, c, c.offsets[k] + seen, e.user);
          if (!same_as_seen && name != "U") {
            EXPECT_EQ(line.find(name), std::string::npos) << line << " names " << name;
          }
        }
      }
    }
    EXPECT_EQ(t.reaching, reaching);
    if (e.split == Split::kTrain) {
      ++train;
      reached += reaching > 0;
    }
  }
  std::printf("train examples whose prompt chains reach the target: %lld of %lld (%.1f%%)\n",
              static_cast<long long>(reached), static_cast<long long>(train), 100.0 * reached / train);
  EXPECT_GT(reached, 0);
  EXPECT_LT(reached, train);  // some are weak-evidence traces
}

TEST(Task, AnswersParseByNumberOrTitleAndMalformedOnesAreWrong) {
  const Records& r = ml100k_records();
  const Example& e = r.examples.front();
  const std::string title = r.catalog.item_titles[e.candidates[4]];
  EXPECT_EQ(parse_answer("<think>x</think><answer>5</answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer> [5] </answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer>" + title + "</answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer>20</answer>", e, r.catalog), 19);
  for (const std::string bad :
       {"", "5", "<answer>5", "<answer>0</answer>", "<answer>21</answer>", "<answer>-1</answer>",
        "<answer>5</answer><answer>6</answer>", "<answer>Not A Movie</answer>", "<answer>99999999999</answer>"}) {
    EXPECT_EQ(parse_answer(bad, e, r.catalog), -1) << bad;
  }
  EXPECT_EQ(answer_text(4), "<answer>5</answer>");
}

}  // namespace
}  // namespace r2rec
