#include "core/model/copy_lookup.h"

#include <algorithm>
#include <limits>

namespace r2rec {

CopyProposal copy_proposal(const int64_t* ids, int64_t n, int64_t max_ngram, int64_t source_end) {
  CopyProposal out;
  const int64_t t = n - 1;
  int64_t best = 0;
  for (int64_t j = std::min(t, source_end - 1) - 1; j >= 0; --j) {
    int64_t m = 0;
    while (m < max_ngram && m <= j && ids[j - m] == ids[t - m]) ++m;
    if (m == 0 || m < best) continue;
    if (m > best) best = m, out.tokens.clear();
    out.tokens.push_back(ids[j + 1]);
  }
  std::sort(out.tokens.begin(), out.tokens.end());
  out.tokens.erase(std::unique(out.tokens.begin(), out.tokens.end()), out.tokens.end());
  if (best == 0 || static_cast<int64_t>(out.tokens.size()) > kCopyMaxFollowers) return {};
  out.match = static_cast<int32_t>(best);
  return out;
}

std::vector<CopyProposal> copy_proposals_at(const torch::Tensor& ids, const torch::Tensor& mask,
                                            const std::vector<int64_t>& at, int64_t max_ngram,
                                            const torch::Tensor& source_end) {
  const torch::Tensor id = ids.to(torch::kCPU, torch::kLong).contiguous();
  const torch::Tensor mk = mask.defined() ? mask.to(torch::kCPU, torch::kLong).contiguous() : torch::ones_like(id);
  const torch::Tensor se = source_end.defined() ? source_end.to(torch::kCPU, torch::kLong).contiguous()
                                                : torch::full_like(id, std::numeric_limits<int64_t>::max());
  const int64_t* sp = se.data_ptr<int64_t>();
  const int64_t T = id.size(1);
  const int64_t* ip = id.data_ptr<int64_t>();
  const int64_t* mp = mk.data_ptr<int64_t>();
  std::vector<CopyProposal> out(at.size());
  for (size_t k = 0; k < at.size(); ++k) {
    const int64_t row = at[k] / T * T, t = at[k] % T;
    if (mp[row + t] == 0) continue;
    int64_t s = t;
    while (s > 0 && mp[row + s - 1] == mp[row + t]) --s;
    out[k] = copy_proposal(ip + row + s, t - s + 1, max_ngram, sp[row + t]);
  }
  return out;
}

}  // namespace r2rec
