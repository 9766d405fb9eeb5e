// Split and asynchronous GRPO (trainers/lm/grpo.h train_grpo_split): the rollout ranks' loop and the learner
// ranks' loop, each a story top to bottom; train_grpo_split sets up the weight broadcast and runs this rank's.
#include <glog/logging.h>

#include <map>
#include <optional>

#include "core/error.h"
#include "core/model/lora.h"
#include "distributed/communicator.h"
#include "distributed/param_broadcast.h"
#include "distributed/trajectory.h"
#include "distributed/watchdog.h"
#include "trainers/lm/answering.h"
#include "trainers/lm/grpo.h"
#include "trainers/lm/grpo_steps.h"
#include "trainers/lm/train_state.h"

namespace r2rec {

using namespace grpo;  // NOLINT: the shared pieces of both GRPO shapes

namespace {

// Trajectory batches <-> scored completions (the channel carries whole groups; example_ids = global slots).
TrajectoryBatch to_batch(const std::vector<Scored>& scored, int64_t version) {
  TrajectoryBatch b;
  b.policy_version = version;
  b.parts_per_sequence = scored.empty() ? 0 : static_cast<int64_t>(scored.front().reward.parts.size());
  for (const Scored& c : scored) {
    b.add(std::vector<int32_t>(c.tokens.begin(), c.tokens.end()), c.logprobs, static_cast<float>(c.reward.total),
          c.slot);
    for (double p : c.reward.parts) b.reward_parts.push_back(static_cast<float>(p));
  }
  return b;
}

// `prompt_of(slot)` maps a global slot back to its prompt index.
void append_scored(const TrajectoryBatch& b, const std::function<int64_t(int64_t)>& prompt_of,
                   std::vector<Scored>& out) {
  const size_t K = static_cast<size_t>(b.parts_per_sequence);
  for (size_t s = 0; s < b.num_sequences(); ++s) {
    Scored c;
    c.slot = b.example_ids[s];
    c.prompt = prompt_of(c.slot);
    c.tokens.assign(b.tokens.begin() + b.offsets[s], b.tokens.begin() + b.offsets[s + 1]);
    c.logprobs.assign(b.logprobs.begin() + b.offsets[s], b.logprobs.begin() + b.offsets[s + 1]);
    c.reward.total = b.rewards[s];
    for (size_t k = 0; k < K; ++k) c.reward.parts.push_back(b.reward_parts[s * K + k]);
    c.version = b.policy_version;
    out.push_back(std::move(c));
  }
}

// What both roles of a split run derive from the config alone (docs/grpo.md "Split and asynchronous").
struct SplitSchedule {
  int L = 1, R = 1;      // learner and rollout ranks
  int64_t P = 0, T = 0;  // prompts per step, steps
  int64_t s = 0;         // staleness bound (0 when synchronous)
  const CheckpointPlan* plan = nullptr;
  TrajectoryChannelOptions channel;

