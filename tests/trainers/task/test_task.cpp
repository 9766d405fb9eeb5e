// The R2Rec task text on real ML-100K shards (the default mix of closed, bridge and walk chains, so every chain
// form is walked): prompts hold the history, chains and candidates in each item form; the template teacher's
// traces are grounded (every citation a walk of its chain, votes the prompt's), reach their answer (the stated
// evidence favours it) and parse back to the target; consistency is judged from a completion's own words;
// malformed answers parse to -1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "sampler/chain_vote.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "tests/test_support.h"
#include "trainers/task/citations.h"
#include "trainers/task/reward.h"
#include "trainers/task/task.h"
#include "trainers/task/teacher.h"

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
    const Config config = load_config(
        "", {"data.path=" + testing::data_dir() + "/ml-100k", "sampler.num_shards=2", "sampler.chains_per_example=8"});
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

std::string name_of(const Records& r, const ChainBuffer& c, int64_t n, int32_t u0, const TaskFormat& f) {
  const int32_t id = c.nodes[n];
  if (static_cast<NodeType>(c.types[n]) == NodeType::kItem) {
    if (f.items == ItemText::kTitle) return r.catalog.item_titles[id];
    if (f.items == ItemText::kToken) return item_token(r.catalog, id);
    return item_token(r.catalog, id) + " " + r.catalog.item_titles[id];
  }
  if (id == u0) return "U";
  return f.user_tokens ? user_token(r.catalog, id) : "user " + r.catalog.user_tokens[id];
}

TaskFormat format_of(ItemText items, bool user_tokens) {
  TaskFormat f;
  f.items = items;
  f.user_tokens = user_tokens;
  return f;
}

TEST(Task, PromptHoldsHistoryChainsAndCandidatesInEveryItemForm) {
  const Records& r = ml100k_records();
  ASSERT_EQ(r.examples.size(), 4715u + 943 + 943);
  const Example& e = r.examples.back();
  const ChainBuffer& c = r.chains.back();
  for (const TaskFormat f : {format_of(ItemText::kToken, true), format_of(ItemText::kTitle, false),
                             format_of(ItemText::kTokenTitle, true)}) {
    const std::string p = render_prompt(e, c, 0, c.size(), r.catalog, f);
    if (f.items == ItemText::kToken) {
      std::string history = "History (oldest first): ";
      for (int32_t item : e.history) history += item_token(r.catalog, item);
      EXPECT_NE(p.find(history + "\n"), std::string::npos) << p;
      std::string candidates = "Candidates: ";
      for (int32_t item : e.candidates) candidates += item_token(r.catalog, item);
      EXPECT_NE(p.find(candidates + "\n"), std::string::npos) << p;
    } else {
      for (int32_t item : e.history) {
        const std::string name = f.items == ItemText::kTitle
                                     ? r.catalog.item_titles[item]
                                     : item_token(r.catalog, item) + " " + r.catalog.item_titles[item];
        EXPECT_NE(p.find("- " + name + "\n"), std::string::npos);
      }
      for (size_t i = 0; i < e.candidates.size(); ++i) {
        const int32_t item = e.candidates[i];
        const std::string name = f.items == ItemText::kTitle
                                     ? r.catalog.item_titles[item]
                                     : item_token(r.catalog, item) + " " + r.catalog.item_titles[item];
        EXPECT_NE(p.find("[" + std::to_string(i + 1) + "] " + name + "\n"), std::string::npos);
      }
    }
    for (int64_t k = 0; k < c.size(); ++k) {
      std::string line = std::to_string(k + 1) + ". ";
      for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n)
        line += (n > c.offsets[k] ? " -> " : "") + name_of(r, c, n, e.user, f);
      EXPECT_NE(p.find(line + "\n"), std::string::npos) << line;
    }
    EXPECT_NE(p.find("Think over the chains step by step"), std::string::npos);
    EXPECT_NE(render_prompt(e, c, 0, c.size(), r.catalog, f, PromptForm::kDirect).find("\nAnswer with one candidate."),
              std::string::npos);
    const std::string chat = render_chat_prompt(e, c, 0, c.size(), r.catalog, f);
    EXPECT_EQ(chat.rfind("<|im_start|>system\n", 0), 0u);
    EXPECT_EQ(chat.substr(chat.size() - 22), "<|im_start|>assistant\n");
    std::printf("example prompt (test user %d):\n%s\n", e.user, p.c_str());
  }
}

