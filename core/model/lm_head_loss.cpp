#include "core/model/lm_head_loss.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace r2rec {

int64_t lm_head_chunk_rows(int64_t vocab, bool cpu) {
  const int64_t v = std::max<int64_t>(1, vocab);
  // Off the CPU there is no mmap ceiling, and each chunk re-reads the [V, d] weight and updates its gradient:
  // 256 MB of logits and at least 256 rows (not yet measured on a GPU).
  if (!cpu) return std::max<int64_t>(256, (int64_t{1} << 26) / v);
  // 8 MB of float32 logits per chunk; for large vocabularies up to 64 rows within 16 MB (fewer rows re-read the
  // weight once per chunk: at V = 67k, 31-row chunks ran 1.4x slower than 62-row ones,
  // benchmarks/bench_lm_head.cpp), always under glibc's 32 MB mmap ceiling.
  return std::max<int64_t>({8, (int64_t{1} << 21) / v, std::min<int64_t>(64, (int64_t{1} << 22) / v)});
}

namespace {

void check_args(const char* what, const torch::Tensor& hidden, const torch::Tensor& weight,
                const torch::Tensor& targets) {
  const auto fail = [&](const std::string& why) { throw std::invalid_argument(std::string(what) + ": " + why); };
  if (hidden.dim() != 2 || weight.dim() != 2 || hidden.size(1) != weight.size(1))
    fail("needs hidden [n, d] and weight [V, d]");
  if (targets.dim() != 1 || targets.size(0) != hidden.size(0) || targets.scalar_type() != torch::kLong)
    fail("needs int64 targets [n]");
  if (hidden.device() != weight.device() || targets.device() != hidden.device())
    fail("hidden, weight and targets must be on one device");
}

struct HeadPass {
  torch::Tensor logp, lse;                 // [n] float32
  torch::Tensor grad_hidden, grad_weight;  // of sum_i scale[i] * -logp[i]; undefined where not asked for
};

// One pass over the rows in chunks. With `scale` [n] it also forms the gradients of sum_i scale[i] * -logp[i]
// (for hidden and/or weight, as asked); `lse` [n], when given, is reused instead of recomputed.
HeadPass head_pass(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                   const torch::Tensor& scale, const torch::Tensor& lse, bool grad_hidden, bool grad_weight,
                   int64_t chunk_rows) {
  const int64_t n = hidden.size(0), V = weight.size(0);
  const int64_t rows = chunk_rows > 0 ? chunk_rows : lm_head_chunk_rows(V, hidden.is_cpu());
  // Logits and sums in float32 (float64 for float64 inputs, so that finite differences can check the gradients).
  const torch::ScalarType acc = hidden.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto f32 = hidden.options().dtype(acc);
  HeadPass out;
  out.logp = torch::empty({n}, f32);
  out.lse = lse.defined() ? lse : torch::empty({n}, f32);
  const bool grads = scale.defined() && (grad_hidden || grad_weight);
  if (grads && grad_hidden) out.grad_hidden = torch::empty_like(hidden);
  if (grads && grad_weight) out.grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(acc));
  const torch::Tensor w_t = weight.t();
  for (int64_t c0 = 0; c0 < n; c0 += rows) {
    const int64_t m = std::min(rows, n - c0);
    const torch::Tensor h = hidden.narrow(0, c0, m);
    const torch::Tensor t = targets.narrow(0, c0, m).unsqueeze(1);
    torch::Tensor logits = torch::matmul(h, w_t).to(acc);  // [m, V]
    torch::Tensor l = out.lse.narrow(0, c0, m);
    if (!lse.defined()) l.copy_(torch::logsumexp(logits, 1));
    out.logp.narrow(0, c0, m).copy_(logits.gather(1, t).squeeze(1) - l);
    if (!grads) continue;
    // d(-log p_target)/d logits = softmax - onehot(target), per row times its scale.
    torch::Tensor d = logits.sub_(l.unsqueeze(1)).exp_();
    d.scatter_add_(1, t, torch::full({m, 1}, -1.0, f32));
    d.mul_(scale.narrow(0, c0, m).to(acc).unsqueeze(1));
    const torch::Tensor dc = d.to(weight.scalar_type());
    if (grad_hidden) out.grad_hidden.narrow(0, c0, m).copy_(torch::matmul(dc, weight));
    if (grad_weight) out.grad_weight.addmm_(d.t(), h.to(acc));
  }
  if (out.grad_weight.defined()) out.grad_weight = out.grad_weight.to(weight.scalar_type());
  return out;
}

