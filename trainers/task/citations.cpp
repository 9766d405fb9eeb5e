#include "trainers/task/citations.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

namespace r2rec {
namespace {

bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// An item's title as the prompt writes it (trainers/task/task.cpp): "item <ID>" when it has none.
std::string title_of(const Catalog& catalog, int32_t item) {
  const std::string& title = catalog.item_titles[static_cast<size_t>(item)];
  return title.empty() ? "item " + catalog.item_tokens[static_cast<size_t>(item)] : title;
}

struct Entity {
  NodeType type = NodeType::kItem;
  std::vector<int32_t> ids;  // the entities it may name (a title several items share: each); empty: none known
  size_t end = 0;            // where the mention ends in the text
  size_t begin = 0;          // and where it starts (set by find)
  bool is(NodeType t, int32_t id) const { return type == t && std::find(ids.begin(), ids.end(), id) != ids.end(); }
};

class Mentions {
 public:
  Mentions(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count, const Catalog& catalog,
           const TaskFormat& format)
      : example_(example), catalog_(catalog), format_(format) {
    for (int32_t i = 0; i < catalog.num_items(); ++i) items_[catalog.item_tokens[i]] = i;
    for (int32_t u = 0; u < catalog.num_users(); ++u) users_[catalog.user_tokens[u]] = u;
    if (format.titles()) {  // the titles of the prompt's items, longest first
      std::vector<int32_t> seen(example.history.begin(), example.history.end());
      seen.insert(seen.end(), example.candidates.begin(), example.candidates.end());
      for (int64_t n = chains.offsets[first]; n < chains.offsets[first + count]; ++n)
        if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem) seen.push_back(chains.nodes[n]);
      std::map<std::string, std::vector<int32_t>> by_title;  // ML-100K has items that share a title
      for (int32_t item : seen) {
        auto& ids = by_title[title_of(catalog, item)];
        if (std::find(ids.begin(), ids.end(), item) == ids.end()) ids.push_back(item);
      }
      titles_.assign(by_title.begin(), by_title.end());
      std::sort(titles_.begin(), titles_.end(),
                [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    }
  }

  // Every entity `text` names, in order.
  std::vector<Entity> find(const std::string& text) const {
    std::vector<Entity> out;
    size_t i = 0;
    while (i < text.size()) {
      Entity e;
      if (match(text, i, &e)) {
        e.begin = i;
        out.push_back(e);
        i = e.end;
        // "<item_50> Title" (token+title) names the item once.
        if (e.type == NodeType::kItem && !e.ids.empty() && format_.items == ItemText::kTokenTitle) {
          const std::string after = " " + title_of(catalog_, e.ids.front());
          if (text.compare(i, after.size(), after) == 0) i += after.size();
        }
      } else {
        ++i;
      }
    }
    return out;
  }

 private:
  static bool boundary(const std::string& t, size_t at) {
    return at >= t.size() || !(std::isalnum(static_cast<unsigned char>(t[at])) || t[at] == '_');
  }

  bool match(const std::string& t, size_t i, Entity* e) const {
    for (const auto& [prefix, type] : {std::pair<const char*, NodeType>{"<item_", NodeType::kItem},
                                       std::pair<const char*, NodeType>{"<user_", NodeType::kUser}}) {
      const size_t len = std::char_traits<char>::length(prefix);
      if (t.compare(i, len, prefix) != 0) continue;
      const size_t close = t.find('>', i + len);
      if (close == std::string::npos) return false;
      const auto& index = type == NodeType::kItem ? items_ : users_;
      const auto it = index.find(t.substr(i + len, close - i - len));
      *e = {type, {}, close + 1};
      if (it != index.end()) e->ids.push_back(it->second);
      return true;
    }
    for (const auto& [title, items] : titles_) {
      if (t.compare(i, title.size(), title) == 0) {
        *e = {NodeType::kItem, items, i + title.size()};
        return true;
      }
    }
    const bool word_start = i == 0 || boundary(t, i - 1);
    if (word_start && t[i] == 'U' && boundary(t, i + 1)) {
      *e = {NodeType::kUser, {example_.user}, i + 1};
      return true;
    }
    if (word_start && t.compare(i, 5, "user ") == 0) {
      size_t end = i + 5;
      while (end < t.size() && !std::isspace(static_cast<unsigned char>(t[end])) && t[end] != ',' &&
             !(t[end] == '.' && boundary(t, end + 1)))
        ++end;
      const auto it = users_.find(t.substr(i + 5, end - i - 5));
      if (it != users_.end()) {
        *e = {NodeType::kUser, {it->second}, end};
        return true;
      }
    }
    return false;
  }

  const Example& example_;
  const Catalog& catalog_;
  const TaskFormat& format_;
  std::map<std::string, int32_t> items_, users_;
  std::vector<std::pair<std::string, std::vector<int32_t>>> titles_;
};

// The candidate (0-based) `e` names, -1 when none.
int32_t candidate_of(const Example& example, const Entity& e) {
  for (size_t c = 0; c < example.candidates.size(); ++c)
    if (e.is(NodeType::kItem, example.candidates[c])) return static_cast<int32_t>(c);
  return -1;
}

// "Chain N: rest" (the votes form).
bool chain_prefix(const std::string& line, int64_t* number, std::string* rest) {
  if (line.rfind("Chain ", 0) != 0) return false;
  size_t end = 6;
  while (end < line.size() && is_digit(line[end])) ++end;
  if (end == 6 || end > 12 || end >= line.size() || line[end] != ':') return false;
  *number = std::stoll(line.substr(6, end - 6));
  *rest = line.substr(end + 1);
  return true;
}

// "rest (chain N)" or "rest (chain N)." (the evidence form); "rest (chain)." is a citation that names no number
// (*number 0: not grounded).
bool chain_suffix(const std::string& line, int64_t* number, std::string* rest) {
  std::string l = line;
  while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) l.pop_back();
  if (!l.empty() && l.back() == '.') l.pop_back();
  if (l.empty() || l.back() != ')') return false;
  if (l.size() > 8 && l.compare(l.size() - 8, 8, " (chain)") == 0) {
    *number = 0;
    *rest = l.substr(0, l.size() - 8);
    return true;
  }
  const size_t open = l.rfind(" (chain ");
  if (open == std::string::npos) return false;
  const std::string digits = l.substr(open + 8, l.size() - 1 - (open + 8));
  if (digits.empty() || digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), is_digit)) return false;
  *number = std::stoll(digits);
  *rest = l.substr(0, open);
  return true;
}