// Traces that reach their answer (task.h): in both forms every trace parses to the target, every citation is
// grounded and the stated evidence favours the answer. The evidence form names the target, then walks the
// first cited_chains prompt chains reaching it from the target back to U (or says no chain reaches it); the
// votes form is written exactly where the most votes (ties by position) pick the target, with the prompt's
// votes, and is progressive (thought k names node k and no later node).
TEST(Task, TemplateTracesReachTheirAnswerInBothForms) {
  const Records& r = ml100k_records();
  int64_t reached = 0, top = 0, train = 0, shapes[3] = {0, 0, 0};
  for (const TraceForm form : {TraceForm::kEvidence, TraceForm::kVotes}) {
    TaskFormat f = format_of(ItemText::kToken, true);
    f.trace_form = form;
    for (size_t x = 0; x < r.examples.size(); ++x) {
      const Example& e = r.examples[x];
      const ChainBuffer& c = r.chains[x];
      const Trace t = template_trace(e, c, 0, c.size(), r.catalog, f);
      ASSERT_EQ(parse_answer(t.text, e, r.catalog), e.target_index) << t.text;
      const ChainEvidence ev = chain_evidence(e, c, 0, c.size(), f.cited_chains);
      EXPECT_EQ(t.reaching, ev.votes[e.target_index]);
      const ReasoningCheck check = check_reasoning(t.text, e, c, 0, c.size(), r.catalog, f);
      for (const Citation& ci : check.citations) ASSERT_TRUE(ci.grounded) << ci.why << "\n" << t.text;
      ASSERT_TRUE(check.consistent(e.target_index)) << t.text;
      ASSERT_EQ(check.favoured, std::vector<int32_t>{e.target_index}) << t.text;
      const bool votes_rule_picks_target = !ev.order.empty() && ev.order.front() == e.target_index;
      if (form == TraceForm::kVotes && votes_rule_picks_target) {
        ASSERT_EQ(t.shape, TraceShape::kVotes);
        ASSERT_TRUE(check.has_votes && check.votes_true) << t.text;
        ASSERT_EQ(check.citations.size(), ev.cited.size());
        // Progressive: thought k of a cited chain names node k and no later node of it.
        for (int64_t k : ev.cited) {
          const std::string prefix = "Chain " + std::to_string(k + 1) + ":";
          const size_t at = t.text.find(prefix);
          ASSERT_NE(at, std::string::npos) << t.text;
          const std::string line = t.text.substr(at, t.text.find('\n', at) - at);
          std::vector<std::string> thoughts;
          for (size_t b = prefix.size(), dot; (dot = line.find('.', b)) != std::string::npos; b = dot + 1)
            thoughts.push_back(line.substr(b, dot - b));
          ASSERT_EQ(static_cast<int64_t>(thoughts.size()), c.length(k) - 1) << line;
          for (int64_t s = 1; s < c.length(k); ++s) {
            EXPECT_NE(thoughts[s - 1].find(name_of(r, c, c.offsets[k] + s, e.user, f)), std::string::npos) << line;
            for (int64_t later = s + 1; later < c.length(k); ++later) {
              const std::string name = name_of(r, c, c.offsets[k] + later, e.user, f);
              bool seen = false;
              for (int64_t earlier = 0; earlier <= s; ++earlier)
                seen = seen || name == name_of(r, c, c.offsets[k] + earlier, e.user, f);
              if (!seen && name != "U") {
                EXPECT_EQ(thoughts[s - 1].find(name), std::string::npos) << line;
              }
            }
          }
        }
      } else {
        // The evidence form, written out independently.
        const std::string target = item_token(r.catalog, e.target);
        std::string want = "<think>\nCandidate " + target + ".";
        int64_t cited = 0;
        for (int64_t k = 0; k < c.size() && cited < f.cited_chains; ++k) {
          int64_t p = -1;
          for (int64_t n = c.offsets[k]; n < c.offsets[k + 1] && p < 0; ++n)
            if (static_cast<NodeType>(c.types[n]) == NodeType::kItem && c.nodes[n] == e.target) p = n;
          if (p < 0) continue;
          want += "\n";
          for (int64_t n = p; n >= c.offsets[k]; --n) want += (n < p ? " <- " : "") + name_of(r, c, n, e.user, f);
          want += " (chain " + std::to_string(k + 1) + ").";
          ++cited;
        }
        if (cited == 0) want += " No chain reaches it.";
        want += "\n</think><answer>" + target + "</answer>";
        ASSERT_EQ(t.text, want);
        ASSERT_EQ(t.shape, t.reaching > 0 ? TraceShape::kEvidence : TraceShape::kNoChain);
        ASSERT_EQ(static_cast<int64_t>(check.citations.size()), cited);
        ASSERT_FALSE(check.has_votes);
        EXPECT_EQ(check.named, e.target_index);
      }
      if (e.split == Split::kTrain && form == TraceForm::kVotes) {
        ++train;
        reached += t.reaching > 0;
        top += t.target_top;
        ++shapes[static_cast<int>(t.shape)];
      }
    }
  }
  std::printf(
      "train examples whose prompt chains reach the target: %lld of %lld (%.1f%%), with the most votes: %lld; "
      "votes form: %lld votes, %lld evidence, %lld no chain\n",
      static_cast<long long>(reached), static_cast<long long>(train), 100.0 * reached / train,
      static_cast<long long>(top), static_cast<long long>(shapes[0]), static_cast<long long>(shapes[1]),
      static_cast<long long>(shapes[2]));
  EXPECT_GT(reached, 0);
  EXPECT_LT(reached, train);
  EXPECT_GT(shapes[0], 0);
}

// task.chain_layout=backward writes each prompt chain the way the evidence form reads it, so every citation of
// an evidence trace is the end of its prompt line (the whole line where the chain ends at the candidate, as
// bridge chains do), copied, with a full stop. compact does the same with the entity tokens side by side and
// the number left out of the citation, which names its chain by its hops.
TEST(Task, BackwardAndCompactLayoutsMakeEveryCitationACopyOfItsPromptLine) {
  const Records& r = ml100k_records();
  TaskFormat f = format_of(ItemText::kToken, true);
  const std::vector<std::string> nodes = {"U", "<item_7>", "<user_40>", "<item_98>"};
  f.layout = ChainLayout::kBackward;
  EXPECT_EQ(chain_line(nodes, 5, f), "<item_98> <- <user_40> <- <item_7> <- U (chain 5)");
  f.layout = ChainLayout::kForward;
  EXPECT_EQ(chain_line(nodes, 5, f), "5. U -> <item_7> -> <user_40> -> <item_98>");
  f.layout = ChainLayout::kCompact;
  EXPECT_EQ(chain_line(nodes, 5, f), "5. <item_98><user_40><item_7>U");
  for (const ChainLayout layout : {ChainLayout::kBackward, ChainLayout::kCompact}) {
    f.layout = layout;
    int64_t copied = 0;
    for (size_t x = 0; x < r.examples.size(); ++x) {
      const Example& e = r.examples[x];
      const ChainBuffer& c = r.chains[x];
      const Trace t = template_trace(e, c, 0, c.size(), r.catalog, f);
      if (t.shape != TraceShape::kEvidence) continue;
      const std::string prompt = render_prompt(e, c, 0, c.size(), r.catalog, f);
      std::istringstream lines(t.text);
      std::vector<int64_t> cited;  // the chains the template walks, in order (task.h chain_evidence)
      for (int64_t k = 0; k < c.size() && static_cast<int64_t>(cited.size()) < f.cited_chains; ++k) {
        for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n) {
          if (c.nodes[n] == e.target && static_cast<NodeType>(c.types[n]) == NodeType::kItem) {
            cited.push_back(k);
            break;
          }
        }
      }
      size_t at = 0;
      for (std::string line; std::getline(lines, line);) {
        if (layout == ChainLayout::kCompact && line.rfind("Candidate ", 0) == 0) {
          // The candidate line is the prompt's: "Candidate <item_98>" (task.h), before ". No chain reaches it."
          const std::string named = line.substr(0, line.find('.'));
          ASSERT_EQ(named, "Candidate " + item_token(r.catalog, e.target)) << line;
          ASSERT_NE(prompt.find("\nCandidates:\n"), std::string::npos) << prompt;
          ASSERT_NE(prompt.find("\n" + named + "\n"), std::string::npos) << line << "\n" << prompt;
        }
        if (line.size() < 2 || line.back() != '.' || line.rfind("Candidate ", 0) == 0) continue;
        const std::string body = line.substr(0, line.size() - 1);
        if (layout == ChainLayout::kCompact) {  // the end of the cited chain's line "k. ..."
          ASSERT_LT(at, cited.size());
          const std::string head = "\n" + std::to_string(cited[at] + 1) + ". ";
          const size_t from = prompt.find(head);
          ASSERT_NE(from, std::string::npos) << prompt;
          const size_t end = prompt.find('\n', from + 1);
          ASSERT_GE(end - from, body.size()) << line << "\n" << prompt;
          ASSERT_EQ(prompt.substr(end - body.size(), body.size()), body) << line << "\n" << prompt;
        } else {
          ASSERT_NE(prompt.find(body + "\n"), std::string::npos) << line << "\n" << prompt;
        }
        ++at;
        ++copied;
      }
      const ReasoningCheck check = check_reasoning(t.text, e, c, 0, c.size(), r.catalog, f);
      ASSERT_EQ(check.citations.size(), cited.size()) << t.text;
      for (size_t k = 0; k < cited.size(); ++k) {
        ASSERT_TRUE(check.citations[k].grounded) << check.citations[k].why;
        // A path names its chain by its hops: the first prompt chain holding them (the same path may be sampled twice).
        if (layout == ChainLayout::kBackward) {
          EXPECT_EQ(check.citations[k].chain, cited[k]);
        } else {
          EXPECT_LE(check.citations[k].chain, cited[k]);
        }
      }
      EXPECT_TRUE(check.consistent(e.target_index)) << t.text;
    }
    EXPECT_GT(copied, 2000);
  }
  const Example& e = r.examples.back();  // compact lists every candidate on a line of its own, in list order
  const std::string prompt = render_prompt(e, r.chains.back(), 0, r.chains.back().size(), r.catalog, f);
  std::string listed = "\nCandidates:\n";
  for (int32_t item : e.candidates) listed += "Candidate " + item_token(r.catalog, item) + "\n";
  EXPECT_NE(prompt.find(listed + "Think over"), std::string::npos) << prompt;
}

