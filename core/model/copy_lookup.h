// The look-up copy (config.json "r2rec_copy_lookup": N; docs/model.md "Look-up copy"): r2rec's own extension for a
// model trained from scratch, which does not grow the induction heads that copy an entity from the prompt within
// its budget (docs/training.md). Before the softmax, every token that followed an earlier occurrence of the
// sequence's longest matching suffix (up to N tokens, within the same sequence) gets its logit raised by
//
//   s_t = softplus(h_t . w + b[m_t - 1])          (model.copy_gate.weight [d], model.copy_gate.bias [N])
//
// where h_t is the final-norm hidden state and m_t the match length; nothing is raised where no suffix matches or
// where the match proposes more than kCopyMaxFollowers distinct tokens (an uninformative match). The model learns
// when to copy (s_t), the look-up says what could be copied; the distribution stays one softmax, so sampling,
// temperature, top-p and the answer constraint apply unchanged, and log p(y) = lq_y + s [y in F] - log(1 + P_F
// (e^s - 1)) with lq the plain log-softmax and P_F the plain probability of the proposed set — what training
// computes without the [positions, V] logits.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace r2rec {

constexpr int64_t kCopyMaxFollowers = 32;  // >= a compact prompt's candidate lines (20 by default)
constexpr double kCopyMaxBoost = 30.0;     // s_t is clamped here: e^30 keeps every product finite in float32

struct CopyProposal {
  int32_t match = 0;            // length of the longest earlier match of the sequence's suffix; 0 = none
  std::vector<int64_t> tokens;  // distinct tokens that followed it (sorted); empty when match is 0
};

// What the look-up proposes to follow ids[0, n) (n >= 1): the suffix ids[n - m, n) of greatest length m <= max_ngram
// that also ends at an earlier j < n - 1 whose follower ids[j + 1] lies in the source ids[0, source_end), and the
// tokens ids[j + 1] of all such j. The source is the prompt where there is one (generation, teacher forcing, SFT):
// a completion copies from its prompt, never from itself, so a copied token cannot propose itself again and loop.
// A sequence learnt whole (pretraining) is its own source.
CopyProposal copy_proposal(const int64_t* ids, int64_t n, int64_t max_ngram,
                           int64_t source_end = std::numeric_limits<int64_t>::max());

// Proposals for the positions `at` (flat indices b * T + t of ids [B, T], CPU int64): what follows ids[b, s..t],
// s the first token of t's sequence — a run of equal nonzero mask values (left/right padding 0, packed segments
// 1, 2, ...; an undefined mask is all one sequence) — with source_end [B, T] (t's sequence's source length, counted
// from s; undefined = the whole sequence). A padding position gets no proposal.
std::vector<CopyProposal> copy_proposals_at(const torch::Tensor& ids, const torch::Tensor& mask,
                                            const std::vector<int64_t>& at, int64_t max_ngram,
                                            const torch::Tensor& source_end = {});

}  // namespace r2rec
