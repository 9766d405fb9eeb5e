// r2rec's random numbers: SplitMix64 (Steele, Lea & Flood 2014), one small generator per example / sequence.
//
// Every random choice of the sampler (candidate negatives, chains, Last.fm order) comes from a stream keyed by
// (run seed, what it is for, user, position), never from a shared generator, so the same seed gives the same
// bytes whatever the thread, rank or order of calls. SplitMix64 passes BigCrush, is 8 bytes of state and
// ~1 ns per draw; `below(n)` maps a draw to [0, n) by Lemire's multiply-shift (bias < n / 2^64, negligible).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace r2rec {

// One step of the SplitMix64 output function: a strong 64-bit mixer (bijective).
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A stream key from parts: mix64(mix64(mix64(a) ^ b) ^ c) ...
inline uint64_t stream_key(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d);
}

// What a stream is for (the second part of its key), so two uses never share draws.
enum class Stream : uint64_t {
  kCandidates = 1,
  kChains = 2,
  kLastfmOrder = 3,
  kGeneration = 5,
  kSftOrder = 6,
  kRlOrder = 7,
  kRollout = 8,
  kTraceForm = 9,        // annotate: which train examples get the direct form
  kPretrain = 10,        // pretrain: corpus walks, title sample and document order
  kPretrainOrder = 11,   // pretrain: order of the packed rows
  kCounterfactual = 12,  // eval: which uncited chains the counterfactual control removes
  kTeacher = 13          // annotate: the model teacher's thoughts (example id, sample, step)
};

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }

 private:
  uint64_t state_;
};

// Fisher-Yates shuffle of `v` driven by `rng` (the same permutation for the same stream, on any machine).
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) {
    std::swap(v[i], v[rng.below(static_cast<uint64_t>(i) + 1)]);
  }
}

}  // namespace r2rec
