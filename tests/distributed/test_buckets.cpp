// assign_buckets: the pure bucket assignment (buckets.h). Expected buckets are written out by hand.
#include <gtest/gtest.h>

#include <set>

#include "distributed/buckets.h"

namespace r2rec {
namespace {

std::vector<size_t> ids(const Bucket& b) { return b.params; }

TEST(Buckets, EmptyListGivesNoBuckets) {
  EXPECT_TRUE(assign_buckets(std::vector<size_t>{}, std::vector<DType>{}, 100).empty());
}

TEST(Buckets, ReverseOrderAndCap) {
  // f32 params of 40, 40, 40, 40 bytes, cap 100: from the back, {3, 2} = 80 B, adding 1 would make 120 > 100.
  const auto b = assign_buckets({40, 40, 40, 40}, std::vector<DType>(4, DType::kF32), 100);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{3, 2}));
  EXPECT_EQ(ids(b[1]), (std::vector<size_t>{1, 0}));
  EXPECT_EQ(b[0].offsets, (std::vector<size_t>{0, 10}));
  EXPECT_EQ(b[0].numel, 20u);
  EXPECT_EQ(b[0].bytes(), 80u);
}

TEST(Buckets, ExactlyTheCapFits) {
  const auto b = assign_buckets({40, 60, 40}, std::vector<DType>(3, DType::kF32), 100);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{2, 1}));  // 40 + 60 = 100 <= cap
  EXPECT_EQ(ids(b[1]), (std::vector<size_t>{0}));
}

TEST(Buckets, OversizeParameterGetsItsOwnBucket) {
  const auto b = assign_buckets({8, 400, 8, 8}, std::vector<DType>(4, DType::kF32), 100);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{3, 2}));
  EXPECT_EQ(ids(b[1]), (std::vector<size_t>{1}));
  EXPECT_EQ(b[1].numel, 100u);
  EXPECT_EQ(ids(b[2]), (std::vector<size_t>{0}));
}

TEST(Buckets, OneDTypePerBucket) {
  // 0:f32 16B, 1:bf16 8B, 2:f32 16B, 3:bf16 8B, 4:i64 16B; cap large.
  const auto b =
      assign_buckets({16, 8, 16, 8, 16}, {DType::kF32, DType::kBF16, DType::kF32, DType::kBF16, DType::kI64}, 1000);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].dtype, DType::kI64);  // opened first (parameter 4 is the first one taken)
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{4}));
  EXPECT_EQ(b[1].dtype, DType::kBF16);
  EXPECT_EQ(ids(b[1]), (std::vector<size_t>{3, 1}));
  EXPECT_EQ(b[1].offsets, (std::vector<size_t>{0, 4}));
  EXPECT_EQ(b[2].dtype, DType::kF32);
  EXPECT_EQ(ids(b[2]), (std::vector<size_t>{2, 0}));
}

TEST(Buckets, MixedDTypesRespectTheCapSeparately) {
  const auto b = assign_buckets({60, 64, 60, 64}, {DType::kF32, DType::kF64, DType::kF32, DType::kF64}, 100);
  ASSERT_EQ(b.size(), 4u);
  for (const auto& x : b) EXPECT_EQ(x.params.size(), 1u);
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{3}));
  EXPECT_EQ(ids(b[3]), (std::vector<size_t>{0}));
}

TEST(Buckets, ZeroCapGivesOneBucketPerParameter) {
  const auto b = assign_buckets({4, 4, 4}, std::vector<DType>(3, DType::kF32), 0);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(ids(b[0]), (std::vector<size_t>{2}));
}

TEST(Buckets, EveryParameterOnceAndDeterministic) {
  std::vector<size_t> sizes;
  std::vector<DType> dtypes;
  for (size_t k = 0; k < 200; ++k) {
    const DType d = k % 3 == 0 ? DType::kBF16 : DType::kF32;
    dtypes.push_back(d);
    sizes.push_back(((k * 7919) % 97 + (k % 5 == 0 ? 0 : 1)) * dtype_size(d));
  }
  const auto a = assign_buckets(sizes, dtypes, 256);
  const auto b = assign_buckets(sizes, dtypes, 256);
  std::multiset<size_t> seen;
  ASSERT_EQ(a.size(), b.size());
  for (size_t j = 0; j < a.size(); ++j) {
    EXPECT_EQ(a[j].params, b[j].params);
    EXPECT_EQ(a[j].offsets, b[j].offsets);
    size_t numel = 0;
    for (size_t i = 0; i < a[j].params.size(); ++i) {
      const size_t k = a[j].params[i];
      seen.insert(k);
      EXPECT_EQ(dtypes[k], a[j].dtype);
      EXPECT_EQ(a[j].offsets[i], numel);
      numel += sizes[k] / dtype_size(dtypes[k]);
      if (i > 0) {
        EXPECT_LT(k, a[j].params[i - 1]);  // descending inside a bucket
      }
    }
    EXPECT_EQ(numel, a[j].numel);
    if (a[j].params.size() > 1) {
      EXPECT_LE(a[j].bytes(), 256u);
    }
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), 200u);
}

TEST(Buckets, CapFromMegabytes) {
  EXPECT_EQ(bucket_cap_bytes(25.0), 25u * 1024 * 1024);
  EXPECT_EQ(bucket_cap_bytes(-1.0), 0u);
}

}  // namespace
}  // namespace r2rec