// The grouped layout lists every chain once: under the first candidate it reaches, after that candidate's line and
// count, or (reaching none) in a numbered list of its own. Its template traces copy prompt lines verbatim (the
// candidate's line, count included, then its chain lines), state a true count, and are grounded and consistent; a
// wrong count is a false claim.
TEST(Task, GroupedLayoutListsEachChainUnderItsCandidateAndTracesCopyItsLines) {
  const Records& r = ml100k_records();
  TaskFormat f = format_of(ItemText::kToken, true);
  f.layout = ChainLayout::kGrouped;
  f.cited_chains = 16;
  int64_t grouped = 0, ungrouped = 0, cited = 0;
  for (size_t x = 0; x < r.examples.size(); ++x) {
    const Example& e = r.examples[x];
    const ChainBuffer& c = r.chains[x];
    const std::string prompt = render_prompt(e, c, 0, c.size(), r.catalog, f);
    const std::vector<int32_t> groups = chain_groups(e, c, 0, c.size());
    // Reference: candidate k's block is its line, then the compact path of each chain whose first candidate is k.
    std::string blocks = "Candidates and the chains that reach them (U is this user):\n";
    for (size_t k = 0; k < e.candidates.size(); ++k) {
      std::string lines;
      int64_t n = 0;
      for (int64_t ch = 0; ch < c.size(); ++ch) {
        int32_t first = -1;
        for (int64_t p = c.offsets[ch] + 1; p < c.offsets[ch + 1] && first < 0; ++p) {
          const auto at = std::find(e.candidates.begin(), e.candidates.end(), c.nodes[p]);
          if (static_cast<NodeType>(c.types[p]) == NodeType::kItem && at != e.candidates.end())
            first = static_cast<int32_t>(at - e.candidates.begin());
        }
        if (first != static_cast<int32_t>(k)) continue;
        ASSERT_EQ(groups[static_cast<size_t>(ch)], first);
        std::string path;
        for (int64_t p = c.offsets[ch + 1]; p-- > c.offsets[ch];) path += name_of(r, c, p, e.user, f);
        lines += path + "\n";
        ++n;
      }
      blocks += "Candidate " + item_token(r.catalog, e.candidates[k]) + " " + std::to_string(n) + "\n" + lines;
      grouped += n;
    }
    for (int32_t g : groups) ungrouped += g < 0;
    ASSERT_NE(prompt.find(blocks + "Think over"), std::string::npos) << prompt;
    ASSERT_EQ(prompt.find("Chains (U is this user)") != std::string::npos,
              std::find(groups.begin(), groups.end(), -1) != groups.end());

    const Trace t = template_trace(e, c, 0, c.size(), r.catalog, f);
    const std::string think = t.text.substr(8, t.text.find("</think>") - 8);  // after "<think>\n"
    std::istringstream lines(think);
    for (std::string line; std::getline(lines, line);) {
      ASSERT_NE(prompt.find("\n" + line + "\n"), std::string::npos) << line << "\n" << prompt;
    }
    const ReasoningCheck check = check_reasoning(t.text, e, c, 0, c.size(), r.catalog, f);
    ASSERT_EQ(check.named, e.target_index) << t.text;
    ASSERT_TRUE(check.count_claim && check.count_true) << t.text;
    for (const Citation& ci : check.citations) ASSERT_TRUE(ci.grounded) << ci.why;
    ASSERT_TRUE(check.consistent(e.target_index)) << t.text;
    cited += static_cast<int64_t>(check.citations.size());
    // A count one too high is a false claim.
    const size_t head = t.text.find('\n', 8);
    const std::string candidate_line = t.text.substr(8, head - 8);
    const int64_t n = std::stoll(candidate_line.substr(candidate_line.rfind(' ') + 1));
    const std::string tampered = "<think>\n" + candidate_line.substr(0, candidate_line.rfind(' ') + 1) +
                                 std::to_string(n + 1) + t.text.substr(head);
    const ReasoningCheck wrong = check_reasoning(tampered, e, c, 0, c.size(), r.catalog, f);
    ASSERT_TRUE(wrong.count_claim && !wrong.count_true) << tampered;
  }
  EXPECT_GT(grouped, 1000);  // the default mix: bridge chains reach a candidate, closed ones never do
  EXPECT_GT(ungrouped, 1000);
  EXPECT_GT(cited, 1000);
}

