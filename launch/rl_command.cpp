// `r2rec rl`: GRPO from the SFT checkpoint (trainers/lm/grpo.h): colocated (every rank samples and learns), or split
// into learner and rollout ranks (distributed.colocated=false, distributed.learner_ranks L + rollout_ranks R),
// synchronous or asynchronous (rl.async, rl.max_staleness). Policy and frozen reference start from
// <run.dir>/sft/model (LoRA adapters on the policy when model.lora.rank > 0; rollout ranks hold a policy copy
// only); prompts are the train split's, in the reasoning form, with the answer span constrained to the
// candidates; rewards are rl.rewards (trainers/task/reward.h).
// Output: <run.dir>/rl/model (same layout as sft/model, written by learner 0) and rl.json (per step: reward mean
// and std, each reward component, hit rate, KL, clip share, entropy, response length, flat groups, staleness,
// rollout / learner / weight-sync seconds, idle shares, |log pi_old - log pi_theta|). Evaluate with `r2rec eval
// --model <run.dir>/rl/model` ("llm-rl").
#include <glog/logging.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "distributed/communicator.h"
#include "launch/commands.h"
#include "launch/stage.h"
#include "sampler/shard_reader.h"
#include "trainers/lm/answering.h"
#include "trainers/lm/grpo.h"
#include "trainers/lm/model_folder.h"
#include "trainers/task/reward.h"
#include "trainers/task/task.h"

