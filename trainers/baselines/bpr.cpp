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
      : config_(config), catalog_(catalog), group_(group), triples_(catalog, seed, kBprStream) {
    torch::manual_seed(seed);  // same initial weights on every rank
    users_ = (torch::randn({catalog.num_users(), config.dim}) * 0.01).requires_grad_();
    items_ = (torch::randn({catalog.num_items(), config.dim}) * 0.01).requires_grad_();
    steps_ = std::make_unique<BatchSteps>(
        std::vector<torch::Tensor>{users_, items_},
        std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{users_, items_},
                                             torch::optim::AdamOptions(config.learning_rate)),
        group);
  }

  int64_t samples_per_epoch() const override { return triples_.size() / group_.size(); }

  double train_epoch(int64_t epoch) override {
    for (const BprBatch& b : triples_.epoch(epoch, config_.batch_size, group_.rank(), group_.size())) {
      torch::Tensor loss;  // undefined: this rank's slice is empty
      if (!b.user.empty()) {
        auto tu = torch::tensor(b.user), ti = torch::tensor(b.item), tj = torch::tensor(b.negative);
        auto pu = users_.index_select(0, tu), qi = items_.index_select(0, ti), qj = items_.index_select(0, tj);
        auto x = (pu * (qi - qj)).sum(1);
        // Mean over the global batch: this rank's sum divided by the global count, gradients summed over ranks.
        const double global = static_cast<double>(b.global);
        loss = -torch::log_sigmoid(x).sum() / global +
               config_.reg * 0.5 * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / global;
      }
      steps_->step(loss);
    }
    return steps_->epoch_loss();
  }

  std::vector<double> score(const Example& example, const std::vector<int32_t>& prefix) override {
    const torch::Tensor p = user_vector(example.user, prefix);
    torch::NoGradGuard g;
    std::vector<int64_t> c(example.candidates.begin(), example.candidates.end());
    auto s = items_.index_select(0, torch::tensor(c)).mv(p);
    return std::vector<double>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  }

  // The user's trained vector, or, when the scoring prefix ends in items training never paired with the user (a
  // test example's validation item) and fold_in is on, that vector updated with them: one Newton step of the BPR
  // objective over the whole prefix (every item outside it a negative, their exact mean; training's L2 of reg/2
  // |p|^2 per positive) taking only the new items' gradient, i.e. the trained vector is the mode of the train
  // items' likelihood and their curvature at it is its Laplace precision (online Bayesian fold-in; a full refit
  // to the whole prefix's optimum scored validation 0.012 HR@1 lower than the trained vectors, docs/baselines.md).
  torch::Tensor user_vector(int32_t user, const std::vector<int32_t>& prefix) const {
    const torch::Tensor trained = users_.detach()[user];
    const int64_t train_items = catalog_.user_train_offsets[user + 1] - catalog_.user_train_offsets[user];
    if (!config_.fold_in || static_cast<int64_t>(prefix.size()) <= train_items) return trained;
    return fold_in(trained, prefix, train_items);
  }

  torch::Tensor fold_in(const torch::Tensor& p, const std::vector<int32_t>& prefix, int64_t train_items) const {
    torch::NoGradGuard g;
    const torch::Tensor q = items_.detach().to(torch::kDouble);
    std::vector<char> in_prefix(static_cast<size_t>(catalog_.num_items()), 0);
    for (int32_t i : prefix) in_prefix[static_cast<size_t>(i)] = 1;
    std::vector<int64_t> pos, neg;
    for (int32_t i = 0; i < catalog_.num_items(); ++i) (in_prefix[static_cast<size_t>(i)] ? pos : neg).push_back(i);
    if (neg.empty()) return p;   // every item is in the history: nothing to rank against
    std::vector<int64_t> fresh;  // rows of pos holding the new items
    for (size_t k = static_cast<size_t>(train_items); k < prefix.size(); ++k) {
      fresh.push_back(std::lower_bound(pos.begin(), pos.end(), prefix[k]) - pos.begin());
    }
    const torch::Tensor pd = p.to(torch::kDouble);
    const torch::Tensor qp = q.index_select(0, torch::tensor(pos)), qn = q.index_select(0, torch::tensor(neg));
    const double n = static_cast<double>(neg.size());
    // s_ij = σ(x_j - x_i): the loss softplus(x_j - x_i) has gradient s_ij (q_j - q_i) and curvature s_ij (1 - s_ij).
    const torch::Tensor s = torch::sigmoid(qn.mv(pd).unsqueeze(0) - qp.mv(pd).unsqueeze(1));  // [P, N]
    const torch::Tensor w = s * (1 - s);
    const torch::Tensor cross = qp.t().matmul(w).matmul(qn);  // sum_ij w_ij q_i q_j^T
    torch::Tensor h =
        (qp.t().matmul(qp * w.sum(1).unsqueeze(1)) + qn.t().matmul(qn * w.sum(0).unsqueeze(1)) - cross - cross.t()) / n;
    // Training's L2; with reg 0 a tiny ridge keeps H invertible when the prefix's items span fewer than dim directions.
    h += torch::eye(p.size(0), torch::kDouble) * (std::max(config_.reg, 1e-8) * static_cast<double>(pos.size()));
    const torch::Tensor sf = s.index_select(0, torch::tensor(fresh));  // [F, N]
    const torch::Tensor grad =
        (sf.matmul(qn) - sf.sum(1).unsqueeze(1) * qp.index_select(0, torch::tensor(fresh))).sum(0) / n +
        pd * (config_.reg * static_cast<double>(fresh.size()));
    return (pd - torch::linalg::solve(h, grad.unsqueeze(1), true).squeeze(1)).to(torch::kFloat);
  }

  std::vector<float> item_factors(int64_t* dim) const override {
    const torch::Tensor q = items_.detach().contiguous();
    *dim = q.size(1);
    return std::vector<float>(q.data_ptr<float>(), q.data_ptr<float>() + q.numel());
  }

  void remember_best() override { steps_->remember_best(); }
  void restore_best() override { steps_->restore_best(); }

 private:
  BprConfig config_;
  const Catalog& catalog_;
  DataParallelGroup group_;
  BprTriples triples_;
  torch::Tensor users_, items_;
  std::unique_ptr<BatchSteps> steps_;
};

}  // namespace

std::unique_ptr<Recommender> make_bpr(const BprConfig& config, const Catalog& catalog, uint64_t seed,
                                      const DataParallelGroup& group) {
  return std::make_unique<Bpr>(config, catalog, seed, group);
}

}  // namespace r2rec
