// GradientSynchronizer under mpirun -np 1/2/3 (MPI backend, CPU, fp32).
//
// The data-parallel equivalence: a global batch of B = 12 rows; rank r of W takes rows [r·B/W, (r+1)·B/W)
// and runs 2 micro-batches of half its shard each, with loss_micro = MSE_mean(micro) / 2, the first
// under NoSyncScope. The accumulated local gradient is ∇ MSE_mean(shard); averaging over W equal shards
// gives ∇ MSE_mean(global batch), i.e. exactly the gradient of a 1-process step on the union batch, which
// every rank computes itself (no communication) as the reference. Tolerance 1e-6 absolute (fp32 sums in a
// different order).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/gradient_sync.h"

namespace r2rec {
namespace {

constexpr double kDeadline = 60.0;

Communicator& comm() {
  static std::unique_ptr<Communicator> c = [] {
    torch::set_num_threads(1);  // up to 3 ranks share 2 cores
    CommOptions options;
    options.timeout_s = kDeadline;
    return make_communicator("mpi", options);
  }();
  return *c;
}

// in(8) -> 16 -> [unused 16x16] -> 16 -> 4. Registration order: fc1, unused, fc2, fc3.
struct Mlp {
  torch::nn::Linear fc1{8, 16}, unused{16, 16}, fc2{16, 16}, fc3{16, 4};
  std::vector<torch::Tensor> params() {
    std::vector<torch::Tensor> out;
    for (auto* m : {&fc1, &unused, &fc2, &fc3})
      for (auto& p : (*m)->parameters()) out.push_back(p);
    return out;
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc3(torch::tanh(fc2(torch::tanh(fc1(x))))); }
};

Mlp make_mlp(uint64_t seed) {
  torch::manual_seed(seed);
  return Mlp{};
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.defined() ? a : torch::zeros_like(b);
  const torch::Tensor y = b.defined() ? b : torch::zeros_like(a);
  return (x - y).abs().max().item<double>();
}

void run_equivalence(bool overlap, bool progress_thread = false) {
  const int W = comm().size(), r = comm().rank();
  const int64_t B = 12;
  torch::manual_seed(1234);
  const torch::Tensor X = torch::randn({B, 8}), Y = torch::randn({B, 4});

  // Reference: one process, whole batch.
  Mlp ref = make_mlp(7);
  torch::nn::functional::mse_loss(ref.forward(X), Y).backward();
  std::vector<torch::Tensor> ref_grads;
  for (auto& p : ref.params()) ref_grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  torch::optim::SGD ref_opt(ref.params(), torch::optim::SGDOptions(0.1));
  ref_opt.step();

  // Data parallel: replicas start different; the synchronizer broadcasts rank 0's values.
  Mlp dp = make_mlp(7);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : dp.params()) p.add_(0.25 * r);
  }
  GradSyncOptions options;
  options.bucket_mb = 0.0005;  // 524 B: several buckets (a 16x16 weight, 1 KB, gets its own)
  options.overlap = overlap;
  options.progress_thread = progress_thread;
  options.timeout_s = kDeadline;
  GradientSynchronizer sync(dp.params(), comm(), options);
  ASSERT_GT(sync.buckets().size(), 3u);
  const int64_t shard = B / W, micro = shard / 2;
  for (int m = 0; m < 2; ++m) {
    const int64_t start = r * shard + m * micro;
    auto loss = [&] {
      return torch::nn::functional::mse_loss(dp.forward(X.narrow(0, start, micro)), Y.narrow(0, start, micro)) / 2.0;
    };
    if (m == 0) {
      NoSyncScope no_sync(sync);
      loss().backward();
      sync.finish();  // no-op under no_sync
    } else {
      loss().backward();
    }
  }
  sync.finish();
  auto params = dp.params();
  for (size_t k = 0; k < params.size(); ++k)
    EXPECT_LT(max_abs_diff(params[k].grad(), ref_grads[k]), 1e-6) << "gradient of parameter " << k;
  torch::optim::SGD opt(dp.params(), torch::optim::SGDOptions(0.1));
  opt.step();
  auto ref_params = ref.params();
  for (size_t k = 0; k < params.size(); ++k)
    EXPECT_LT(max_abs_diff(params[k], ref_params[k]), 1e-6) << "parameter " << k << " after the SGD step";
  // The unused Linear (parameters 2, 3) got no gradient: zeros, never launched from a hook before finish.
  EXPECT_EQ(max_abs_diff(params[2].grad(), torch::zeros_like(params[2])), 0.0);
  if (overlap) {
    EXPECT_EQ(sync.last_step().unused_params, 2u);
  }
}

