#pragma once
// Loops for what libtorch's ops do slowly at decoding's sizes on the CPU (float32, no autograd), measured by
// benchmarks/bench_generate.
// - Batched products of many small matrices: at::bmm without MKL makes one library call per matrix, and for
//   the few queries of a decode step against one row's own cached columns (N = rows x key/value heads matrices
//   of r x dh times dh x S, S <= max_new_tokens) that call's overhead is larger than its work.
// - The first largest entry of a row of logits (greedy decoding), vectorised.
// - Softmax over a prompt's and a row's own columns without joining them, and a row's log-sum-exp, with an
//   exp that vectorises (exp_nonpositive).
// - RMSNorm and rotary positions in one pass each, where libtorch runs six to eight ops over tensors of a few
//   thousand entries.
// On x86-64 (GCC) the loops are compiled for AVX2 with FMA and for the baseline, chosen when the program loads.

#include <torch/types.h>

namespace r2rec {

// a [N, M, K] times b [N, S, K] transposed: [N, M, S]. Any batch and row strides; the last dimension of each
// must be contiguous. Float32 CPU tensors only.
torch::Tensor small_bmm_nt(const torch::Tensor& a, const torch::Tensor& b);

// a [N, M, S] times b [N, S, K]: [N, M, K]. Same layout rules.
torch::Tensor small_bmm_nn(const torch::Tensor& a, const torch::Tensor& b);

// Whether these kernels can take these operands: CPU float32, last dimensions contiguous, no gradient wanted.
bool cpu_kernel_applies(const torch::Tensor& a, const torch::Tensor& b);

// weight * x / sqrt(mean(x^2 over the last dimension) + eps) for contiguous x [..., d] and weight [d], as
// RMSNormImpl computes it in float32. Same rules as above.
torch::Tensor rms_norm_rows(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Rotary positions applied to heads laid out as a projection gives them, x [B, T, n*dh] (contiguous), with
// tables cos/sin [B, 1, T, dh] (contiguous, from rotary_tables), written into out [B, n, T, dh] (any strides
// but the last: a fresh tensor, or a KV cache's columns). Equal to apply_rotary(x.view(B, T, n, dh)
// .transpose(1, 2), cos, sin) up to rounding.
void rotary_into(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, torch::Tensor& out);

// exp(x) for x <= 0 (0 below about -87.3, where float's normal range ends; NaN stays NaN), within 2 ulp of
// std::exp: Cody-Waite reduction to r in [-ln2/2, ln2/2] and Cephes' degree-7 polynomial, in a form the
// compiler vectorises.
float exp_nonpositive(float x);

// In place, per row: the softmax over the concatenation of shared's row [Pp] plus mask (additive, one row
// [Pp] per block of `rows_per_mask` rows) and own's row [S]. shared [R, Pp] and own [R, S] contiguous views
// of the same R rows; mask [R / rows_per_mask, Pp]. CPU float32 without autograd.
void softmax_two_part_(torch::Tensor& shared, const torch::Tensor& mask, int64_t rows_per_mask, torch::Tensor& own);

// Sampling weights w[i] = exp((logits[i] - top) * inv_t) for i < n, with `top` the row's (finite) maximum and
// inv_t = 1 / temperature (may be +inf): the maximum weighs 1, -inf and NaN logits 0.
void sampling_weights(const float* logits, int64_t n, float top, float inv_t, float* w);

// log(sum(exp(x))) of each row of contiguous logits [R, V] (CPU float32): [R].
torch::Tensor row_logsumexp(const torch::Tensor& logits);

// The index of the first largest entry of x[0, n), NaN counting as -inf; 0 when no entry is above -inf
// (as a scan with `>` from index 0 gives).
int64_t first_argmax(const float* x, int64_t n);

}  // namespace r2rec
