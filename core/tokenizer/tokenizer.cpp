#include "core/tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "core/tokenizer/bpe_byte_level.h"
#include "core/tokenizer/bpe_pretokenizer.h"

namespace r2rec {
namespace {

enum class Kind : uint8_t { kNone, kVocab, kAddedSpecial, kAdded };

uint64_t pair_key(TokenId a, TokenId b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Merge {
  int32_t rank;
  TokenId result;
};

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// NFC of `text`; the text unchanged when it is ASCII (already NFC) or not valid UTF-8 (utf8proc refuses it).
std::string nfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; }))
    return std::string(text);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(text);
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;
  std::string source;
  std::vector<std::string> bytes_of;                   // id -> raw bytes (vocab) or content (added)
  std::vector<Kind> kind;                              // id -> what it is
  std::unordered_map<std::string, TokenId> vocab_ids;  // raw bytes -> id
  std::unordered_map<std::string, TokenId> added_ids;  // content -> id
  std::array<TokenId, 256> byte_ids{};
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> rank, merged id
  // Added-token matching: the distinct lengths of the added tokens starting with each byte (longest first) and
  // content -> index into spec.added_tokens (the first token of a content wins), so a position costs one hash
  // lookup per distinct length, not one comparison per token (r2rec's item tokens: thousands share '<').
  std::array<std::vector<size_t>, 256> added_lengths_by_first_byte;
  std::unordered_map<std::string_view, size_t> added_index;
  std::unique_ptr<RegexSplitter> splitter;  // null: each segment is one piece

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache;  // piece bytes -> ids
  size_t cache_capacity = size_t{1} << 16;
  static constexpr size_t kMaxCachedPieceBytes = 256;  // bounds the cache's memory (a regex-less file has huge pieces)

  void set_token(TokenId id, std::string bytes, Kind k) {
    if (id < 0) throw DataError(source + ": negative token id " + std::to_string(id));
    if (static_cast<size_t>(id) >= bytes_of.size()) {
      bytes_of.resize(id + 1);
      kind.resize(id + 1, Kind::kNone);
    }
    if (kind[id] == Kind::kVocab && k != Kind::kVocab && bytes_of[id] == bytes) {
      kind[id] = k;  // an added token that is also the vocab entry with the same id (GPT-2's <|endoftext|>)
      return;
    }
    if (kind[id] != Kind::kNone) {
      throw DataError(source + ": token id " + std::to_string(id) + " is used twice (" + quoted(bytes_of[id]) +
                      " and " + quoted(bytes) + ")");
    }
    bytes_of[id] = std::move(bytes);
    kind[id] = k;
  }

  void build() {
    for (const auto& [token, id] : spec.vocab) {
      std::optional<std::string> bytes = token_string_to_bytes(token);
      if (!bytes)
        throw DataError(source + ": vocab entry " + quoted(token) + " (id " + std::to_string(id) +
                        ") is not a byte-level token");
      set_token(id, *bytes, Kind::kVocab);
      vocab_ids.emplace(std::move(*bytes), id);
    }
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_ids.find(std::string(1, static_cast<char>(b)));
      if (it == vocab_ids.end()) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", b);
        throw DataError(source + ": vocab lacks the byte token for " + hex + " (" +
                        quoted(bytes_to_token_string(std::string(1, static_cast<char>(b)))) + ")");
      }
      byte_ids[b] = it->second;
    }
    merges.reserve(spec.merges.size());
    for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
      // Named references, not a structured binding: C++17 lambdas cannot capture those (clang refuses).
      const std::string& left = spec.merges[rank].first;
      const std::string& right = spec.merges[rank].second;
      auto lookup = [&](const std::string& token) {
        std::optional<std::string> bytes = token_string_to_bytes(token);
        auto it = bytes ? vocab_ids.find(*bytes) : vocab_ids.end();
        if (it == vocab_ids.end()) {
          throw DataError(source + ": merge " + std::to_string(rank) + " " + quoted(left + " " + right) +
                          ": unknown token " + quoted(token));
        }
        return it;
      };
      auto a = lookup(left), b = lookup(right);
      auto merged = vocab_ids.find(a->first + b->first);
      if (merged == vocab_ids.end()) {
        throw DataError(source + ": merge " + std::to_string(rank) + " " + quoted(left + " " + right) + ": result " +
                        quoted(left + right) + " is not in the vocab");
      }
      merges.emplace(pair_key(a->second, b->second), Merge{static_cast<int32_t>(rank), merged->second});
    }
    for (size_t i = 0; i < spec.added_tokens.size(); ++i) {
      const AddedToken& t = spec.added_tokens[i];
      if (t.content.empty()) throw DataError(source + ": added token " + std::to_string(t.id) + " has empty content");
      set_token(t.id, t.content, t.special ? Kind::kAddedSpecial : Kind::kAdded);
      added_ids[t.content] = t.id;
      added_index.emplace(std::string_view(t.content), i);
      added_lengths_by_first_byte[static_cast<uint8_t>(t.content[0])].push_back(t.content.size());
    }
    for (auto& lengths : added_lengths_by_first_byte) {
      std::sort(lengths.begin(), lengths.end(), std::greater<size_t>());
      lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
    }
    if (!spec.pattern.empty()) splitter = std::make_unique<RegexSplitter>(spec.pattern, source);
  }

  // Rank-ordered BPE of one piece: start from its bytes, repeatedly merge the adjacent pair of lowest rank
  // (leftmost on ties). A linked list of symbols plus a min-heap of candidate pairs makes it O(n log n);
  // stale heap entries are skipped by re-checking the two ids.
  void bpe(std::string_view piece, std::vector<TokenId>& out) const {
    struct Symbol {
      TokenId id;
      int prev, next;
    };
    struct Candidate {
      int32_t rank;
      int left;
      TokenId a, b, result;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    const int n = static_cast<int>(piece.size());
    std::vector<Symbol> sym(n);
    for (int i = 0; i < n; ++i) sym[i] = {byte_ids[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](int left) {
      const int right = sym[left].next;
      if (right < 0) return;
      auto it = merges.find(pair_key(sym[left].id, sym[right].id));
      if (it != merges.end()) heap.push({it->second.rank, left, sym[left].id, sym[right].id, it->second.result});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& l = sym[c.left];
      if (l.id != c.a || l.next < 0 || sym[l.next].id != c.b) continue;  // stale
      Symbol& r = sym[l.next];
      l.id = c.result;
      r.id = -1;
      l.next = r.next;
      if (l.next >= 0) sym[l.next].prev = c.left;
      if (l.prev >= 0) consider(l.prev);
      consider(c.left);
    }
    for (int i = 0; i >= 0 && n > 0; i = sym[i].next) out.push_back(sym[i].id);
  }

  void encode_piece(std::string_view piece, std::vector<TokenId>& out) const {
    if (piece.size() == 1) {
      out.push_back(byte_ids[static_cast<uint8_t>(piece[0])]);
      return;
    }
    if (spec.ignore_merges) {
      auto it = vocab_ids.find(std::string(piece));
      if (it != vocab_ids.end()) {
        out.push_back(it->second);
        return;
      }
    }
    if (cache_capacity == 0 || piece.size() > kMaxCachedPieceBytes) {  // long pieces rarely repeat
      bpe(piece, out);
      return;
    }
    std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = cache.find(key);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t begin = out.size();
    bpe(piece, out);
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= cache_capacity) cache.clear();
    cache.emplace(std::move(key), std::vector<TokenId>(out.begin() + begin, out.end()));
  }

  // A stretch of text without added tokens: normalise, pre-tokenize, BPE each piece.
  void encode_segment(std::string_view segment, std::vector<TokenId>& out) const {
    if (segment.empty()) return;
    std::string text = spec.nfc ? nfc(segment) : std::string(segment);
    if (spec.add_prefix_space && text[0] != ' ') text.insert(text.begin(), ' ');
    if (!splitter) {
      encode_piece(text, out);
      return;
    }
    splitter->split(text, [&](std::string_view piece) { encode_piece(piece, out); });
  }
};

