#include "trainers/task/reward.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "trainers/task/citations.h"
#include "trainers/task/task.h"

namespace r2rec {
namespace {

double answer_component(const std::string& completion, const RewardPrompt& p) {
  return parse_answer(completion, p.example, p.catalog) == p.example.target_index ? 1.0 : 0.0;
}

double format_component(const std::string& completion, const RewardPrompt& p) {
  const int32_t choice = parse_answer(completion, p.example, p.catalog);
  const size_t think = completion.find("<think>"), end = completion.find("</think>"),
               answer = completion.find(kAnswerOpen);
  return choice >= 0 && think != std::string::npos && end != std::string::npos && think < end && end < answer ? 1.0
                                                                                                              : 0.0;
}

double rank_component(const std::string& completion, const RewardPrompt& p) {
  const Example& example = p.example;
  const Catalog& catalog = p.catalog;
  const int32_t choice = parse_answer(completion, example, catalog);
  std::vector<int32_t> ranked;
  if (choice >= 0) ranked.push_back(choice);
  // Then every candidate in the order of its first mention (as its item token or its title).
  std::vector<std::pair<size_t, int32_t>> mentions;
  for (size_t c = 0; c < example.candidates.size(); ++c) {
    const int32_t item = example.candidates[c];
    size_t at = completion.find(item_token(catalog, item));
    if (!catalog.item_titles[item].empty()) at = std::min(at, completion.find(catalog.item_titles[item]));
    if (at != std::string::npos) mentions.emplace_back(at, static_cast<int32_t>(c));
  }
  std::sort(mentions.begin(), mentions.end());
  for (const auto& [at, c] : mentions)
    if (c != choice) ranked.push_back(c);
  for (size_t r = 0; r < ranked.size(); ++r)
    if (ranked[r] == example.target_index) return 1.0 / std::log2(static_cast<double>(r) + 2.0);
  return 0.0;
}

ReasoningCheck check_of(const std::string& completion, const RewardPrompt& p) {
  return check_reasoning(completion, p.example, p.chains, 0, p.chains.size(), p.catalog, p.format);
}

double grounded_component(const std::string& completion, const RewardPrompt& p) {
  const ReasoningCheck check = check_of(completion, p);
  double claims = static_cast<double>(check.citations.size()) + check.has_votes + check.count_claim, right = 0;
  for (const Citation& c : check.citations) right += c.grounded;
  right += check.has_votes && check.votes_true;
  right += check.count_true;
  return claims > 0 ? right / claims : 0.0;
}

double consistent_component(const std::string& completion, const RewardPrompt& p) {
  return check_of(completion, p).consistent(parse_answer(completion, p.example, p.catalog)) ? 1.0 : 0.0;
}

const std::map<std::string, RewardComponent>& registry() {
  static const std::map<std::string, RewardComponent> r = {{"answer", answer_component},
                                                           {"format", format_component},
                                                           {"rank", rank_component},
                                                           {"grounded", grounded_component},
                                                           {"consistent", consistent_component}};
  return r;
}

}  // namespace

std::vector<std::string> reward_component_names() {
  std::vector<std::string> out;
  for (const auto& [name, fn] : registry()) out.push_back(name);
  return out;
}

std::vector<WeightedReward> make_rewards(const RlConfig& rl) {
  std::vector<WeightedReward> out;
  for (const std::string& entry : rl.rewards) {
    const size_t eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    const auto it = registry().find(name);
    if (it == registry().end()) {
      std::string known;
      for (const auto& n : reward_component_names()) known += (known.empty() ? "" : ", ") + n;
      throw ConfigError("rl.rewards: unknown reward '" + name + "' (known: " + known + ")");
    }
    double weight = -1;
    try {
      size_t used = 0;
      if (eq != std::string::npos) weight = std::stod(entry.substr(eq + 1), &used);
      if (eq != std::string::npos && used != entry.size() - eq - 1) weight = -1;
    } catch (const std::exception&) {
      weight = -1;
    }
    if (!(weight >= 0) || !std::isfinite(weight)) {
      throw ConfigError("rl.rewards: '" + entry + "': expected name=weight with a weight >= 0, e.g. answer=1");
    }
    for (const auto& w : out)
      if (w.name == name) throw ConfigError("rl.rewards: '" + name + "' is listed twice");
    out.push_back({name, weight, it->second});
  }
  if (out.empty()) throw ConfigError("rl.rewards: empty (list at least one reward, e.g. answer=1)");
  return out;
}

Reward score_completion(const std::vector<WeightedReward>& rewards, const std::string& completion,
                        const RewardPrompt& prompt) {
  Reward r;
  for (const auto& w : rewards) {
    r.parts.push_back(w.score(completion, prompt));
    r.total += w.weight * r.parts.back();
  }
  return r;
}

}  // namespace r2rec
