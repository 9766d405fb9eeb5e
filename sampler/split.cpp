// Leave-one-out examples and seeded never-touched negatives.
#include "sampler/split.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace r2rec {

Split split_from_name(const std::string& name) {
  if (name == "train") return Split::kTrain;
  return name == "valid" ? Split::kValid : Split::kTest;
}

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kValid:
      return "valid";
    case Split::kTest:
      return "test";
  }
  return "?";
}

void draw_candidates(const Dataset& dataset, int32_t user, int32_t position, int64_t num_candidates, uint64_t seed,
                     std::vector<uint32_t>* touched_stamp, uint32_t stamp, Example* ex) {
  const ItemSpan seq = dataset.sequence(user);
  const int64_t num_items = dataset.num_items();
  const int64_t untouched = num_items - seq.size;
  if (untouched < num_candidates - 1)
    throw DataError("user '" + dataset.user_tokens[user] + "' touched " + std::to_string(seq.size) + " of " +
                    std::to_string(num_items) + " items, leaving fewer than sampler.num_candidates-1=" +
                    std::to_string(num_candidates - 1) + " never-touched negatives (lower sampler.num_candidates)");
  std::vector<uint32_t>& mark = *touched_stamp;
  for (int32_t item : seq) mark[item] = stamp;  // touched (and, below, already chosen) items carry the stamp
  Rng rng(stream_key(seed, static_cast<uint64_t>(Stream::kCandidates), static_cast<uint64_t>(user),
                     static_cast<uint64_t>(position)));
  ex->candidates.clear();
  ex->candidates.reserve(num_candidates);
  ex->candidates.push_back(ex->target);
  const int64_t need = num_candidates - 1;
  if (untouched >= 2 * need) {
    // Rejection: each draw is accepted with probability >= 1/2, so ~2 draws per negative.
    while (static_cast<int64_t>(ex->candidates.size()) <= need) {
      const int32_t item = static_cast<int32_t>(rng.below(num_items));
      if (mark[item] == stamp) continue;
      mark[item] = stamp;
      ex->candidates.push_back(item);
    }
  } else {
    // Dense case: list the untouched items and take a partial Fisher-Yates prefix.
    std::vector<int32_t> pool;
    pool.reserve(untouched);
    for (int32_t i = 0; i < num_items; ++i)
      if (mark[i] != stamp) pool.push_back(i);
    for (int64_t k = 0; k < need; ++k) {
      const int64_t j = k + static_cast<int64_t>(rng.below(pool.size() - k));
      std::swap(pool[k], pool[j]);
      ex->candidates.push_back(pool[k]);
    }
  }
  for (int64_t k = num_candidates - 1; k > 0; --k) std::swap(ex->candidates[k], ex->candidates[rng.below(k + 1)]);
  ex->target_index = static_cast<int32_t>(std::find(ex->candidates.begin(), ex->candidates.end(), ex->target) -
                                          ex->candidates.begin());
}

std::vector<Example> make_examples(const Dataset& dataset, const SamplerConfig& sampler, uint64_t seed) {
  if (sampler.num_candidates > dataset.num_items())
    throw ConfigError("sampler.num_candidates: " + std::to_string(sampler.num_candidates) + " exceeds the " +
                      std::to_string(dataset.num_items()) + " items of the filtered dataset");
  std::vector<Example> out;
  std::vector<uint32_t> mark(dataset.num_items(), 0);
  uint32_t stamp = 0;
  auto add = [&](int32_t user, int32_t p, Split split) {
    const ItemSpan s = dataset.sequence(user);
    Example ex;
    ex.id = static_cast<int64_t>(out.size());
    ex.user = user;
    ex.target = s[p];
    ex.split = split;
    ex.position = p;
    const int32_t len = static_cast<int32_t>(std::min<int64_t>(sampler.history_len, p));
    ex.history.assign(s.begin() + (p - len), s.begin() + p);
    if (++stamp == 0) {  // wrapped: clear the scratch so old stamps cannot collide
      std::fill(mark.begin(), mark.end(), 0);
      stamp = 1;
    }
    draw_candidates(dataset, user, p, sampler.num_candidates, seed, &mark, stamp, &ex);
    out.push_back(std::move(ex));
  };
  for (int32_t u = 0; u < dataset.num_users(); ++u) {
    const int32_t n = static_cast<int32_t>(dataset.sequence(u).size);
    if (n < 3) continue;  // cannot happen with data.min_history >= 3; such users yield no example
    const int32_t lowest = std::max<int64_t>(1, n - 2 - sampler.train_examples_per_user);
    for (int32_t p = lowest; p <= n - 3; ++p) add(u, p, Split::kTrain);
  }
  for (int32_t u = 0; u < dataset.num_users(); ++u) {
    const int32_t n = static_cast<int32_t>(dataset.sequence(u).size);
    if (n >= 3) add(u, n - 2, Split::kValid);
  }
  for (int32_t u = 0; u < dataset.num_users(); ++u) {
    const int32_t n = static_cast<int32_t>(dataset.sequence(u).size);
    if (n >= 3) add(u, n - 1, Split::kTest);
  }
  return out;
}

}  // namespace r2rec
