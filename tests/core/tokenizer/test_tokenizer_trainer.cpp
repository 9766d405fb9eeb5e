// The small-vocabulary BPE trainer: learns from ML-100K titles, saves a tokenizer.json the loader reads back,
// round-trips every title, is deterministic and compresses.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "core/error.h"
#include "core/tokenizer/bpe_trainer.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {

// Field 2 of the '|'-separated lines of u.item.utf8.
std::vector<std::string> ml100k_titles() {
  std::ifstream in(testing::data_dir() + "/ml-100k/u.item.utf8");
  std::vector<std::string> titles;
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find('|');
    const size_t b = line.find('|', a + 1);
    if (a != std::string::npos && b != std::string::npos) titles.push_back(line.substr(a + 1, b - a - 1));
  }
  return titles;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(BpeTrainer, LearnsMl100kTitlesSavesReloadsAndRoundTrips) {
  const std::vector<std::string> titles = ml100k_titles();
  ASSERT_GT(titles.size(), 1600u);
  BpeTrainerOptions options;
  options.vocab_size = 1000;
  const TokenizerSpec spec = train_bpe(titles, options);
  EXPECT_EQ(spec.vocab.size() + spec.added_tokens.size(), 1000u);
  EXPECT_EQ(spec.added_tokens.size(), options.special_tokens.size());

  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  Tokenizer(spec).save(path);
  const Tokenizer tok = Tokenizer::load(path);
  EXPECT_EQ(tok.vocab_size(), 1000);
  EXPECT_EQ(tok.token_id("<|im_start|>"), static_cast<TokenId>(spec.vocab.size()) + 1);

  size_t bytes = 0, tokens = 0;
  for (const std::string& title : titles) {
    const std::vector<TokenId> ids = tok.encode(title);
    EXPECT_EQ(tok.decode(ids), title);
    for (const TokenId id : ids) EXPECT_LT(id, 1000);
    bytes += title.size();
    tokens += ids.size();
  }
  std::cout << "[ trainer  ] " << titles.size() << " titles: " << bytes << " bytes -> " << tokens << " tokens ("
            << static_cast<double>(bytes) / tokens << " bytes/token)\n";
  EXPECT_LT(tokens * 2, bytes);  // at least 2 bytes per token on the text it learnt from

  // Special tokens in text are matched; the gzip'd save loads the same.
  const std::string chat = render_chatml({{"user", "Toy Story (1995)"}}, true);
  EXPECT_EQ(tok.decode(tok.encode(chat)), chat);
  EXPECT_EQ(tok.encode(chat)[0], *tok.token_id("<|im_start|>"));
  Tokenizer(spec).save(dir.file("tokenizer.json.gz"));
  EXPECT_EQ(Tokenizer::load(dir.file("tokenizer.json.gz")).encode(chat), tok.encode(chat));
}

TEST(BpeTrainer, IsDeterministic) {
  const std::vector<std::string> titles = ml100k_titles();
  BpeTrainerOptions options;
  options.vocab_size = 1000;
  testing::TempDir dir;
  Tokenizer(train_bpe(titles, options)).save(dir.file("a.json"));
  Tokenizer(train_bpe(titles, options)).save(dir.file("b.json"));
  const std::string a = read_all(dir.file("a.json"));
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, read_all(dir.file("b.json")));
}

TEST(BpeTrainer, SpecialTokensInTrainingTextAreNotLearnt) {
  std::vector<std::string> texts(50, "<|im_start|>user\nhello world<|im_end|>");
  BpeTrainerOptions options;
  options.vocab_size = 300;
  const TokenizerSpec spec = train_bpe(texts, options);
  for (const auto& [token, id] : spec.vocab) EXPECT_EQ(token.find("im_"), std::string::npos) << token;
  const Tokenizer tok(spec);
  EXPECT_EQ(tok.decode(tok.encode(texts[0])), texts[0]);
}

TEST(BpeTrainer, StopsWhenNoPairRepeatsAndRejectsTinyVocab) {
  const TokenizerSpec spec = train_bpe({"abcd"}, {});
  EXPECT_EQ(spec.merges.size(), 0u);  // every pair occurs once < min_frequency 2
  EXPECT_EQ(spec.vocab.size(), 256u);
  BpeTrainerOptions tiny;
  tiny.vocab_size = 260;
  EXPECT_THROW(train_bpe({"abc"}, tiny), ConfigError);
}

TEST(BpeTrainer, LearnsFourThousandMergesFromTwoMegabytesQuickly) {
  // ~2 MB: the titles in prompt-like sentences, plus pseudo-random words (many distinct pieces).
  std::vector<std::string> texts;
  size_t bytes = 0;
  const std::vector<std::string> titles = ml100k_titles();
  ASSERT_FALSE(titles.empty());
  uint64_t state = 42;
  for (int round = 0; bytes < 2'000'000; ++round) {
    for (size_t i = 0; i < titles.size(); ++i) {
      std::string noise;  // pseudo-random words, so the text has many distinct pieces
      for (int w = 0; w < 3; ++w) {
        noise += ' ';
        for (int c = 3 + static_cast<int>(state % 6); c > 0; --c) {
          state = state * 6364136223846793005ULL + 1442695040888963407ULL;
          noise += static_cast<char>('a' + (state >> 33) % 26);
        }
      }
      texts.push_back("User " + std::to_string(round * 1000 + i) + " watched " + titles[i] + " and then " +
                      titles[(i * 7 + round) % titles.size()] + "." + noise);
      bytes += texts.back().size();
    }
  }
  const auto start = std::chrono::steady_clock::now();
  const TokenizerSpec spec = train_bpe(texts, {});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ trainer  ] " << bytes << " bytes, " << spec.merges.size() << " merges in " << seconds << " s\n";
  EXPECT_EQ(spec.vocab.size() + spec.added_tokens.size(), 4096u);
  EXPECT_LT(seconds, 30.0);  // ~1-2 s measured on one core; generous for loaded CI machines
}

}  // namespace
}  // namespace r2rec
