// Trained classical recommenders (SASRec, BPR-MF, LightGCN, item-kNN) behind one small interface, trained on the train
// sequences stored in the shard folder's catalog and scored on the stored candidate lists like every method.
//
// Data parallel: each rank trains on its slice of every global batch and sums gradients through the
// DataParallelGroup it was given (distributed/dp_group.h GradientSum). Initial
// weights come from the run seed alone, so every rank starts identical; negatives are drawn from streams keyed
// by (seed, epoch, user, position), so they do not depend on which rank draws them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "distributed/dp_group.h"
#include "sampler/shard.h"
#include "sampler/split.h"
#include "trainers/eval/metrics.h"

namespace r2rec {

// The items a model may look at when scoring `example`: the user's train sequence up to the target's position,
// then the example's own history for the positions past the train split (the validation item, for test
// examples). Oldest first.
std::vector<int32_t> scoring_prefix(const Catalog& catalog, const Example& example);

// Negatives for training: items a user never touched in the train split, uniform by rejection against the
// user's sorted train items.
class UnseenItemSampler {
 public:
  explicit UnseenItemSampler(const Catalog& catalog);
  int32_t draw(int32_t user, Rng& rng) const;

 private:
  const Catalog& catalog_;
  std::vector<int32_t> sorted_;  // catalog.user_train_items, each user's run sorted
};

// BPR's training triples (BPR-MF, LightGCN): the train split's (user, item) pairs, shuffled per epoch by a stream
// keyed by (seed, stream, epoch) and cut into global batches; a rank takes every W-th pair of a batch, with a
// negative from the stream keyed by (seed, stream + 1, epoch, pair), so the triples do not depend on the rank count.
struct BprBatch {
  std::vector<int64_t> user, item, negative;  // this rank's slice (may be empty)
  int64_t global = 0;                         // pairs in the whole batch, all ranks
};
class BprTriples {
 public:
  BprTriples(const Catalog& catalog, uint64_t seed, uint64_t stream);
  int64_t size() const { return static_cast<int64_t>(user_.size()); }
  const std::vector<int32_t>& users() const { return user_; }
  const std::vector<int32_t>& items() const { return item_; }
  std::vector<BprBatch> epoch(int64_t epoch, int64_t batch_size, int64_t rank, int64_t world) const;

 private:
  uint64_t seed_, stream_;
  UnseenItemSampler unseen_;
  std::vector<int32_t> user_, item_;
};

class Recommender {
 public:
  virtual ~Recommender() = default;
  // One pass over the training data (this rank's slice of every batch); returns the mean training loss
  // (0 for models that need no training). `epoch` keys shuffles and negatives.
  virtual double train_epoch(int64_t epoch) = 0;
  virtual bool needs_training() const { return true; }
  // Training samples (positions, triples) one epoch processes on this rank, for throughput figures.
  virtual int64_t samples_per_epoch() const = 0;
  // The (user, item) pairs of every scoring prefix past the train split (a test example's validation item),
  // given before the final scoring pass; a graph model adds them to its graph. Others read the prefix itself.
  virtual bool wants_scoring_history() const { return false; }
  virtual void set_scoring_history(const std::vector<std::pair<int32_t, int32_t>>& extra) { (void)extra; }
  // [C] scores of example.candidates; higher is better.
  virtual std::vector<double> score(const Example& example, const std::vector<int32_t>& prefix) = 0;
  // Keep / bring back the weights of the best validation pass (early stopping).
  virtual void remember_best() {}
  virtual void restore_best() {}
  // The learnt item factors, row-major [num_items, *dim]; empty (dim 0) for models without them.
  virtual std::vector<float> item_factors(int64_t* dim) const {
    *dim = 0;
    return {};
  }
};

// method: "sasrec" | "bpr" | "lightgcn" | "itemknn". Throws ConfigError for another name.
std::unique_ptr<Recommender> make_recommender(const std::string& method, const BaselineConfig& config,
                                              const Catalog& catalog, uint64_t seed, const DataParallelGroup& group);

}  // namespace r2rec
