#include "trainers/lm/sft.h"

#include "core/error.h"
#include "trainers/lm/lm_trainer.h"
#include "trainers/lm/model_folder.h"
#include "trainers/task/task.h"

namespace r2rec {

std::vector<LmSequence> sft_sequences(const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                                      int64_t* too_long, int64_t* completion_tokens) {
  const SftConfig& s = config.sft;
  const int64_t eot = end_of_turn_id(tokenizer);
  std::vector<LmSequence> seqs;
  for (int64_t i = 0; i < traces.size(); ++i) {
    LmSequence q;
    for (TokenId t : tokenizer.encode(traces.prompts[i])) q.ids.push_back(t);
    q.loss_from = static_cast<int64_t>(q.ids.size());
    // The completion as eval and RL see it: the text up to "<answer>", then the answer label and "</answer>"
    // encoded apart (what the answer constraint allows); the label's tokens weigh sft.answer_weight.
    const std::string& completion = traces.completions[i];
    const size_t open = completion.rfind(kAnswerOpen);
    const size_t split = open == std::string::npos ? completion.size() : open + std::string(kAnswerOpen).size();
    for (TokenId t : tokenizer.encode(completion.substr(0, split))) q.ids.push_back(t);
    const size_t label_from = q.ids.size();
    const size_t close = completion.find(kAnswerClose, split);
    const std::string label = completion.substr(split, close == std::string::npos ? std::string::npos : close - split);
    for (TokenId t : tokenizer.encode(label)) q.ids.push_back(t);
    const size_t label_to = q.ids.size();
    if (close != std::string::npos)
      for (TokenId t : tokenizer.encode(completion.substr(close))) q.ids.push_back(t);
    if (eot >= 0) q.ids.push_back(eot);
    if (s.answer_weight != 1.0) {
      q.weights.assign(q.ids.size(), 1.0f);
      for (size_t t = label_from; t < label_to; ++t) q.weights[t] = static_cast<float>(s.answer_weight);
    }
    if (static_cast<int64_t>(q.ids.size()) > s.max_seq_len) {
      if (too_long) ++*too_long;
      continue;
    }
    if (completion_tokens) *completion_tokens += static_cast<int64_t>(q.ids.size()) - q.loss_from;
    seqs.push_back(std::move(q));
  }
  return seqs;
}

SftResult train_sft(TransformerImpl& model, const Config& config, const TraceSet& traces, const Tokenizer& tokenizer,
                    const DataParallelGroup& group, const LmStepFn& on_step, const CheckpointPlan* checkpoints) {
  const SftConfig& s = config.sft;
  SftResult result;
  const std::vector<LmSequence> seqs =
      sft_sequences(config, traces, tokenizer, &result.too_long, &result.completion_tokens);
  result.traces_used = static_cast<int64_t>(seqs.size());
  const int64_t steps_per_epoch = result.traces_used / s.batch_size;
  if (steps_per_epoch == 0) {
    throw ConfigError("sft.batch_size: " + std::to_string(s.batch_size) + " is more than the " +
                      std::to_string(result.traces_used) + " traces within sft.max_seq_len " +
                      std::to_string(s.max_seq_len) + " (" + std::to_string(result.too_long) + " are longer)");
  }
  LmTrainOptions o;
  o.batch_size = s.batch_size;
  o.micro_batch_size = s.micro_batch_size;
  o.pack = s.packing;
  o.learning_rate = s.learning_rate;
  o.weight_decay = s.weight_decay;
  o.warmup_steps = s.warmup_steps;
  o.grad_clip = s.grad_clip;
  o.steps = s.max_steps > 0 ? std::min(s.max_steps, steps_per_epoch * s.epochs) : steps_per_epoch * s.epochs;
  o.seed = static_cast<uint64_t>(config.run.seed);
  o.order_stream = Stream::kSftOrder;
  o.what = "sft";
  o.checkpoints = checkpoints;
  static_cast<LmTrainResult&>(result) = train_lm(
      model, [&](int64_t) { return seqs; }, o, group, on_step);
  return result;
}

}  // namespace r2rec