// `distinct`: every step must be a hop between two different nodes (a path: "U U." is no evidence).
Citation check_citation(int64_t number, const std::string& line, const std::vector<Entity>& mentions,
                        const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                        bool distinct = false) {
  Citation c;
  c.number = number;
  c.line = line;
  c.mentions = static_cast<int64_t>(mentions.size());
  c.steps = std::max<int64_t>(0, c.mentions - 1);
  if (number < 1 || number > count) {
    c.why = number == 0
                ? std::string("names no chain number")
                : "the prompt has no chain " + std::to_string(number) + " (it has " + std::to_string(count) + ")";
    return c;
  }
  c.chain = number - 1;
  const int64_t begin = chains.offsets[first + c.chain], end = chains.offsets[first + c.chain + 1];
  const auto positions = [&](const Entity& e) {
    std::vector<int64_t> at;
    for (int64_t n = begin; n < end; ++n)
      if (e.is(static_cast<NodeType>(chains.types[n]), chains.nodes[n])) at.push_back(n);
    return at;
  };
  for (const Entity& e : mentions) c.off_chain += positions(e).empty();
  for (size_t k = 1; k < mentions.size(); ++k) {
    bool ok = false;
    for (int64_t a : positions(mentions[k - 1]))
      for (int64_t b : positions(mentions[k])) ok = ok || (std::abs(a - b) <= 1 && !(distinct && a == b));
    c.grounded_steps += ok;
  }
  for (size_t k = 0; k < mentions.size(); ++k) {
    if (line.compare(mentions[k].end, 13, ", a candidate") == 0 && candidate_of(example, mentions[k]) < 0)
      ++c.false_candidates;
  }
  std::vector<std::string> faults;
  if (c.mentions < 2) faults.push_back("names fewer than two entities");
  if (c.off_chain > 0) faults.push_back(std::to_string(c.off_chain) + " mention(s) not on the chain");
  if (c.grounded_steps < c.steps)
    faults.push_back(std::to_string(c.steps - c.grounded_steps) + " of " + std::to_string(c.steps) +
                     " steps are not a hop of the chain");
  if (c.false_candidates > 0)
    faults.push_back(std::to_string(c.false_candidates) + " item(s) called a candidate that are not");
  for (size_t k = 0; k < faults.size(); ++k) c.why += (k ? "; " : "") + faults[k];
  c.grounded = faults.empty();
  return c;
}