TEST(GradientSync, DataParallelEqualsOneProcessWithOverlap) { run_equivalence(true); }
TEST(GradientSync, DataParallelEqualsOneProcessWithoutOverlap) { run_equivalence(false); }
TEST(GradientSync, DataParallelEqualsOneProcessWithProgressThread) {
  for (int i = 0; i < 5; ++i) run_equivalence(true, true);
}

TEST(GradientSync, SecondStepReusesTheBuckets) {
  // Two full steps with zero_grad in between (in place, and set to none), each equal to the formula.
  const int W = comm().size(), r = comm().rank();
  torch::Tensor w = torch::ones({5}, torch::requires_grad());
  torch::Tensor v = torch::ones({3}, torch::requires_grad());
  GradientSynchronizer sync({w, v}, comm(), {0.0, kDeadline, true});
  for (int step = 0; step < 3; ++step) {
    ((w * (r + 1)).sum() + (v * (step + 1)).sum()).backward();
    sync.finish();
    EXPECT_NEAR(w.grad()[0].item<float>(), (W + 1) / 2.0, 1e-6);  // mean of 1..W
    EXPECT_NEAR(v.grad()[2].item<float>(), step + 1, 1e-6);
    if (step == 0) {
      w.mutable_grad().zero_();
      v.mutable_grad().zero_();
    } else {
      w.mutable_grad() = torch::Tensor();
      v.mutable_grad() = torch::Tensor();
    }
  }
}

TEST(GradientSync, NoSyncAccumulatesLocally) {
  const int W = comm().size(), r = comm().rank();
  torch::Tensor w = torch::zeros({4}, torch::requires_grad());
  GradientSynchronizer sync({w}, comm(), {25.0, kDeadline, true});
  {
    NoSyncScope no_sync(sync);
    EXPECT_FALSE(sync.sync());
    (w * (r + 1)).sum().backward();
    sync.finish();
    EXPECT_FLOAT_EQ(w.grad()[1].item<float>(), r + 1);  // local, not averaged
  }
  EXPECT_TRUE(sync.sync());
  (w * (r + 1)).sum().backward();  // .grad() (= 2(r+1) locally) is on the wire now: not readable until finish()
  sync.finish();
  EXPECT_NEAR(w.grad()[1].item<float>(), W + 1.0, 1e-6);  // mean over r of 2(r+1)
}

TEST(GradientSync, ParametersUsedOnSomeRanksOnly) {
  // Rank 0 uses a only, the others b only: every rank still reduces both buckets, in the same order.
  const int W = comm().size(), r = comm().rank();
  torch::Tensor a = torch::zeros({3}, torch::requires_grad());
  torch::Tensor b = torch::zeros({3}, torch::requires_grad());
  GradientSynchronizer sync({a, b}, comm(), {0.0, kDeadline, true});
  ASSERT_EQ(sync.buckets().size(), 2u);
  ((r == 0 ? a : b) * 6.0).sum().backward();
  sync.finish();
  EXPECT_NEAR(a.grad()[0].item<float>(), 6.0 / W, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<float>(), 6.0 * (W - 1) / W, 1e-6);
  EXPECT_EQ(sync.last_step().launch_order, (std::vector<size_t>{0, 1}));
}