namespace r2rec {
namespace fs = std::filesystem;

int command_rl(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "rl");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  const bool split = !c.distributed.colocated;
  const bool learner = ctx.topology.is_learner(rank);
  const std::string start = ctx.layout.stage_model("sft"), out = ctx.layout.stage_model("rl");
  const TaskFormat format = task_format(c);
  // Current: the same SFT checkpoint (its record's fingerprint) and the same rl/task/seed settings.
  StageInputs inputs;
  inputs.settings.task = c.task;
  inputs.settings.rl = c.rl;
  inputs.settings.rl.save_every = 0;  // when checkpoints are written or validation runs does not change the result
  inputs.settings.rl.eval_every = 0;
  inputs.settings.model.lora = c.model.lora;
  inputs.settings.run.seed = c.run.seed;
  inputs.digests = {broadcast_from_rank0(stage_fingerprint_on_disk(ctx, "sft"))};
  TrainingStage stage(ctx, "rl", inputs, c.rl.save_every);
  if (stage.skip()) return kExitOk;
  LoadedModel policy_ckpt, reference_ckpt;
  std::vector<Example> examples;
  std::vector<ChainBuffer> example_chains;  // each example's prompt chains, for the rewards that check reasoning
  std::vector<RlPrompt> prompts;
  std::vector<WeightedReward> rewards;
  Catalog catalog;
  run_agreed([&] {
    rewards = make_rewards(c.rl);
    if (!fs::exists(start + "/config.json")) throw DataError(start + "/config.json: not found (run `r2rec sft` first)");
    policy_ckpt = load_model_folder(start);
    if (learner) reference_ckpt = load_model_folder(start);
    add_configured_lora(*policy_ckpt.model, c.model.lora, static_cast<uint64_t>(c.run.seed));
    policy_ckpt.model->activation_checkpointing = c.model.activation_checkpointing;
    // Every rank holds the whole list; the trainer picks each rank's share per step.
    ShardReader reader(reader_options(ctx, Split::kTrain, /*rank_share=*/false, /*for_eval=*/false));
    catalog = reader.catalog();
    Example e;
    ChainBuffer chains;
    while (reader.next(&e, &chains)) {
      const Tokenizer& tok = *policy_ckpt.tokenizer;
      const auto ids = tok.encode(render_chat_prompt(e, chains, 0, chains.size(), catalog, format));
      prompts.push_back({{ids.begin(), ids.end()}, answer_constraint(candidate_answer_ids(tok, e, catalog, format))});
      examples.push_back(e);
      example_chains.push_back(chains);
      chains.clear();
    }
  });
  const RewardFn reward = [&](int64_t i, const std::string& completion) {
    const auto k = static_cast<size_t>(i);
    return score_completion(rewards, completion, {examples[k], example_chains[k], catalog, format});
  };
  TransformerImpl& policy = *policy_ckpt.model;
  const Tokenizer& tok = *policy_ckpt.tokenizer;
  stage.plan().tokenizer = &tok;
  stage.plan().base_model = start;
  std::vector<std::string> names_list;
  for (const auto& w : rewards) names_list.push_back(w.name);
  const auto validating = [&](const GrpoStep& s) {
    return c.rl.eval_every > 0 && ((s.step + 1) % c.rl.eval_every == 0 || s.step + 1 == c.rl.steps);
  };
  const auto log_step = [&](const GrpoStep& s, const Scalars& validation) {
    Scalars scalars = grpo_step_scalars(s, names_list);
    scalars.insert(scalars.end(), validation.begin(), validation.end());
    std::string line;
    if (s.step < 3 || (s.step + 1) % 10 == 0) {
      std::ostringstream o;
      o << "step " << s.step + 1 << " reward " << s.reward << " (";
      for (size_t i = 0; i < rewards.size() && i < s.parts.size(); ++i)
        o << (i ? ", " : "") << rewards[i].name << " " << std::to_string(s.parts[i]);
      o << "), KL " << s.kl << ", clipped " << s.clipped << ", |old-new| " << s.old_new_gap << ", "
        << s.completion_tokens << " tokens, " << s.zero_advantage_groups << " flat groups, " << s.seconds
        << " s (rollout " << s.rollout_seconds << " s, learn " << s.learner_seconds << " s, sync " << s.sync_seconds
        << " s)";
      line = o.str();
    }
    stage.step(s.step + 1, c.rl.steps, scalars, line);
  };
  RlResult result;
  std::shared_ptr<Communicator> world;
  std::unique_ptr<Communicator> sync;
  if (!split) {
    const DataParallelGroup group = data_parallel_group(ctx);
    run_agreed([&] {
      result = train_grpo(
          policy, *reference_ckpt.model, c.rl, static_cast<uint64_t>(c.run.seed), prompts, reward, tok, group,
          [&](const GrpoStep& s) {
            Scalars validation;  // every rank its share
            if (validating(s)) validation = validation_scalars(ctx, "rl", s.step + 1, policy, tok, group);
            if (rank == 0) log_step(s, validation);
          },
          &stage.plan());
    });
  } else {
    world = world_communicator(ctx);
    SplitGroups g;
    g.learners = DataParallelGroup::over(world->split(ctx.topology.learners), data_parallel_options(ctx));
    sync = world->split(ctx.topology.sync);
    g.world = world.get();
    g.sync = sync.get();
    g.num_learners = static_cast<int>(ctx.topology.learners.size());
    g.num_rollouts = static_cast<int>(ctx.topology.rollouts.size());
    g.timeout_s = c.distributed.timeout_s;
    g.bucket_mb = c.distributed.bucket_mb;
    g.weight_checksum = c.distributed.weight_checksum;
    if (rank == 0) {
      LOG(INFO) << "rl: split mode, " << g.num_learners << " learner(s) + " << g.num_rollouts << " rollout rank(s), "
                << (c.rl.async ? "asynchronous (max staleness " + std::to_string(c.rl.max_staleness) + ")"
                               : std::string("synchronous"));
    }
    // A failure here may strike one role alone: it is not agreed (main ends the job, naming this rank).
    result = train_grpo_split(
        policy, learner ? reference_ckpt.model.get() : nullptr, c.rl, static_cast<uint64_t>(c.run.seed), prompts,
        reward, tok, g,
        [&](const GrpoStep& s) {  // learner 0 alone: the whole validation slice
          Scalars validation;
          if (validating(s))
            validation = validation_scalars(ctx, "rl", s.step + 1, policy, tok, DataParallelGroup::single());
          log_step(s, validation);
        },
        &stage.plan());
  }
  stage.finish_steps();
  // Rollout-side timings of the first rollout rank (split mode) join learner 0's record.
  nlohmann::json mine = nlohmann::json::array();
  for (const auto& s : result.steps) mine.push_back({s.step, s.rollout_seconds, s.rollout_idle, s.reward_seconds});
  const std::vector<std::string> all = gather_to_rank0(mine.dump());
  run_agreed([&] {
    if (rank != 0) return;
    if (split && !ctx.topology.rollouts.empty()) {
      const auto r = nlohmann::json::parse(all[static_cast<size_t>(ctx.topology.rollouts.front())]);
      for (const auto& e : r) {  // by step: after a resume the rollout rank has the steps it ran
        for (auto& st : result.steps) {
          if (st.step != e[0].get<int64_t>()) continue;
          st.rollout_seconds = e[1];
          st.rollout_idle = e[2];
          st.reward_seconds = e[3];
        }
      }
    }
    save_model_folder(policy, tok, out);
    nlohmann::ordered_json j;
    j["steps"] = result.steps.size();
    j["ranks"] = ctx.process->world_size;
    j["mode"] = !split ? "colocated" : c.rl.async ? "async" : "split";
    j["resumed_from"] = result.resumed_from;
    j["learner_ranks"] = ctx.topology.learners.size();
    j["rollout_ranks"] = ctx.topology.rollouts.size();
    j["seconds"] = result.seconds;
    j["reward_components"] = names_list;
    nlohmann::ordered_json per = nlohmann::ordered_json::array();
    for (const auto& s : result.steps) per.push_back(grpo_step_json(s, names_list));
    j["per_step"] = per;
    const auto& first = result.steps.front();
    const auto& last = result.steps.back();
    char summary[1024];
    std::snprintf(summary, sizeof(summary),
                  "rl: %zu GRPO steps (%s), %d rank(s), %.1f s; reward %.3f -> %.3f (hit %.3f -> %.3f), KL %.3g -> "
                  "%.3g\n  checkpoint %s (r2rec eval --model %s)\n",
                  result.steps.size(), j["mode"].get<std::string>().c_str(), ctx.process->world_size, result.seconds,
                  first.reward, last.reward, first.hit, last.hit, first.kl, last.kl, out.c_str(), out.c_str());
    stage.write_record(j, summary);
  });
  return kExitOk;
}

}  // namespace r2rec
