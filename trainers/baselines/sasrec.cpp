#include "trainers/baselines/sasrec.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "trainers/baselines/torch_steps.h"

namespace r2rec {
namespace {

constexpr uint64_t kSasrecStream = 301;  // shuffles and negatives

// One block: x = Q + Attn(Q, x, x) with Q = LN1(x); x = x' + FFN(LN2(x')) (the original code's ordering).
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t d, int64_t heads, double dropout)
      : heads(heads),
        ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-8)))),
        ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-8)))),
        q(register_module("q", torch::nn::Linear(d, d))),
        k(register_module("k", torch::nn::Linear(d, d))),
        v(register_module("v", torch::nn::Linear(d, d))),
        o(register_module("o", torch::nn::Linear(d, d))),
        ff1(register_module("ff1", torch::nn::Linear(d, d))),
        ff2(register_module("ff2", torch::nn::Linear(d, d))),
        drop(register_module("drop", torch::nn::Dropout(dropout))) {}

  // x: [B, L, d]; causal: [L, L] bool, true where attention is NOT allowed.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal) {
    const int64_t B = x.size(0), L = x.size(1), d = x.size(2), dh = d / heads;
    torch::Tensor qn = ln1(x);
    auto split = [&](const torch::Tensor& t) { return t.view({B, L, heads, dh}).transpose(1, 2); };  // [B,h,L,dh]
    torch::Tensor att = split(q(qn)).matmul(split(k(x)).transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));
    att = drop(torch::softmax(att.masked_fill(causal, -1e9), -1));
    torch::Tensor h = qn + drop(o(att.matmul(split(v(x))).transpose(1, 2).reshape({B, L, d})));
    torch::Tensor hn = ln2(h);
    return hn + drop(ff2(drop(torch::relu(ff1(hn)))));
  }

  int64_t heads;
  torch::nn::LayerNorm ln1, ln2;
  torch::nn::Linear q, k, v, o, ff1, ff2;
  torch::nn::Dropout drop;
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t items, const SasrecConfig& c)
      : item_emb(register_module(
            "item_emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(items + 1, c.hidden).padding_idx(0)))),
        pos_emb(register_module("pos_emb", torch::nn::Embedding(c.max_len, c.hidden))),
        drop(register_module("drop", torch::nn::Dropout(c.dropout))),
        last_ln(register_module("last_ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden}).eps(1e-8)))),
        scale(std::sqrt(static_cast<double>(c.hidden))) {
    for (int64_t l = 0; l < c.layers; ++l)
      blocks.push_back(register_module("block" + std::to_string(l), Block(c.hidden, c.heads, c.dropout)));
  }

  // seq: [B, L] item ids + 1, 0 = padding (left). Returns [B, L, d].
  torch::Tensor forward(const torch::Tensor& seq) {
    const int64_t L = seq.size(1);
    torch::Tensor x = item_emb(seq) * scale + pos_emb(torch::arange(L, torch::kLong)).unsqueeze(0);
    const torch::Tensor keep = (seq != 0).unsqueeze(-1).to(torch::kFloat32);
    x = drop(x) * keep;
    const torch::Tensor causal = torch::ones({L, L}, torch::kBool).triu(1);
    for (auto& b : blocks) x = b->forward(x, causal) * keep;
    return last_ln(x);
  }

  torch::nn::Embedding item_emb, pos_emb;
  torch::nn::Dropout drop;
  torch::nn::LayerNorm last_ln;
  std::vector<Block> blocks;
  double scale;
};
TORCH_MODULE(Net);

class Sasrec : public Recommender {
 public:
  Sasrec(const SasrecConfig& config, const Catalog& catalog, uint64_t seed, const DataParallelGroup& group)
      : config_(config), catalog_(catalog), seed_(seed), group_(group), unseen_(catalog) {
    torch::manual_seed(seed);  // same initial weights on every rank
    net_ = Net(catalog.num_items(), config);
    const std::vector<torch::Tensor> params = net_->parameters();
    steps_ =
        std::make_unique<BatchSteps>(params,
                                     std::make_unique<torch::optim::Adam>(
                                         params, torch::optim::AdamOptions(config.learning_rate).betas({0.9, 0.98})),
                                     group);
    torch::manual_seed(seed + 1 + static_cast<uint64_t>(group_.rank()));  // dropout masks per rank
    for (int32_t u = 0; u < catalog.num_users(); ++u) {
      if (catalog.user_train_offsets[u + 1] - catalog.user_train_offsets[u] >= 2) trainable_users_.push_back(u);
    }
  }

  int64_t samples_per_epoch() const override {
    int64_t n = 0;
    for (int32_t u : trainable_users_) {
      n += std::min<int64_t>(config_.max_len, catalog_.user_train_offsets[u + 1] - catalog_.user_train_offsets[u] - 1);
    }
    return n / group_.size();
  }

  double train_epoch(int64_t epoch) override {
    net_->train();
    const int64_t n = static_cast<int64_t>(trainable_users_.size()), L = config_.max_len, W = group_.size();
    std::vector<int32_t> users = trainable_users_;
    Rng shuffle(stream_key(seed_, kSasrecStream, static_cast<uint64_t>(epoch)));
    r2rec::shuffle(users, shuffle);
    for (int64_t start = 0; start < n; start += config_.batch_size) {
      const int64_t end = std::min(n, start + config_.batch_size);
      std::vector<int64_t> seq, pos, neg;
      double count = 0;  // non-padding positions of the GLOBAL batch
      int64_t rows = 0;
      for (int64_t k = start; k < end; ++k) {
        const int32_t u = users[k];
        const int64_t b = catalog_.user_train_offsets[u], e = catalog_.user_train_offsets[u + 1];
        const int64_t len = std::min<int64_t>(L, e - b - 1);  // inputs s[e-1-len .. e-2], targets one later
        count += static_cast<double>(len);
        if ((k - start) % W != group_.rank()) continue;
        Rng rng(stream_key(seed_, kSasrecStream + 1, static_cast<uint64_t>(epoch), static_cast<uint64_t>(u)));
        for (int64_t p = 0; p < L - len; ++p) {
          seq.push_back(0);
          pos.push_back(0);
          neg.push_back(0);
        }
        for (int64_t t = e - 1 - len; t < e - 1; ++t) {
          seq.push_back(catalog_.user_train_items[t] + 1);
          pos.push_back(catalog_.user_train_items[t + 1] + 1);
          neg.push_back(unseen_.draw(u, rng) + 1);
        }
        ++rows;
      }
      torch::Tensor loss;  // undefined: this rank's slice is empty
      if (rows > 0) {
        auto tseq = torch::tensor(seq).view({rows, L}), tpos = torch::tensor(pos).view({rows, L}),
             tneg = torch::tensor(neg).view({rows, L});
        torch::Tensor h = net_->forward(tseq);
        torch::Tensor pl = (h * net_->item_emb(tpos)).sum(-1), nl = (h * net_->item_emb(tneg)).sum(-1);
        torch::Tensor mask = (tpos != 0).to(torch::kFloat32);
        loss = ((torch::nn::functional::softplus(-pl) + torch::nn::functional::softplus(nl)) * mask).sum() / count;
      }
      steps_->step(loss);
    }
    return steps_->epoch_loss();
  }

  std::vector<double> score(const Example& example, const std::vector<int32_t>& prefix) override {
    torch::NoGradGuard g;
    net_->eval();
    const int64_t L = config_.max_len;
    const int64_t len = std::min<int64_t>(L, static_cast<int64_t>(prefix.size()));
    std::vector<int64_t> seq(L - len, 0);
    for (int64_t t = static_cast<int64_t>(prefix.size()) - len; t < static_cast<int64_t>(prefix.size()); ++t)
      seq.push_back(prefix[t] + 1);
    torch::Tensor h = net_->forward(torch::tensor(seq).view({1, L}))[0][L - 1];
    std::vector<int64_t> c;
    for (int32_t item : example.candidates) c.push_back(item + 1);
    torch::Tensor s = net_->item_emb(torch::tensor(c)).mv(h);
    return std::vector<double>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  }

  void remember_best() override { steps_->remember_best(); }
  void restore_best() override { steps_->restore_best(); }

 private:
  SasrecConfig config_;
  const Catalog& catalog_;
  uint64_t seed_;
  DataParallelGroup group_;
  Net net_{nullptr};
  std::unique_ptr<BatchSteps> steps_;
  UnseenItemSampler unseen_;
  std::vector<int32_t> trainable_users_;
};

}  // namespace

std::unique_ptr<Recommender> make_sasrec(const SasrecConfig& config, const Catalog& catalog, uint64_t seed,
                                         const DataParallelGroup& group) {
  return std::make_unique<Sasrec>(config, catalog, seed, group);
}

}  // namespace r2rec
