// Byte-level BPE tokenizer: exact against llama.cpp's gold vectors (made with HF tokenizers,
// add_special_tokens=False), every file form, added/special tokens, ignore_merges, decoding, errors.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/tokenizer/bpe_byte_level.h"
#include "core/tokenizer/bpe_pretokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {

namespace fs = std::filesystem;

std::string tokenizers_dir() { return testing::data_dir() + "/tokenizers"; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string gunzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  std::string out;
  char buffer[1 << 16];
  int n;
  while ((n = gzread(f, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

struct GoldCase {
  std::string text;
  std::vector<TokenId> ids;
};

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
std::vector<GoldCase> read_gold(const std::string& name) {
  const std::string base = tokenizers_dir() + "/test_vectors_llamacpp/ggml-vocab-" + name + ".gguf";
  const std::string inp = slurp(base + ".inp");
  const std::string marker = "\n__ggml_vocab_test__\n";
  std::vector<GoldCase> cases;
  for (size_t start = 0; start < inp.size();) {
    const size_t end = inp.find(marker, start);
    if (end == std::string::npos) break;
    cases.push_back({inp.substr(start, end - start), {}});
    start = end + marker.size();
  }
  std::istringstream out(slurp(base + ".out"));
  std::string line;
  for (GoldCase& c : cases) {
    if (!std::getline(out, line)) break;
    std::istringstream ids(line);
    TokenId id;
    while (ids >> id) c.ids.push_back(id);
  }
  return cases;
}

// Loaded once per process: the big ones take a few hundred ms to parse.
const Tokenizer& gpt2() {
  static const Tokenizer t = Tokenizer::load(tokenizers_dir() + "/gpt2");
  return t;
}
const Tokenizer& qwen() {
  static const Tokenizer t = Tokenizer::load(tokenizers_dir() + "/qwen3/tokenizer.json.gz");
  return t;
}
const Tokenizer& llama3() {
  static const Tokenizer t = Tokenizer::load(tokenizers_dir() + "/llama3/tokenizer.json.gz");
  return t;
}

struct GoldParam {
  const char* vectors;
  const Tokenizer& (*tokenizer)();
};

class GoldVectors : public ::testing::TestWithParam<GoldParam> {};

TEST_P(GoldVectors, EncodeExactlyAndRoundTrip) {
  const std::vector<GoldCase> cases = read_gold(GetParam().vectors);
  ASSERT_EQ(cases.size(), 46u);
  const Tokenizer& tok = GetParam().tokenizer();
  int exact = 0, round_trips = 0;
  for (const GoldCase& c : cases) {
    const std::vector<TokenId> ids = tok.encode(c.text);
    EXPECT_EQ(ids, c.ids) << "text: \"" << c.text << "\"";
    exact += ids == c.ids;
    EXPECT_EQ(tok.decode(ids), c.text);
    round_trips += tok.decode(ids) == c.text;
  }
  std::cout << "[ gold     ] " << GetParam().vectors << ": " << exact << "/" << cases.size() << " exact, "
            << round_trips << "/" << cases.size() << " round trips\n";
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GoldVectors,
                         ::testing::Values(GoldParam{"gpt-2", &gpt2}, GoldParam{"qwen2", &qwen},
                                           GoldParam{"deepseek-r1-qwen", &qwen}, GoldParam{"llama-bpe", &llama3}),
                         [](const auto& info) {
                           std::string name = info.param.vectors;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(ByteLevel, AlphabetRoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string token = bytes_to_token_string(all);
  EXPECT_EQ(token_string_to_bytes(token), all);
  EXPECT_EQ(bytes_to_token_string(" \n"), "\xC4\xA0\xC4\x8A");      // "ĠĊ"
  EXPECT_FALSE(token_string_to_bytes("\xE4\xB8\xAD").has_value());  // "中" is not in the alphabet
}

TEST(TokenizerLoad, DescribesTheKnownFiles) {
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().spec().merges.size(), 50000u);
  EXPECT_EQ(gpt2().token_id("<|endoftext|>"), 50256);
  EXPECT_TRUE(gpt2().is_special(50256));
  EXPECT_EQ(qwen().vocab_size(), 151669);
  EXPECT_TRUE(qwen().spec().nfc);
  EXPECT_EQ(qwen().token_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen().token_id("</think>"), 151668);
  EXPECT_TRUE(llama3().spec().ignore_merges);
  EXPECT_EQ(llama3().vocab_size(), 128256);
}

// piece(): token bytes without throwing — special tokens only on request, "" outside the vocabulary.
TEST(TokenizerLoad, PiecesNeverThrow) {
  const int64_t im_start = *qwen().token_id("<|im_start|>"), hello = qwen().encode("hello")[0];
  EXPECT_EQ(qwen().piece(hello, false), qwen().token_bytes(static_cast<TokenId>(hello)));
  EXPECT_EQ(qwen().piece(im_start, false), "");
  EXPECT_EQ(qwen().piece(im_start, true), "<|im_start|>");
  EXPECT_EQ(qwen().piece(qwen().vocab_size(), true), "");  // a padding row of the model's embedding
  EXPECT_EQ(qwen().piece(-1, true), "");
}

TEST(TokenizerLoad, GzipAndPlainJsonLoadTheSame) {
  testing::TempDir dir;
  const std::string plain = dir.write("tokenizer.json", gunzip_file(tokenizers_dir() + "/qwen3/tokenizer.json.gz"));
  const Tokenizer from_plain = Tokenizer::load(plain);
  const Tokenizer from_folder = Tokenizer::load(dir.path());
  EXPECT_EQ(from_plain.vocab_size(), qwen().vocab_size());
  EXPECT_EQ(from_plain.spec().merges, qwen().spec().merges);
  for (const GoldCase& c : read_gold("qwen2")) {
    EXPECT_EQ(from_plain.encode(c.text), c.ids);
    EXPECT_EQ(from_folder.encode(c.text), c.ids);
  }
}

TEST(TokenizerLoad, VocabJsonAndMergesTxtForms) {
  testing::TempDir dir;
  dir.write("vocab.json", slurp(tokenizers_dir() + "/gpt2/encoder.json"));
  dir.write("merges.txt", slurp(tokenizers_dir() + "/gpt2/vocab.bpe"));
  const Tokenizer from_folder = Tokenizer::load(dir.path());
  const Tokenizer from_vocab = Tokenizer::load(dir.file("vocab.json"));
  const Tokenizer from_encoder = Tokenizer::load(tokenizers_dir() + "/gpt2/encoder.json");
  for (const GoldCase& c : read_gold("gpt-2")) {
    EXPECT_EQ(from_folder.encode(c.text), c.ids);
    EXPECT_EQ(from_vocab.encode(c.text), c.ids);
    EXPECT_EQ(from_encoder.encode(c.text), c.ids);
  }
}

TEST(TokenizerSave, QwenSavedAndReloadedStillMatchesTheGoldVectors) {
  testing::TempDir dir;
  qwen().save(dir.file("tokenizer.json.gz"));
  const Tokenizer reloaded = Tokenizer::load(dir.file("tokenizer.json.gz"));
  EXPECT_EQ(reloaded.spec().pattern, qwen().spec().pattern);
  EXPECT_TRUE(reloaded.spec().nfc);
  EXPECT_EQ(reloaded.spec().added_tokens.size(), 26u);
  for (const GoldCase& c : read_gold("qwen2")) EXPECT_EQ(reloaded.encode(c.text), c.ids);
}

TEST(TokenizerSave, EverySpecFieldSurvives) {
  TokenizerSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.emplace_back(bytes_to_token_string(std::string(1, static_cast<char>(b))), b);
  spec.vocab.emplace_back("ab", 256);
  spec.merges = {{"a", "b"}};
  spec.added_tokens = {{300, "<x>", false}};
  spec.nfc = true;
  spec.ignore_merges = true;
  testing::TempDir dir;
  Tokenizer(spec).save(dir.file("t.json"));
  const Tokenizer back = Tokenizer::load(dir.file("t.json"));
  EXPECT_EQ(back.spec().pattern, "");
  EXPECT_TRUE(back.spec().nfc);
  EXPECT_TRUE(back.spec().ignore_merges);
  EXPECT_EQ(back.spec().merges, spec.merges);
  ASSERT_EQ(back.spec().added_tokens.size(), 1u);
  EXPECT_FALSE(back.spec().added_tokens[0].special);
  EXPECT_EQ(back.vocab_size(), 301);
  EXPECT_EQ(back.encode("ab ab<x>"), (std::vector<TokenId>{256, ' ', 256, 300}));  // "ab ab" is one piece: no regex
}

TEST(TokenizerEncode, AddedTokensAreMatchedBeforeBpe) {
  const std::string text = "<|im_start|>user\nHi<|im_end|>\n";
  const std::vector<TokenId> ids = qwen().encode(text);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 1);
  EXPECT_EQ(qwen().decode(ids), text);
  EXPECT_EQ(qwen().decode(ids, /*skip_special=*/true), "user\nHi\n");

  // parse_special = false: control tokens are plain text, non-special added tokens (<think>) still match.
  const std::vector<TokenId> plain = qwen().encode("<|im_start|><think>", /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_EQ(plain.back(), 151667);
  EXPECT_EQ(qwen().decode(plain), "<|im_start|><think>");
  // Added tokens inside words, back to back, and at the ends.
  const std::string packed = "a<think></think>b<|endoftext|>";
  EXPECT_EQ(qwen().decode(qwen().encode(packed)), packed);
  const std::vector<TokenId> p = qwen().encode(packed);
  EXPECT_EQ(p.back(), 151643);
}

TEST(TokenizerEncode, LongestAddedTokenWins) {
  TokenizerSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.emplace_back(bytes_to_token_string(std::string(1, static_cast<char>(b))), b);
  spec.added_tokens = {{256, "<a>", true}, {257, "<a>>", true}};
  const Tokenizer tok(spec);
  EXPECT_EQ(tok.encode("x<a>>y"), (std::vector<TokenId>{'x', 257, 'y'}));
  EXPECT_EQ(tok.encode("<a>"), (std::vector<TokenId>{256}));
}

TEST(TokenizerEncode, IgnoreMergesEmitsWholeVocabPieces) {
  // Vocab holds "abc" but no merge reaches it: only ignore_merges maps the piece "abc" to it.
  TokenizerSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.emplace_back(bytes_to_token_string(std::string(1, static_cast<char>(b))), b);
  spec.vocab.emplace_back("ab", 256);
  spec.vocab.emplace_back("abc", 257);
  spec.merges = {{"a", "b"}};
  spec.pattern = kGpt2Pattern;
  EXPECT_EQ(Tokenizer(spec).encode("abc abc"), (std::vector<TokenId>{256, 'c', ' ', 256, 'c'}));
  spec.ignore_merges = true;
  EXPECT_EQ(Tokenizer(spec).encode("abc abc"), (std::vector<TokenId>{257, ' ', 256, 'c'}));
}

TEST(TokenizerEncode, NfcNormalisesWhenTheFileSaysSo) {
  const std::string decomposed = "e\xCC\x81";  // e + COMBINING ACUTE
  const std::string composed = "\xC3\xA9";     // é
  EXPECT_EQ(qwen().encode(decomposed), qwen().encode(composed));
  EXPECT_NE(gpt2().encode(decomposed), gpt2().encode(composed));
}

TEST(TokenizerEncode, ArbitraryBytesRoundTrip) {
  std::string bytes = "caf\xC3\xA9 \xFF\xFE broken \xE4\xB8 utf8 \x80\n\t 12345 ";
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  for (const Tokenizer* tok : {&gpt2(), &llama3()}) EXPECT_EQ(tok->decode(tok->encode(bytes)), bytes);
  EXPECT_EQ(qwen().decode(qwen().encode(bytes)), bytes);  // invalid UTF-8 is left unnormalised
}

TEST(TokenizerEncode, RandomMixedScriptTextRoundTrips) {
  // Pieces from many scripts and classes (all NFC, so Qwen's normaliser leaves them alone), seeded.
  const std::vector<std::string> parts = {"a",
                                          "Z",
                                          "7",
                                          "42",
                                          " ",
                                          "  ",
                                          "\n",
                                          "\r\n",
                                          "\t",
                                          "'s",
                                          "'LL",
                                          "!",
                                          "...",
                                          "\xC3\xA9",
                                          "\xD0\x96",
                                          "\xE4\xB8\xAD",
                                          "\xF0\x9F\x98\x80",
                                          "\xE2\x80\x94",
                                          "<|im_start|>",
                                          "<think>",
                                          "<",
                                          "|",
                                          "\xEF\xBC\x91",
                                          "\xC2\xA0"};
  uint64_t state = 7;
  int checked = 0;
  for (int n = 0; n < 300; ++n) {
    std::string text;
    for (int k = 0; k < 1 + n % 40; ++k) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      text += parts[(state >> 33) % parts.size()];
    }
    for (const Tokenizer* tok : {&gpt2(), &qwen(), &llama3()}) {
      EXPECT_EQ(tok->decode(tok->encode(text)), text);
      EXPECT_EQ(tok->decode(tok->encode(text, /*parse_special=*/false)), text);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 900);
}

TEST(TokenizerEncode, CacheDoesNotChangeResultsAndIsThreadSafe) {
  Tokenizer tok = Tokenizer::load(tokenizers_dir() + "/gpt2");
  const std::vector<GoldCase> cases = read_gold("gpt-2");
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        for (const GoldCase& c : cases) wrong += tok.encode(c.text) != c.ids;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  tok.set_cache_capacity(0);
  for (const GoldCase& c : cases) EXPECT_EQ(tok.encode(c.text), c.ids);
  tok.set_cache_capacity(1);  // cleared on every insert
  for (const GoldCase& c : cases) EXPECT_EQ(tok.encode(c.text), c.ids);
}

TEST(TokenizerEncode, LongRunsDoNotOverflowTheRegexStack) {
  const std::string spaces(200000, ' ');
  const std::string text = "a" + spaces + "b" + std::string(100000, '7');
  EXPECT_EQ(gpt2().decode(gpt2().encode(text)), text);
  EXPECT_EQ(qwen().decode(qwen().encode(text)), text);
}

TEST(ChatTemplate, RendersChatMl) {
  const std::string prompt = render_chatml({{"system", "You recommend."}, {"user", "Next?"}}, true);
  EXPECT_EQ(prompt,
            "<|im_start|>system\nYou recommend.<|im_end|>\n<|im_start|>user\nNext?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chatml({{"assistant", "x"}}, false), "<|im_start|>assistant\nx<|im_end|>\n");
  const std::vector<TokenId> ids = qwen().encode(prompt);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 2);
}

// --- bad inputs: DataError with one line naming the file -------------------------------------------------

template <typename F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "<no DataError>";
}

void expect_names(const std::string& message, const std::string& path, const std::string& what) {
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(TokenizerErrors, MissingFileAndEmptyFolder) {
  testing::TempDir dir;
  expect_names(data_error_of([&] { Tokenizer::load(dir.file("nope.json")); }), dir.file("nope.json"), "no such file");
  expect_names(data_error_of([&] { Tokenizer::load(dir.path()); }), dir.path(), "folder holds no tokenizer.json");
  dir.write("vocab.json", R"({"a": 0})");
  expect_names(data_error_of([&] { Tokenizer::load(dir.file("vocab.json")); }), dir.file("vocab.json"), "merges.txt");
}

TEST(TokenizerErrors, TruncatedGzip) {
  testing::TempDir dir;
  const std::string gz = slurp(tokenizers_dir() + "/qwen3/tokenizer.json.gz");
  const std::string path = dir.write("tokenizer.json.gz", gz.substr(0, gz.size() / 2));
  expect_names(data_error_of([&] { Tokenizer::load(path); }), path, "cannot read");
}

TEST(TokenizerErrors, JsonWithoutModelOrVocab) {
  testing::TempDir dir;
  const std::string a = dir.write("a.json", R"({"version": "1.0"})");
  expect_names(data_error_of([&] { Tokenizer::load(a); }), a, "no \"model\"");
  const std::string b = dir.write("b.json", R"({"model": {"type": "BPE", "merges": []}})");
  expect_names(data_error_of([&] { Tokenizer::load(b); }), b, "model.vocab is missing");
  const std::string c = dir.write("c.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  expect_names(data_error_of([&] { Tokenizer::load(c); }), c, "not supported");
  const std::string d = dir.write("d.json", "{\"model\": ");
  expect_names(data_error_of([&] { Tokenizer::load(d); }), d, "invalid JSON");
}

std::string tiny_tokenizer_json(const std::string& merges, const std::string& extra_vocab) {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string token = bytes_to_token_string(std::string(1, static_cast<char>(b)));
    if (token == "\"" || token == "\\") token = "\\" + token;
    vocab += "\"" + token + "\": " + std::to_string(b) + ", ";
  }
  return R"({"model": {"type": "BPE", "vocab": {)" + vocab + extra_vocab + R"(}, "merges": )" + merges + "}}";
}

TEST(TokenizerErrors, MergeOfUnknownTokenAndBadVocab) {
  testing::TempDir dir;
  const std::string ok = dir.write("ok.json", tiny_tokenizer_json(R"([["a", "b"]])", R"("ab": 256)"));
  EXPECT_EQ(Tokenizer::load(ok).encode("ab"), std::vector<TokenId>{256});
  const std::string unknown = dir.write("unknown.json", tiny_tokenizer_json(R"(["a xyz"])", R"("axyz": 256)"));
  expect_names(data_error_of([&] { Tokenizer::load(unknown); }), unknown, "unknown token \"xyz\"");
  const std::string result = dir.write("result.json", tiny_tokenizer_json(R"([["a", "b"]])", R"("ba": 256)"));
  expect_names(data_error_of([&] { Tokenizer::load(result); }), result, "is not in the vocab");
  const std::string dup = dir.write("dup.json", tiny_tokenizer_json("[]", R"("ab": 5)"));
  expect_names(data_error_of([&] { Tokenizer::load(dup); }), dup, "used twice");
  const std::string regex = dir.write(
      "regex.json",
      tiny_tokenizer_json("[]", R"("ab": 256)").substr(0, tiny_tokenizer_json("[]", R"("ab": 256)").size() - 1) +
          R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})");
  expect_names(data_error_of([&] { Tokenizer::load(regex); }), regex, "pre-tokenizer regex");
}

TEST(TokenizerErrors, UnknownIdOnDecode) {
  expect_names(data_error_of([&] { gpt2().decode({1, 50257}); }), "gpt2", "token id 50257");
  expect_names(data_error_of([&] { gpt2().decode({-1}); }), "gpt2", "token id -1");
}

}  // namespace
}  // namespace r2rec
