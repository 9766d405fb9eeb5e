// The KV cache of batched decoding (core/model/generation.h), plain or with a shared prefix, made and filled by
// TransformerImpl (new_cache, fork_cache, forward_cached).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace r2rec {

// Prompt keys/values shared by several rows of a KvCache (prefix-shared decoding: the G completions of one
// prompt share its prefill): per layer keys transposed `kt` [U, Hkv, dh, Pp] (the layout the score product
// reads fastest) and values `v` [U, Hkv, Pp, dh] for U distinct prompts (left-padded), `valid` [U, Pp] their
// real tokens, `row_prompt[b]` the prompt of cache row b. Empty (valid undefined) in a plain cache.
struct SharedPrefix {
  std::vector<torch::Tensor> kt, v;
  torch::Tensor valid;
  std::vector<int64_t> row_prompt;
  bool defined() const { return valid.defined(); }
  int64_t length() const { return defined() ? valid.size(1) : 0; }
};

// A KV cache for batched decoding: per layer keys/values [B, Hkv, capacity, dh]; `key_valid` [B, capacity]
// marks the columns that hold real tokens (left padding and finished rows hold none); `length` columns are
// filled. With a shared prefix (TransformerImpl::fork_cache), a row attends to its prompt's cached columns first,
// then to its own. Made by TransformerImpl::new_cache; rows can be dropped with keep_rows (finished sequences).
struct KvCache {
  std::vector<torch::Tensor> k, v;
  // Smeared keys (TransformerConfig::smeared_keys): per layer the last token's unsmeared key [B, Hkv, 1, dh], which
  // the next token's key mixes in. Empty otherwise.
  std::vector<torch::Tensor> last_key;
  torch::Tensor key_valid;
  int64_t length = 0;
  SharedPrefix prefix;
  int64_t capacity() const { return key_valid.defined() ? key_valid.size(1) : 0; }
  int64_t batch() const { return key_valid.defined() ? key_valid.size(0) : 0; }
  // Keeps rows `rows` (int64 indices, in order) of every tensor; prompts no row uses any more are dropped.
  void keep_rows(const torch::Tensor& rows);
};

}  // namespace r2rec