struct LmHeadNll : public torch::autograd::Function<LmHeadNll> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets,
                               const torch::Tensor& row_weights, int64_t chunk_rows) {
    const HeadPass p =
        head_pass(hidden, weight, targets, row_weights, {}, hidden.requires_grad(), weight.requires_grad(), chunk_rows);
    ctx->saved_data["grad_hidden"] = p.grad_hidden;
    ctx->saved_data["grad_weight"] = p.grad_weight;
    return -(p.logp * row_weights.to(p.logp.scalar_type())).sum();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const torch::Tensor g = grad_out[0];
    torch::Tensor gh = ctx->saved_data["grad_hidden"].toTensor(), gw = ctx->saved_data["grad_weight"].toTensor();
    // Scaled in float32, rounded once to the parameter's dtype (bf16 weights would otherwise round g first).
    if (gh.defined()) gh = (gh.to(torch::kFloat) * g.to(torch::kFloat)).to(gh.scalar_type());
    if (gw.defined()) gw = (gw.to(torch::kFloat) * g.to(torch::kFloat)).to(gw.scalar_type());
    return {gh, gw, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct LmHeadLogprobs : public torch::autograd::Function<LmHeadLogprobs> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk_rows) {
    const HeadPass p = head_pass(hidden, weight, targets, {}, {}, false, false, chunk_rows);
    ctx->save_for_backward({hidden, weight, targets, p.lse});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["grad_hidden"] = hidden.requires_grad();
    ctx->saved_data["grad_weight"] = weight.requires_grad();
    return p.logp;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    // d(sum g_i log p_i) = d(sum (-g_i) * -log p_i)
    const HeadPass p =
        head_pass(saved[0], saved[1], saved[2], -grad_out[0], saved[3], ctx->saved_data["grad_hidden"].toBool(),
                  ctx->saved_data["grad_weight"].toBool(), ctx->saved_data["chunk_rows"].toInt());
    return {p.grad_hidden, p.grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

bool wants_grad(const torch::Tensor& hidden, const torch::Tensor& weight) {
  return torch::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
}

}  // namespace

torch::Tensor lm_head_nll(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                          const torch::Tensor& row_weights, int64_t chunk_rows) {
  check_args("lm_head_nll", hidden, weight, targets);
  if (row_weights.dim() != 1 || row_weights.size(0) != hidden.size(0) || row_weights.device() != hidden.device())
    throw std::invalid_argument("lm_head_nll: needs row_weights [n] on hidden's device");
  if (!wants_grad(hidden, weight)) {
    const HeadPass p = head_pass(hidden, weight, targets, {}, {}, false, false, chunk_rows);
    return -(p.logp * row_weights.to(p.logp.scalar_type())).sum();
  }
  return LmHeadNll::apply(hidden, weight, targets, row_weights.detach(), chunk_rows);
}

torch::Tensor lm_head_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk_rows) {
  check_args("lm_head_logprobs", hidden, weight, targets);
  if (!wants_grad(hidden, weight)) return head_pass(hidden, weight, targets, {}, {}, false, false, chunk_rows).logp;
  return LmHeadLogprobs::apply(hidden, weight, targets, chunk_rows);
}

}  // namespace r2rec
