// The LM head's log-likelihood of chosen target tokens without the [positions, vocabulary] logits.
//
// One token per item and per user makes the vocabulary grow with the catalog, and the training losses need only
// log p(target) per position. Both functions below run the head over chunks of positions (lm_head_chunk_rows:
// about 8 MB of float logits each, under glibc's mmap ceiling, so the blocks are reused instead of mapped and
// zeroed afresh every step), keep one logsumexp per position, and give hidden and weight their gradients chunk by
// chunk too. They equal log_softmax(hidden W^T)[target] in float32 up to summation order (tests/core/model/
// test_lm_head_loss.cpp checks values and gradients against the plain composition, and by finite differences).
//
// Where a tensor's gradient is not needed (the weight of a frozen or LoRA-adapted model, the old and reference
// policies) that work is skipped. The gradients are constants to autograd: no double backward.
#pragma once

#include <torch/torch.h>

namespace r2rec {

// Rows of hidden states per chunk for a vocabulary of V tokens. CPU: ~2M float logits (8 MB), or up to 64 rows
// within 4M logits (16 MB) for vocabularies past 32k; at least 8 rows. Other devices: 64M logits (256 MB), at least
// 256 rows.
int64_t lm_head_chunk_rows(int64_t vocab, bool cpu = true);

// sum_i row_weights[i] * -log softmax(hidden[i] W^T)[targets[i]]: a float32 scalar (float64 for float64 hidden). hidden
// [n, d], weight [V, d], targets [n] (int64), row_weights [n] (float). The gradients are formed in the forward pass
// (the scalar's upstream gradient only scales them), so the head costs the same three matmuls as the unfused loss.
// chunk_rows 0 = lm_head_chunk_rows(V).
torch::Tensor lm_head_nll(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                          const torch::Tensor& row_weights, int64_t chunk_rows = 0);

// log softmax(hidden[i] W^T)[targets[i]] for every row: float32 [n] (float64 for float64 hidden). Any upstream gradient
// (GRPO's ratios, KL); backward recomputes each chunk's logits from the saved per-row logsumexp (one extra head
// matmul).
torch::Tensor lm_head_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk_rows = 0);

}  // namespace r2rec
