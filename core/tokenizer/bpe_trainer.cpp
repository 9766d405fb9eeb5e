#include "core/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/tokenizer/bpe_byte_level.h"

namespace r2rec {
namespace {

using Symbol = int32_t;

uint64_t pair_key(Symbol a, Symbol b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
Symbol left_of(uint64_t key) { return static_cast<Symbol>(key >> 32); }
Symbol right_of(uint64_t key) { return static_cast<Symbol>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<Symbol> symbols;
  int64_t count;
};

// Distinct pre-tokenizer pieces of all texts with their counts, sorted by bytes (for determinism).
std::vector<Word> count_words(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  const RegexSplitter splitter(options.pattern, "bpe trainer");
  std::unordered_map<std::string, int64_t> counts;
  std::unordered_set<std::string_view> cut;          // special and plain tokens
  std::array<std::vector<size_t>, 256> cut_lengths;  // their distinct lengths by first byte, longest first
  for (const auto* list : {&options.special_tokens, &options.plain_tokens}) {
    for (const std::string& s : *list) {
      if (s.empty()) continue;
      cut.insert(s);
      cut_lengths[static_cast<uint8_t>(s[0])].push_back(s.size());
    }
  }
  for (auto& lengths : cut_lengths) {
    std::sort(lengths.begin(), lengths.end(), std::greater<size_t>());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  }
  auto add_segment = [&](std::string_view segment) {
    splitter.split(segment, [&](std::string_view piece) { ++counts[std::string(piece)]; });
  };
  for (const std::string& text : texts) {
    std::string_view rest(text);
    for (;;) {  // cut out the earliest special or plain token, repeatedly (leftmost, then longest)
      size_t best = std::string_view::npos, length = 0;
      for (size_t i = 0; i < rest.size() && best == std::string_view::npos; ++i) {
        for (size_t n : cut_lengths[static_cast<uint8_t>(rest[i])]) {
          if (i + n <= rest.size() && cut.count(rest.substr(i, n))) {
            best = i, length = n;
            break;
          }
        }
      }
      if (best == std::string_view::npos) break;
      add_segment(rest.substr(0, best));
      rest.remove_prefix(best + length);
    }
    add_segment(rest);
  }
  std::map<std::string, int64_t> sorted(counts.begin(), counts.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [piece, count] : sorted) {
    Word w{{}, count};
    for (const char c : piece) w.symbols.push_back(static_cast<uint8_t>(c));
    words.push_back(std::move(w));
  }
  return words;
}

struct Candidate {
  int64_t count;
  uint64_t key;
  // Max-heap order: larger count first, then the smaller (left, right) pair.
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : key > o.key; }
};

}  // namespace

TokenizerSpec train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  const int64_t bpe_size = options.vocab_size - static_cast<int64_t>(options.special_tokens.size());
  if (bpe_size < 256) {
    throw ConfigError("tokenizer.vocab_size: " + std::to_string(options.vocab_size) +
                      " is too small: need at least 256 byte tokens + " +
                      std::to_string(options.special_tokens.size()) + " special tokens");
  }
  std::vector<Word> words = count_words(texts, options);

  std::vector<std::string> token_bytes(256);  // id -> bytes
  std::unordered_map<std::string, Symbol> id_of;
  for (int b = 0; b < 256; ++b) {
    token_bytes[b] = std::string(1, static_cast<char>(b));
    id_of[token_bytes[b]] = b;
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;  // pair -> words holding it (may repeat or be stale)
  for (uint32_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = pair_key(s[i], s[i + 1]);
      pair_count[key] += words[w].count;
      where[key].push_back(w);
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [key, count] : pair_count) heap.push({count, key});

  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<uint32_t> last_visit(words.size(), UINT32_MAX);
  while (static_cast<int64_t>(token_bytes.size()) < bpe_size && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    auto found = pair_count.find(top.key);
    const int64_t current = found == pair_count.end() ? 0 : found->second;
    if (current != top.count) {  // stale entry: re-queue with the current count
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    if (current < std::max<int64_t>(options.min_frequency, 1)) break;

    const Symbol a = left_of(top.key), b = right_of(top.key);
    const std::string merged_bytes = token_bytes[a] + token_bytes[b];
    Symbol merged;
    if (auto it = id_of.find(merged_bytes); it != id_of.end()) {
      merged = it->second;  // the same bytes were already reached by another pair
    } else {
      merged = static_cast<Symbol>(token_bytes.size());
      token_bytes.push_back(merged_bytes);
      id_of.emplace(merged_bytes, merged);
    }
    merges.emplace_back(bytes_to_token_string(token_bytes[a]), bytes_to_token_string(token_bytes[b]));

    const uint32_t visit = static_cast<uint32_t>(merges.size());
    std::vector<uint32_t> holders = std::move(where[top.key]);
    where.erase(top.key);
    std::vector<uint64_t> new_pairs;
    for (const uint32_t w : holders) {
      if (last_visit[w] == visit) continue;
      last_visit[w] = visit;
      std::vector<Symbol>& s = words[w].symbols;
      const int64_t f = words[w].count;
      bool holds = false;
      for (size_t i = 0; i + 1 < s.size() && !holds; ++i) holds = s[i] == a && s[i + 1] == b;
      if (!holds) continue;  // stale index entry
      // Take the word's pairs out, merge left to right, put its pairs back.
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_count[pair_key(s[i], s[i + 1])] -= f;
      std::vector<Symbol> next;
      next.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(s[i]);
        }
      }
      s = std::move(next);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t key = pair_key(s[i], s[i + 1]);
        pair_count[key] += f;
        if (s[i] == merged || s[i + 1] == merged) {
          where[key].push_back(w);
          new_pairs.push_back(key);
        }
      }
    }
    pair_count.erase(top.key);
    std::sort(new_pairs.begin(), new_pairs.end());
    new_pairs.erase(std::unique(new_pairs.begin(), new_pairs.end()), new_pairs.end());
    for (const uint64_t key : new_pairs) {
      if (const int64_t c = pair_count[key]; c > 0) heap.push({c, key});
    }
  }

  TokenizerSpec spec;
  spec.pattern = options.pattern;
  spec.vocab.reserve(token_bytes.size());
  for (size_t id = 0; id < token_bytes.size(); ++id)
    spec.vocab.emplace_back(bytes_to_token_string(token_bytes[id]), static_cast<TokenId>(id));
  spec.merges = std::move(merges);
  std::unordered_set<std::string> seen;
  for (const auto* list : {&options.special_tokens, &options.plain_tokens}) {
    const bool special = list == &options.special_tokens;
    for (const std::string& s : *list) {
      if (!seen.insert(s).second) throw DataError("bpe trainer: added token \"" + s + "\" is listed twice");
      spec.added_tokens.push_back({static_cast<TokenId>(token_bytes.size() + spec.added_tokens.size()), s, special});
    }
  }
  return spec;
}

}  // namespace r2rec
