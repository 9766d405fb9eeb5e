#include "trainers/task/task.h"

#include <algorithm>
#include <numeric>

#include "core/tokenizer/tokenizer.h"
#include "sampler/chain_vote.h"

namespace r2rec {

const char* const kTaskSystemPrompt =
    "You recommend items. You reason over interaction chains between users and items, one step at a time, "
    "then choose one candidate.";
const char* const kAnswerOpen = "<answer>";
const char* const kAnswerClose = "</answer>";
const char* const kMaskedNode = "?";

namespace {

std::string title_of(const Catalog& catalog, int32_t item) {
  const std::string& title = catalog.item_titles[item];
  return title.empty() ? "item " + catalog.item_tokens[item] : title;
}

// An item inside running text (history of the token form, chains, thoughts, votes).
std::string item_name(const Catalog& catalog, int32_t item, const TaskFormat& f) {
  switch (f.items) {
    case ItemText::kToken:
      return item_token(catalog, item);
    case ItemText::kTitle:
      return title_of(catalog, item);
    case ItemText::kTokenTitle:
      return item_token(catalog, item) + " " + title_of(catalog, item);
  }
  return "";
}

std::string node_name(const Catalog& catalog, const ChainBuffer& chains, int64_t n, int32_t u0, const TaskFormat& f) {
  const int32_t id = chains.nodes[n];
  if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem) return item_name(catalog, id, f);
  if (id == u0) return "U";
  return f.user_tokens ? user_token(catalog, id) : "user " + catalog.user_tokens[id];
}

bool is_item(const ChainBuffer& chains, int64_t n) { return static_cast<NodeType>(chains.types[n]) == NodeType::kItem; }

int32_t candidate_index_of(const Example& example, int32_t item) {
  const auto it = std::find(example.candidates.begin(), example.candidates.end(), item);
  return it == example.candidates.end() ? -1 : static_cast<int32_t>(it - example.candidates.begin());
}

}  // namespace

TaskFormat task_format(const Config& config) {
  TaskFormat f;
  const std::string& t = config.task.item_text;
  if (t == "token") {
    f.items = ItemText::kToken;
  } else if (t == "title") {
    f.items = ItemText::kTitle;
  } else if (t == "token+title") {
    f.items = ItemText::kTokenTitle;
  } else {  // auto
    f.items = config.model.path.empty() ? ItemText::kToken : ItemText::kTokenTitle;
  }
  f.user_tokens = config.task.user_tokens;
  f.cited_chains = config.task.cited_chains;
  f.trace_form = config.task.trace_form == "votes" ? TraceForm::kVotes : TraceForm::kEvidence;
  const std::string& layout = config.task.chain_layout;
  f.layout = layout == "backward"  ? ChainLayout::kBackward
             : layout == "compact" ? ChainLayout::kCompact
             : layout == "grouped" ? ChainLayout::kGrouped
                                   : ChainLayout::kForward;
  // compact and grouped need item and user tokens: refused by name in core/config.cpp validate; so does support
  // order in another layout.
  f.support_order = config.task.candidate_order == "support";
  return f;
}

std::string item_token(const Catalog& catalog, int32_t item) { return "<item_" + catalog.item_tokens[item] + ">"; }
std::string user_token(const Catalog& catalog, int32_t user) { return "<user_" + catalog.user_tokens[user] + ">"; }

std::vector<std::string> entity_tokens(const Catalog& catalog, const TaskFormat& format) {
  std::vector<std::string> out;
  if (format.item_tokens()) {
    for (int32_t i = 0; i < catalog.num_items(); ++i) out.push_back(item_token(catalog, i));
  }
  if (format.user_tokens) {
    for (int32_t u = 0; u < catalog.num_users(); ++u) out.push_back(user_token(catalog, u));
  }
  return out;
}

namespace {

// The compact layout's path: the nodes from the last back to U, side by side (chain_line, evidence citations).
// The names of chain c's nodes [offsets[c], end) as a prompt writes them; `hidden(n)` (a node's 0-based place)
// writes the mask instead (the model teacher's prompts).
template <class Hidden>
std::vector<std::string> node_names(const Catalog& catalog, const ChainBuffer& chains, int64_t c, int64_t end,
                                    int32_t u0, const TaskFormat& f, Hidden hidden) {
  std::vector<std::string> nodes;
  for (int64_t n = chains.offsets[c]; n < end; ++n)
    nodes.push_back(hidden(n - chains.offsets[c]) ? kMaskedNode : node_name(catalog, chains, n, u0, f));
  return nodes;
}
std::vector<std::string> node_names(const Catalog& catalog, const ChainBuffer& chains, int64_t c, int64_t end,
                                    int32_t u0, const TaskFormat& f) {
  return node_names(catalog, chains, c, end, u0, f, [](int64_t) { return false; });
}

std::string compact_path(const std::vector<std::string>& nodes) {
  std::string s;
  for (size_t n = nodes.size(); n-- > 0;) s += nodes[n];
  return s;
}

}  // namespace

