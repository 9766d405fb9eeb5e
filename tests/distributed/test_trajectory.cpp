// TrajectoryBatch wire format and the trajectory channel under mpirun -np 2/3: rank 0 is the learner
// (receiver), ranks 1.. roll out (senders). Batches are generated from (sender, index) seeds, so the
// receiver regenerates the expected bytes without communication.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/trajectory.h"

namespace r2rec {
namespace {

constexpr double kDeadline = 60.0;

Communicator& comm() {
  static std::unique_ptr<Communicator> c = [] {
    CommOptions options;
    options.timeout_s = kDeadline;
    return make_communicator("mpi", options);
  }();
  return *c;
}

// Up to 5 sequences of 0..20 tokens; example id = 1000·sender + index, so the receiver knows the source.
TrajectoryBatch random_batch(int sender, int index, int64_t version) {
  std::mt19937 rng(static_cast<uint32_t>(7919 * sender + index));
  TrajectoryBatch b;
  b.policy_version = version;
  const int S = static_cast<int>(rng() % 6);
  for (int s = 0; s < S; ++s) {
    std::vector<int32_t> ids(rng() % 21);
    std::vector<float> lps(ids.size());
    for (size_t t = 0; t < ids.size(); ++t) {
      ids[t] = static_cast<int32_t>(rng());
      lps[t] = -std::uniform_real_distribution<float>(0.0f, 12.0f)(rng);
    }
    b.add(ids, lps, std::uniform_real_distribution<float>(-1.0f, 2.0f)(rng), 1000 * sender + index);
  }
  return b;
}

// Rank 0 as the receiver of every other rank: pops until each sender has closed, counting the batches and the
// DataErrors, each of which must say `expected`.
struct Drained {
  int good = 0, errors = 0;
};
Drained drain(const TrajectoryChannelOptions& options, const std::string& expected) {
  std::vector<int> senders;
  for (int q = 1; q < comm().size(); ++q) senders.push_back(q);
  TrajectoryReceiver rx(comm(), senders, options);
  Drained d;
  for (;;) {
    try {
      if (!rx.pop()) break;
      ++d.good;
    } catch (const DataError& e) {
      ++d.errors;
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  return d;
}

int sender_of(const TrajectoryBatch& b, int fallback) {
  return b.example_ids.empty() ? fallback : int(b.example_ids[0] / 1000);
}

TEST(TrajectoryFormat, RoundTripIsByteExact) {
  for (int i = 0; i < 50; ++i) {
    const TrajectoryBatch b = random_batch(comm().rank(), i, i - 3);
    const std::vector<uint8_t> bytes = serialize(b);
    const TrajectoryBatch back = deserialize(bytes.data(), bytes.size());
    EXPECT_TRUE(back == b) << "batch " << i;
    EXPECT_EQ(serialize(back), bytes);
  }
  TrajectoryBatch empty;
  const auto bytes = serialize(empty);
  EXPECT_EQ(bytes.size(), 48u);  // header + offsets{0}
  EXPECT_EQ(deserialize(bytes.data(), bytes.size()).num_sequences(), 0u);
}

TEST(TrajectoryFormat, InconsistentBatchIsRejected) {
  TrajectoryBatch b = random_batch(1, 3, 0);
  b.logprobs.push_back(0.0f);
  EXPECT_THROW(serialize(b), DataError);
}

TEST(TrajectoryFormat, CorruptedBytesThrowDataErrorAndNeverCrash) {
  TrajectoryBatch b;
  b.add({1, 2, 3}, {-0.5f, -1.0f, -2.0f}, 1.0f, 42);
  b.add({}, {}, 0.0f, 43);
  b.add({9}, {-3.0f}, 0.5f, 44);
  const std::vector<uint8_t> good = serialize(b);
  for (size_t i = 0; i < good.size(); ++i)
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= flip;
      EXPECT_THROW(deserialize(bad.data(), bad.size()), DataError) << "byte " << i << " ^ " << int(flip);
    }
  for (size_t n = 0; n < good.size(); ++n) EXPECT_THROW(deserialize(good.data(), n), DataError) << "truncated to " << n;
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_THROW(deserialize(longer.data(), longer.size()), DataError);
  // Huge counts in the header (sizes that would overflow a naive computation).
  std::vector<uint8_t> huge = good;
  const uint64_t big = std::numeric_limits<uint64_t>::max() / 4;
  std::memcpy(huge.data() + 16, &big, 8);
  EXPECT_THROW(deserialize(huge.data(), huge.size()), DataError);
}

TEST(TrajectoryChannel, RandomBatchesArriveByteExactInOrderPerSender) {
  const int W = comm().size(), r = comm().rank();
  TrajectoryChannelOptions options;
  options.capacity = 2;
  options.tag = 200;
  options.timeout_s = kDeadline;
  const int per_sender = 6;
  if (r == 0) {
    std::vector<int> senders;
    for (int q = 1; q < W; ++q) senders.push_back(q);
    TrajectoryReceiver rx(comm(), senders, options);
    std::map<int, int> next;  // sender -> next index expected
    int got = 0;
    while (auto b = rx.pop()) {
      EXPECT_LE(rx.queued() + rx.outstanding_credits(), options.capacity);
      // Empty batches carry no example id; match them by trying the senders' next indices.
      bool matched = false;
      for (int q = 1; q < W && !matched; ++q)
        if (sender_of(*b, q) == q && *b == random_batch(q, next[q], next[q])) {
          ++next[q];
          matched = true;
        }
      EXPECT_TRUE(matched) << "batch " << got << " matches no sender's next batch";
      ++got;
    }
    EXPECT_EQ(got, per_sender * (W - 1));
    EXPECT_EQ(rx.dropped(), 0u);
  } else {
    TrajectorySender tx(comm(), options);
    for (int i = 0; i < per_sender; ++i) tx.send(random_batch(r, i, i), 0);
    tx.close(0);
  }
}

TEST(TrajectoryChannel, BackPressureBoundsTheQueue) {
  const int W = comm().size(), r = comm().rank();
  TrajectoryChannelOptions options;
  options.capacity = 2;
  options.tag = 300;
  options.timeout_s = kDeadline;
  const int per_sender = 5;
  if (r == 0) {
    std::vector<int> senders;
    for (int q = 1; q < W; ++q) senders.push_back(q);
    TrajectoryReceiver rx(comm(), senders, options);
    // The learner is busy: it pumps for 0.3 s without popping. At most `capacity` batches may arrive.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < until) {
      rx.pump();
      ASSERT_LE(rx.queued() + rx.outstanding_credits(), options.capacity);
    }
    EXPECT_LE(rx.received(), options.capacity);
    EXPECT_LE(rx.queued(), options.capacity);
    size_t got = 0;
    while (rx.pop()) ++got;
    EXPECT_EQ(got, static_cast<size_t>(per_sender * (W - 1)));
  } else {
    TrajectorySender tx(comm(), options);
    for (int i = 0; i < per_sender; ++i) tx.send(random_batch(r, i, 0), 0);
    tx.close(0);
  }
}

TEST(TrajectoryChannel, StaleBatchesAreDroppedAndCounted) {
  const int W = comm().size(), r = comm().rank();
  TrajectoryChannelOptions options;
  options.capacity = 3;
  options.max_staleness = 2;
  options.tag = 400;
  options.timeout_s = kDeadline;
  if (r == 0) {
    std::vector<int> senders;
    for (int q = 1; q < W; ++q) senders.push_back(q);
    TrajectoryReceiver rx(comm(), senders, options);
    rx.set_current_version(10);  // keep versions >= 8
    std::vector<int64_t> versions;
    while (auto b = rx.pop()) versions.push_back(b->policy_version);
    EXPECT_EQ(versions.size(), static_cast<size_t>(4 * (W - 1)));
    for (int64_t v : versions) EXPECT_GE(v, 8);
    EXPECT_EQ(rx.dropped(), static_cast<size_t>(W - 1));
    EXPECT_EQ(rx.received(), static_cast<size_t>(5 * (W - 1)));
  } else {
    TrajectorySender tx(comm(), options);
    for (int64_t v = 7; v <= 11; ++v) tx.send(random_batch(r, static_cast<int>(v), v), 0);
    tx.close(0);
  }
}

TEST(TrajectoryChannel, CorruptedBatchIsADataErrorAndTheChannelGoesOn) {
  const int W = comm().size(), r = comm().rank();
  TrajectoryChannelOptions options;
  options.capacity = 2;
  options.tag = 500;
  options.timeout_s = kDeadline;
  if (r == 0) {
    const Drained d = drain(options, "batch from rank 1: trajectory batch: checksum mismatch");
    EXPECT_EQ(d.errors, 1);
    EXPECT_EQ(d.good, 3 * (W - 1) - 1);
  } else {
    TrajectorySender tx(comm(), options);
    for (int i = 0; i < 3; ++i) {
      if (r == 1 && i == 1)
        tx.set_corrupt_hook_for_testing([](std::vector<uint8_t>& bytes) { bytes[bytes.size() - 1] ^= 0x40; });
      else
        tx.set_corrupt_hook_for_testing(nullptr);
      TrajectoryBatch b;
      b.add({1, 2, 3}, {-1.0f, -2.0f, -3.0f}, 1.0f, 1000 * r + i);
      tx.send(b, 0);
    }
    tx.close(0);
  }
}

// The byte limit, at both ends: a sender refuses a batch past its own max_batch_bytes before sending anything; a
// receiver refuses a larger announced size (a sender configured otherwise) before allocating, naming the rank, and
// goes on with the other senders.
TEST(TrajectoryChannel, BatchPastTheByteLimitIsRefusedAtBothEnds) {
  const int W = comm().size(), r = comm().rank();
  TrajectoryChannelOptions options;
  options.capacity = 2;
  options.tag = 600;
  options.timeout_s = kDeadline;
  options.max_batch_bytes = 256;
  TrajectoryBatch big;  // 50 tokens: 40 + 16 + 200 + 200 + 4 + 8 = 468 bytes
  big.add(std::vector<int32_t>(50, 7), std::vector<float>(50, -1.0f), 1.0f, 1000 * r);
  if (r == 0) {
    const Drained d = drain(options, "batch from rank 1: announced size 468 bytes is outside [0, 256]");
    EXPECT_EQ(d.errors, 1);
    EXPECT_EQ(d.good, W - 2);  // one small batch from each sender but rank 1
  } else if (r == 1) {
    TrajectorySender bounded(comm(), options);
    try {
      bounded.send(big, 0);
      ADD_FAILURE() << "a batch past max_batch_bytes was sent";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()),
                "trajectory channel: a batch of 468 bytes (1 sequences) for rank 0 exceeds max_batch_bytes 256");
    }
    TrajectoryChannelOptions unbounded = options;  // a sender that disagrees about the limit
    unbounded.max_batch_bytes = size_t{1} << 30;
    TrajectorySender tx(comm(), unbounded);
    tx.send(big, 0);
    tx.flush();  // eager-sized: completes without the receiver, which has closed this stream (no close())
  } else {
    TrajectorySender tx(comm(), options);
    TrajectoryBatch small;
    small.add({1, 2, 3}, {-1.0f, -2.0f, -3.0f}, 1.0f, 1000 * r);
    tx.send(small, 0);
    tx.close(0);
  }
}

}  // namespace
}  // namespace r2rec
