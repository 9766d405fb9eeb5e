#include "trainers/lm/pretrain.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/model/safetensors.h"
#include "trainers/lm/lm_trainer.h"
#include "trainers/task/corpus.h"

namespace r2rec {

void init_item_rows(TransformerImpl& model, const Tokenizer& tokenizer, const Catalog& catalog,
                    const std::string& factors_path, uint64_t seed) {
  if (!std::filesystem::exists(factors_path)) {
    throw DataError(factors_path + ": not found (pretrain.init_items=bpr needs `r2rec baseline --method bpr` first)");
  }
  const SafetensorsFile file(factors_path);
  if (!file.has("item_factors")) throw DataError(factors_path + ": no tensor item_factors");
  const auto& shape = file.tensors().at("item_factors").shape;
  if (shape.size() != 2 || shape[0] != catalog.num_items()) {
    throw DataError(factors_path + ": item_factors: expected [" + std::to_string(catalog.num_items()) +
                    ", k] for this catalog (was it trained on other shards?)");
  }
  const torch::Tensor f = file.load_f32("item_factors", shape);  // [I, k]
  torch::manual_seed(seed);
  const int64_t d = model.config.hidden_size;
  const torch::Tensor projected = f.matmul(torch::randn({shape[1], d}) / std::sqrt(static_cast<double>(shape[1])));
  torch::NoGradGuard no_grad;
  torch::Tensor& w = model.embed_tokens->weight;
  const double target = w.std().item<double>();
  const torch::Tensor rows = projected * (target / std::max(1e-12, projected.std().item<double>()));
  for (int32_t i = 0; i < catalog.num_items(); ++i) {
    const auto id = tokenizer.token_id(item_token(catalog, i));
    if (id) w[*id].copy_(rows[i]);
  }
}

PretrainResult train_pretrain(TransformerImpl& model, const Config& config, const Catalog& catalog,
                              const TaskFormat& format, const Tokenizer& tokenizer, const DataParallelGroup& group,
                              const LmStepFn& on_step, const CheckpointPlan* checkpoints) {
  const PretrainConfig& p = config.pretrain;
  CorpusOptions co;
  co.walks_per_user = p.walks_per_user;
  co.reading_per_user = p.reading_per_user;
  co.copy_per_user = p.copy_per_user;
  co.history_len = config.sampler.history_len;
  co.num_candidates = config.sampler.num_candidates;
  co.chains_per_example = config.sampler.chains_per_example;
  co.title_share = p.title_share;
  co.seed = static_cast<uint64_t>(config.run.seed);
  const auto eot = tokenizer.token_id("<|endoftext|>");
  PretrainResult result;
  const EpochSequences epochs = [&](int64_t epoch) {
    std::vector<std::vector<int64_t>> docs;
    for (const std::string& d : corpus_documents(catalog, format, co, epoch)) {
      const std::vector<TokenId> ids = tokenizer.encode(d);
      docs.emplace_back(ids.begin(), ids.end());
    }
    std::vector<LmSequence> rows;
    for (auto& r : pack_rows(docs, eot ? *eot : -1, p.seq_len)) rows.push_back({std::move(r), 1, {}});
    if (epoch == 0) {
      result.rows_per_pass = static_cast<int64_t>(rows.size());
      result.tokens_per_pass = result.rows_per_pass * p.seq_len;
    }
    return rows;
  };
  LmTrainOptions o;
  o.batch_size = p.batch_size;
  o.micro_batch_size = p.micro_batch_size;
  o.learning_rate = p.learning_rate;
  o.warmup_steps = p.warmup_steps;
  o.grad_clip = config.pretrain.grad_clip;
  o.steps = p.steps;
  o.seed = static_cast<uint64_t>(config.run.seed);
  o.order_stream = Stream::kPretrainOrder;
  o.what = "pretrain";
  o.checkpoints = checkpoints;
  static_cast<LmTrainResult&>(result) = train_lm(model, epochs, o, group, on_step);
  return result;
}

}  // namespace r2rec
