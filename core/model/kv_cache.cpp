#include "core/model/kv_cache.h"

namespace r2rec {

void KvCache::keep_rows(const torch::Tensor& rows) {
  for (auto& t : k) t = t.index_select(0, rows);
  for (auto& t : v) t = t.index_select(0, rows);
  key_valid = key_valid.index_select(0, rows);
  for (auto& t : last_key) t = t.index_select(0, rows);
  if (!prefix.defined()) return;
  const torch::Tensor host = rows.to(torch::kCPU).to(torch::kLong).contiguous();
  const int64_t* r = host.data_ptr<int64_t>();
  std::vector<int64_t> renumber(static_cast<size_t>(prefix.valid.size(0)), -1), used, row_prompt;
  for (int64_t i = 0; i < host.numel(); ++i) {
    int64_t& u = renumber[static_cast<size_t>(prefix.row_prompt[static_cast<size_t>(r[i])])];
    if (u < 0) u = static_cast<int64_t>(used.size()), used.push_back(prefix.row_prompt[static_cast<size_t>(r[i])]);
    row_prompt.push_back(u);
  }
  prefix.row_prompt = std::move(row_prompt);
  if (static_cast<int64_t>(used.size()) == prefix.valid.size(0)) {
    bool same = true;
    for (size_t u = 0; u < used.size(); ++u) same = same && used[u] == static_cast<int64_t>(u);
    if (same) return;
  }
  const torch::Tensor keep = torch::tensor(used, torch::kLong).to(prefix.valid.device());
  for (auto& t : prefix.kt) t = t.index_select(0, keep);
  for (auto& t : prefix.v) t = t.index_select(0, keep);
  prefix.valid = prefix.valid.index_select(0, keep);
}

}  // namespace r2rec
