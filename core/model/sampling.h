// Token sampling (core/model/generation.h runs it once per row and step): the options (temperature, top-k,
// top-p, stops), the answer constraint's token trie, and the choice of one token from a row of logits.
//
// Temperature 0 is greedy (arg-max); otherwise logits / temperature, then top-k, then top-p (the smallest set of
// most likely tokens whose probability reaches p, found by a quickselect rather than a sort of the vocabulary),
// drawn with the row's SplitMix64 stream (core/rng.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"

namespace r2rec {

// A trie over token sequences (e.g. each candidate's answer tokens followed by the closing tag's tokens, so no
// sequence is a prefix of another). Node 0 is the root.
class TokenTrie {
 public:
  TokenTrie();
  void insert(const std::vector<int64_t>& tokens);
  // The child of `node` along `token`, or -1.
  int32_t next(int32_t node, int64_t token) const;
  const std::vector<int64_t>& allowed(int32_t node) const { return nodes_[node].tokens; }
  bool is_leaf(int32_t node) const { return nodes_[node].tokens.empty(); }
  size_t size() const { return nodes_.size(); }
  int64_t max_token() const { return max_token_; }  // -1 when empty

 private:
  struct Node {
    std::vector<int64_t> tokens;    // sorted
    std::vector<int32_t> children;  // parallel to tokens
  };
  std::vector<Node> nodes_;
  int64_t max_token_ = -1;
};

struct AnswerConstraint {
  std::string trigger;                    // the constraint starts when the completion text ends with it ("" = at once)
  std::shared_ptr<const TokenTrie> trie;  // allowed continuations after the trigger
};

struct SamplingOptions {
  int64_t max_new_tokens = 256;
  double temperature = 1.0;               // 0 = greedy
  int64_t top_k = 0;                      // 0 = off
  double top_p = 1.0;                     // 1 = off
  std::vector<int64_t> stop_tokens;       // e.g. <|im_end|>, <|endoftext|>
  std::vector<std::string> stop_strings;  // matched on the decoded completion
  // Requests with the same prompt (a GRPO group) share one prefill and its cached keys/values; each row forks on
  // its first sampled token. Off: every row prefills its own copy (the reference the shared path is tested
  // against; the results agree up to floating-point effects of the batch shape).
  bool share_prompts = true;
};

// Picks the next token from one row of logits (float32, length V). `allowed` (sorted ids < V, or null) restricts
// the choice. NaN logits count as -inf; weights exp((logit - max) / T) are formed in double, so any positive
// temperature (however small) and infinite logits give finite weights. -1 when `allowed` is empty.
int64_t choose_token(const float* logits, int64_t V, const SamplingOptions& options, Rng& rng,
                     const std::vector<int64_t>* allowed);

}  // namespace r2rec
