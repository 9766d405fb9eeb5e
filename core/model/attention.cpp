#include "core/model/attention.h"

#include <algorithm>
#include <cmath>

#include "core/model/cpu_kernels.h"

namespace r2rec {

std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& positions, int64_t head_dim, double theta,
                                                      torch::ScalarType dtype) {
  const auto compute = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  torch::Tensor inv_freq =
      1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(compute)) / head_dim);
  torch::Tensor freqs = positions.to(compute).unsqueeze(-1) * inv_freq;  // [B, T, dh/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);       // [B, 1, T, dh]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

PrefixGroups prefix_groups(const std::vector<int64_t>& row_prompt, int64_t prompts, torch::Device device) {
  PrefixGroups g;
  g.prompts = prompts;
  std::vector<int64_t> count(static_cast<size_t>(prompts), 0);
  for (int64_t u : row_prompt) g.group = std::max(g.group, ++count[static_cast<size_t>(u)]);
  const int64_t B = static_cast<int64_t>(row_prompt.size());
  g.identity = prompts * g.group == B;
  for (int64_t b = 0; b < B && g.identity; ++b) g.identity = row_prompt[static_cast<size_t>(b)] == b / g.group;
  if (g.identity) return g;
  std::vector<int64_t> gather(static_cast<size_t>(prompts * g.group), 0), scatter(static_cast<size_t>(B));
  std::fill(count.begin(), count.end(), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t u = row_prompt[static_cast<size_t>(b)], slot = u * g.group + count[static_cast<size_t>(u)]++;
    gather[static_cast<size_t>(slot)] = b;
    scatter[static_cast<size_t>(b)] = slot;
  }
  g.gather = torch::tensor(gather, torch::kLong).to(device);
  g.scatter = torch::tensor(scatter, torch::kLong).to(device);
  return g;
}

AttentionImpl::AttentionImpl(const TransformerConfig& c)
    : heads(c.num_heads), kv_heads(c.num_kv_heads), head_dim(c.head_dim), block(c.attention_block) {
  q_proj = register_module("q_proj", Projection(c.hidden_size, heads * head_dim, c.qkv_bias));
  k_proj = register_module("k_proj", Projection(c.hidden_size, kv_heads * head_dim, c.qkv_bias));
  v_proj = register_module("v_proj", Projection(c.hidden_size, kv_heads * head_dim, c.qkv_bias));
  o_proj = register_module("o_proj", Projection(heads * head_dim, c.hidden_size, false));
  if (c.smeared_keys) {
    // Even key/value heads start reading mostly the token before (sigmoid(-3) = 0.05 of their own key), odd ones
    // mostly their own (0.95): the look-up heads and the plain ones, both free to move.
    std::vector<float> init;
    for (int64_t h = 0; h < kv_heads; ++h) init.push_back(h % 2 == 0 ? -3.0f : 3.0f);
    key_smear = register_parameter("key_smear", torch::tensor(init));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& mask, KvSlot* slot, const torch::Tensor& previous) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor q_lin = q_proj(x), k_lin = k_proj(x), v_lin = v_proj(x);  // [B, T, heads * dh]
  torch::Tensor v = v_lin.view({B, T, kv_heads, head_dim}).transpose(1, 2);
  torch::Tensor q, k, out;
  if (key_smear.defined()) {
    q = apply_rotary(q_lin.view({B, T, heads, head_dim}).transpose(1, 2), cos, sin);     // [B, H, T, dh]
    k = apply_rotary(k_lin.view({B, T, kv_heads, head_dim}).transpose(1, 2), cos, sin);  // [B, Hkv, T, dh]
    const torch::Tensor first =
        slot != nullptr && slot->last_key != nullptr ? *slot->last_key : torch::zeros_like(k.narrow(2, 0, 1));
    const torch::Tensor before = torch::cat({first.to(k.scalar_type()), k.narrow(2, 0, T - 1)}, 2) * previous;
    const torch::Tensor own = torch::sigmoid(key_smear).to(k.scalar_type()).view({1, kv_heads, 1, 1});
    if (slot != nullptr && slot->last_key != nullptr) *slot->last_key = k.narrow(2, T - 1, 1).clone();
    k = own * k + (1 - own) * before;
    if (slot != nullptr) slot->k.narrow(2, slot->start, T).copy_(k);
  } else if (slot != nullptr && cpu_kernel_applies(q_lin, cos) && cpu_kernel_applies(k_lin, sin)) {
    // Without autograd on the CPU: rotated straight from the projections' layout, keys into the cache.
    q = torch::empty({B, heads, T, head_dim}, q_lin.options());
    rotary_into(q_lin, cos, sin, q);
    torch::Tensor into = slot->k.narrow(2, slot->start, T);
    rotary_into(k_lin, cos, sin, into);
  } else {
    q = apply_rotary(q_lin.view({B, T, heads, head_dim}).transpose(1, 2), cos, sin);     // [B, H, T, dh]
    k = apply_rotary(k_lin.view({B, T, kv_heads, head_dim}).transpose(1, 2), cos, sin);  // [B, Hkv, T, dh]
    if (slot != nullptr) slot->k.narrow(2, slot->start, T).copy_(k);
  }
  if (slot == nullptr) {
    out = full_sequence(q, k, v, mask, x.scalar_type());
  } else {
    // Decoding: this step's keys/values are in the cache (written above and here).
    slot->v.narrow(2, slot->start, T).copy_(v);
    out = slot->prefix_kt.defined() ? shared_prefix(q, mask, *slot, x.scalar_type())
                                    : cached(q, mask, *slot, x.scalar_type());
  }
  return o_proj(out.transpose(1, 2).reshape({B, T, heads * head_dim}));
}