  SplitSchedule(const RlConfig& rl, const SplitGroups& groups, const CheckpointPlan* checkpoints)
      : L(groups.num_learners),
        R(groups.num_rollouts),
        P(rl.prompts_per_step),
        T(rl.steps),
        s(rl.async ? rl.max_staleness : 0),
        plan(checkpoints) {
    channel.capacity = static_cast<size_t>(s + 2);
    channel.max_staleness = s;
    channel.timeout_s = groups.timeout_s;
  }
  // The rollout of step t uses version max(0, t - s); version v (1 <= v <= T-1-s) is broadcast after update v-1.
  bool needed(int64_t version) const { return version >= 1 && version <= T - 1 - s; }
  // Checkpoint v is written after update v - 1 and broadcast v (every rank joins); a resume starts at `first`.
  bool checkpoint_at(int64_t version) const { return plan && plan->every > 0 && version % plan->every == 0; }
  bool resuming() const { return plan && !plan->resume_from.empty(); }
  // Rollout rank j holds the step's prompts [j P/R, (j+1) P/R), learner l learns on [l P/L, (l+1) P/L); j sends
  // to l exactly when the two ranges overlap, so every batch holds at least one group.
  bool overlaps(int j, int l) const {
    return std::max(j * P / R, l * P / L) < std::min((j + 1) * P / R, (l + 1) * P / L);
  }
};

// Rollout rank j (world rank L + j): samples prompts [j P/R, (j+1) P/R) of every step with the newest version
// it was sent, scores them and sends each learner its part; receives version v after update v - 1.
RlResult run_rollout_rank(TransformerImpl& policy, const RlConfig& rl, uint64_t seed,
                          const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tok,
                          const SplitGroups& groups, const SplitSchedule& sch, ParameterBroadcaster& broadcaster) {
  const auto t0 = Clock::now();
  Communicator& world = *groups.world;
  const int rank = world.rank(), j = rank - sch.L, L = sch.L;
  const int64_t per = sch.P / sch.R, T = sch.T, s = sch.s;
  const SamplingOptions o = answer_sampling(tok, rl.max_new_tokens, rl.temperature, rl.top_p);
  const TokenText text = answer_token_text(tok);
  PromptSchedule schedule(prompts.size(), seed);
  TrajectorySender sender(world, sch.channel);
  RlResult result;
  int64_t version = 0, first = 0;
  if (sch.resuming()) {  // the weights of version `first` (no optimizer on a rollout rank)
    first = version = load_train_state(sch.plan->resume_from, policy, nullptr, rank).at("step").get<int64_t>();
  }
  for (int64_t step = first; step < T; ++step) {
    const auto ts = Clock::now();
    double waited = 0;
    if (sch.needed(step - s) && step - s > first) {  // the version this step samples with
      PhaseScope phase("rl weight sync before step " + std::to_string(step + 1));
      const auto tw = Clock::now();
      version = broadcaster.broadcast(0);
      // Checkpoint `version` with the learners, before the flush: an asynchronous rank's last send may complete
      // only once a learner posts its receive, which the learners do after the checkpoint.
      if (sch.checkpoint_at(version)) save_train_state(*sch.plan, version, policy, nullptr, {}, rank);
      // Finish the sends still in flight while the learners take them (learner 0 posted their receives before
      // the broadcast; the others are receiving): a large send only moves inside this rank's MPI calls, and
      // generation makes none for seconds.
      sender.flush();
      waited += since(tw);
    }
    std::vector<Scored> scored;
    double reward_s = 0;
    {
      PhaseScope phase("rl rollout step " + std::to_string(step + 1));
      scored = rollout(policy, schedule, prompts, step, j * per, (j + 1) * per, rl, o, text, seed, reward, version,
                       &reward_s);
    }
    const double rollout_s = since(ts) - waited;
    // Learner l takes the step's prompts [l P/L, (l+1) P/L): send each its part of this rank's groups.
    PhaseScope phase("rl send step " + std::to_string(step + 1));
    const auto tq = Clock::now();
    for (int l = 0; l < L; ++l) {
      if (!sch.overlaps(j, l)) continue;
      std::vector<Scored> part;
      for (size_t c = 0; c < scored.size(); ++c) {
        const int64_t k = j * per + static_cast<int64_t>(c) / rl.group_size;  // the prompt's place in the step
        if (k * L / sch.P == l) part.push_back(scored[c]);
      }
      sender.send(to_batch(part, version), l);
    }
    waited += since(tq);
    GrpoStep stats;
    stats.step = step;
    stats.rollout_seconds = rollout_s;
    stats.reward_seconds = reward_s;
    stats.rollout_idle = waited / std::max(1e-9, since(ts));
    result.steps.push_back(stats);
  }
  for (int l = 0; l < L; ++l) sender.close(l);
  result.seconds = since(t0);
  return result;
}

// Learner rank l: trains on prompts [l P/L, (l+1) P/L) of every step, from the batches the rollout ranks send;
// learner 0 broadcasts version step+1 after each update and reports each step through `on_step`.
RlResult run_learner_rank(TransformerImpl& policy, TransformerImpl& reference, const RlConfig& rl, uint64_t seed,
                          const std::vector<RlPrompt>& prompts, const SplitGroups& groups, const SplitSchedule& sch,
                          ParameterBroadcaster* broadcaster, int64_t sync_bytes,
                          const std::function<void(const GrpoStep&)>& on_step) {
  const auto t0 = Clock::now();
  double outside = 0;  // seconds in on_step on learner 0 (validation, logs): not the stage's training time
  Communicator& world = *groups.world;
  const DataParallelGroup& group = groups.learners;
  const int rank = world.rank(), R = sch.R;
  const int64_t P = sch.P, T = sch.T, s = sch.s, G = rl.group_size;
  std::vector<int> senders;
  for (int r = sch.L; r < sch.L + R; ++r) senders.push_back(r);
  TrajectoryReceiver receiver(world, senders, sch.channel);
  Learner learner(policy, reference, rl);
  PromptSchedule schedule(prompts.size(), seed);
  std::map<int64_t, std::vector<TrajectoryBatch>> pending;  // batches of later steps, by step
  const std::function<int64_t(int64_t)> prompt_of = [&](int64_t slot) { return schedule.at(slot / G); };
  RlResult result;
  int64_t first = 0;
  if (sch.resuming()) {
    const nlohmann::json st = load_train_state(sch.plan->resume_from, policy, &learner.optimizer(), rank);
    first = result.resumed_from = st.at("step").get<int64_t>();
    result.steps = steps_from_record(st.at("record"), rl);
  }
  for (int64_t step = first; step < T; ++step) {
    const auto ts = Clock::now();
    GrpoStep stats;
    stats.step = step;
    // One batch per rollout rank for this step (a batch of a later step, from a rollout rank ahead of the others,
    // waits in `pending`), the completions then in slot order: the step's prompts in order, whoever sampled them.
    receiver.set_current_version(step);
    std::vector<Scored> scored;
    const size_t dropped_before = receiver.dropped();
    {
      PhaseScope phase("rl receive step " + std::to_string(step + 1));
      int expected = 0, got = 0;
      for (int j = 0; j < R; ++j) expected += sch.overlaps(j, group.rank());
      auto it = pending.find(step);
      if (it != pending.end()) {
        for (const auto& b : it->second) append_scored(b, prompt_of, scored);
        got = static_cast<int>(it->second.size());
        pending.erase(it);
      }
      while (got < expected) {
        std::optional<TrajectoryBatch> b = receiver.pop();
        if (!b) throw CommError("rl: every rollout rank closed its channel before step " + std::to_string(step + 1));
        if (b->num_sequences() == 0) throw CommError("rl: an empty trajectory batch (a rollout rank out of step?)");
        const int64_t of = b->example_ids.front() / (P * G);
        if (of == step) {
          append_scored(*b, prompt_of, scored);
          ++got;
        } else {
          pending[of].push_back(std::move(*b));
        }
      }
    }
    stats.learner_idle = since(ts);
    std::stable_sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) { return a.slot < b.slot; });
    double drops = static_cast<double>(receiver.dropped() - dropped_before);
    group.sum(&drops, 1);
    stats.stale_dropped = static_cast<int64_t>(drops);
    std::vector<double> sums = reward_sums(scored, rl.rewards.size());
    group.sum(sums.data(), static_cast<int64_t>(sums.size()));
    fill_reward_stats(sums, stats);
    std::vector<double> lags(static_cast<size_t>(s + 1), 0.0);  // completions by staleness, summed over learners
    for (const Scored& c : scored) lags[static_cast<size_t>(std::min<int64_t>(s, step - c.version))] += 1;
    group.sum(lags.data(), static_cast<int64_t>(lags.size()));
    for (size_t lag = 0; lag < lags.size(); ++lag)
      if (lags[lag] > 0) stats.staleness[static_cast<int64_t>(lag)] = static_cast<int64_t>(lags[lag]);
    const auto tl = Clock::now();
    {
      PhaseScope phase("rl learn step " + std::to_string(step + 1));
      learner.learn(scored, prompts, group, stats);
    }
    stats.learner_seconds = since(tl);
    if (sch.needed(step + 1) && broadcaster) {  // learner 0 sends version step+1 to the rollout ranks
      PhaseScope phase("rl weight sync after step " + std::to_string(step + 1));
      const auto tb = Clock::now();
      // Post the receive of any batch already announced first: its bytes then move while both sides wait in the
      // broadcast (a sender only progresses a large send inside MPI calls, and the rollout rank goes on to
      // generate right after the broadcast), instead of while this learner waits for the next step's batch.
      receiver.pump();
      broadcaster->broadcast(step + 1);
      stats.sync_seconds = since(tb);
      stats.sync_bytes = sync_bytes;
    }
    stats.seconds = since(ts);
    stats.learner_idle /= std::max(1e-9, stats.seconds);
    result.steps.push_back(stats);
    if (on_step && group.rank() == 0) {
      const auto tc = Clock::now();
      on_step(stats);
      outside += since(tc);
    }
    if (sch.needed(step + 1) && sch.checkpoint_at(step + 1))
      save_train_state(*sch.plan, step + 1, policy, &learner.optimizer(), steps_record(result.steps, rl), rank);
  }
  // Drain the end-of-stream markers so no send is left pending.
  while (!receiver.all_closed()) {
    if (receiver.pop()) LOG(WARNING) << "rl: an extra trajectory batch after the last step was ignored";
  }
  result.seconds = since(t0) - outside;
  return result;
}

}  // namespace

