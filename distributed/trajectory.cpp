#include "distributed/trajectory.h"

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/hash.h"

namespace r2rec {

namespace {

constexpr uint32_t kMagic = 0x42543252;  // "R2TB" read as little-endian bytes
constexpr uint32_t kFormat = 1;          // without reward parts
constexpr uint32_t kFormatParts = 2;     // with reward parts (a trailing u64 K and f32[S*K])
constexpr size_t kHeaderBytes = 40;
constexpr uint64_t kMaxCount = uint64_t{1} << 40;  // keeps every size computation inside uint64

struct Header {
  uint32_t magic;
  uint32_t format;
  int64_t policy_version;
  uint64_t sequences;
  uint64_t tokens;
  uint64_t checksum;
};
static_assert(sizeof(Header) == kHeaderBytes, "wire header is 40 bytes");

// FNV-1a over 8-byte words (core/hash.h): the header's first 32 bytes (magic .. T), then the payload.
uint64_t checksum(const uint8_t* data, size_t size) {
  return fnv1a_words(fnv1a_words(kFnvOffset, data, 32), data + kHeaderBytes, size - kHeaderBytes);
}

uint64_t payload_bytes(uint64_t s, uint64_t t) { return 8 * (s + 1) + 4 * t + 4 * t + 4 * s + 8 * s; }

template <typename T>
void put(uint8_t*& out, const std::vector<T>& v) {
  if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(T));
  out += v.size() * sizeof(T);
}
template <typename T>
void get(const uint8_t*& in, std::vector<T>& v, size_t n) {
  v.resize(n);
  if (n) std::memcpy(v.data(), in, n * sizeof(T));
  in += n * sizeof(T);
}

[[noreturn]] void bad(const std::string& what) { throw DataError("trajectory batch: " + what); }

}  // namespace

void TrajectoryBatch::add(const std::vector<int32_t>& ids, const std::vector<float>& lps, float reward,
                          int64_t example_id) {
  if (ids.size() != lps.size())
    bad(std::to_string(ids.size()) + " token ids but " + std::to_string(lps.size()) + " log-probs");
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  logprobs.insert(logprobs.end(), lps.begin(), lps.end());
  offsets.push_back(static_cast<int64_t>(tokens.size()));
  rewards.push_back(reward);
  example_ids.push_back(example_id);
}

bool TrajectoryBatch::operator==(const TrajectoryBatch& o) const {
  // Byte equality of the float fields (NaN payloads included), value equality of the rest.
  auto same_bytes = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  };
  return tokens == o.tokens && offsets == o.offsets && same_bytes(logprobs, o.logprobs) &&
         same_bytes(rewards, o.rewards) && example_ids == o.example_ids && policy_version == o.policy_version &&
         parts_per_sequence == o.parts_per_sequence && same_bytes(reward_parts, o.reward_parts);
}

void validate(const TrajectoryBatch& b) {
  if (b.offsets.empty() || b.offsets[0] != 0) bad("offsets must start with 0");
  for (size_t s = 1; s < b.offsets.size(); ++s)
    if (b.offsets[s] < b.offsets[s - 1]) bad("offsets decrease at sequence " + std::to_string(s - 1));
  const size_t S = b.num_sequences(), T = b.tokens.size();
  if (static_cast<uint64_t>(b.offsets.back()) != T)
    bad("last offset " + std::to_string(b.offsets.back()) + " != " + std::to_string(T) + " tokens");
  if (b.logprobs.size() != T)
    bad(std::to_string(b.logprobs.size()) + " log-probs for " + std::to_string(T) + " tokens");
  if (b.rewards.size() != S) bad(std::to_string(b.rewards.size()) + " rewards for " + std::to_string(S) + " sequences");
  if (b.example_ids.size() != S)
    bad(std::to_string(b.example_ids.size()) + " example ids for " + std::to_string(S) + " sequences");
  if (b.parts_per_sequence < 0 || b.parts_per_sequence > 64)
    bad("parts_per_sequence " + std::to_string(b.parts_per_sequence) + " is outside 0..64");
  if (b.reward_parts.size() != S * static_cast<size_t>(b.parts_per_sequence))
    bad(std::to_string(b.reward_parts.size()) + " reward parts for " + std::to_string(S) + " sequences x " +
        std::to_string(b.parts_per_sequence));
}

std::vector<uint8_t> serialize(const TrajectoryBatch& b) {
  validate(b);
  const uint64_t S = b.num_sequences(), T = b.tokens.size(), K = static_cast<uint64_t>(b.parts_per_sequence);
  std::vector<uint8_t> out(kHeaderBytes + payload_bytes(S, T) + (K > 0 ? 8 + 4 * S * K : 0));
  uint8_t* p = out.data() + kHeaderBytes;
  put(p, b.offsets);
  put(p, b.tokens);
  put(p, b.logprobs);
  put(p, b.rewards);
  put(p, b.example_ids);
  if (K > 0) {
    std::memcpy(p, &K, 8);
    p += 8;
    put(p, b.reward_parts);
  }
  Header h{kMagic, K > 0 ? kFormatParts : kFormat, b.policy_version, S, T, 0};
  std::memcpy(out.data(), &h, kHeaderBytes);
  h.checksum = checksum(out.data(), out.size());
  std::memcpy(out.data(), &h, kHeaderBytes);
  return out;
}

