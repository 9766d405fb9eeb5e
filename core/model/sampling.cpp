#include "core/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/model/cpu_kernels.h"

namespace r2rec {

TokenTrie::TokenTrie() : nodes_(1) {}

void TokenTrie::insert(const std::vector<int64_t>& tokens) {
  int32_t node = 0;
  for (int64_t t : tokens) {
    if (t < 0) throw std::invalid_argument("TokenTrie: negative token id " + std::to_string(t));
    max_token_ = std::max(max_token_, t);
    int32_t child = next(node, t);
    if (child < 0) {
      child = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      Node& n = nodes_[node];
      const auto it = std::lower_bound(n.tokens.begin(), n.tokens.end(), t);
      n.children.insert(n.children.begin() + (it - n.tokens.begin()), child);
      n.tokens.insert(it, t);
    }
    node = child;
  }
}

int32_t TokenTrie::next(int32_t node, int64_t token) const {
  const Node& n = nodes_[node];
  const auto it = std::lower_bound(n.tokens.begin(), n.tokens.end(), token);
  if (it == n.tokens.end() || *it != token) return -1;
  return n.children[it - n.tokens.begin()];
}

namespace {

// Top-p without sorting the vocabulary: moves the smallest most-likely set of `cand` ((weight, id) pairs) whose
// weight reaches `target` to the front and returns its size; `mass` becomes its weight. Quickselect by mass:
// partition around a pivot; if the more-likely side holds the target, go on in it, else take it whole and go
// on in the rest. Expected O(V), where sorting 150k logits per token per row would dominate a CPU decode step.
// Small ranges are sorted, so the boundary is exact. `more` orders by weight, then id (deterministic).
template <class Less>
size_t nucleus_select(std::vector<std::pair<float, int64_t>>& cand, double target, double& mass, Less more) {
  size_t lo = 0, hi = cand.size();
  double taken = 0;
  while (hi - lo > 32) {
    const size_t m = lo + (hi - lo) / 2;
    // Median of three as the pivot, moved to the end of the range.
    if (more(cand[m], cand[lo])) std::swap(cand[m], cand[lo]);
    if (more(cand[hi - 1], cand[lo])) std::swap(cand[hi - 1], cand[lo]);
    if (more(cand[m], cand[hi - 1])) std::swap(cand[m], cand[hi - 1]);
    const auto pivot = cand[hi - 1];
    const size_t mid = static_cast<size_t>(
        std::partition(cand.begin() + lo, cand.begin() + (hi - 1), [&](const auto& x) { return more(x, pivot); }) -
        cand.begin());
    std::swap(cand[mid], cand[hi - 1]);  // [lo, mid) more likely than the pivot, then the pivot, then the rest
    double left = 0;
    for (size_t i = lo; i < mid; ++i) left += cand[i].first;
    if (taken + left >= target) {
      hi = mid;
    } else {
      taken += left + cand[mid].first;
      if (taken >= target) {
        mass = taken;
        return mid + 1;
      }
      lo = mid + 1;
    }
  }
  std::sort(cand.begin() + lo, cand.begin() + hi, more);
  for (size_t i = lo; i < hi; ++i) {
    taken += cand[i].first;
    if (taken >= target) {
      mass = taken;
      return i + 1;
    }
  }
  mass = taken;
  return hi;
}

}  // namespace

int64_t choose_token(const float* logits, int64_t V, const SamplingOptions& o, Rng& rng,
                     const std::vector<int64_t>* allowed) {
  auto logit = [&](int64_t id) -> double {
    const double l = logits[id];
    return std::isnan(l) ? -std::numeric_limits<double>::infinity() : l;
  };
  const int64_t n = allowed != nullptr ? static_cast<int64_t>(allowed->size()) : V;
  auto id_at = [&](int64_t i) { return allowed != nullptr ? (*allowed)[i] : i; };
  if (n == 0) return -1;
  int64_t best = id_at(0);
  if (allowed == nullptr) {
    best = first_argmax(logits, V);  // the first maximum, as torch.argmax
  } else {
    double best_logit = logit(best);
    for (int64_t i = 1; i < n; ++i) {
      const double l = logit(id_at(i));
      if (l > best_logit) best = id_at(i), best_logit = l;
    }
  }
  const double top = logit(best);
  if (o.temperature <= 0 || !std::isfinite(1.0 / o.temperature) || !std::isfinite(top)) {
    return best;  // greedy (also when a logit is +inf, or every logit is -inf/NaN)
  }
  std::vector<std::pair<float, int64_t>> cand(static_cast<size_t>(n));  // (weight = exp((logit - max) / T), id)
  const double inv_t = 1.0 / o.temperature;
  double total = 0;
  if (allowed == nullptr) {  // the whole vocabulary: weights from the vectorised loop
    std::vector<float> w(static_cast<size_t>(n));
    sampling_weights(logits, n, static_cast<float>(top), static_cast<float>(inv_t), w.data());
    for (int64_t i = 0; i < n; ++i) cand[i] = {w[i], i}, total += w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = id_at(i);
      const float w = static_cast<float>(std::exp((logit(id) - top) * inv_t));  // in [0, 1], the max is 1
      cand[i] = {w, id};
      total += w;
    }
  }
  // Most likely first; ties by id, so the order (and the draw) is the same on every machine.
  auto more_likely = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  bool sorted = false;
  if (o.top_k > 0 && o.top_k < n) {  // top-k leaves the k best, sorted
    std::partial_sort(cand.begin(), cand.begin() + o.top_k, cand.end(), more_likely);
    cand.resize(static_cast<size_t>(o.top_k));
    sorted = true;
    total = 0;
    for (const auto& c : cand) total += c.first;
  }
  size_t keep = cand.size();
  if (o.top_p < 1.0) {
    const double target = o.top_p * total;
    if (sorted) {
      double mass = 0;
      for (keep = 0; keep < cand.size();) {
        mass += cand[keep++].first;
        if (mass >= target) break;
      }
      total = mass;
    } else {
      keep = nucleus_select(cand, target, total, more_likely);
    }
  }
  double u = rng.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    u -= cand[i].first;
    if (u < 0) return cand[i].second;
  }
  return cand[keep - 1].second;  // rounding at the very end of the range
}

}  // namespace r2rec
