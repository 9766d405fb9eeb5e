#include "trainers/baselines/trained_baseline.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>

#include "sampler/shard_reader.h"

namespace r2rec {
namespace {

ReaderOptions reader_options(const std::string& dir, Split split, const DataParallelGroup& group, int64_t limit) {
  return split_reader_options(dir, static_cast<int>(split), group.rank(), group.size(), limit);
}

// Scores this rank's share of the reader's split and merges the sums of every rank.
RankingMetrics evaluate(Recommender& model, ShardReader& reader, const std::vector<int64_t>& ks,
                        const DataParallelGroup& group) {
  RankingMetrics local(ks);
  reader.start_epoch(0);
  Example ex;
  while (reader.next(&ex, nullptr)) local.add(model.score(ex, scoring_prefix(reader.catalog(), ex)), ex);
  return sum_over_ranks(local, group);
}

struct Schedule {
  int64_t epochs = 0, eval_every = 1, patience = 1;
};
Schedule schedule_of(const std::string& method, const BaselineConfig& b) {
  if (method == "sasrec") return {b.sasrec.epochs, b.sasrec.eval_every, b.sasrec.patience};
  if (method == "bpr") return {b.bpr.epochs, b.bpr.eval_every, b.bpr.patience};
  if (method == "lightgcn") return {b.lightgcn.epochs, b.lightgcn.eval_every, b.lightgcn.patience};
  return {};
}

}  // namespace

TrainedBaselineResult train_and_score(const std::string& method, const Config& config, const std::string& shard_dir,
                                      const DataParallelGroup& group) {
  const uint64_t seed = static_cast<uint64_t>(config.run.seed);
  ShardReader valid(reader_options(shard_dir, Split::kValid, group, config.eval.max_examples));
  const Catalog& catalog = valid.catalog();
  std::unique_ptr<Recommender> model = make_recommender(method, config.baseline, catalog, seed, group);
  const std::vector<int64_t> valid_ks = {std::min<int64_t>(10, config.sampler.num_candidates)};

  TrainedBaselineResult r;
  const Schedule s = schedule_of(method, config.baseline);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t samples = 0, bad = 0;
  bool have_best = false;
  for (int64_t epoch = 1; model->needs_training() && epoch <= s.epochs; ++epoch) {
    r.final_loss = model->train_epoch(epoch);
    samples += model->samples_per_epoch();
    r.epochs = epoch;
    if (epoch % s.eval_every != 0 && epoch != s.epochs) continue;
    const double ndcg = evaluate(*model, valid, valid_ks, group).ndcg(valid_ks[0]);
    r.curve.emplace_back(epoch, ndcg);
    LOG(INFO) << method << " epoch " << epoch << ": loss " << r.final_loss << ", valid NDCG@" << valid_ks[0] << " "
              << ndcg;
    if (!have_best || ndcg > r.best_valid_ndcg10) {
      have_best = true;
      r.best_valid_ndcg10 = ndcg;
      r.best_epoch = epoch;
      model->remember_best();
      bad = 0;
    } else if (++bad >= s.patience) {
      break;
    }
  }
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.samples_per_second = r.train_seconds > 0 ? samples / r.train_seconds : 0.0;
  if (have_best) model->restore_best();
  r.item_factors = model->item_factors(&r.factor_dim);

  // The files were size- and CRC-checked when `valid` opened this folder: no second pass over every byte.
  ReaderOptions eval_options =
      reader_options(shard_dir, split_from_name(config.eval.split), group, config.eval.max_examples);
  eval_options.verify_checksums = false;
  if (model->wants_scoring_history()) {  // every scoring prefix's items past the train split, the whole split
    ReaderOptions all = split_reader_options(shard_dir, static_cast<int>(split_from_name(config.eval.split)), 0, 1,
                                             config.eval.max_examples);
    all.verify_checksums = false;
    ShardReader whole(all);
    whole.start_epoch(0);
    std::vector<std::pair<int32_t, int32_t>> extra;
    Example ex;
    while (whole.next(&ex, nullptr)) {
      const std::vector<int32_t> prefix = scoring_prefix(whole.catalog(), ex);
      const int64_t seen = catalog.user_train_offsets[ex.user + 1] - catalog.user_train_offsets[ex.user];
      for (size_t k = static_cast<size_t>(std::max<int64_t>(0, seen)); k < prefix.size(); ++k)
        extra.emplace_back(ex.user, prefix[k]);
    }
    model->set_scoring_history(extra);
  }
  ShardReader eval(eval_options);
  r.eval = evaluate(*model, eval, config.eval.ks, group);
  return r;
}

}  // namespace r2rec