TrajectoryBatch deserialize(const uint8_t* data, size_t size) {
  if (size < kHeaderBytes) bad("truncated: " + std::to_string(size) + " bytes, the header alone is 40");
  Header h;
  std::memcpy(&h, data, kHeaderBytes);
  if (h.magic != kMagic) bad("bad magic (not a trajectory batch)");
  if (h.format != kFormat && h.format != kFormatParts)
    bad("format " + std::to_string(h.format) + ", this build reads formats 1 and 2");
  if (h.sequences > kMaxCount || h.tokens > kMaxCount)
    bad("size mismatch: " + std::to_string(size) + " bytes for " + std::to_string(h.sequences) + " sequences");
  const uint64_t base = kHeaderBytes + payload_bytes(h.sequences, h.tokens);
  uint64_t K = 0;
  if (h.format == kFormatParts) {
    if (size < base + 8) bad("truncated: no reward-part count");
    std::memcpy(&K, data + base, 8);
    if (K == 0 || K > 64) bad("reward parts per sequence " + std::to_string(K) + " is outside 1..64");
  }
  if (base + (K > 0 ? 8 + 4 * h.sequences * K : 0) != size)
    bad("size mismatch: " + std::to_string(size) + " bytes for " + std::to_string(h.sequences) + " sequences and " +
        std::to_string(h.tokens) + " tokens");
  if (checksum(data, size) != h.checksum) bad("checksum mismatch");
  TrajectoryBatch b;
  b.policy_version = h.policy_version;
  const uint8_t* p = data + kHeaderBytes;
  get(p, b.offsets, h.sequences + 1);
  get(p, b.tokens, h.tokens);
  get(p, b.logprobs, h.tokens);
  get(p, b.rewards, h.sequences);
  get(p, b.example_ids, h.sequences);
  if (K > 0) {
    p += 8;
    b.parts_per_sequence = static_cast<int64_t>(K);
    get(p, b.reward_parts, h.sequences * K);
  }
  validate(b);
  return b;
}

// ---- sender --------------------------------------------------------------------------------------------

TrajectorySender::TrajectorySender(Communicator& comm, const TrajectoryChannelOptions& options)
    : comm_(comm), options_(options) {}

void TrajectorySender::wait_credit(int receiver) {
  int64_t credit = 0;
  comm_.recv(&credit, 1, DType::kI64, receiver, options_.tag)->wait(options_.timeout_s);
}

