// `r2rec rl`: GRPO from the SFT checkpoint (trainers/grpo.h), colocated (every rank samples and learns).
// Policy and frozen reference start from <run.dir>/sft/model (LoRA adapters on the policy when
// model.lora.rank > 0); prompts are the train split's; reward = rl.answer_reward when the completion's answer is
// the target + rl.format_reward when it is well formed (<think> ... </think> then an answer naming a candidate).
// Output: <run.dir>/rl/model (same layout as sft/model) and rl.json (per-step rewards, KL, clip share,
// |log pi_old - log pi_theta|, timings). Evaluate with `r2rec eval --model <run.dir>/rl/model` ("llm-rl").
// Split rollout/learner mode (weight broadcast + trajectory channel) is not in this version.
#include <glog/logging.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "distributed/communicator.h"
#include "launch/command.h"
#include "sampler/shard_reader.h"
#include "trainers/answering.h"
#include "trainers/checkpoint.h"
#include "trainers/grpo.h"
#include "trainers/reward.h"
#include "trainers/task.h"

namespace r2rec {
namespace fs = std::filesystem;

int command_rl(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "rl");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  const std::string start = ctx.layout.stage_model("sft"), out = ctx.layout.stage_model("rl");
  const TaskFormat format = task_format(c);
  // Current: the same SFT checkpoint (its record's fingerprint) and the same rl/task/seed settings.
  Config k;
  k.task = c.task;
  k.rl = c.rl;
  k.model.lora = c.model.lora;
  k.run.seed = c.run.seed;
  const std::string fingerprint =
      hex64(fnv1a(to_yaml(k) + broadcast_from_rank0(stage_fingerprint_on_disk(ctx, "sft"))));
  if (stage_is_current(ctx, "rl", fingerprint)) {
    if (rank == 0)
      std::cout << "rl: " << out << " is up to date; nothing to do (run.force=true retrains)\n" << std::flush;
    return kExitOk;
  }
  forget_stage(ctx, "rl");
  LoadedModel policy_ckpt, reference_ckpt;
  std::vector<Example> examples;
  std::vector<RlPrompt> prompts;
  Catalog catalog;
  run_agreed([&] {
    if (!c.distributed.colocated)
      throw ConfigError("distributed.colocated: rl runs colocated in this version (split mode is not built)");
    if (!fs::exists(start + "/config.json")) throw DataError(start + "/config.json: not found (run `r2rec sft` first)");
    policy_ckpt = load_checkpoint(start);
    reference_ckpt = load_checkpoint(start);
    add_configured_lora(*policy_ckpt.model, c.model.lora, static_cast<uint64_t>(c.run.seed));
    policy_ckpt.model->activation_checkpointing = c.model.activation_checkpointing;
    // Every rank holds the whole list; train_grpo picks each rank's share per step.
    ShardReader reader(reader_options(ctx, Split::kTrain, /*rank_share=*/false, /*for_eval=*/false));
    catalog = reader.catalog();
    Example e;
    ChainBuffer chains;
    while (reader.next(&e, &chains)) {
      const Tokenizer& tok = *policy_ckpt.tokenizer;
      const auto ids = tok.encode(render_chat_prompt(e, chains, 0, chains.size(), catalog, format));
      prompts.push_back({{ids.begin(), ids.end()}, answer_constraint(candidate_answer_ids(tok, e, catalog, format))});
      examples.push_back(e);
      chains.clear();
    }
  });
  const RewardFn reward = [&](int64_t i, const std::string& completion) {
    return task_reward(completion, examples[i], catalog, c.rl);
  };
  TransformerImpl& policy = *policy_ckpt.model;
  const Tokenizer& tok = *policy_ckpt.tokenizer;
  std::shared_ptr<Communicator> comm;
  const Collectives collectives = communicator_collectives(ctx, &comm);
  RlResult result;
  run_agreed([&] {
    result = train_grpo(policy, *reference_ckpt.model, c.rl, c.sft.grad_clip, static_cast<uint64_t>(c.run.seed),
                        prompts, reward, tok, collectives, [&](const GrpoStep& s) {
                          if (rank == 0 && (s.step < 3 || (s.step + 1) % 10 == 0)) {
                            LOG(INFO) << "rl: step " << s.step + 1 << " reward " << s.reward << " (answer " << s.answer
                                      << ", format " << s.format << "), KL " << s.kl << ", clipped " << s.clipped
                                      << ", |old-new| " << s.old_new_gap << ", " << s.completion_tokens << " tokens, "
                                      << s.zero_advantage_groups << " flat groups, " << s.seconds << " s (rollout "
                                      << s.rollout_seconds << " s)";
                          }
                        });
  });
  run_agreed([&] {
    if (rank != 0) return;
    save_checkpoint(policy, tok, out);
    nlohmann::ordered_json j;
    j["fingerprint"] = fingerprint;
    j["steps"] = result.steps.size();
    j["ranks"] = ctx.process->world_size;
    j["seconds"] = result.seconds;
    nlohmann::ordered_json per = nlohmann::ordered_json::array();
    for (const auto& s : result.steps) {
      per.push_back({{"step", s.step},
                     {"reward", s.reward},
                     {"answer", s.answer},
                     {"format", s.format},
                     {"kl", s.kl},
                     {"clipped", s.clipped},
                     {"old_new_gap", s.old_new_gap},
                     {"loss", s.loss},
                     {"completion_tokens", s.completion_tokens},
                     {"zero_advantage_groups", s.zero_advantage_groups},
                     {"seconds", s.seconds},
                     {"rollout_seconds", s.rollout_seconds}});
    }
    j["per_step"] = per;
    write_file_atomic(ctx.layout.stage_json("rl"), j.dump(2) + "\n");
    const auto& first = result.steps.front();
    const auto& last = result.steps.back();
    std::printf(
        "rl: %zu GRPO steps, %d rank(s), %.1f s; reward %.3f -> %.3f (answer %.3f -> %.3f), KL %.3g -> %.3g\n"
        "  checkpoint %s (r2rec eval --model %s)\n",
        result.steps.size(), ctx.process->world_size, result.seconds, first.reward, last.reward, first.answer,
        last.answer, first.kl, last.kl, out.c_str(), out.c_str());
    std::fflush(stdout);
  });
  return kExitOk;
}

}  // namespace r2rec
