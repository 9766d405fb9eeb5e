#include "trainers/eval/stats.h"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/rng.h"

namespace r2rec {

namespace {
double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

// The q-quantile of sorted `v` by linear interpolation between order statistics (numpy's default, "linear").
double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}
}  // namespace

Interval paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int64_t resamples, uint64_t seed,
                          double level) {
  if (a.size() != b.size() || a.empty()) {
    throw ConfigError("paired bootstrap: " + std::to_string(a.size()) + " against " + std::to_string(b.size()) +
                      " examples (the two methods must score the same, non-empty list of examples)");
  }
  if (resamples < 1 || !(level > 0 && level < 1))
    throw ConfigError("paired bootstrap: resamples >= 1, level in (0, 1)");
  const size_t n = a.size();
  std::vector<double> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  std::vector<double> means(static_cast<size_t>(resamples));
  Rng rng(seed);  // one stream, resample after resample (per-resample seeds of a counter stream would overlap)
  for (int64_t r = 0; r < resamples; ++r) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += d[rng.below(n)];
    means[static_cast<size_t>(r)] = s / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  Interval out;
  out.mean = mean_of(d);
  out.lo = quantile(means, (1.0 - level) / 2.0);
  out.hi = quantile(means, (1.0 + level) / 2.0);
  out.n = static_cast<int64_t>(n);
  return out;
}

Interval t_interval(const std::vector<double>& values, double level) {
  if (values.empty()) throw ConfigError("t interval: no values");
  if (!(level > 0 && level < 1)) throw ConfigError("t interval: level in (0, 1)");
  Interval out;
  out.n = static_cast<int64_t>(values.size());
  out.mean = mean_of(values);
  out.lo = out.hi = out.mean;
  if (values.size() < 2) return out;
  double ss = 0;
  for (double x : values) ss += (x - out.mean) * (x - out.mean);
  const double sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
  const boost::math::students_t dist(static_cast<double>(values.size() - 1));
  const double t = boost::math::quantile(dist, (1.0 + level) / 2.0);
  const double half = t * sd / std::sqrt(static_cast<double>(values.size()));
  out.lo = out.mean - half;
  out.hi = out.mean + half;
  return out;
}

std::string format_interval(const Interval& iv, bool brackets) {
  char buf[96];
  if (brackets) {
    std::snprintf(buf, sizeof(buf), "%+.4f [%+.4f, %+.4f]", iv.mean, iv.lo, iv.hi);
  } else {
    std::snprintf(buf, sizeof(buf), "%.4f ± %.4f", iv.mean, (iv.hi - iv.lo) / 2.0);
  }
  return buf;
}

}  // namespace r2rec
