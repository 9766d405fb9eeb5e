// Byte-level BPE tokenizer (GPT-2, Qwen2/2.5/3, Llama 3, and the small vocabularies r2rec learns itself).
//
// Encoding, in Hugging Face `tokenizers` order:
//  1. added tokens (tokenizer.json `added_tokens`) are cut out of the raw text first, leftmost-longest match;
//     with `parse_special = false` only the non-special ones are recognised, so user text cannot inject
//     control tokens such as <|im_start|>;
//  2. each remaining segment is NFC-normalised when the file's `normalizer` says so (utf8proc);
//  3. the pre-tokenizer regex taken from the file splits a segment into pieces (see bpe_pretokenizer.h);
//  4. each piece's bytes become byte tokens, merged by rank (lowest rank first, leftmost on ties), unless
//     `ignore_merges` is set and the whole piece is already a vocabulary entry (Llama 3). Results for a piece
//     are cached, since the same words recur.
// No BOS/EOS is added: the gold vectors (HF, add_special_tokens=False) and Qwen add none.
// Decoding maps ids to their bytes (added tokens to their content) and concatenates: decode(encode(x)) == x
// for any byte string x whose added-token matches are intended (and, with NFC on, for NFC text).
// A Tokenizer is immutable after construction except for its cache; encode/decode are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace r2rec {

using TokenId = int32_t;

// A token matched in the raw text before BPE (tokenizer.json `added_tokens`).
struct AddedToken {
  TokenId id = 0;
  std::string content;  // matched literally and decoded to itself
  bool special = true;  // a control token: matched only with parse_special, dropped by skip_special
};

// Everything a byte-level BPE tokenizer file says, in the file's own terms: token strings are written in
// GPT-2's byte->unicode alphabet (bpe_byte_level.h). Read by read_tokenizer_spec(), written by
// tokenizer_json(), produced by the trainer (bpe_trainer.h).
struct TokenizerSpec {
  std::vector<std::pair<std::string, TokenId>> vocab;       // BPE vocabulary; must hold all 256 byte tokens
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index; both sides and result in vocab
  std::vector<AddedToken> added_tokens;
  std::string pattern;            // pre-tokenizer regex; "" = none (each segment is one piece, as HF with a null
                                  // pre_tokenizer); vocab.json + merges.txt files get kGpt2Pattern
  bool nfc = false;               // normalizer NFC
  bool ignore_merges = false;     // a piece that is a vocab entry maps to it directly (Llama 3)
  bool add_prefix_space = false;  // ByteLevel add_prefix_space: a space is put before each segment that lacks one
};

// Reads a tokenizer from any of the forms r2rec accepts:
//  - a Hugging Face tokenizer.json, plain or gzip'd (any file name, e.g. tokenizer.json.gz);
//  - vocab.json (or GPT-2's encoder.json) with merges.txt (vocab.bpe) beside it;
//  - a folder holding tokenizer.json, tokenizer.json.gz, vocab.json + merges.txt, or encoder.json + vocab.bpe.
// The vocab+merges forms use GPT-2's regex, no normaliser, and make `<|endoftext|>` (when in the vocabulary)
// a special added token. Throws DataError with one line naming the file and what is wrong.
TokenizerSpec read_tokenizer_spec(const std::string& path);

// The Hugging Face tokenizer.json text for `spec` (model BPE, vocab in id order, merges as [left, right] pairs,
// a Sequence pre-tokenizer of Split(regex, Isolated) + ByteLevel(use_regex false) — ByteLevel alone when the
// pattern is "" —, ByteLevel decoder). Format: docs/tokenizer.md.
std::string tokenizer_json(const TokenizerSpec& spec);

class Tokenizer {
 public:
  // Reads `path` (see read_tokenizer_spec). Throws DataError naming the file.
  static Tokenizer load(const std::string& path);

  // Builds from a spec; `source` names it in error messages. Throws DataError("<source>: ...") when the spec
  // is inconsistent (missing byte tokens, a merge of unknown tokens, duplicate ids, a bad regex).
  explicit Tokenizer(TokenizerSpec spec, const std::string& source = "<tokenizer>");
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<TokenId> encode(std::string_view text, bool parse_special = true) const;
  // Throws DataError when an id is not a token of this tokenizer.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const;

  // Writes tokenizer.json (atomically; a name ending in .gz is gzip'd).
  void save(const std::string& path) const;

  // 1 + the largest id (vocab and added tokens); the embedding needs at least this many rows.
  int64_t vocab_size() const;
  // The id of an added token's content or of a vocab entry given as raw bytes; nullopt when neither.
  std::optional<TokenId> token_id(std::string_view token) const;
  // The raw bytes of a vocab entry, or an added token's content. Throws DataError for an unknown id.
  const std::string& token_bytes(TokenId id) const;
  // The same, never throwing: "" for an id the tokenizer lacks (past its range, or a hole — a model may sample
  // any row of its embedding), and for special tokens unless `specials`.
  std::string piece(int64_t id, bool specials) const;
  bool is_special(TokenId id) const;

  const TokenizerSpec& spec() const;
  const std::string& source() const;

  // Capacity (in pieces) of the per-piece BPE cache; 0 disables it. The cache is cleared when full.
  // Default 1 << 16. Not to be called concurrently with encode().
  void set_cache_capacity(size_t pieces);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ChatML, the chat format of the Qwen family:
//   <|im_start|>system\n...<|im_end|>\n<|im_start|>user\n...<|im_end|>\n ... [<|im_start|>assistant\n]
struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};
// `add_generation_prompt` appends "<|im_start|>assistant\n" so the model writes the next turn.
std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace r2rec
