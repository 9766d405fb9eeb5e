#include "trainers/task.h"

#include <algorithm>

#include "core/tokenizer/tokenizer.h"

namespace r2rec {

const char* const kTaskSystemPrompt =
    "You recommend items. You reason over interaction chains between users and items, one step at a time, "
    "then choose one candidate.";
const char* const kAnswerOpen = "<answer>";
const char* const kAnswerClose = "</answer>";

namespace {

std::string item_name(const Catalog& catalog, int32_t item) {
  const std::string& title = catalog.item_titles[item];
  return title.empty() ? "item " + catalog.item_tokens[item] : title;
}

std::string node_name(const Catalog& catalog, const ChainBuffer& chains, int64_t n, int32_t u0) {
  const int32_t id = chains.nodes[n];
  if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem) return item_name(catalog, id);
  return id == u0 ? "U" : "user " + catalog.user_tokens[id];
}

bool reaches(const ChainBuffer& chains, int64_t c, int32_t item) {
  for (int64_t n = chains.offsets[c]; n < chains.offsets[c + 1]; ++n) {
    if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem && chains.nodes[n] == item) return true;
  }
  return false;
}

int32_t candidate_index_of(const Example& example, int32_t item) {
  const auto it = std::find(example.candidates.begin(), example.candidates.end(), item);
  return it == example.candidates.end() ? -1 : static_cast<int32_t>(it - example.candidates.begin());
}

}  // namespace

std::string render_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                          const Catalog& catalog) {
  std::string s = "The user's history, oldest first:\n";
  for (int32_t item : example.history) s += "- " + item_name(catalog, item) + "\n";
  s += "Interaction chains (U = the user; user N = another user):\n";
  if (count == 0) s += "(none)\n";
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = first + k;
    s += "Chain " + std::to_string(k + 1) + ": ";
    for (int64_t n = chains.offsets[c]; n < chains.offsets[c + 1]; ++n) {
      if (n > chains.offsets[c]) s += " -> ";
      s += node_name(catalog, chains, n, example.user);
    }
    s += "\n";
  }
  s += "Candidates:\n";
  for (size_t i = 0; i < example.candidates.size(); ++i) {
    s += "[" + std::to_string(i + 1) + "] " + item_name(catalog, example.candidates[i]) + "\n";
  }
  s += "Reason over the chains step by step inside <think></think>, then give the number of the best candidate "
       "inside <answer></answer>.";
  return s;
}

std::string render_chat_prompt(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                               const Catalog& catalog) {
  return render_chatml({{"system", kTaskSystemPrompt}, {"user", render_prompt(example, chains, first, count, catalog)}},
                       /*add_generation_prompt=*/true);
}

std::string answer_text(int32_t candidate_index) {
  return std::string(kAnswerOpen) + std::to_string(candidate_index + 1) + kAnswerClose;
}

Trace template_trace(const Example& example, const ChainBuffer& chains, int64_t first, int64_t count,
                     const Catalog& catalog) {
  Trace trace;
  std::string s = "<think>\n";
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = first + k;
    if (!reaches(chains, c, example.target)) continue;
    ++trace.reaching;
    const std::string chain = "Chain " + std::to_string(k + 1) + ", step ";
    for (int64_t n = chains.offsets[c] + 1, step = 1; n < chains.offsets[c + 1]; ++n, ++step) {
      // Step `step` names only nodes 0..step of the chain: the hop (n-1 -> n).
      const std::string from = node_name(catalog, chains, n - 1, example.user);
      const std::string to = node_name(catalog, chains, n, example.user);
      s += chain + std::to_string(step) + ": ";
      if (static_cast<NodeType>(chains.types[n]) == NodeType::kItem) {
        s += from + " interacted with " + to;
        const int32_t ci = candidate_index_of(example, chains.nodes[n]);
        if (ci >= 0) s += ", which is candidate [" + std::to_string(ci + 1) + "]";
        s += ".\n";
      } else if (chains.nodes[n] == example.user) {
        s += "U also interacted with " + from + ", which closes the loop: U and the previous user share items.\n";
      } else {
        s += to + " also interacted with " + from + ", so " + to + " shares the user's taste.\n";
      }
    }
  }
  const std::string target =
      "candidate [" + std::to_string(example.target_index + 1) + "] " + item_name(catalog, example.target);
  if (trace.reaching > 0) {
    s += "Conclusion: " + target + " is reached by " + std::to_string(trace.reaching) + " of " + std::to_string(count) +
         " chains.\n";
  } else {
    s += "Conclusion: no chain reaches a candidate clearly, so the evidence is weak; from the history, " + target +
         " fits best.\n";
  }
  s += "</think>" + answer_text(example.target_index);
  trace.text = std::move(s);
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
    if (item_name(catalog, example.candidates[i]) == a) return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace r2rec