// task.candidate_order support lists the candidates most prompt chains reach first (the grouped layout's counts, the
// compact layout's votes), ties in the given order, each grouped block whole; only the display changes, so the
// template traces stay grounded, true and consistent, and a completion is judged the same in either order.
TEST(Task, SupportOrderListsTheMostReachedCandidatesFirst) {
  const Records& r = ml100k_records();
  for (const ChainLayout layout : {ChainLayout::kGrouped, ChainLayout::kCompact}) {
    TaskFormat given = format_of(ItemText::kToken, true);
    given.layout = layout;
    given.cited_chains = 4;
    TaskFormat support = given;
    support.support_order = true;
    int64_t reordered = 0;
    for (size_t x = 0; x < r.examples.size(); ++x) {
      const Example& e = r.examples[x];
      const ChainBuffer& c = r.chains[x];
      const std::string prompt = render_prompt(e, c, 0, c.size(), r.catalog, support);
      const std::vector<int32_t> counts = layout == ChainLayout::kGrouped
                                              ? group_sizes(e, chain_groups(e, c, 0, c.size()))
                                              : chain_votes(e, c, 0, c.size());
      // Reference: the candidates' lines in the prompt, in the order they appear.
      std::vector<int32_t> shown;
      for (size_t at = prompt.find("\nCandidate "); at != std::string::npos; at = prompt.find("\nCandidate ", at + 1)) {
        const size_t open = at + 11, close = prompt.find('>', open);
        const std::string token = prompt.substr(open, close + 1 - open);
        for (size_t k = 0; k < e.candidates.size(); ++k)
          if (item_token(r.catalog, e.candidates[k]) == token) shown.push_back(static_cast<int32_t>(k));
      }
      ASSERT_EQ(shown.size(), e.candidates.size()) << prompt;
      for (size_t i = 1; i < shown.size(); ++i) {
        const int32_t a = counts[static_cast<size_t>(shown[i - 1])], b = counts[static_cast<size_t>(shown[i])];
        ASSERT_TRUE(a > b || (a == b && shown[i - 1] < shown[i])) << prompt;
      }
      ASSERT_EQ(shown, candidate_order(e, c, 0, c.size(), support));
      reordered += !std::is_sorted(shown.begin(), shown.end());
      if (layout == ChainLayout::kGrouped) {
        // Each candidate's block (its line and its chains) is the one the given order writes.
        const std::string plain = render_prompt(e, c, 0, c.size(), r.catalog, given);
        for (size_t k = 0; k < e.candidates.size(); ++k) {
          const std::string line = "\nCandidate " + item_token(r.catalog, e.candidates[k]) + " ";
          const auto block = [&](const std::string& p) {
            const size_t from = p.find(line), to = p.find("\nCandidate ", from + 1);
            return p.substr(from, (to == std::string::npos ? p.find("\nThink over") : to) - from);
          };
          ASSERT_EQ(block(prompt), block(plain));
        }
      }
      const Trace t = template_trace(e, c, 0, c.size(), r.catalog, support);
      const ReasoningCheck check = check_reasoning(t.text, e, c, 0, c.size(), r.catalog, support);
      ASSERT_EQ(check.named, e.target_index) << t.text;
      for (const Citation& ci : check.citations) ASSERT_TRUE(ci.grounded) << ci.why;
      ASSERT_TRUE(check.consistent(e.target_index)) << t.text;
      ASSERT_EQ(parse_answer(t.text, e, r.catalog), e.target_index);
    }
    EXPECT_GT(reordered, static_cast<int64_t>(r.examples.size()) / 2);  // most prompts change order
  }
}

