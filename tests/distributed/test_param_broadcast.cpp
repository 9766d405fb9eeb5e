// ParameterBroadcaster under mpirun -np 2/3: rank 0 (the learner) -> every other rank (rollout workers).
// Rank 0's values come from a fixed seed, so every rank can state the expected bytes without communication.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/param_broadcast.h"

namespace r2rec {
namespace {

constexpr double kDeadline = 60.0;

Communicator& comm() {
  static std::unique_ptr<Communicator> c = [] {
    torch::set_num_threads(1);
    CommOptions options;
    options.timeout_s = kDeadline;
    return make_communicator("mpi", options);
  }();
  return *c;
}

// Mixed dtypes and odd shapes; values from `seed`.
std::vector<torch::Tensor> make_params(uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({7, 13}),
          torch::randn({1}),
          torch::randn({300}).to(torch::kBFloat16),
          torch::randn({3, 5, 2}, torch::kFloat64),
          torch::randn({0}),
          torch::randn({129})};
}

void expect_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k], b[k])) << "parameter " << k;
}

BroadcastOptions small_buckets(bool checksum = true) {
  BroadcastOptions o;
  o.bucket_mb = 0.0003;  // ~314 B: several buckets
  o.timeout_s = kDeadline;
  o.checksum = checksum;
  return o;
}

TEST(ParamBroadcast, ReceiversEndWithRootsValuesAndVersion) {
  const int r = comm().rank();
  auto params = make_params(r == 0 ? 1 : 100 + r);
  ParameterBroadcaster bc(params, comm(), small_buckets());
  EXPECT_GT(bc.buckets().size(), 3u);
  EXPECT_EQ(bc.version(), -1);
  EXPECT_EQ(bc.broadcast(5), 5);
  EXPECT_EQ(bc.version(), 5);
  expect_equal(params, make_params(1));
  // The learner updates; the next version carries the new values.
  if (r == 0) {
    torch::NoGradGuard no_grad;
    for (auto& p : params) p.mul_(-2);
  }
  EXPECT_EQ(bc.broadcast(r == 0 ? 9 : -7), 9);  // receivers' argument is ignored
  auto expected = make_params(1);
  for (auto& p : expected) p.mul_(-2);
  expect_equal(params, expected);
}

TEST(ParamBroadcast, RootRejectsANonIncreasingVersion) {
  auto params = make_params(1);
  ParameterBroadcaster bc(params, comm(), small_buckets());
  bc.broadcast(3);
  if (comm().rank() == 0) {
    EXPECT_THROW(bc.broadcast(3), std::invalid_argument);  // before any collective
  }
  EXPECT_EQ(bc.broadcast(4), 4);
}

TEST(ParamBroadcast, ChecksumMismatchThrowsOnTheCorruptedReceiver) {
  const int r = comm().rank();
  auto params = make_params(r == 0 ? 1 : 50);
  const auto before = make_params(50);
  ParameterBroadcaster bc(params, comm(), small_buckets());
  if (r == 1)
    bc.set_receive_hook_for_testing([](size_t bucket, void* data, size_t bytes) {
      if (bucket == 2 && bytes > 0) static_cast<unsigned char*>(data)[bytes / 2] ^= 0x10;
    });
  if (r == 1) {
    try {
      bc.broadcast(1);
      ADD_FAILURE() << "no CommError";
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("checksum mismatch in bucket 2"), std::string::npos) << e.what();
    }
    expect_equal(params, before);  // nothing was copied in
    EXPECT_EQ(bc.version(), -1);
    bc.set_receive_hook_for_testing(nullptr);
  } else {
    EXPECT_EQ(bc.broadcast(1), 1);
  }
  EXPECT_EQ(bc.broadcast(2), 2);  // the group is still in step
  expect_equal(params, make_params(1));
}

TEST(ParamBroadcast, WithoutChecksumsCorruptionGoesUnnoticed) {
  const int r = comm().rank();
  auto params = make_params(r == 0 ? 1 : 50);
  ParameterBroadcaster bc(params, comm(), small_buckets(/*checksum=*/false));
  if (r == 1)
    bc.set_receive_hook_for_testing([](size_t bucket, void* data, size_t) {
      if (bucket == 0) static_cast<unsigned char*>(data)[0] ^= 0x01;
    });
  EXPECT_EQ(bc.broadcast(1), 1);
}

TEST(ParamBroadcast, ShapeMismatchThrowsOnEveryRank) {
  const int W = comm().size(), r = comm().rank();
  std::vector<torch::Tensor> params{torch::zeros({2, r == W - 1 ? 3 : 2})};
  try {
    ParameterBroadcaster bc(params, comm(), small_buckets());
    ADD_FAILURE() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 0 is f32[2, 2] on rank 0 but f32[2, 3]"), std::string::npos)
        << e.what();
  }
}

// Zero-copy: the parameters move into the buckets (values kept), the root's in-place updates travel, and the
// receivers' own tensors (the handles their modules hold) end with the root's values.
TEST(ParamBroadcast, AliasedParametersSendAndReceiveInPlace) {
  const int r = comm().rank();
  auto params = make_params(r == 0 ? 1 : 100 + r);
  const std::vector<torch::Tensor> held = params;  // what a module would hold: the same TensorImpls
  BroadcastOptions o = small_buckets();
  o.alias = true;
  ParameterBroadcaster bc(params, comm(), o);
  expect_equal(held, make_params(r == 0 ? 1 : 100 + r));  // moved, not changed
  EXPECT_EQ(bc.broadcast(1), 1);
  expect_equal(held, make_params(1));
  if (r == 0) {
    torch::NoGradGuard no_grad;
    for (auto& p : params) p.add_(3);
  }
  EXPECT_EQ(bc.broadcast(2), 2);
  auto expected = make_params(1);
  for (auto& p : expected) p.add_(3);
  expect_equal(held, expected);
}

TEST(ParamBroadcast, ChecksumIsFnvOverWords) {
  const unsigned char bytes[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  EXPECT_EQ(bucket_checksum(bytes, 11), bucket_checksum(bytes, 11));
  EXPECT_NE(bucket_checksum(bytes, 11), bucket_checksum(bytes, 10));
  EXPECT_EQ(bucket_checksum(nullptr, 0), 14695981039346656037ull);
  // Past 32 bytes the four lanes take over: every byte still counts, and so does the order of the words.
  std::vector<unsigned char> big(1003);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<unsigned char>(i * 7);
  const uint64_t h = bucket_checksum(big.data(), big.size());
  for (size_t at : {0, 9, 31, 32, 500, 1002}) {
    big[at] ^= 1;
    EXPECT_NE(bucket_checksum(big.data(), big.size()), h) << "byte " << at;
    big[at] ^= 1;
  }
  std::swap(big[0], big[8]);  // words 0 and 1 trade places (different lanes)
  EXPECT_NE(bucket_checksum(big.data(), big.size()), h);
}

}  // namespace
}  // namespace r2rec