TEST(GradientSync, LaunchOrderIsTheSameOnEveryRankAndOverlapsBackward) {
  // A deeper MLP, one bucket per parameter: bucket 0 (the last layer's bias) must go out from a hook while
  // most of backward is still to run.
  torch::manual_seed(3);
  torch::nn::Sequential net;
  for (int i = 0; i < 6; ++i) {
    net->push_back(torch::nn::Linear(32, 32));
    net->push_back(torch::nn::Tanh());
  }
  GradientSynchronizer sync(net->parameters(), comm(), {0.0, kDeadline, true});
  const size_t nb = sync.buckets().size();
  ASSERT_EQ(nb, 12u);
  torch::manual_seed(100 + comm().rank());
  net->forward(torch::randn({4, 32})).pow(2).mean().backward();
  sync.finish();
  const auto& s = sync.last_step();
  std::vector<int64_t> order(s.launch_order.begin(), s.launch_order.end());
  std::vector<int64_t> expected(nb);
  for (size_t j = 0; j < nb; ++j) expected[j] = static_cast<int64_t>(j);
  EXPECT_EQ(order, expected);
  EXPECT_EQ(s.hooks_fired, 12);
  EXPECT_TRUE(s.launched_in_backward[0]);
  // Launched as soon as the last layer's bias and weight (buckets 0, 1) arrived, whichever came first.
  EXPECT_LE(s.hooks_before_launch[0], 2);
  EXPECT_LT(s.hooks_before_launch[0], s.hooks_fired);
  for (size_t j = 0; j < nb; ++j) EXPECT_TRUE(s.launched_in_backward[j]) << "bucket " << j;
  // Same order on every rank: gather every rank's order.
  std::vector<int64_t> all(nb * static_cast<size_t>(comm().size()));
  comm().all_gather(order.data(), all.data(), nb, DType::kI64)->wait(kDeadline);
  for (int q = 0; q < comm().size(); ++q)
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), all.begin() + q * static_cast<int64_t>(nb)))
        << "rank " << q;
}

TEST(GradientSync, ShapeMismatchAcrossRanksThrowsOnEveryRank) {
  const int W = comm().size(), r = comm().rank();
  if (W == 1) GTEST_SKIP() << "needs 2 ranks";
  // An extra parameter on the last rank.
  std::vector<torch::Tensor> params{torch::zeros({4, 8}, torch::requires_grad()),
                                    torch::zeros({2}, torch::requires_grad())};
  if (r == W - 1) params.push_back(torch::zeros({3}, torch::requires_grad()));
  try {
    GradientSynchronizer sync(params, comm(), {25.0, kDeadline, true});
    ADD_FAILURE() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 has 2 parameters, rank " + std::to_string(W - 1) + " has 3"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("parameter 2: f32[3]"), std::string::npos) << e.what();
  }
  // A different shape of parameter 0 on the last rank.
  std::vector<torch::Tensor> shaped{torch::zeros({4, r == W - 1 ? 9 : 8}, torch::requires_grad()),
                                    torch::zeros({2}, torch::requires_grad())};
  try {
    GradientSynchronizer sync(shaped, comm(), {25.0, kDeadline, true});
    ADD_FAILURE() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(
        std::string(e.what()).find("parameter 0 is f32[4, 8] on rank 0 but f32[4, 9] on rank " + std::to_string(W - 1)),
        std::string::npos)
        << e.what();
  }
  // Parameter 1 frozen on the last rank only: the gradient buckets would differ.
  std::vector<torch::Tensor> frozen{torch::zeros({4, 8}, torch::requires_grad()),
                                    torch::zeros({2}, torch::requires_grad(r != W - 1))};
  try {
    GradientSynchronizer sync(frozen, comm(), {25.0, kDeadline, true});
    ADD_FAILURE() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 1 is f32[2] on rank 0 but f32[2] (frozen) on rank " +
                                         std::to_string(W - 1)),
              std::string::npos)
        << e.what();
  }
}

TEST(GradientSync, InitialValuesComeFromRankZero) {
  const int r = comm().rank();
  torch::Tensor w = torch::full({6}, static_cast<float>(r + 10), torch::requires_grad());
  GradientSynchronizer sync({w}, comm(), {25.0, kDeadline, true});
  EXPECT_FLOAT_EQ(w[5].item<float>(), 10.0f);
}

}  // namespace
}  // namespace r2rec