namespace {
torch::ScalarType compute_type(torch::ScalarType t) { return t == torch::kDouble ? torch::kDouble : torch::kFloat; }
}  // namespace

// Attend over the cache's filled columns. Query heads are grouped by their key/value head ([B, Hkv, r*T, dh]) so
// the cache is never copied r times.
torch::Tensor AttentionImpl::cached(const torch::Tensor& q, const torch::Tensor& mask, const KvSlot& slot,
                                    torch::ScalarType out_type) const {
  const int64_t B = q.size(0), T = q.size(2), S = slot.start + T, r = heads / kv_heads;
  const auto compute = compute_type(out_type);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const torch::Tensor keys = slot.k.narrow(2, 0, S), values = slot.v.narrow(2, 0, S);
  const torch::Tensor qg = q.reshape({B, kv_heads, r * T, head_dim});
  torch::Tensor scores = qg.matmul(keys.transpose(-2, -1)).to(compute) * inv_sqrt;
  scores = scores.view({B, kv_heads, r, T, S}) + mask.to(compute).unsqueeze(2);
  torch::Tensor probs = torch::softmax(scores, -1).to(out_type).view({B, kv_heads, r * T, S});
  return probs.matmul(values).view({B, heads, T, head_dim});
}

// Shared prompt: the rows of one prompt attend to its keys/values in one product ([U, Hkv, G*M, Pp]), so the
// prompt columns are read once per prompt, not once per row; then the row's own columns. One softmax over both
// parts, as over the concatenated columns. Everything as wide as the prompt stays in this grouped layout
// (scores, mask, softmax, the product with the values): only tensors as wide as the row's own columns, and the
// outputs, move between the row and the grouped layout.
torch::Tensor AttentionImpl::shared_prefix(const torch::Tensor& q, const torch::Tensor& mask, const KvSlot& slot,
                                           torch::ScalarType out_type) const {
  const int64_t B = q.size(0), T = q.size(2), S = slot.start + T, r = heads / kv_heads;
  const auto compute = compute_type(out_type);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const torch::Tensor keys = slot.k.narrow(2, 0, S), values = slot.v.narrow(2, 0, S);
  const torch::Tensor qg = q.reshape({B, kv_heads, r * T, head_dim});
  const PrefixGroups& g = *slot.groups;
  const int64_t U = g.prompts, G = g.group, Pp = slot.prefix_kt.size(3), M = r * T;
  auto to_groups = [&](const torch::Tensor& t) {  // [B, Hkv, M, X] -> [U, Hkv, G*M, X]
    const torch::Tensor rows = g.identity ? t : t.index_select(0, g.gather);
    return rows.reshape({U, G, kv_heads, M, t.size(3)}).transpose(1, 2).reshape({U, kv_heads, G * M, t.size(3)});
  };
  auto from_groups = [&](const torch::Tensor& t) {  // [U, Hkv, G*M, X] -> [B, Hkv, M, X]
    const torch::Tensor slots =
        t.reshape({U, kv_heads, G, M, t.size(3)}).transpose(1, 2).reshape({U * G, kv_heads, M, t.size(3)});
    return g.identity ? slots : slots.index_select(0, g.scatter);
  };
  const torch::Tensor qs = qg * inv_sqrt;  // scaling the queries, not the (wider) scores
  // The row's own columns: B*Hkv products of M x dh times dh x S. When no gradient is wanted (decoding)
  // small_bmm does them in one pass; a batched matmul would make a library call per product.
  const bool small = cpu_kernel_applies(qs, keys);
  auto batch3 = [&](const torch::Tensor& t) { return t.reshape({B * kv_heads, t.size(2), t.size(3)}); };
  torch::Tensor own =
      (small ? small_bmm_nt(batch3(qs), batch3(keys)).view({B, kv_heads, M, S}) : qs.matmul(keys.transpose(-2, -1)))
          .to(compute);  // [B, Hkv, M, S]
  own = (own.reshape({B, kv_heads, r, T, S}) + mask.to(compute).unsqueeze(2)).reshape({B, kv_heads, M, S});
  torch::Tensor shared = to_groups(qs).matmul(slot.prefix_kt).to(compute).contiguous();  // [U, Hkv, G*M, Pp]
  torch::Tensor own_grouped = to_groups(own).contiguous();                               // [U, Hkv, G*M, S]
  if (small) {  // in place, without joining the two parts
    torch::Tensor shared_rows = shared.view({-1, Pp}), own_rows = own_grouped.view({-1, S});
    softmax_two_part_(shared_rows, slot.prefix_mask.view({U, Pp}), kv_heads * G * M, own_rows);
  } else {
    shared.add_(slot.prefix_mask.to(compute));  // the product's own output: autograd needs only its inputs
    const torch::Tensor probs = torch::softmax(torch::cat({shared, own_grouped}, -1), -1).to(out_type);
    shared = probs.narrow(-1, 0, Pp), own_grouped = probs.narrow(-1, Pp, S);
  }
  const torch::Tensor own_probs = from_groups(own_grouped);  // [B, Hkv, M, S]
  const torch::Tensor own_out =
      small ? small_bmm_nn(batch3(own_probs), batch3(values)).view(qg.sizes()) : own_probs.matmul(values);
  return (from_groups(shared.matmul(slot.prefix_v)) + own_out).reshape({B, heads, T, head_dim});
}