// A path citation is judged by its hops alone: one that no prompt chain holds, in any order or with one entity
// swapped, is not grounded and cites no chain.
TEST(Task, CompactPathCitationsAreJudgedByTheirHops) {
  const Records& r = ml100k_records();
  TaskFormat f = format_of(ItemText::kToken, true);
  f.layout = ChainLayout::kCompact;
  int64_t checked = 0;
  for (size_t x = 0; x < r.examples.size() && checked < 200; ++x) {
    const Example& e = r.examples[x];
    const ChainBuffer& c = r.chains[x];
    if (c.size() < 2 || c.length(0) < 3) continue;
    const auto name = [&](int64_t n) {
      return static_cast<NodeType>(c.types[n]) == NodeType::kItem ? item_token(r.catalog, c.nodes[n])
             : c.nodes[n] == e.user                               ? std::string("U")
                                                                  : user_token(r.catalog, c.nodes[n]);
    };
    const auto judge = [&](const std::string& line) {
      const ReasoningCheck check = check_reasoning("<think>\n" + line + "\n</think>", e, c, 0, c.size(), r.catalog, f);
      EXPECT_EQ(check.citations.size(), 1u) << line;
      return check.citations.empty() ? Citation{} : check.citations[0];
    };
    const auto path_of = [&](int64_t swap, const std::string& with, int64_t skip, const std::string& sep) {
      std::string p;
      for (int64_t n = c.offsets[1] - 1; n >= c.offsets[0]; --n) {
        if (n == skip) continue;
        p += (p.empty() ? "" : sep) + (n == swap ? with : name(n));
      }
      return p + ".";
    };
    const Citation good = judge(path_of(-1, "", -1, ""));
    EXPECT_TRUE(good.grounded) << path_of(-1, "", -1, "") << ": " << good.why;
    EXPECT_EQ(good.number, 0);
    EXPECT_GE(good.chain, 0);
    EXPECT_TRUE(judge(path_of(-1, "", -1, " <- ")).grounded);
    // A step must be a hop between two different nodes.
    EXPECT_FALSE(judge("U U.").grounded);
    // Skipping a node is not a hop.
    EXPECT_FALSE(judge(path_of(-1, "", c.offsets[0] + 1, "")).grounded);
    // One entity alone (a path begun and dropped) is a citation, never grounded, even when it heads a chain.
    const Citation one = judge(name(c.offsets[1] - 1) + ".");
    EXPECT_FALSE(one.grounded);
    EXPECT_EQ(one.why, "one entity alone is no hop");
    // ... and it is no evidence: "Candidate X." then "X." favours nothing, so answering X is not consistent.
    for (int32_t k = 0; k < static_cast<int32_t>(e.candidates.size()); ++k) {
      const std::string x = item_token(r.catalog, e.candidates[static_cast<size_t>(k)]);
      const ReasoningCheck dropped =
          check_reasoning("<think>\nCandidate " + x + ".\n" + x + ".\n</think>", e, c, 0, c.size(), r.catalog, f);
      EXPECT_FALSE(dropped.consistent(k)) << x;
    }
    // A user swapped for one on no chain of the prompt.
    int64_t at = -1;
    for (int64_t n = c.offsets[0]; n < c.offsets[1] && at < 0; ++n)
      if (static_cast<NodeType>(c.types[n]) == NodeType::kUser && c.nodes[n] != e.user) at = n;
    int32_t stranger = -1;
    for (int32_t u = 0; u < r.catalog.num_users() && stranger < 0; ++u) {
      bool on = u == e.user;
      for (int64_t n = c.offsets[0]; n < c.offsets[c.size()] && !on; ++n)
        on = static_cast<NodeType>(c.types[n]) == NodeType::kUser && c.nodes[n] == u;
      if (!on) stranger = u;
    }
    if (at >= 0) {
      const Citation bad = judge(path_of(at, user_token(r.catalog, stranger), -1, ""));
      EXPECT_FALSE(bad.grounded);
      EXPECT_EQ(bad.chain, -1);
      EXPECT_NE(bad.why.find("no prompt chain has these hops"), std::string::npos) << bad.why;
    }
    // "(chain)." without a number is a claim, and not a grounded one, in every layout.
    for (const ChainLayout layout : {ChainLayout::kForward, ChainLayout::kCompact}) {
      TaskFormat g = f;
      g.layout = layout;
      const ReasoningCheck unnumbered = check_reasoning(
          "<think>\n" + name(c.offsets[1] - 1) + " <- U (chain).\n</think>", e, c, 0, c.size(), r.catalog, g);
      ASSERT_EQ(unnumbered.citations.size(), 1u);
      EXPECT_FALSE(unnumbered.citations[0].grounded);
      EXPECT_EQ(unnumbered.citations[0].why, "names no chain number");
    }
    // The default layout's citations carry their number: a bare path is not one there.
    TaskFormat forward = f;
    forward.layout = ChainLayout::kForward;
    EXPECT_TRUE(
        check_reasoning("<think>\n" + path_of(-1, "", -1, "") + "\n</think>", e, c, 0, c.size(), r.catalog, forward)
            .citations.empty());
    // Prose around entities is not a path.
    EXPECT_TRUE(
        check_reasoning("<think>\nI like " + path_of(-1, "", -1, "") + "\n</think>", e, c, 0, c.size(), r.catalog, f)
            .citations.empty());
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

// What the stated evidence favours, on hand-written completions (citations.h): the answer must be the votes
// line's leader, or the named candidate that every citation reaches; no evidence, or evidence that contradicts
// itself, favours nothing.
TEST(Task, ConsistencyIsJudgedFromTheCompletionsOwnWords) {
  const Records& r = ml100k_records();
  const TaskFormat f = format_of(ItemText::kToken, true);
  for (size_t x = 0; x < r.examples.size(); ++x) {
    const Example& e = r.examples[x];
    const ChainBuffer& c = r.chains[x];
    const ChainEvidence ev = chain_evidence(e, c, 0, c.size(), f.cited_chains);
    if (ev.order.size() < 2) continue;
    const int32_t a = ev.order[0], b = ev.order[1];
    bool both = false;  // a chain reaching both would let b's citations reach a too
    for (int64_t k = 0; k < c.size(); ++k) {
      int hits = 0;
      for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n)
        hits += c.nodes[n] == e.candidates[a] || c.nodes[n] == e.candidates[b];
      both = both || hits >= 2;
    }
    if (both) continue;
    const std::string ta = item_token(r.catalog, e.candidates[a]), tb = item_token(r.catalog, e.candidates[b]);
    const auto check = [&](const std::string& text) { return check_reasoning(text, e, c, 0, c.size(), r.catalog, f); };
    // Votes: the leader as claimed (even if the claim is false), not the truth.
    const std::string votes = "<think>\nVotes: " + tb + " 9, " + ta + " 1.\n</think>";
    EXPECT_TRUE(check(votes + "<answer>" + tb + "</answer>").consistent(b));
    EXPECT_FALSE(check(votes + "<answer>" + ta + "</answer>").consistent(a));
    // The evidence form: a citation that does not reach the named candidate contradicts it.
    TaskFormat ef = f;
    ef.trace_form = TraceForm::kEvidence;
    Example as_a = e;
    as_a.target_index = a;
    as_a.target = e.candidates[a];
    const std::string trace_a = template_trace(as_a, c, 0, c.size(), r.catalog, ef).text;
    EXPECT_TRUE(check(trace_a).consistent(a)) << trace_a;
    EXPECT_FALSE(check(trace_a).consistent(b));
    Example as_b = as_a;
    as_b.target_index = b;
    as_b.target = e.candidates[b];
    const std::string trace_b = template_trace(as_b, c, 0, c.size(), r.catalog, ef).text;
    const std::string b_line = trace_b.substr(trace_b.find('\n', trace_b.find("Candidate")) + 1);
    const std::string mixed = trace_a.substr(0, trace_a.find("</think>")) + b_line;  // a named, b's chains added
    const ReasoningCheck m = check(mixed);
    EXPECT_TRUE(m.favoured.empty()) << mixed;
    EXPECT_FALSE(m.consistent(a));
    // "No chain reaches it." is a count claim: false about a (the leader), true about a candidate no chain reaches.
    const ReasoningCheck claim_a = check("<think>\nCandidate " + ta + ". No chain reaches it.\n</think>");
    EXPECT_TRUE(claim_a.count_claim);
    EXPECT_FALSE(claim_a.count_true);
    for (size_t k = 0; k < e.candidates.size(); ++k) {
      if (ev.votes[k] != 0) continue;
      const ReasoningCheck claim =
          check("<think>\nCandidate " + item_token(r.catalog, e.candidates[k]) + ". No chain reaches it.\n</think>");
      EXPECT_TRUE(claim.count_claim && claim.count_true);
      break;
    }
    // No evidence: nothing is favoured, so no answer is consistent.
    EXPECT_TRUE(check("<think>\n</think><answer>" + ta + "</answer>").favoured.empty());
    EXPECT_FALSE(check("<answer>" + ta + "</answer>").consistent(a));
    return;
  }
  FAIL() << "no example with two reached candidates";
}

// trainers/task/citations.h: the template teacher's traces are grounded in every item form (each cited chain and
// the votes line check out); a citation (either form) renumbered to a chain the prompt lacks or to another chain, an
// item swapped for one off the chain and a vote count changed are each caught and said.
TEST(Task, CitationsOfTemplateTracesAreGroundedAndTamperedOnesAreNot) {
  const Records& r = ml100k_records();
  int64_t citations = 0, renumbered = 0, swapped = 0, miscounted = 0;
  for (const auto& [items, users] : {std::pair{ItemText::kToken, true}, std::pair{ItemText::kTitle, false},
                                     std::pair{ItemText::kTokenTitle, true}}) {
    TaskFormat f = format_of(items, users);
    f.trace_form = TraceForm::kVotes;
    for (size_t x = 0; x < r.examples.size(); x += 7) {
      const Example& e = r.examples[x];
      const ChainBuffer& c = r.chains[x];
      const Trace trace = template_trace(e, c, 0, c.size(), r.catalog, f);
      const std::string text = trace.text;
      if (trace.shape == TraceShape::kEvidence) {  // "(chain N)" renumbered past the prompt's chains
        const size_t at = text.find(" (chain ");
        std::string t = text;
        t.replace(at, text.find(')', at) - at, " (chain " + std::to_string(c.size() + 1));
        const ReasoningCheck bad = check_reasoning(t, e, c, 0, c.size(), r.catalog, f);
        ASSERT_FALSE(bad.citations.empty()) << t;
        EXPECT_FALSE(bad.citations[0].grounded) << t;
        EXPECT_NE(bad.citations[0].why.find("the prompt has no chain"), std::string::npos) << bad.citations[0].why;
        ++renumbered;
      }
      if (trace.shape != TraceShape::kVotes) continue;
      const ChainEvidence ev = chain_evidence(e, c, 0, c.size(), f.cited_chains);
      const ReasoningCheck ok = check_reasoning(text, e, c, 0, c.size(), r.catalog, f);
      ASSERT_EQ(ok.citations.size(), ev.cited.size()) << text;
      for (size_t i = 0; i < ok.citations.size(); ++i) {
        const Citation& ci = ok.citations[i];
        ASSERT_TRUE(ci.grounded) << ci.why << "\n" << text;
        EXPECT_EQ(ci.chain, ev.cited[i]);
        EXPECT_EQ(ci.steps, ci.mentions - 1);
        ++citations;
      }
      ASSERT_TRUE(ok.has_votes);
      ASSERT_TRUE(ok.votes_true) << text;
      if (ev.cited.empty()) continue;
      // Renumbered past the prompt's chains.
      const std::string first = "Chain " + std::to_string(ev.cited[0] + 1) + ":";
      std::string t = text;
      t.replace(t.find(first), first.size(), "Chain " + std::to_string(c.size() + 1) + ":");
      const Citation bad = check_reasoning(t, e, c, 0, c.size(), r.catalog, f).citations[0];
      EXPECT_FALSE(bad.grounded);
      EXPECT_EQ(bad.chain, -1);
      EXPECT_NE(bad.why.find("the prompt has no chain"), std::string::npos) << bad.why;
      ++renumbered;
      // An item of the cited line swapped for a history item that is not on the chain (token form).
      if (f.items == ItemText::kToken) {
        const int64_t k = ev.cited[0];
        const size_t at = text.find(first), end = text.find('\n', at);
        for (int32_t h : e.history) {
          bool on_chain = false;
          for (int64_t n = c.offsets[k]; n < c.offsets[k + 1]; ++n) on_chain = on_chain || c.nodes[n] == h;
          if (on_chain) continue;
          const size_t item = text.find("<item_", at);
          if (item == std::string::npos || item > end) break;
          std::string u = text;
          u.replace(item, u.find('>', item) + 1 - item, item_token(r.catalog, h));
          const Citation off = check_reasoning(u, e, c, 0, c.size(), r.catalog, f).citations[0];
          EXPECT_FALSE(off.grounded) << u;
          EXPECT_GE(off.off_chain, 1);
          EXPECT_NE(off.why.find("not on the chain"), std::string::npos) << off.why;
          ++swapped;
          break;
        }
      }
      // The first vote count one more than the prompt's.
      const std::string votes_prefix = "Votes: ";
      const size_t v = text.find(votes_prefix);
      const size_t comma = text.find_first_of(",.", text.find(' ', v + votes_prefix.size() + 1));
      size_t digits = comma;
      while (digits > 0 && std::isdigit(static_cast<unsigned char>(text[digits - 1]))) --digits;
      std::string w = text;
      w.replace(digits, comma - digits, std::to_string(std::stoll(text.substr(digits, comma - digits)) + 1));
      const ReasoningCheck wrong = check_reasoning(w, e, c, 0, c.size(), r.catalog, f);
      EXPECT_FALSE(wrong.votes_true) << w;
      EXPECT_EQ(wrong.votes[0].claimed, wrong.votes[0].actual + 1);
      ++miscounted;
    }
  }
  std::printf("%lld grounded citations; %lld renumbered, %lld swapped, %lld miscounted caught\n",
              static_cast<long long>(citations), static_cast<long long>(renumbered), static_cast<long long>(swapped),
              static_cast<long long>(miscounted));
  EXPECT_GT(swapped, 10);
}

// The model teacher's protocol on hand-written thoughts (trainers/task/teacher.h): the masked prompt hides a chain's
// later nodes; a thought naming a node its step has not revealed is rejected, the same thought one step later is
// not; a trace of true hops answering the target is accepted, and a wrong answer, a stranger on a hop or a false
// "a candidate" are each rejected for their reason.
TEST(Task, ModelTeacherJudgesThoughtsByWhatTheirMaskedPromptShows) {
  const Records& r = ml100k_records();
  const TaskFormat f = format_of(ItemText::kToken, true);
  int64_t walks = 0, unrevealed = 0, accepted = 0, wrong = 0, strangers = 0;
  for (size_t x = 0; x < r.examples.size() && walks < 300; ++x) {
    const Example& e = r.examples[x];
    const ChainBuffer& c = r.chains[x];
    const std::vector<TeacherWalk> plan = teacher_walks(e, c, 0, c.size(), f);
    if (plan.empty()) continue;
    std::string think;
    for (const TeacherWalk& w : plan) {
      ++walks;
      const int64_t o = c.offsets[w.chain];
      ASSERT_EQ(c.nodes[o + w.hops], e.target);
      // The masked prompt: the walk's chain written up to node `revealed`, "?" after it; the others whole.
      for (int64_t revealed = 0; revealed < c.offsets[w.chain + 1] - o; ++revealed) {
        const std::string prompt =
            render_prompt(e, c, 0, c.size(), r.catalog, f, PromptForm::kReason, ChainMask{w.chain, revealed});
        const size_t line = prompt.find("\n" + std::to_string(w.chain + 1) + ". U");
        ASSERT_NE(line, std::string::npos) << prompt;
        const std::string text = prompt.substr(line + 1, prompt.find('\n', line + 1) - line - 1);
        EXPECT_EQ(std::count(text.begin(), text.end(), '?'), c.offsets[w.chain + 1] - o - 1 - revealed) << text;
      }
      std::string line = "Chain " + std::to_string(w.chain + 1) + ":";
      for (int64_t hop = 1; hop <= w.hops; ++hop) {
        const std::string from = name_of(r, c, o + hop - 1, e.user, f), to = name_of(r, c, o + hop, e.user, f);
        const std::string thought = " " + from + " and then " + to + ".";
        EXPECT_EQ(judge_thought(thought, true, e, c, 0, c.size(), r.catalog, f, ChainMask{w.chain, hop}),
                  TeacherVerdict::kAccepted)
            << thought;
        EXPECT_EQ(judge_thought(thought, false, e, c, 0, c.size(), r.catalog, f, ChainMask{w.chain, hop}),
                  TeacherVerdict::kUnfinished);
        // One step earlier node `hop` is hidden: the thought is rejected unless the prompt shows that entity
        // elsewhere (the history, the candidates, another chain, an earlier node of this one).
        bool elsewhere = to == "U";
        const int32_t id = c.nodes[o + hop];
        const bool item = static_cast<NodeType>(c.types[o + hop]) == NodeType::kItem;
        if (item) {
          elsewhere = elsewhere || std::count(e.history.begin(), e.history.end(), id) > 0 ||
                      std::count(e.candidates.begin(), e.candidates.end(), id) > 0;
        }
        for (int64_t n = c.offsets[0]; n < c.offsets[c.size()]; ++n) {
          const bool hidden = n >= o + hop && n < c.offsets[w.chain + 1];
          elsewhere = elsewhere || (!hidden && c.nodes[n] == id && c.types[n] == c.types[o + hop]);
        }
        const TeacherVerdict early =
            judge_thought(thought, true, e, c, 0, c.size(), r.catalog, f, ChainMask{w.chain, hop - 1});
        EXPECT_EQ(early, elsewhere ? TeacherVerdict::kAccepted : TeacherVerdict::kUnrevealed) << thought;
        unrevealed += early == TeacherVerdict::kUnrevealed;
        line += thought;
      }
      think += line + "\n";
    }
    const std::string trace = "<think>\n" + think + "</think>" + answer_text(e, e.target_index, r.catalog, f);
    ASSERT_EQ(judge_trace(trace, e, c, 0, c.size(), r.catalog, f), TeacherVerdict::kAccepted) << trace;
    ++accepted;
    const int32_t other = e.target_index == 0 ? 1 : 0;
    EXPECT_EQ(judge_trace("<think>\n" + think + "</think>" + answer_text(e, other, r.catalog, f), e, c, 0, c.size(),
                          r.catalog, f),
              TeacherVerdict::kWrongAnswer);
    EXPECT_EQ(judge_trace("<think>\n" + think + "</think><answer>nothing</answer>", e, c, 0, c.size(), r.catalog, f),
              TeacherVerdict::kMalformed);
    ++wrong;
    // The walk's first item swapped for a history item that is on none of the prompt's chains.
    for (int32_t h : e.history) {
      if (std::count(c.nodes.begin() + c.offsets[0], c.nodes.begin() + c.offsets[c.size()], h) > 0) continue;
      const int64_t o = c.offsets[plan[0].chain];
      const std::string first = name_of(r, c, o + 1, e.user, f);
      if (static_cast<NodeType>(c.types[o + 1]) != NodeType::kItem) break;
      std::string t = trace;
      for (size_t at = t.find(first); at != std::string::npos && at < t.find('\n', t.find("Chain"));
           at = t.find(first, at + 1))
        t.replace(at, first.size(), item_token(r.catalog, h));
      EXPECT_EQ(judge_trace(t, e, c, 0, c.size(), r.catalog, f), TeacherVerdict::kUngrounded) << t;
      ++strangers;
      break;
    }
  }
  std::printf(
      "%lld walks: %lld early thoughts rejected as unrevealed, %lld traces accepted, %lld wrong answers and "
      "%lld strangers caught\n",
      static_cast<long long>(walks), static_cast<long long>(unrevealed), static_cast<long long>(accepted),
      static_cast<long long>(wrong), static_cast<long long>(strangers));
  EXPECT_GE(walks, 300);
  EXPECT_GT(unrevealed, 100);
  EXPECT_GT(strangers, 50);
}

// A hand-written completion: the teacher names the chain's user before the prompt showed it.
TEST(Task, ModelTeacherRejectsAThoughtNamingAnUnrevealedNode) {
  Catalog catalog;
  catalog.item_tokens = {"10", "11", "12", "13", "14"};
  catalog.item_titles = {"", "", "", "", ""};
  catalog.user_tokens = {"1", "2", "3"};
  Example e;
  e.user = 0;
  e.history = {0, 1};
  e.candidates = {2, 3};
  e.target = 2;
  e.target_index = 0;
  ChainBuffer c;  // 1. U -> <item_10> -> <user_2> -> <item_12>
  c.offsets = {0, 4};
  c.nodes = {0, 0, 1, 2};
  c.types = {static_cast<uint8_t>(NodeType::kUser), static_cast<uint8_t>(NodeType::kItem),
             static_cast<uint8_t>(NodeType::kUser), static_cast<uint8_t>(NodeType::kItem)};
  c.kinds = {0};
  const TaskFormat f = format_of(ItemText::kToken, true);
  const std::string masked = render_prompt(e, c, 0, 1, catalog, f, PromptForm::kReason, ChainMask{0, 1});
  EXPECT_NE(masked.find("1. U -> <item_10> -> ? -> ?"), std::string::npos) << masked;
  EXPECT_EQ(teacher_prompt(e, c, 0, 1, catalog, f, ChainMask{0, 1}).find("<user_2>"), std::string::npos);
  EXPECT_NE(teacher_prompt(e, c, 0, 1, catalog, f, ChainMask{0, 1}).find("The answer is <item_12>."),
            std::string::npos);
  const std::string early = " <user_2> also liked <item_10>.";
  EXPECT_EQ(judge_thought(early, true, e, c, 0, 1, catalog, f, ChainMask{0, 1}), TeacherVerdict::kUnrevealed);
  EXPECT_EQ(unshown_mentions(early, e, c, 0, 1, catalog, f, ChainMask{0, 1}), std::vector<std::string>{"<user_2>"});
  EXPECT_EQ(judge_thought(early, true, e, c, 0, 1, catalog, f, ChainMask{0, 2}), TeacherVerdict::kAccepted);
  EXPECT_EQ(judge_thought(" U liked <item_99>.", true, e, c, 0, 1, catalog, f, ChainMask{0, 3}),
            TeacherVerdict::kUnrevealed);  // a token of no catalog item is never shown
  const std::string trace =
      "<think>\nChain 1: U liked <item_10>. <user_2> also liked <item_10>. <user_2> liked "
      "<item_12>, a candidate.\n</think><answer><item_12></answer>";
  EXPECT_EQ(judge_trace(trace, e, c, 0, 1, catalog, f), TeacherVerdict::kAccepted);
  std::string false_candidate = trace;
  false_candidate.replace(false_candidate.find("<item_10>. <user"), 9, "<item_10>, a candidate");
  EXPECT_EQ(judge_trace(false_candidate, e, c, 0, 1, catalog, f), TeacherVerdict::kUngrounded) << false_candidate;
  EXPECT_EQ(judge_trace("<think>\n</think><answer><item_12></answer>", e, c, 0, 1, catalog, f),
            TeacherVerdict::kUngrounded);  // no reasoning earns no acceptance
  EXPECT_EQ(teacher_walks(e, c, 0, 1, f).size(), 1u);
  EXPECT_EQ(teacher_walks(e, c, 0, 1, f)[0].hops, 3);
}

TEST(Task, AnswersParseByItemTokenNumberOrTitleAndMalformedOnesAreWrong) {
  const Records& r = ml100k_records();
  const Example& e = r.examples.front();
  const std::string title = r.catalog.item_titles[e.candidates[4]];
  const std::string token = item_token(r.catalog, e.candidates[4]);
  EXPECT_EQ(parse_answer("<think>x</think><answer>5</answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer> [5] </answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer>" + title + "</answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer>" + token + "</answer>", e, r.catalog), 4);
  EXPECT_EQ(parse_answer("<answer>20</answer>", e, r.catalog), 19);
  for (const std::string bad :
       {"", "5", "<answer>5", "<answer>0</answer>", "<answer>21</answer>", "<answer>-1</answer>",
        "<answer>5</answer><answer>6</answer>", "<answer>Not A Movie</answer>", "<answer>99999999999</answer>",
        "<answer><item_999999></answer>"}) {
    EXPECT_EQ(parse_answer(bad, e, r.catalog), -1) << bad;
  }
  EXPECT_EQ(answer_text(e, 4, r.catalog, format_of(ItemText::kTitle, false)), "<answer>5</answer>");
  EXPECT_EQ(answer_text(e, 4, r.catalog, format_of(ItemText::kToken, true)), "<answer>" + token + "</answer>");
}

// Rewards by name (trainers/task/reward.h): weighted sum of the listed components, each reported on its own; the
// rank component is the NDCG of the target in the completion's ranked list (its answer first, then the
// candidates in the order they are first named); a bad rl.rewards entry is refused by name.
TEST(Task, RewardsAreNamedWeightedComponents) {
  const Records& r = ml100k_records();
  const Example& e = r.examples.front();
  const ChainBuffer& c = r.chains.front();
  const TaskFormat f = format_of(ItemText::kToken, true);
  const RewardPrompt prompt{e, c, r.catalog, f};
  const int32_t t = e.target_index, other = (t + 1) % 20;
  const std::string target = item_token(r.catalog, e.candidates[t]), wrong = item_token(r.catalog, e.candidates[other]);
  RlConfig rl;
  rl.rewards = {"answer=1", "format=0.1", "rank=0.5"};
  const auto rewards = make_rewards(rl);
  ASSERT_EQ(rewards.size(), 3u);
  const Reward hit = score_completion(rewards, "<think>" + target + "</think><answer>" + target + "</answer>", prompt);
  EXPECT_EQ(hit.parts, (std::vector<double>{1.0, 1.0, 1.0}));
  EXPECT_DOUBLE_EQ(hit.total, 1.6);
  // Wrong answer, the target named second in the reasoning: rank 2 -> 1/log2(3); no <think>: format 0.
  const Reward second = score_completion(rewards, wrong + " then " + target + "<answer>" + wrong + "</answer>", prompt);
  EXPECT_EQ(second.parts[0], 0.0);
  EXPECT_EQ(second.parts[1], 0.0);
  EXPECT_NEAR(second.parts[2], 1.0 / std::log2(3.0), 1e-12);
  EXPECT_NEAR(second.total, 0.5 / std::log2(3.0), 1e-12);
  const Reward none = score_completion(rewards, "<answer>nothing</answer>", prompt);
  EXPECT_EQ(none.parts, (std::vector<double>{0.0, 0.0, 0.0}));
  // grounded / consistent: the template trace scores 1 on both; one of its k citations renumbered past the
  // prompt's chains leaves (k-1)/k grounded; no reasoning, or a named candidate with no evidence, scores 0 on both.
  rl.rewards = {"grounded=1", "consistent=1"};
  const auto checks = make_rewards(rl);
  const std::string trace = template_trace(e, c, 0, c.size(), r.catalog, f).text;
  EXPECT_EQ(score_completion(checks, trace, prompt).parts, (std::vector<double>{1.0, 1.0})) << trace;
  EXPECT_EQ(score_completion(checks, "<think>\n</think><answer>" + target + "</answer>", prompt).parts,
            (std::vector<double>{0.0, 0.0}));
  // "Candidate X." alone states no evidence: neither grounded nor consistent.
  EXPECT_EQ(
      score_completion(checks, "<think>\nCandidate " + target + ".\n</think><answer>" + target + "</answer>", prompt)
          .parts,
      (std::vector<double>{0.0, 0.0}));
  // The first example whose trace cites chains, one citation renumbered past its prompt's chains.
  size_t x = 0;
  while (x < r.examples.size() &&
         template_trace(r.examples[x], r.chains[x], 0, r.chains[x].size(), r.catalog, f).shape != TraceShape::kEvidence)
    ++x;
  ASSERT_LT(x, r.examples.size());
  const Example& ex = r.examples[x];
  const ChainBuffer& cx = r.chains[x];
  const RewardPrompt px{ex, cx, r.catalog, f};
  std::string bad = template_trace(ex, cx, 0, cx.size(), r.catalog, f).text;
  const ReasoningCheck check = check_reasoning(bad, ex, cx, 0, cx.size(), r.catalog, f);
  ASSERT_FALSE(check.citations.empty()) << bad;
  const size_t at = bad.find(" (chain ");
  bad.replace(at, bad.find(')', at) - at, " (chain " + std::to_string(cx.size() + 1));
  EXPECT_DOUBLE_EQ(score_completion(checks, bad, px).parts[0],
                   (static_cast<double>(check.citations.size()) - 1) / static_cast<double>(check.citations.size()))
      << bad;
  for (const auto& [entries, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"answer=1", "bleu=1"}, "bleu"}, {{"answer=1", "answer=2"}, "answer"}}) {
    rl.rewards = entries;
    try {
      make_rewards(rl);
      ADD_FAILURE() << "accepted " << says;
    } catch (const ConfigError& err) {
      EXPECT_NE(std::string(err.what()).find("rl.rewards"), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find(says), std::string::npos) << err.what();
    }
  }
}

}  // namespace
}  // namespace r2rec