Tokenizer::Tokenizer(TokenizerSpec spec, const std::string& source) : impl_(std::make_unique<Impl>()) {
  impl_->spec = std::move(spec);
  impl_->source = source;
  impl_->build();
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& path) { return Tokenizer(read_tokenizer_spec(path), path); }

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 1);
  size_t segment_start = 0;
  for (size_t i = 0; i < text.size();) {
    const TokenId* found = nullptr;
    size_t length = 0;
    for (size_t n : m.added_lengths_by_first_byte[static_cast<uint8_t>(text[i])]) {  // longest first
      if (i + n > text.size()) continue;
      const auto it = m.added_index.find(text.substr(i, n));
      if (it == m.added_index.end()) continue;
      const AddedToken& t = m.spec.added_tokens[it->second];
      if (!parse_special && t.special) continue;
      found = &t.id;
      length = n;
      break;
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    m.encode_segment(text.substr(segment_start, i - segment_start), out);
    out.push_back(*found);
    i += length;
    segment_start = i;
  }
  m.encode_segment(text.substr(segment_start), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string out;
  for (const TokenId id : ids) {
    const std::string& bytes = token_bytes(id);
    if (skip_special && impl_->kind[id] == Kind::kAddedSpecial) continue;
    out += bytes;
  }
  return out;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->bytes_of.size()); }

std::optional<TokenId> Tokenizer::token_id(std::string_view token) const {
  const std::string key(token);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab_ids.find(key); it != impl_->vocab_ids.end()) return it->second;
  return std::nullopt;
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  if (id < 0 || id >= vocab_size() || impl_->kind[id] == Kind::kNone) {
    throw DataError(impl_->source + ": token id " + std::to_string(id) + " is not in the vocabulary (size " +
                    std::to_string(vocab_size()) + ")");
  }
  return impl_->bytes_of[id];
}

std::string Tokenizer::piece(int64_t id, bool specials) const {
  if (id < 0 || id >= vocab_size()) return std::string();
  const Kind kind = impl_->kind[id];
  if (kind == Kind::kNone || (kind == Kind::kAddedSpecial && !specials)) return std::string();
  return impl_->bytes_of[id];
}

bool Tokenizer::is_special(TokenId id) const {
  return id >= 0 && id < vocab_size() && impl_->kind[id] == Kind::kAddedSpecial;
}

const TokenizerSpec& Tokenizer::spec() const { return impl_->spec; }
const std::string& Tokenizer::source() const { return impl_->source; }

void Tokenizer::set_cache_capacity(size_t pieces) {
  std::lock_guard<std::mutex> lock(impl_->cache_mutex);
  impl_->cache_capacity = pieces;
  impl_->cache.clear();
}

std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace r2rec
