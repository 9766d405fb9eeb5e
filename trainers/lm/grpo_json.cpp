// rl.json's per-step objects (docs/grpo.md "Reported per step"), also the record a GRPO checkpoint keeps.
#include <cmath>

#include "trainers/lm/grpo.h"

namespace r2rec {

namespace {
// JSON has no NaN: a non-finite number was written as null.
double num(const nlohmann::json& v) { return v.is_null() ? std::nan("") : v.get<double>(); }
}  // namespace

nlohmann::ordered_json grpo_step_json(const GrpoStep& s, const std::vector<std::string>& names) {
  nlohmann::ordered_json parts = nlohmann::ordered_json::object();
  for (size_t i = 0; i < names.size() && i < s.parts.size(); ++i) parts[names[i]] = s.parts[i];
  nlohmann::ordered_json staleness = nlohmann::ordered_json::object();
  for (const auto& [lag, n] : s.staleness) staleness[std::to_string(lag)] = n;
  return {{"step", s.step},
          {"reward", s.reward},
          {"reward_std", s.reward_std},
          {"rewards", parts},
          {"hit", s.hit},
          {"kl", s.kl},
          {"clipped", s.clipped},
          {"entropy", s.entropy},
          {"old_new_gap", s.old_new_gap},
          {"loss", s.loss},
          {"completion_tokens", s.completion_tokens},
          {"response_tokens", s.response_tokens},
          {"zero_advantage_groups", s.zero_advantage_groups},
          {"stale_dropped", s.stale_dropped},
          {"staleness", staleness},
          {"seconds", s.seconds},
          {"rollout_seconds", s.rollout_seconds},
          {"reward_seconds", s.reward_seconds},
          {"learner_seconds", s.learner_seconds},
          {"sync_seconds", s.sync_seconds},
          {"sync_bytes", s.sync_bytes},
          {"learner_idle", s.learner_idle},
          {"rollout_idle", s.rollout_idle}};
}

GrpoStep grpo_step_from_json(const nlohmann::json& j, const std::vector<std::string>& names) {
  GrpoStep s;
  s.step = j.at("step");
  s.reward = num(j.at("reward"));
  s.reward_std = num(j.at("reward_std"));
  for (const std::string& n : names) s.parts.push_back(num(j.at("rewards").at(n)));
  s.hit = num(j.at("hit"));
  s.kl = num(j.at("kl"));
  s.clipped = num(j.at("clipped"));
  s.entropy = num(j.at("entropy"));
  s.old_new_gap = num(j.at("old_new_gap"));
  s.loss = num(j.at("loss"));
  s.completion_tokens = j.at("completion_tokens");
  s.response_tokens = num(j.at("response_tokens"));
  s.zero_advantage_groups = j.at("zero_advantage_groups");
  s.stale_dropped = j.at("stale_dropped");
  for (const auto& [lag, n] : j.at("staleness").items()) s.staleness[std::stoll(lag)] = n.get<int64_t>();
  s.seconds = num(j.at("seconds"));
  s.rollout_seconds = num(j.at("rollout_seconds"));
  s.reward_seconds = num(j.at("reward_seconds"));
  s.learner_seconds = num(j.at("learner_seconds"));
  s.sync_seconds = num(j.at("sync_seconds"));
  s.sync_bytes = j.at("sync_bytes");
  s.learner_idle = num(j.at("learner_idle"));
  s.rollout_idle = num(j.at("rollout_idle"));
  return s;
}

Scalars grpo_step_scalars(const GrpoStep& step, const std::vector<std::string>& names) {
  Scalars out;
  const nlohmann::ordered_json j = grpo_step_json(step, names);  // items() refers into it: keep it alive
  for (const auto& [key, v] : j.items()) {
    if (key == "step") continue;
    if (v.is_object()) {
      for (const auto& [sub, x] : v.items())
        out.emplace_back((key == "rewards" ? "reward" : key) + "/" + sub, x.get<double>());
    } else {
      out.emplace_back(key, v.get<double>());
    }
  }
  return out;
}

}  // namespace r2rec
