// Helpers the trainer tests share (libtorch).
#pragma once

#include <algorithm>

#include "core/model/transformer.h"

namespace r2rec::testing {

// The largest absolute difference between two models' parameters (same architecture, same order).
inline double max_weight_diff(TransformerImpl& a, TransformerImpl& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  double worst = 0;
  for (size_t i = 0; i < pa.size(); ++i)
    worst = std::max(worst, (pa[i].value() - pb[i].value()).abs().max().item<double>());
  return worst;
}

}  // namespace r2rec::testing