void TrajectorySender::complete(int receiver) {
  for (size_t i = 0; i < in_flight_.size();) {
    InFlight& f = in_flight_[i];
    if (receiver >= 0 && f.receiver != receiver) {
      ++i;
      continue;
    }
    f.size_work->wait(options_.timeout_s);
    f.data_work->wait(options_.timeout_s);
    in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void TrajectorySender::send(const TrajectoryBatch& batch, int receiver) {
  complete(receiver);  // messages to one receiver stay in order, one in flight at a time
  InFlight f;
  f.receiver = receiver;
  f.bytes = serialize(batch);
  if (f.bytes.size() > options_.max_batch_bytes) {  // refused here, naming this side, before any message
    throw DataError("trajectory channel: a batch of " + std::to_string(f.bytes.size()) + " bytes (" +
                    std::to_string(batch.num_sequences()) + " sequences) for rank " + std::to_string(receiver) +
                    " exceeds max_batch_bytes " + std::to_string(options_.max_batch_bytes));
  }
  if (hook_) hook_(f.bytes);
  wait_credit(receiver);
  f.size = std::make_unique<int64_t>(static_cast<int64_t>(f.bytes.size()));
  f.size_work = comm_.send(f.size.get(), 1, DType::kI64, receiver, options_.tag + 1);
  f.data_work = comm_.send(f.bytes.data(), f.bytes.size(), DType::kU8, receiver, options_.tag + 2);
  in_flight_.push_back(std::move(f));
}

void TrajectorySender::flush() { complete(-1); }

// Sends still in flight at destruction (an exception unwinding the rollout): their buffers must outlive the
// MPI requests, which cannot be cancelled through Communicator, so they are left to the job's end.
TrajectorySender::~TrajectorySender() {
  for (InFlight& f : in_flight_) {
    bool done = false;
    try {
      done = f.size_work->is_completed() && f.data_work->is_completed();
    } catch (...) {
    }
    if (!done) {
      (void)new std::vector<uint8_t>(std::move(f.bytes));  // intentionally leaked: the job is ending
      (void)f.size.release();
    }
  }
}

void TrajectorySender::close(int receiver) {
  complete(receiver);
  wait_credit(receiver);
  const int64_t n = -1;
  comm_.send(&n, 1, DType::kI64, receiver, options_.tag + 1)->wait(options_.timeout_s);
}

// ---- receiver ------------------------------------------------------------------------------------------

struct TrajectoryReceiver::Peer {
  enum State { kIdle, kCredited, kReceiving, kClosed };
  int rank = 0;
  State state = kIdle;
  int64_t credit = 1;  // the credit message's payload
  int64_t size = 0;    // announced size, -1 = end of stream
  std::vector<uint8_t> bytes;
  WorkPtr credit_work, size_work, data_work;
};

TrajectoryReceiver::TrajectoryReceiver(Communicator& comm, std::vector<int> senders,
                                       const TrajectoryChannelOptions& options)
    : comm_(comm), options_(options) {
  if (options_.capacity == 0) options_.capacity = 1;
  for (int r : senders) {
    peers_.push_back(std::make_unique<Peer>());
    peers_.back()->rank = r;
  }
}

// A peer that never closed leaves its size receive posted; MPI cannot cancel it through Communicator, so
// the contract is that every sender closes before the receiver goes away.
TrajectoryReceiver::~TrajectoryReceiver() = default;

bool TrajectoryReceiver::all_closed() const {
  for (const auto& p : peers_)
    if (p->state != Peer::kClosed) return false;
  return true;
}

void TrajectoryReceiver::pump() {
  for (auto& peer : peers_) {
    Peer& p = *peer;
    if (p.credit_work && p.credit_work->is_completed()) p.credit_work.reset();
    if (p.state == Peer::kCredited && p.size_work->is_completed()) {
      p.size_work.reset();
      if (p.size == -1) {
        p.state = Peer::kClosed;
        --outstanding_;
        continue;
      }
      if (p.size < 0 || static_cast<uint64_t>(p.size) > options_.max_batch_bytes) {
        p.state = Peer::kClosed;  // the stream from this peer cannot be trusted any more
        --outstanding_;
        throw DataError("trajectory channel: batch from rank " + std::to_string(p.rank) + ": announced size " +
                        std::to_string(p.size) + " bytes is outside [0, " + std::to_string(options_.max_batch_bytes) +
                        "]");
      }
      p.bytes.resize(static_cast<size_t>(p.size));
      p.data_work = comm_.recv(p.bytes.data(), p.bytes.size(), DType::kU8, p.rank, options_.tag + 2);
      p.state = Peer::kReceiving;
    }
    if (p.state == Peer::kReceiving && p.data_work->is_completed()) {
      p.data_work.reset();
      p.state = Peer::kIdle;
      --outstanding_;
      ++received_;
      std::vector<uint8_t> bytes = std::move(p.bytes);
      p.bytes.clear();
      TrajectoryBatch batch;
      try {
        batch = deserialize(bytes.data(), bytes.size());
      } catch (const DataError& e) {
        throw DataError("trajectory channel: batch from rank " + std::to_string(p.rank) + ": " + e.what());
      }
      if (stale(batch))
        ++dropped_;
      else
        queue_.push_back(std::move(batch));
    }
  }
  // Grant credits round-robin while queued + outstanding < capacity.
  const size_t n = peers_.size();
  for (size_t i = 0; i < n && queue_.size() + outstanding_ < options_.capacity; ++i) {
    Peer& p = *peers_[(next_grant_ + i) % n];
    if (p.state != Peer::kIdle || p.credit_work) continue;
    p.credit_work = comm_.send(&p.credit, 1, DType::kI64, p.rank, options_.tag);
    p.size_work = comm_.recv(&p.size, 1, DType::kI64, p.rank, options_.tag + 1);
    p.state = Peer::kCredited;
    ++outstanding_;
    next_grant_ = (next_grant_ + i + 1) % n;
  }
}

std::optional<TrajectoryBatch> TrajectoryReceiver::try_pop() {
  pump();
  while (!queue_.empty()) {
    TrajectoryBatch b = std::move(queue_.front());
    queue_.pop_front();
    if (stale(b)) {  // the learner moved on while it waited
      ++dropped_;
      continue;
    }
    return b;
  }
  return std::nullopt;
}

std::optional<TrajectoryBatch> TrajectoryReceiver::pop() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  for (;;) {
    if (auto b = try_pop()) return b;
    if (all_closed()) return std::nullopt;
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > 1.0) std::this_thread::sleep_for(std::chrono::microseconds(20));  // as Work::wait does
    if (waited > options_.timeout_s)
      throw CommError("trajectory channel: no batch arrived within " + std::to_string(options_.timeout_s) + " s (" +
                      std::to_string(outstanding_) + " credits outstanding)");
  }
}

}  // namespace r2rec
