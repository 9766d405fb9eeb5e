#include "trainers/baselines/bpr.h"

#include <algorithm>

#include "core/rng.h"
#include "trainers/baselines/torch_steps.h"

namespace r2rec {
namespace {

constexpr uint64_t kBprStream = 201;  // negatives and shuffles (see core/rng.h for other streams)

class Bpr : public Recommender {
 public:
  Bpr(const BprConfig& config, const Catalog& catalog, uint64_t seed, const DataParallelGroup& group)
      : config_(config), catalog_(catalog), seed_(seed), group_(group), unseen_(catalog) {
    torch::manual_seed(seed);  // same initial weights on every rank
    users_ = (torch::randn({catalog.num_users(), config.dim}) * 0.01).requires_grad_();
    items_ = (torch::randn({catalog.num_items(), config.dim}) * 0.01).requires_grad_();
    steps_ = std::make_unique<BatchSteps>(
        std::vector<torch::Tensor>{users_, items_},
        std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{users_, items_},
                                             torch::optim::AdamOptions(config.learning_rate)),
        group);
    for (int32_t u = 0; u < catalog.num_users(); ++u) {
      for (int64_t k = catalog.user_train_offsets[u]; k < catalog.user_train_offsets[u + 1]; ++k) {
        pair_user_.push_back(u);
        pair_item_.push_back(catalog.user_train_items[k]);
      }
    }
  }

  int64_t samples_per_epoch() const override { return static_cast<int64_t>(pair_user_.size()) / group_.size(); }

  double train_epoch(int64_t epoch) override {
    const int64_t n = static_cast<int64_t>(pair_user_.size());
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    Rng shuffle(stream_key(seed_, kBprStream, static_cast<uint64_t>(epoch)));
    r2rec::shuffle(order, shuffle);
    const int64_t B = config_.batch_size, W = group_.size();
    for (int64_t start = 0; start < n; start += B) {
      const int64_t end = std::min(n, start + B);
      // This rank's slice of the global batch.
      std::vector<int64_t> u, i, j;
      for (int64_t k = start + group_.rank(); k < end; k += W) {
        const int64_t pair = order[k];
        u.push_back(pair_user_[pair]);
        i.push_back(pair_item_[pair]);
        j.push_back(negative(pair_user_[pair], epoch, pair));
      }
      torch::Tensor loss;  // undefined: this rank's slice is empty
      if (!u.empty()) {
        auto tu = torch::tensor(u), ti = torch::tensor(i), tj = torch::tensor(j);
        auto pu = users_.index_select(0, tu), qi = items_.index_select(0, ti), qj = items_.index_select(0, tj);
        auto x = (pu * (qi - qj)).sum(1);
        // Mean over the global batch: this rank's sum divided by the global count, gradients summed over ranks.
        const double global = static_cast<double>(end - start);
        loss = -torch::log_sigmoid(x).sum() / global +
               config_.reg * 0.5 * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / global;
      }
      steps_->step(loss);
    }
    return steps_->epoch_loss();
  }

  std::vector<double> score(const Example& example, const std::vector<int32_t>&) override {
    torch::NoGradGuard g;
    std::vector<int64_t> c(example.candidates.begin(), example.candidates.end());
    auto s = items_.index_select(0, torch::tensor(c)).mv(users_[example.user]);
    return std::vector<double>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  }

  std::vector<float> item_factors(int64_t* dim) const override {
    const torch::Tensor q = items_.detach().contiguous();
    *dim = q.size(1);
    return std::vector<float>(q.data_ptr<float>(), q.data_ptr<float>() + q.numel());
  }

  void remember_best() override { steps_->remember_best(); }
  void restore_best() override { steps_->restore_best(); }

 private:
  int64_t negative(int32_t user, int64_t epoch, int64_t pair) const {
    Rng rng(stream_key(seed_, kBprStream + 1, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pair)));
    return unseen_.draw(user, rng);
  }

  BprConfig config_;
  const Catalog& catalog_;
  uint64_t seed_;
  DataParallelGroup group_;
  torch::Tensor users_, items_;
  std::unique_ptr<BatchSteps> steps_;
  UnseenItemSampler unseen_;
  std::vector<int32_t> pair_user_, pair_item_;
};

}  // namespace

std::unique_ptr<Recommender> make_bpr(const BprConfig& config, const Catalog& catalog, uint64_t seed,
                                      const DataParallelGroup& group) {
  return std::make_unique<Bpr>(config, catalog, seed, group);
}

}  // namespace r2rec