std::string chain_line(const std::vector<std::string>& nodes, int64_t number, const TaskFormat& f) {
  std::string s;
  if (f.layout == ChainLayout::kBackward) {
    for (size_t n = nodes.size(); n-- > 0;) s += (n + 1 < nodes.size() ? " <- " : "") + nodes[n];
    return s + " (chain " + std::to_string(number) + ")";
  }
  if (f.compact()) return std::to_string(number) + ". " + compact_path(nodes);
  s = std::to_string(number) + ". ";
  for (size_t n = 0; n < nodes.size(); ++n) s += (n ? " -> " : "") + nodes[n];
  return s;
}

std::vector<int32_t> chain_groups(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count) {
  std::vector<int32_t> group(static_cast<size_t>(count), -1);
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t n = chains.offsets[first + k] + 1; n < chains.offsets[first + k + 1] && group[k] < 0; ++n)
      if (is_item(chains, n)) group[static_cast<size_t>(k)] = candidate_index_of(example, chains.nodes[n]);
  }
  return group;
}

std::vector<int32_t> group_sizes(const Example& example, const std::vector<int32_t>& groups) {
  std::vector<int32_t> sizes(example.candidates.size(), 0);
  for (int32_t g : groups)
    if (g >= 0) ++sizes[static_cast<size_t>(g)];
  return sizes;
}

namespace {
// Candidate indices in the order the prompt lists them: with support order the most `support` first, ties in the
// given order; else the given order.
std::vector<int32_t> order_by(const TaskFormat& f, const std::vector<int32_t>& support) {
  std::vector<int32_t> order(support.size());
  std::iota(order.begin(), order.end(), 0);
  if (!f.support_order) return order;
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return support[static_cast<size_t>(a)] > support[static_cast<size_t>(b)];
  });
  return order;
}
}  // namespace

std::vector<int32_t> candidate_order(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                                     const TaskFormat& f) {
  if (!f.support_order) return order_by(f, std::vector<int32_t>(example.candidates.size(), 0));
  return order_by(f, f.layout == ChainLayout::kGrouped
                         ? group_sizes(example, chain_groups(example, chains, first, count))
                         : chain_votes(example, chains, first, count));
}

std::string render_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                          const Catalog& catalog, const TaskFormat& f, PromptForm form, const ChainMask& mask) {
  std::string s;
  if (f.titles()) {
    s = "History (oldest first):\n";
    for (int32_t item : example.history) s += "- " + item_name(catalog, item, f) + "\n";
  } else {
    s = "History (oldest first): ";
    for (int32_t item : example.history) s += item_token(catalog, item);
    s += "\n";
  }
  const auto nodes_of = [&](int64_t k) {
    return node_names(catalog, chains, first + k, chains.offsets[first + k + 1], example.user, f,
                      [&](int64_t node) { return mask.hides(k, node); });
  };
  if (f.layout == ChainLayout::kGrouped) {
    // Each chain under the candidate it reaches, as the reasoning cites it: the candidate line with its count, then
    // the chain lines. Chains reaching no candidate (closed, some walks) keep a numbered list of their own.
    const std::vector<int32_t> groups = chain_groups(example, chains, first, count);
    const std::vector<int32_t> sizes = group_sizes(example, groups);
    if (std::find(groups.begin(), groups.end(), -1) != groups.end()) {
      s += "Chains (U is this user):\n";
      for (int64_t k = 0; k < count; ++k)
        if (groups[static_cast<size_t>(k)] < 0) s += chain_line(nodes_of(k), k + 1, f) + "\n";
    }
    s += "Candidates and the chains that reach them (U is this user):\n";
    // The groups' sizes are the support (candidate_order), computed once here.
    for (int32_t i : order_by(f, sizes)) {
      s += "Candidate " + item_token(catalog, example.candidates[static_cast<size_t>(i)]) + " " +
           std::to_string(sizes[static_cast<size_t>(i)]) + "\n";
      for (int64_t k = 0; k < count; ++k)
        if (groups[static_cast<size_t>(k)] == i) s += compact_path(nodes_of(k)) + "\n";
    }
    s += form == PromptForm::kReason ? "Think over the chains step by step, then answer with one candidate."
                                     : "Answer with one candidate.";
    return s;
  }
  s += "Chains (U is this user):\n";
  if (count == 0) s += "(none)\n";
  for (int64_t k = 0; k < count; ++k) s += chain_line(nodes_of(k), k + 1, f) + "\n";
  if (f.titles()) {
    s += "Candidates:\n";
    for (size_t i = 0; i < example.candidates.size(); ++i) {
      s += "[" + std::to_string(i + 1) + "] " + item_name(catalog, example.candidates[i], f) + "\n";
    }
  } else if (f.layout == ChainLayout::kCompact) {
    // One line per candidate, written as the reasoning names it ("Candidate <item_98>."): the look-up copy
    // (docs/model.md) then proposes exactly the candidates where a completion starts a "Candidate " line.
    s += "Candidates:\n";
    for (int32_t i : candidate_order(example, chains, first, count, f))
      s += "Candidate " + item_token(catalog, example.candidates[static_cast<size_t>(i)]) + "\n";
  } else {
    s += "Candidates: ";
    for (int32_t c : example.candidates) s += item_token(catalog, c);
    s += "\n";
  }
  s += form == PromptForm::kReason ? "Think over the chains step by step, then answer with one candidate."
                                   : "Answer with one candidate.";
  return s;
}

