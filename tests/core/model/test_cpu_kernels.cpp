// The decode-path CPU kernels (core/model/cpu_kernels.h) against the libtorch ops they stand in for: batched
// small products against at::bmm on strided operands, first_argmax against a scalar scan (ties, NaN, -inf,
// chunk edges), exp_nonpositive against std::exp, sampling weights' edge cases, row_logsumexp and softmax_two_part_
// against torch's, RMSNorm and rotary positions against the autograd path, and when the kernels do not apply.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/model/cpu_kernels.h"
#include "core/model/transformer.h"

namespace r2rec {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Largest difference, in units of the reference's largest entry (sums of K products round at that scale).
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

TEST(CpuKernels, SmallBatchedProductsEqualBmmOnStridedOperands) {
  torch::manual_seed(0);
  c10::InferenceMode inference;
  for (const auto& [N, M, K, S] : std::vector<std::array<int64_t, 4>>{
           {1, 1, 1, 1}, {5, 2, 64, 13}, {7, 3, 37, 33}, {4, 2, 64, 0}, {3, 4, 96, 64}}) {
    // Operands as a cache gives them: the keys/values are the first S columns of a larger buffer.
    const torch::Tensor q = torch::randn({N, M + 1, K}).narrow(1, 1, M);
    const torch::Tensor keys = torch::randn({N, S + 5, K}).narrow(1, 0, S);
    const torch::Tensor scores = small_bmm_nt(q, keys);
    ASSERT_EQ(scores.sizes(), (torch::IntArrayRef{N, M, S}));
    if (S > 0) {
      EXPECT_LT(max_diff(scores, torch::bmm(q, keys.transpose(1, 2))), 1e-6) << N << "x" << M << "x" << S;
    }
    const torch::Tensor p = torch::rand({N, M, S + 3}).narrow(2, 0, S);
    const torch::Tensor out = small_bmm_nn(p, keys);
    ASSERT_EQ(out.sizes(), (torch::IntArrayRef{N, M, K}));
    if (S > 0) {
      EXPECT_LT(max_diff(out, torch::bmm(p, keys)), 1e-6);
    } else {
      EXPECT_EQ(out.abs().max().item<float>(), 0.f);
    }
  }
}

int64_t scan_argmax(const std::vector<float>& x) {  // what choose_token did before: first strict maximum
  int64_t best = 0;
  double top = std::isnan(x[0]) ? -INFINITY : x[0];
  for (size_t i = 1; i < x.size(); ++i) {
    const double v = std::isnan(x[i]) ? -INFINITY : x[i];
    if (v > top) top = v, best = static_cast<int64_t>(i);
  }
  return best;
}

TEST(CpuKernels, FirstArgmaxIsTheFirstLargestIgnoringNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> cases = {{1.f},
                                           {2.f, 5.f, 5.f, 1.f},        // ties: the first
                                           {nan, 1.f, 3.f, nan, 3.f},   // NaN never wins
                                           {-kInf, -kInf, -kInf},       // nothing above -inf: 0
                                           {nan, nan},                  // all NaN: 0
                                           {-kInf, -3.f, kInf, kInf}};  // +inf is a value
  for (int64_t n : {255, 256, 257, 511, 1000, 4096}) {
    torch::manual_seed(n);
    const torch::Tensor t = torch::randn({n});
    std::vector<float> v(t.data_ptr<float>(), t.data_ptr<float>() + n);
    cases.push_back(v);
    v[static_cast<size_t>(n - 1)] = 100.f;  // the maximum at the end, then at a chunk's first entry
    cases.push_back(v);
    if (n > 256) v[256] = 100.f, cases.push_back(v);
  }
  for (const auto& c : cases) {
    EXPECT_EQ(first_argmax(c.data(), static_cast<int64_t>(c.size())), scan_argmax(c)) << c.size();
  }
}

TEST(CpuKernels, ExpOfNonPositiveArgumentsWithinTwoUlp) {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -90.f * static_cast<float>(i) / 200000.f;
    const double want = std::exp(static_cast<double>(x));
    const float got = exp_nonpositive(x);
    if (want >= std::numeric_limits<float>::min()) {
      worst = std::max(worst, std::abs(got - want) / want);
    } else {
      EXPECT_LE(got, std::numeric_limits<float>::min() * 1.01f) << x;  // below the normal range: 0 or tiny
    }
  }
  EXPECT_LT(worst, 2.5e-7);  // 2 ulp at float's 1.19e-7 spacing
  EXPECT_EQ(exp_nonpositive(0.f), 1.f);
  EXPECT_EQ(exp_nonpositive(-0.f), 1.f);
  EXPECT_EQ(exp_nonpositive(-kInf), 0.f);
  EXPECT_EQ(exp_nonpositive(-1e30f), 0.f);
  EXPECT_TRUE(std::isnan(exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
}

TEST(CpuKernels, SamplingWeightsAreExpOfScaledLogitsWithEdgeCases) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {1.f, 3.f, -kInf, nan, 2.5f, 3.f, -40.f};
  std::vector<float> w(logits.size());
  sampling_weights(logits.data(), static_cast<int64_t>(logits.size()), 3.f, 0.5f, w.data());  // temperature 2
  for (size_t i : {0, 4, 6})
    EXPECT_NEAR(w[i], std::exp((logits[i] - 3.0) * 0.5), 3e-7 * std::exp((logits[i] - 3.0) * 0.5));
  EXPECT_EQ(w[1], 1.f);  // the maxima weigh exactly 1
  EXPECT_EQ(w[5], 1.f);
  EXPECT_EQ(w[2], 0.f);  // -inf and NaN weigh nothing
  EXPECT_EQ(w[3], 0.f);
  sampling_weights(logits.data(), static_cast<int64_t>(logits.size()), 3.f, kInf, w.data());  // temperature -> 0
  EXPECT_EQ(w, (std::vector<float>{0.f, 1.f, 0.f, 0.f, 0.f, 1.f, 0.f}));
}

TEST(CpuKernels, RowLogsumexpEqualsTorch) {
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({6, 4099}) * 8;
  x[1].narrow(0, 0, 4000).fill_(-kInf);  // most of a row masked
  x[2].fill_(-kInf);                     // all of it: -inf
  x[3][17] = kInf;                       // +inf wins
  const torch::Tensor got = row_logsumexp(x), want = torch::logsumexp(x, -1);
  for (int64_t r : {0, 1, 4, 5}) EXPECT_NEAR(got[r].item<float>(), want[r].item<float>(), 2e-5) << r;
  EXPECT_EQ(got[2].item<float>(), -kInf);
  EXPECT_EQ(got[3].item<float>(), kInf);
  x[5][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(row_logsumexp(x)[5].item<float>()));
}

TEST(CpuKernels, TwoPartSoftmaxEqualsSoftmaxOfTheJoinedColumns) {
  torch::manual_seed(2);
  c10::InferenceMode inference;
  const int64_t U = 3, per = 4, Pp = 37, S = 9;
  torch::Tensor shared = torch::randn({U * per, Pp}) * 4, own = torch::randn({U * per, S}) * 4;
  torch::Tensor mask = torch::zeros({U, Pp});
  mask[0].narrow(0, 0, 10).fill_(std::numeric_limits<float>::lowest());  // left padding of prompt 0
  mask[2].narrow(0, 0, 36).fill_(std::numeric_limits<float>::lowest());
  const torch::Tensor want =
      torch::softmax(torch::cat({shared + mask.repeat_interleave(per, 0), own}, -1), -1);  // before in place
  softmax_two_part_(shared, mask, per, own);
  EXPECT_LT((torch::cat({shared, own}, -1) - want).abs().max().item<float>(), 1e-6);
  EXPECT_EQ(shared[0].narrow(0, 0, 10).abs().max().item<float>(), 0.f);  // masked columns weigh exactly 0
  EXPECT_NEAR(torch::cat({shared, own}, -1).sum(-1).sub(1).abs().max().item<float>(), 0.f, 1e-6);
}

TEST(CpuKernels, RmsNormAndRotaryEqualTheAutogradPath) {
  torch::manual_seed(3);
  RMSNorm norm(48, 1e-6);
  {
    torch::NoGradGuard g;
    norm->weight.copy_(torch::randn({48}));
  }
  const torch::Tensor x = torch::randn({5, 3, 48});
  const torch::Tensor reference = norm(x.clone().requires_grad_(true)).detach();  // the op-by-op path
  {
    c10::InferenceMode inference;
    EXPECT_LT((norm(x) - reference).abs().max().item<float>(), 2e-6);
    EXPECT_LT((rms_norm_rows(x, norm->weight, 1e-6) - reference).abs().max().item<float>(), 2e-6);
  }
  const int64_t B = 2, T = 5, n = 3, dh = 8;
  const torch::Tensor proj = torch::randn({B, T, n * dh});
  const auto [cos, sin] = rotary_tables(torch::randint(100, {B, T}), dh, 10000.0, torch::kFloat);
  const torch::Tensor want = apply_rotary(proj.view({B, T, n, dh}).transpose(1, 2), cos, sin);
  c10::InferenceMode inference;
  torch::Tensor fresh = torch::empty({B, n, T, dh});
  rotary_into(proj, cos, sin, fresh);
  EXPECT_LT((fresh - want).abs().max().item<float>(), 1e-6);
  torch::Tensor cache = torch::zeros({B, n, T + 4, dh});  // into a cache's columns [2, 2 + T)
  torch::Tensor columns = cache.narrow(2, 2, T);
  rotary_into(proj, cos, sin, columns);
  EXPECT_LT((cache.narrow(2, 2, T) - want).abs().max().item<float>(), 1e-6);
  EXPECT_EQ(cache.narrow(2, 0, 2).abs().max().item<float>(), 0.f);
}

TEST(CpuKernels, ApplyOnlyWithoutGradientsToCpuFloat) {
  const torch::Tensor a = torch::randn({2, 3, 4}), b = torch::randn({2, 5, 4});
  EXPECT_TRUE(cpu_kernel_applies(a, b));
  EXPECT_FALSE(cpu_kernel_applies(a.to(torch::kDouble), b.to(torch::kDouble)));
  EXPECT_FALSE(cpu_kernel_applies(a.transpose(1, 2), b));  // last dimension strided
  const torch::Tensor w = torch::randn({2, 5, 4}, torch::requires_grad());
  EXPECT_FALSE(cpu_kernel_applies(a, w));  // autograd wants the op-by-op path
  {
    torch::NoGradGuard g;
    EXPECT_TRUE(cpu_kernel_applies(a, w));
  }
  EXPECT_THROW(small_bmm_nt(a, torch::randn({2, 5, 3})), std::invalid_argument);
  EXPECT_THROW(small_bmm_nn(a, torch::randn({2, 5, 4})), std::invalid_argument);
  EXPECT_THROW(row_logsumexp(a), std::invalid_argument);
}

}  // namespace
}  // namespace r2rec