// A line that is only entities (a path: "<item_98><user_40><item_7>U.", with "<-"/"->" or spaces between them
// allowed) names the chain by its hops: the first prompt chain it is grounded in, else none (chain -1).
bool path_line(const std::string& line, const std::vector<Entity>& mentions) {
  if (mentions.empty()) return false;
  size_t at = 0;
  const auto filler = [&](size_t to) {
    for (; at < to; ++at) {
      if (line.compare(at, 2, "<-") == 0 || line.compare(at, 2, "->") == 0) {
        ++at;
      } else if (!std::isspace(static_cast<unsigned char>(line[at]))) {
        return false;
      }
    }
    return true;
  };
  for (const Entity& e : mentions) {
    if (!filler(e.begin)) return false;
    at = e.end;
  }
  std::string tail = line.substr(std::min(at, line.size()));
  while (!tail.empty() && (tail.back() == '.' || std::isspace(static_cast<unsigned char>(tail.back()))))
    tail.pop_back();
  return tail.empty();
}

Citation check_path_citation(const std::string& line, const std::vector<Entity>& mentions, const Example& example,
                             const ChainBuffer& chains, int64_t first, int64_t count) {
  Citation best;
  for (int64_t k = 0; k < count; ++k) {
    Citation c = check_citation(k + 1, line, mentions, example, chains, first, count, /*distinct=*/true);
    if (c.grounded) {
      c.number = 0;
      c.path = true;
      return c;
    }
    if (k == 0 || c.grounded_steps > best.grounded_steps) best = c;
  }
  const std::string closest =
      best.chain >= 0 ? " (closest: chain " + std::to_string(best.chain + 1) + ", " + best.why + ")" : "";
  best.number = 0;
  best.path = true;
  best.chain = -1;
  best.line = line;
  best.mentions = static_cast<int64_t>(mentions.size());
  best.steps = std::max<int64_t>(0, best.mentions - 1);
  best.why = mentions.size() < 2 ? "one entity alone is no hop" : "no prompt chain has these hops" + closest;
  return best;
}

// What the completion's stated evidence favours (citations.h).
std::vector<int32_t> favoured_candidates(const ReasoningCheck& r, const Mentions& finder, const Example& example) {
  if (r.has_votes) {  // the votes rule: the most votes, a tie going to the one listed first
    const VoteClaim* best = nullptr;
    for (const VoteClaim& v : r.votes) {
      if (v.candidate >= 0 && v.claimed > 0 && (best == nullptr || v.claimed > best->claimed)) best = &v;
    }
    if (best == nullptr) return {};
    return {best->candidate};
  }
  const size_t C = example.candidates.size();
  std::vector<int64_t> score(C, 0);  // citations naming each candidate
  int64_t stated = 0;
  for (const Citation& c : r.citations) {
    if (c.mentions < 2) continue;  // one entity alone states nothing about any candidate
    ++stated;
    std::vector<bool> names(C, false);
    for (const Entity& e : finder.find(c.line)) {
      const int32_t k = candidate_of(example, e);
      if (k >= 0) names[static_cast<size_t>(k)] = true;
    }
    if (r.named >= 0 && !names[static_cast<size_t>(r.named)]) return {};  // a citation not reaching X
    for (size_t k = 0; k < C; ++k) score[k] += names[k];
  }
  if (r.named >= 0) {  // X, when some evidence is stated: a citation or "No chain reaches it"
    if (stated == 0 && !r.count_claim) return {};
    return {r.named};
  }
  const int64_t best = C ? *std::max_element(score.begin(), score.end()) : 0;
  std::vector<int32_t> out;
  for (size_t k = 0; k < C; ++k)
    if (best > 0 && score[k] == best) out.push_back(static_cast<int32_t>(k));
  return out;
}
}  // namespace