std::string render_chat_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               const Catalog& catalog, const TaskFormat& format, PromptForm form) {
  return render_chatml(
      {{"system", kTaskSystemPrompt}, {"user", render_prompt(example, chains, first, count, catalog, format, form)}},
      /*add_generation_prompt=*/true);
}

ChainEvidence chain_evidence(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                             int64_t cited_chains) {
  ChainEvidence ev;
  ev.votes = chain_votes(example, chains, first, count);
  const int64_t C = static_cast<int64_t>(example.candidates.size());
  for (int32_t i = 0; i < C; ++i)
    if (ev.votes[static_cast<size_t>(i)] > 0) ev.order.push_back(i);
  std::stable_sort(ev.order.begin(), ev.order.end(), [&](int32_t a, int32_t b) {
    return ev.votes[static_cast<size_t>(a)] > ev.votes[static_cast<size_t>(b)];
  });
  // For the candidates in vote order, the first prompt chain reaching each.
  for (int32_t ci : ev.order) {
    if (static_cast<int64_t>(ev.cited.size()) >= cited_chains) break;
    for (int64_t k = 0; k < count; ++k) {
      bool reaches = false;
      for (int64_t n = chains.offsets[first + k]; n < chains.offsets[first + k + 1] && !reaches; ++n)
        reaches = is_item(chains, n) && chains.nodes[n] == example.candidates[static_cast<size_t>(ci)];
      if (!reaches) continue;
      if (std::find(ev.cited.begin(), ev.cited.end(), k) == ev.cited.end()) ev.cited.push_back(k);
      break;
    }
  }
  return ev;
}

std::string answer_label(const Example& example, int32_t candidate_index, const Catalog& catalog,
                         const TaskFormat& format) {
  return format.item_tokens() ? item_token(catalog, example.candidates[static_cast<size_t>(candidate_index)])
                              : std::to_string(candidate_index + 1);
}

std::string answer_text(const Example& example, int32_t candidate_index, const Catalog& catalog,
                        const TaskFormat& format) {
  return std::string(kAnswerOpen) + answer_label(example, candidate_index, catalog, format) + kAnswerClose;
}

const char* trace_shape_name(TraceShape shape) {
  switch (shape) {
    case TraceShape::kVotes:
      return "votes";
    case TraceShape::kEvidence:
      return "evidence";
    case TraceShape::kNoChain:
      return "no_chain";
  }
  return "";
}

namespace {

// The votes form's think block: the cited chains walked forwards, then the tally.
std::string votes_think(const Example& example, const ChainBuffer& chains, int64_t first, const ChainEvidence& ev,
                        const Catalog& catalog, const TaskFormat& f) {
  std::string s;
  for (int64_t k : ev.cited) {
    const int64_t c = first + k;
    s += "Chain " + std::to_string(k + 1) + ":";
    // Thought `hop` names only nodes hop-1 and hop of the chain.
    for (int64_t n = chains.offsets[c] + 1; n < chains.offsets[c + 1]; ++n) {
      const std::string from = node_name(catalog, chains, n - 1, example.user, f);
      const std::string to = node_name(catalog, chains, n, example.user, f);
      if (is_item(chains, n)) {
        if (chains.nodes[n - 1] == example.user) {
          s += " U liked " + to + ".";
        } else {
          s += " " + from + " liked " + to;
          s += candidate_index_of(example, chains.nodes[n]) >= 0 ? ", a candidate." : ".";
        }
      } else if (chains.nodes[n] == example.user) {
        s += " U liked " + from + " too.";
      } else {
        s += " " + to + " also liked " + from + ".";
      }
    }
    s += "\n";
  }
  s += "Votes:";
  if (ev.order.empty()) s += " none";
  for (size_t i = 0; i < ev.order.size(); ++i) {
    const int32_t ci = ev.order[i];
    s += (i ? ", " : " ") + (f.item_tokens() ? item_token(catalog, example.candidates[static_cast<size_t>(ci)])
                                             : "[" + std::to_string(ci + 1) + "]");
    s += " " + std::to_string(ev.votes[static_cast<size_t>(ci)]);
  }
  return s + ".\n";
}

}  // namespace

