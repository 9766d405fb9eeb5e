// Checks a completion's reasoning against its prompt (docs/design.md §1, the grounding rule): which chains it
// cites and whether what it says about each is in the prompt. What `r2rec explain` shows.
//
// A citation is a line of the <think> block that starts "Chain N:" (the votes form) or ends "(chain N)" or
// "(chain N)." (the evidence form: "<item_98> <- <user_40> <- <item_7> <- U (chain 5)."; "(chain)." names no chain
// and is never grounded), or, with task.chain_layout compact, a line of entities alone (a path,
// "<item_98><user_40><item_7>U.") that names its chain by its hops: it cites the first prompt chain it is grounded
// in (each step a hop between two different nodes), and none when no chain has its hops. A line of one entity
// ("<item_381>.", a path begun and dropped) is a path citation too, never grounded. Its mentions are the
// entities it names, in order: item and user tokens (<item_ID>, <user_ID>), "U" (this user), "user ID" and, with
// titles, the titles of the prompt's items. A citation is grounded when N is one of the prompt's chains, it names
// at least two entities, every two consecutive mentions are the same node or two adjacent nodes of chain N (one
// hop, either direction: "<user_231> also liked <item_50>" walks hop 2 backwards), and every ", a candidate"
// follows an item that is a candidate. The template teacher's traces (trainers/task/task.h) are grounded by
// construction.
//
// The votes line ("Votes: <item_98> 2, <item_12> 1.", "Votes: [3] 2." without item tokens, "Votes: none.")
// is checked against the prompt's chain votes (trainers/task/task.h chain_evidence). A candidate line's count claim
// ("Candidate X. No chain reaches it.": 0; the grouped layout's "Candidate X 3", a copy of the prompt's line) is
// checked against X's votes, or in the grouped layout against the chains listed under X.
//
// What the stated evidence favours (ReasoningCheck::favoured), from the completion's own words: with a votes
// line, the candidate with the most votes it claims (a tie to the one listed first); else, with a "Candidate X." line,
// X when every citation names X (none when one does not: the trace contradicts itself); else the candidates its
// citations name most often. A completion is consistent when its answer is one of them; one that states no evidence is
// not. A citation of one entity alone states nothing and counts for no candidate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "sampler/chains.h"
#include "sampler/shard.h"
#include "sampler/split.h"
#include "trainers/task/task.h"

namespace r2rec {

struct Citation {
  int64_t chain = -1;            // 0-based index among the prompt's chains; -1 when N (or the path) is none of them
  int64_t number = 0;            // N as written; 0 for a path or "(chain)", which name no number
  bool path = false;             // a path citation (task.chain_layout compact)
  std::string line;              // the line after "Chain N:"
  int64_t mentions = 0;          // entities named
  int64_t steps = 0;             // consecutive mention pairs
  int64_t grounded_steps = 0;    // of those, the pairs that are one node or one hop of the chain
  int64_t off_chain = 0;         // mentions of entities that are not nodes of the chain
  int64_t false_candidates = 0;  // ", a candidate" after an item that is not a candidate
  bool grounded = false;
  std::string why;  // what is not grounded, in words ("" when grounded)
};

struct VoteClaim {
  int32_t candidate = -1;  // 0-based; -1 when the entry names no candidate
  std::string entry;       // as written
  int64_t claimed = -1;    // the number written (-1 when none)
  int64_t actual = 0;      // the prompt's chain votes for the candidate
};

struct ReasoningCheck {
  std::vector<Citation> citations;
  bool has_votes = false;         // a "Votes:" line was written
  std::vector<VoteClaim> votes;   // its entries
  bool votes_true = false;        // every entry names a candidate with its true count, and none is left out
  int32_t named = -1;             // the candidate a "Candidate X." line names (0-based); -1 when none
  bool count_claim = false;       // that line states X's chain count: "No chain reaches it." or "Candidate X 3"
  bool count_true = false;        // and the count is the prompt's (votes; the group's size in the grouped layout)
  std::vector<int32_t> favoured;  // the candidates the stated evidence favours (see above), ascending
  bool consistent(int32_t answer) const {
    return answer >= 0 && std::find(favoured.begin(), favoured.end(), answer) != favoured.end();
  }
};

// `completion` is the model's output after the prompt; `first`/`count` select the example's prompt chains.
ReasoningCheck check_reasoning(const std::string& completion, const Example& example, const ChainBuffer& chains,
                               int64_t first, int64_t count, const Catalog& catalog, const TaskFormat& format);

// The entities `text` names that the prompt written with `mask` does not show, as written, in order. Shown are U,
// the history, the candidates and every node of the example's chains except the ones `mask` hides; an unknown
// token (<item_99999>) is never shown. The model teacher's check that a thought names only what it was shown.
std::vector<std::string> unshown_mentions(const std::string& text, const Example& example, const ChainBuffer& chains,
                                          int64_t first, int64_t count, const Catalog& catalog,
                                          const TaskFormat& format, const ChainMask& mask);

}  // namespace r2rec
