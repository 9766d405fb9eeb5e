// Trajectories: scored rollouts travelling from rollout ranks to learner ranks (docs/design.md §3, §5).
//
// TrajectoryBatch (S sequences, T tokens in all):
//   tokens[T]        int32   every sequence's token ids, concatenated
//   offsets[S + 1]   int64   sequence s is tokens[offsets[s] .. offsets[s+1]); offsets[0] = 0, offsets[S] = T
//   logprobs[T]      float   log π_old of each token under the rollout policy
//   rewards[S]       float   one reward per sequence
//   example_ids[S]   int64   the prompt each sequence answers
//   reward_parts[S*K] float  optional: K named reward components per sequence (row-major), K = parts_per_sequence
//   policy_version   int64   the ParameterBroadcaster version the rollout used
//
// Wire format (host byte order; all ranks of a job share it), 40-byte header then the payload:
//   u32 magic 'R2TB' (0x42543252) | u32 format 1 | i64 policy_version | u64 S | u64 T | u64 checksum |
//   offsets i64[S+1] | tokens i32[T] | logprobs f32[T] | rewards f32[S] | example_ids i64[S]
// and, only when K > 0 (then format = 2; a batch without reward parts stays format 1, byte for byte):
//   u64 K | reward_parts f32[S*K]
// checksum = FNV-1a 64 over 8-byte words (as bucket_checksum) of header bytes [0, 32) then the payload, so
// a flipped policy version is caught too.
// deserialize() checks the magic, the format, that the size is exactly 40 + 8(S+1) + 4T + 4T + 4S + 8S
// (computed without overflow), the checksum and the offsets (monotone, from 0 to T) before reading anything,
// and throws DataError naming the first problem; it never reads outside [data, data + size).
//
// The channel (one tag range on a Communicator that holds both sides, e.g. the world):
//   credit scheme: a TrajectoryReceiver grants a sender one credit (a small message) only when
//     queued + credits outstanding < capacity; TrajectorySender::send() first waits for a credit, then sends
//     the size (int64) and the bytes. So the receiver's queue never exceeds `capacity`, and a sender blocks
//     (up to its deadline) while the learner is behind: back-pressure.
//   staleness: with set_current_version(v), batches with policy_version < v − max_staleness are dropped on
//     arrival and when popped, and counted (dropped()).
//   end of stream: TrajectorySender::close() sends size −1; the receiver marks that sender closed.
// The receiver progresses only inside pump()/pop() (Open MPI progresses inside MPI calls); call pump() often.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "distributed/communicator.h"

namespace r2rec {

struct TrajectoryBatch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> offsets{0};
  std::vector<float> logprobs;
  std::vector<float> rewards;
  std::vector<int64_t> example_ids;
  std::vector<float> reward_parts;  // [S * parts_per_sequence]
  int64_t parts_per_sequence = 0;
  int64_t policy_version = 0;

  size_t num_sequences() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  // Appends one sequence (ids and their log-probs, same length).
  void add(const std::vector<int32_t>& ids, const std::vector<float>& lps, float reward, int64_t example_id);
  bool operator==(const TrajectoryBatch& o) const;
};

// DataError when the fields disagree (lengths, offsets); used by serialize() and deserialize().
void validate(const TrajectoryBatch& batch);
std::vector<uint8_t> serialize(const TrajectoryBatch& batch);
TrajectoryBatch deserialize(const uint8_t* data, size_t size);

struct TrajectoryChannelOptions {
  size_t capacity = 4;                       // receiver queue bound (batches queued + credits outstanding), >= 1
  int64_t max_staleness = 1;                 // RlConfig::max_staleness: versions a batch may lag the learner
  double timeout_s = 300.0;                  // deadline of a sender's wait for a credit / a receiver's pop()
  int tag = 100;                             // uses tags tag, tag+1, tag+2
  size_t max_batch_bytes = size_t{1} << 30;  // a larger batch is a DataError: at send(), or announced to a receiver
};

class TrajectorySender {
 public:
  TrajectorySender(Communicator& comm, const TrajectoryChannelOptions& options = {});
  // Blocks until `receiver` grants a credit (CommError at the deadline), then starts sending the batch and
  // returns without waiting for the receiver to take it: a receiver only takes the bytes while it pumps, and
  // one that is busy in a collective with this rank (the weight broadcast) must not deadlock against it. The
  // send completes by the next send to the same receiver, flush() or close() (each waits, up to the deadline).
  void send(const TrajectoryBatch& batch, int receiver);
  // Waits until every batch started is taken.
  void flush();
  // End of stream to `receiver` (completes the sends to it, then waits for a credit).
  void close(int receiver);
  ~TrajectorySender();
  // Test seam: edits the serialised bytes before they are sent.
  void set_corrupt_hook_for_testing(std::function<void(std::vector<uint8_t>&)> hook) { hook_ = std::move(hook); }

 private:
  void wait_credit(int receiver);
  void complete(int receiver);
  struct InFlight {  // one started send: its buffers live until it completes
    int receiver = 0;
    std::unique_ptr<int64_t> size;
    std::vector<uint8_t> bytes;
    WorkPtr size_work, data_work;
  };
  Communicator& comm_;
  TrajectoryChannelOptions options_;
  std::vector<InFlight> in_flight_;
  std::function<void(std::vector<uint8_t>&)> hook_;
};

class TrajectoryReceiver {
 public:
  // `senders`: the ranks of `comm` that send to this rank.
  TrajectoryReceiver(Communicator& comm, std::vector<int> senders, const TrajectoryChannelOptions& options = {});
  ~TrajectoryReceiver();

  // Non-blocking progress: completes arrivals, grants credits while there is room. A malformed batch throws
  // DataError "trajectory channel: batch from rank <r>: <problem>" (it is consumed; the channel goes on).
  void pump();
  // The oldest fresh batch, or nullopt when none is queued (pumps first).
  std::optional<TrajectoryBatch> try_pop();
  // Pumps until a fresh batch is queued (CommError at the deadline) or every sender has closed (nullopt).
  std::optional<TrajectoryBatch> pop();

  void set_current_version(int64_t version) { current_version_ = version; }
  size_t queued() const { return queue_.size(); }
  size_t outstanding_credits() const { return outstanding_; }
  size_t received() const { return received_; }  // batches that arrived (fresh or stale)
  size_t dropped() const { return dropped_; }    // stale batches dropped
  bool all_closed() const;

 private:
  struct Peer;
  bool stale(const TrajectoryBatch& b) const { return b.policy_version < current_version_ - options_.max_staleness; }

  Communicator& comm_;
  TrajectoryChannelOptions options_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::deque<TrajectoryBatch> queue_;
  size_t outstanding_ = 0, received_ = 0, dropped_ = 0, next_grant_ = 0;
  int64_t current_version_ = 0;
};

}  // namespace r2rec