RlResult train_grpo_split(TransformerImpl& policy, TransformerImpl* reference, const RlConfig& rl, uint64_t seed,
                          const std::vector<RlPrompt>& prompts, const RewardFn& reward, const Tokenizer& tok,
                          const SplitGroups& groups, const std::function<void(const GrpoStep&)>& on_step,
                          const CheckpointPlan* plan) {
  const SplitSchedule sch(rl, groups, plan);
  check_shape(rl, sch.L, "learner ranks", prompts);
  check_shape(rl, sch.R, "rollout ranks", prompts);
  // The weight broadcast (learner 0 -> rollout ranks) over the sync group, zero-copy: learner 0 sends from, the
  // rollout ranks receive into, the parameters themselves.
  BroadcastOptions bo;
  bo.bucket_mb = groups.bucket_mb;
  bo.timeout_s = groups.timeout_s;
  bo.checksum = groups.weight_checksum;
  bo.alias = true;
  std::vector<torch::Tensor> sync_params;
  for (auto& [name, p] : trainable_parameters(policy)) sync_params.push_back(p);
  std::unique_ptr<ParameterBroadcaster> broadcaster;
  if (groups.sync != nullptr) broadcaster = std::make_unique<ParameterBroadcaster>(sync_params, *groups.sync, bo);
  int64_t sync_bytes = 0;
  for (const auto& p : sync_params) sync_bytes += static_cast<int64_t>(p.numel() * p.element_size());
  if (groups.world->rank() >= sch.L) {
    CHECK(broadcaster) << "train_grpo_split: a rollout rank needs the sync group";
    return run_rollout_rank(policy, rl, seed, prompts, reward, tok, groups, sch, *broadcaster);
  }
  CHECK(reference != nullptr) << "train_grpo_split: a learner needs the reference model";
  return run_learner_rank(policy, *reference, rl, seed, prompts, groups, sch, broadcaster.get(), sync_bytes, on_step);
}

}  // namespace r2rec