std::string evidence_reasoning(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               int32_t candidate_index, int64_t cited, const Catalog& catalog, const TaskFormat& f) {
  const int32_t item = example.candidates[static_cast<size_t>(candidate_index)];
  if (f.layout == ChainLayout::kGrouped) {
    // The candidate's prompt line, count included, then its first `cited` chain lines: each line a copy of the
    // prompt's, so that the look-up copy proposes the next line (or the next candidate, where the group ends).
    const std::vector<int32_t> groups = chain_groups(example, chains, first, count);
    std::string s = "Candidate " + item_token(catalog, item) + " " +
                    std::to_string(group_sizes(example, groups)[static_cast<size_t>(candidate_index)]) + "\n";
    int64_t written = 0;
    for (int64_t k = 0; k < count && written < cited; ++k) {
      if (groups[static_cast<size_t>(k)] != candidate_index) continue;
      s += compact_path(node_names(catalog, chains, first + k, chains.offsets[first + k + 1], example.user, f)) + "\n";
      ++written;
    }
    return s;
  }
  std::string s = "Candidate " + item_name(catalog, item, f) + ".";
  TaskFormat backward = f;  // a citation is the chain's backward line, up to the candidate
  backward.layout = ChainLayout::kBackward;
  int64_t written = 0;
  for (int64_t k = 0; k < count && written < cited; ++k) {
    const int64_t c = first + k;
    int64_t p = chains.offsets[c];
    while (p < chains.offsets[c + 1] && !(is_item(chains, p) && chains.nodes[p] == item)) ++p;
    if (p == chains.offsets[c + 1]) continue;
    const std::vector<std::string> nodes =  // U .. the candidate's first place on the chain
        node_names(catalog, chains, c, p + 1, example.user, f);
    // compact: the prompt line after its number, "cbaU."
    s += "\n" + (f.compact() ? compact_path(nodes) : chain_line(nodes, k + 1, backward)) + ".";
    ++written;
  }
  if (written == 0) s += " No chain reaches it.";
  return s + "\n";
}

Trace template_trace(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                     const Catalog& catalog, const TaskFormat& f) {
  const ChainEvidence ev = chain_evidence(example, chains, first, count, f.cited_chains);
  Trace trace;
  trace.reaching = ev.votes[static_cast<size_t>(example.target_index)];
  trace.target_top = trace.reaching > 0 && trace.reaching == ev.votes[static_cast<size_t>(ev.order.front())];
  std::string think;
  if (f.trace_form == TraceForm::kVotes && !ev.order.empty() && ev.order.front() == example.target_index) {
    trace.shape = TraceShape::kVotes;
    think = votes_think(example, chains, first, ev, catalog, f);
  } else {
    trace.shape = trace.reaching > 0 ? TraceShape::kEvidence : TraceShape::kNoChain;
    think = evidence_reasoning(example, chains, first, count, example.target_index, f.cited_chains, catalog, f);
  }
  trace.text = "<think>\n" + think + "</think>" + answer_text(example, example.target_index, catalog, f);
  return trace;
}

std::vector<int64_t> end_of_turn_tokens(const Tokenizer& tokenizer) {
  std::vector<int64_t> out;
  for (const char* t : {"<|im_end|>", "<|endoftext|>"}) {
    if (auto id = tokenizer.token_id(t)) out.push_back(*id);
  }
  return out;
}

int32_t parse_answer(const std::string& completion, const Example& example, const Catalog& catalog) {
  const size_t open = completion.find(kAnswerOpen);
  if (open == std::string::npos) return -1;
  const size_t begin = open + std::string(kAnswerOpen).size();
  const size_t close = completion.find(kAnswerClose, begin);
  if (close == std::string::npos) return -1;
  if (completion.find(kAnswerOpen, close) != std::string::npos) return -1;  // two answers
  std::string a = completion.substr(begin, close - begin);
  const auto not_space = [](unsigned char ch) { return !std::isspace(ch); };
  a.erase(a.begin(), std::find_if(a.begin(), a.end(), not_space));
  a.erase(std::find_if(a.rbegin(), a.rend(), not_space).base(), a.end());
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (!a.empty() && a.size() <= 6 &&
      std::all_of(a.begin(), a.end(), [](unsigned char ch) { return std::isdigit(ch); })) {
    const int64_t n = std::stoll(a);
    return n >= 1 && n <= static_cast<int64_t>(example.candidates.size()) ? static_cast<int32_t>(n - 1) : -1;
  }
  for (size_t i = 0; i < example.candidates.size(); ++i) {
    const int32_t item = example.candidates[i];
    if (item_token(catalog, item) == a || title_of(catalog, item) == a) return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace r2rec
