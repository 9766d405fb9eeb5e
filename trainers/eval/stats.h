// Intervals for comparing recommenders (docs/evaluation.md): a paired bootstrap over examples for "A beats B on
// the same candidate lists", and Student's t interval for a mean over a few seeds.
//
// paired_bootstrap: d_i = a_i - b_i per example (e.g. HR@1 of two methods on user i's list). The statistic is the
// mean of d; the interval is the percentile interval of that mean over `resamples` resamples of the n examples
// drawn with replacement (Efron & Tibshirani 1993, ch. 13). The resamples draw their indices in turn from one
// Rng(seed), so the interval is a pure function of (a, b, resamples, seed, level).
//
// t_interval: mean ± t_{(1+level)/2, n-1} · s / sqrt(n), s the sample standard deviation (n - 1 denominator);
// the quantile is Boost.Math's Student's t. With n = 1 the interval is the point (no spread to speak of).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2rec {

struct Interval {
  double mean = 0;        // the statistic on the data itself
  double lo = 0, hi = 0;  // the interval's ends
  int64_t n = 0;          // examples (bootstrap) or values (t)
  // True when the interval lies strictly above 0 (lo > 0) or strictly below it (hi < 0).
  bool excludes_zero() const { return lo > 0 || hi < 0; }
};

// Paired percentile bootstrap of mean(a - b). a and b have the same size n >= 1 (ConfigError otherwise);
// resamples >= 1; level in (0, 1).
Interval paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int64_t resamples, uint64_t seed,
                          double level = 0.95);

// Student's t interval of the mean of `values` (n >= 1).
Interval t_interval(const std::vector<double>& values, double level = 0.95);

// "0.4123 ± 0.0101" (half-width of the interval) or "+0.4123 [+0.4012, +0.4230]" (signed) with brackets=true.
std::string format_interval(const Interval& interval, bool brackets = false);

}  // namespace r2rec
