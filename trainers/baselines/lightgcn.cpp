#include "trainers/baselines/lightgcn.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "trainers/baselines/torch_steps.h"

namespace r2rec {
namespace {

constexpr uint64_t kLightGcnStream = 401;  // shuffles and negatives (bpr.cpp 201, sasrec.cpp 301)

class LightGcn : public Recommender {
 public:
  LightGcn(const LightGcnConfig& config, const Catalog& catalog, uint64_t seed, const DataParallelGroup& group)
      : config_(config), catalog_(catalog), group_(group), triples_(catalog, seed, kLightGcnStream) {
    torch::manual_seed(seed);  // same initial weights on every rank
    const int64_t U = catalog.num_users(), I = catalog.num_items();
    embeddings_ = (torch::randn({U + I, config.dim}) * 0.1).requires_grad_();
    steps_ = std::make_unique<BatchSteps>(
        std::vector<torch::Tensor>{embeddings_},
        std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{embeddings_},
                                             torch::optim::AdamOptions(config.learning_rate)),
        group);
    train_graph_ = graph({});
  }

  int64_t samples_per_epoch() const override { return triples_.size() / group_.size(); }

  double train_epoch(int64_t epoch) override {
    scoring_.reset();
    const int64_t U = catalog_.num_users();
    for (const BprBatch& b : triples_.epoch(epoch, config_.batch_size, group_.rank(), group_.size())) {
      torch::Tensor loss;  // undefined: this rank's slice is empty
      if (!b.user.empty()) {
        const torch::Tensor e = propagate(train_graph_, embeddings_);
        // Items are graph nodes U + item.
        const auto tu = torch::tensor(b.user), ti = torch::tensor(b.item) + U, tj = torch::tensor(b.negative) + U;
        const auto pu = e.index_select(0, tu), qi = e.index_select(0, ti), qj = e.index_select(0, tj);
        const auto e0 = [&](const torch::Tensor& t) { return embeddings_.index_select(0, t).pow(2).sum(); };
        // Mean over the global batch: this rank's sum divided by the global count, gradients summed over ranks.
        const double global = static_cast<double>(b.global);
        loss = -torch::log_sigmoid((pu * (qi - qj)).sum(1)).sum() / global +
               config_.reg * 0.5 * (e0(tu) + e0(ti) + e0(tj)) / global;
      }
      steps_->step(loss);
    }
    return steps_->epoch_loss();
  }

  bool wants_scoring_history() const override { return true; }

  void set_scoring_history(const std::vector<std::pair<int32_t, int32_t>>& extra) override {
    extra_ = extra;
    scoring_.reset();
  }

  std::vector<double> score(const Example& example, const std::vector<int32_t>& prefix) override {
    (void)prefix;  // its items past the train split are edges of the scoring graph (set_scoring_history)
    if (!scoring_) {
      torch::NoGradGuard g;
      scoring_ = std::make_unique<torch::Tensor>(propagate(extra_.empty() ? train_graph_ : graph(extra_), embeddings_));
    }
    const int64_t U = catalog_.num_users();
    std::vector<int64_t> c;
    for (int32_t item : example.candidates) c.push_back(U + item);
    const torch::Tensor s = scoring_->index_select(0, torch::tensor(c)).mv((*scoring_)[example.user]);
    return std::vector<double>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  }

  std::vector<float> item_factors(int64_t* dim) const override {
    torch::NoGradGuard g;
    const torch::Tensor q = propagate(train_graph_, embeddings_.detach())
                                .narrow(0, catalog_.num_users(), catalog_.num_items())
                                .contiguous();
    *dim = q.size(1);
    return std::vector<float>(q.data_ptr<float>(), q.data_ptr<float>() + q.numel());
  }

  void remember_best() override { steps_->remember_best(); }
  void restore_best() override {
    steps_->restore_best();
    scoring_.reset();
  }

 private:
  // The symmetric normalised adjacency of the train edges plus `extra` (user, item) edges, sparse [U+I, U+I].
  torch::Tensor graph(const std::vector<std::pair<int32_t, int32_t>>& extra) const {
    const int64_t U = catalog_.num_users(), N = U + catalog_.num_items();
    std::vector<std::pair<int64_t, int64_t>> edges;
    for (int64_t k = 0; k < triples_.size(); ++k) edges.emplace_back(triples_.users()[k], U + triples_.items()[k]);
    for (const auto& [u, i] : extra) edges.emplace_back(u, U + i);
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    std::vector<double> degree(static_cast<size_t>(N), 0.0);
    for (const auto& [a, b] : edges) degree[a] += 1, degree[b] += 1;
    const int64_t E = static_cast<int64_t>(edges.size());
    torch::Tensor index = torch::empty({2, 2 * E}, torch::kLong), value = torch::empty({2 * E}, torch::kFloat);
    auto ia = index.accessor<int64_t, 2>();
    auto va = value.accessor<float, 1>();
    for (int64_t k = 0; k < E; ++k) {
      const auto [a, b] = edges[static_cast<size_t>(k)];
      const float w = static_cast<float>(1.0 / std::sqrt(degree[a] * degree[b]));
      ia[0][2 * k] = a, ia[1][2 * k] = b, va[2 * k] = w;
      ia[0][2 * k + 1] = b, ia[1][2 * k + 1] = a, va[2 * k + 1] = w;
    }
    return torch::sparse_coo_tensor(index, value, {N, N}).coalesce();
  }

  torch::Tensor propagate(const torch::Tensor& a, const torch::Tensor& e0) const {
    torch::Tensor e = e0, sum = e0;
    for (int64_t k = 0; k < config_.layers; ++k) {
      e = torch::mm(a, e);
      sum = sum + e;
    }
    return sum / static_cast<double>(config_.layers + 1);
  }

  LightGcnConfig config_;
  const Catalog& catalog_;
  DataParallelGroup group_;
  BprTriples triples_;
  torch::Tensor embeddings_;  // E0: users then items, [U + I, dim]
  std::unique_ptr<BatchSteps> steps_;
  torch::Tensor train_graph_;
  std::vector<std::pair<int32_t, int32_t>> extra_;
  std::unique_ptr<torch::Tensor> scoring_;  // propagated embeddings on the scoring graph, made on first use
};

}  // namespace

std::unique_ptr<Recommender> make_lightgcn(const LightGcnConfig& config, const Catalog& catalog, uint64_t seed,
                                           const DataParallelGroup& group) {
  return std::make_unique<LightGcn>(config, catalog, seed, group);
}

}  // namespace r2rec