// Whole sequences (training, teacher forcing): keys and values of this pass only.
torch::Tensor AttentionImpl::full_sequence(const torch::Tensor& q, torch::Tensor k, torch::Tensor v,
                                           const torch::Tensor& mask, torch::ScalarType out_type) const {
#if TORCH_VERSION_MAJOR >= 2
  (void)out_type;
  if (kv_heads != heads) {  // grouped-query: kv head g serves query heads g*r .. g*r+r-1
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  const int64_t B = q.size(0), T = q.size(2);
  const auto compute = compute_type(out_type);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  // Query rows [s, s+n) against keys [0, s+n): with a (causal) mask the later keys are masked anyway, so the
  // blocks above the diagonal are skipped. Without a mask every block sees every key.
  const int64_t r = heads / kv_heads, step = mask.defined() && block > 0 && T > 2 * block ? block : T;
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < T; s += step) {
    const int64_t n = std::min(step, T - s), S = mask.defined() ? s + n : T;
    const torch::Tensor qb = q.narrow(2, s, n).reshape({B, kv_heads, r * n, head_dim});
    torch::Tensor scores = qb.matmul(k.narrow(2, 0, S).transpose(-2, -1)).to(compute) * inv_sqrt;
    scores = scores.view({B, kv_heads, r, n, S});
    if (mask.defined()) scores = scores + mask.narrow(2, s, n).narrow(3, 0, S).to(compute).unsqueeze(2);
    const torch::Tensor probs = torch::softmax(scores, -1).to(out_type).view({B, kv_heads, r * n, S});
    parts.push_back(probs.matmul(v.narrow(2, 0, S)).view({B, heads, n, head_dim}));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
#endif
}

}  // namespace r2rec