ReasoningCheck check_reasoning(const std::string& completion, const Example& example, const ChainBuffer& chains,
                               int64_t first, int64_t count, const Catalog& catalog, const TaskFormat& format) {
  ReasoningCheck r;
  const Mentions finder(example, chains, first, count, catalog, format);
  const size_t think_end = completion.find("</think>");
  const std::string think =
      completion.substr(0, think_end == std::string::npos ? completion.find(kAnswerOpen) : think_end);
  std::istringstream lines(think);
  std::string line;
  const ChainEvidence evidence = chain_evidence(example, chains, first, count, 0);
  while (std::getline(lines, line)) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    line = line.substr(start);
    int64_t number = 0;
    std::string rest;
    if (chain_prefix(line, &number, &rest) || chain_suffix(line, &number, &rest)) {
      r.citations.push_back(check_citation(number, rest, finder.find(rest), example, chains, first, count));
    } else if (std::vector<Entity> path; format.compact() && path_line(line, path = finder.find(line))) {
      r.citations.push_back(check_path_citation(line, path, example, chains, first, count));
    } else if (line.rfind("Candidate ", 0) == 0) {
      const std::vector<Entity> named = finder.find(line.substr(10));
      r.named = named.empty() ? -1 : candidate_of(example, named.front());
      // A count claim: "Candidate X. No chain reaches it." (0), or the grouped layout's "Candidate X 3" (its group).
      int64_t claimed = -1;
      if (line.find("No chain reaches it") != std::string::npos) {
        claimed = 0;
      } else if (format.layout == ChainLayout::kGrouped && !named.empty()) {
        std::string n = line.substr(10 + named.front().end);
        while (!n.empty() && (n.back() == '.' || std::isspace(static_cast<unsigned char>(n.back())))) n.pop_back();
        n.erase(0, std::min(n.size(), n.find_first_not_of(' ')));
        if (!n.empty() && n.size() < 9 && std::all_of(n.begin(), n.end(), is_digit)) claimed = std::stoll(n);
      }
      r.count_claim = claimed >= 0;  // the last candidate line's claim counts
      r.count_true = false;
      if (r.count_claim && r.named >= 0) {
        const int64_t actual = format.layout == ChainLayout::kGrouped
                                   ? group_sizes(example, chain_groups(example, chains, first, count))[r.named]
                                   : evidence.votes[static_cast<size_t>(r.named)];
        r.count_true = claimed == actual;
      }
    } else if (line.rfind("Votes:", 0) == 0) {
      r.has_votes = true;
      r.votes.clear();
      std::string rest = line.substr(6);
      while (!rest.empty() && (rest.back() == '.' || std::isspace(static_cast<unsigned char>(rest.back()))))
        rest.pop_back();
      const size_t lead = rest.find_first_not_of(' ');
      rest = lead == std::string::npos ? "" : rest.substr(lead);
      bool ok = true;
      std::vector<bool> listed(example.candidates.size(), false);
      if (rest != "none") {
        std::istringstream entries(rest);
        std::string entry;
        while (std::getline(entries, entry, ',')) {
          VoteClaim v;
          v.entry = entry.substr(std::min(entry.size(), entry.find_first_not_of(' ')));
          const size_t space = v.entry.rfind(' ');
          const std::string name = space == std::string::npos ? v.entry : v.entry.substr(0, space);
          if (space != std::string::npos) {
            const std::string n = v.entry.substr(space + 1);
            if (!n.empty() && n.size() < 9 && std::all_of(n.begin(), n.end(), is_digit)) v.claimed = std::stoll(n);
          }
          if (name.size() > 2 && name.front() == '[' && name.back() == ']' &&
              std::all_of(name.begin() + 1, name.end() - 1, is_digit) && name.size() < 9) {
            const int64_t k = std::stoll(name.substr(1, name.size() - 2));
            if (k >= 1 && k <= static_cast<int64_t>(example.candidates.size()))
              v.candidate = static_cast<int32_t>(k - 1);
          } else {
            const std::vector<Entity> named = finder.find(name);
            if (named.size() == 1) v.candidate = candidate_of(example, named[0]);
          }
          if (v.candidate >= 0) {
            v.actual = evidence.votes[static_cast<size_t>(v.candidate)];
            ok = ok && !listed[static_cast<size_t>(v.candidate)];
            listed[static_cast<size_t>(v.candidate)] = true;
          }
          ok = ok && v.candidate >= 0 && v.claimed == v.actual;
          r.votes.push_back(v);
        }
      }
      for (size_t c = 0; c < listed.size(); ++c) ok = ok && (listed[c] || evidence.votes[c] == 0);
      r.votes_true = ok;
    }
  }
  r.favoured = favoured_candidates(r, finder, example);
  return r;
}

std::vector<std::string> unshown_mentions(const std::string& text, const Example& example, const ChainBuffer& chains,
                                          int64_t first, int64_t count, const Catalog& catalog,
                                          const TaskFormat& format, const ChainMask& mask) {
  std::set<std::pair<int, int32_t>> shown = {{static_cast<int>(NodeType::kUser), example.user}};
  for (int32_t item : example.history) shown.insert({static_cast<int>(NodeType::kItem), item});
  for (int32_t item : example.candidates) shown.insert({static_cast<int>(NodeType::kItem), item});
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = first + k;
    for (int64_t n = chains.offsets[c]; n < chains.offsets[c + 1]; ++n)
      if (!mask.hides(k, n - chains.offsets[c])) shown.insert({static_cast<int>(chains.types[n]), chains.nodes[n]});
  }
  std::vector<std::string> out;
  const Mentions finder(example, chains, first, count, catalog, format);
  for (const Entity& e : finder.find(text)) {
    bool seen = false;
    for (int32_t id : e.ids) seen = seen || shown.count({static_cast<int>(e.type), id}) > 0;
    if (!seen) out.push_back(text.substr(e.begin, e.end - e.begin));
  }
  return out;
}

}  // namespace r2rec
