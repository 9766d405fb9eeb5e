// The pre-tokenizer of byte-level BPE: a regex splits text into pieces ("pre-tokens") that BPE then merges
// independently, so no token ever spans two pieces.
//
// Behaviour matches Hugging Face's `Split{behavior: Isolated}`: every regex match is one piece, and any text
// between matches (possible only when the pattern does not cover every character, or at invalid UTF-8) is a
// piece of its own. The pattern is compiled with PCRE2 in UTF + UCP mode (so \s, \p{L}, \p{N} are Unicode
// classes as in Rust's regex / Oniguruma), JIT-compiled when PCRE2 supports it, and matching tolerates
// invalid UTF-8 (PCRE2_MATCH_INVALID_UTF): bad bytes never match and end up in gap pieces.
// The patterns of GPT-2, Qwen2/3 and Llama 3 (look-ahead `(?!\S)`, `(?i:...)`, `\p{N}{1,3}`) are accepted by
// PCRE2 as written; no translation is needed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace r2rec {

// GPT-2's pattern (used for encoder.json + vocab.bpe / vocab.json + merges.txt, and by the BPE trainer).
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  // Compiles `pattern`. Throws DataError("<source>: pre-tokenizer regex: <PCRE2 message> at offset N").
  RegexSplitter(const std::string& pattern, const std::string& source);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;

  // Calls `piece` for each piece of `text`, in order; the pieces concatenate to `text`. Thread-safe.
  void split(std::string_view text, const std::function<void(std::string_view)>& piece) const;

  const std::string& pattern() const { return pattern_; }
  bool jit() const { return jit_; }

 private:
  struct Code;
  std::string pattern_;
  std::unique_ptr<Code> code_;
  bool jit_ = false;
};

}  // namespace r2rec
