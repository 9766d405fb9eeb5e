// Dataset readers and filters: real-data counts, title decoding, chronology, every error path.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>

#include "core/error.h"
#include "sampler/dataset.h"
#include "sampler/raw_log.h"
#include "tests/sampler/sampler_fixtures.h"

namespace r2rec::testing {
namespace {

TEST(Ml100k, RawCountsMatchTheDataset) {
  const DatasetStats& s = ml100k().stats;
  EXPECT_EQ(s.raw_users, 943);
  EXPECT_EQ(s.raw_items, 1682);
  EXPECT_EQ(s.raw_interactions, 100000);
  EXPECT_EQ(s.malformed_lines, 0);
  EXPECT_EQ(s.duplicates, 0);
}

TEST(Ml100k, FilteredCountsAreConsistent) {
  const Dataset& ds = ml100k();
  const DatasetStats& s = ds.stats;
  // Every ML-100K user has >= 20 ratings, so the 5-core keeps all users and drops only rare items.
  EXPECT_EQ(s.users, 943);
  EXPECT_EQ(s.items, 1349);
  EXPECT_EQ(s.interactions, 99287);
  EXPECT_EQ(s.users, ds.num_users());
  EXPECT_EQ(s.items, ds.num_items());
  EXPECT_EQ(s.interactions, ds.num_interactions());
  EXPECT_EQ(s.items_without_title, 0);
  std::vector<int64_t> item_count(ds.num_items());
  for (int32_t u = 0; u < ds.num_users(); ++u) {
    EXPECT_GE(ds.sequence(u).size, 5);
    for (int32_t i : ds.sequence(u)) ++item_count[i];
  }
  for (int64_t c : item_count) EXPECT_GE(c, 5);
}

TEST(Ml100k, UnfilteredKeepsEverything) {
  const Dataset ds = load_dataset(ml100k_config(/*kcore=*/0, /*min_history=*/3), kSeed);
  EXPECT_EQ(ds.num_users(), 943);
  EXPECT_EQ(ds.num_items(), 1682);
  EXPECT_EQ(ds.num_interactions(), 100000);
  EXPECT_EQ(ds.user_tokens[0], "1");  // numeric token order
  EXPECT_EQ(ds.item_tokens[1681], "1682");
  EXPECT_EQ(ds.item_titles[0], "Toy Story (1995)");
  EXPECT_EQ(ds.item_titles[266], "unknown");  // item 267
}

TEST(Ml100k, MinRatingDropsLowRatings) {
  DataConfig d = ml100k_config(0, 3);
  d.min_rating = 4;
  const Dataset ds = load_dataset(d, kSeed);
  // 21,201 + 34,174 ratings are 4 or 5.
  EXPECT_EQ(ds.stats.dropped_by_rating, 100000 - 55375);
  EXPECT_EQ(ds.num_interactions(), 55375 - 0) << describe(ds.stats);
}

TEST(Ml100k, Latin1TitlesBecomeUtf8) {
  const Dataset ds = load_dataset(ml100k_config(0, 3), kSeed);
  // u.item line 543 is "Mis\xE9rables, Les (1995)" in ISO-8859-1; é is C3 A9 in UTF-8.
  EXPECT_EQ(ds.item_titles[542], "Mis\xC3\xA9rables, Les (1995)");
  EXPECT_EQ(latin1_to_utf8("a\xE9\xF6\xC1"), "a\xC3\xA9\xC3\xB6\xC3\x81");
}

TEST(Ml100k, SequencesAreChronological) {
  // Every user's sequence follows u.data's timestamps (read here independently).
  const Dataset ds = load_dataset(ml100k_config(0, 3), kSeed);
  std::map<std::pair<std::string, std::string>, long> time;
  std::ifstream in(data_dir() + "/ml-100k/u.data");
  std::string u, i, r;
  long t;
  while (in >> u >> i >> r >> t) time[{u, i}] = t;
  ASSERT_EQ(time.size(), 100000u);
  for (int32_t user = 0; user < ds.num_users(); ++user) {
    long prev = 0;
    for (int32_t item : ds.sequence(user)) {
      const long now = time.at({ds.user_tokens[user], ds.item_tokens[item]});
      ASSERT_GE(now, prev);
      prev = now;
    }
  }
  // Ties keep line order.
  TempDir dir;
  write_ml100k(dir, "7\t3\t5\t300\n7\t1\t5\t100\n7\t2\t5\t200\n7\t4\t5\t200\n", 4);
  const Dataset tiny = load_dataset(tiny_config(dir), kSeed);
  ASSERT_EQ(tiny.num_users(), 1);
  std::vector<std::string> order;
  for (int32_t item : tiny.sequence(0)) order.push_back(tiny.item_tokens[item]);
  EXPECT_EQ(order, (std::vector<std::string>{"1", "2", "4", "3"}));
}

TEST(Ml100k, LoadsFast) {
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset ds = load_dataset(ml100k_config(), kSeed);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0);
  RecordProperty("ml100k_load_seconds", std::to_string(s));
}

TEST(Dedup, KeepsTheFirstOccurrence) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t10\n1\t2\t5\t20\n1\t1\t5\t30\n1\t3\t5\t40\n", 3);
  const Dataset ds = load_dataset(tiny_config(dir), kSeed);
  EXPECT_EQ(ds.stats.duplicates, 1);
  ASSERT_EQ(ds.sequence(0).size, 3);
  EXPECT_EQ(ds.item_tokens[ds.sequence(0)[0]], "1");
}

TEST(KCore, IteratesUntilStable) {
  // Users a,b,c each rate items 1,2; user d rates 1,2,3; item 3 has one rating. With kcore=2: item 3 goes,
  // then everyone still has 2 items. With kcore=3 items 1,2 have 4 ratings but users have 2 -> all gone.
  TempDir dir;
  write_ml100k(
      dir,
      "1\t1\t5\t1\n1\t2\t5\t2\n2\t1\t5\t1\n2\t2\t5\t2\n3\t1\t5\t1\n3\t2\t5\t2\n4\t1\t5\t1\n4\t2\t5\t2\n4\t3\t5\t3\n",
      3);
  const Dataset ds = load_dataset(tiny_config(dir, /*kcore=*/2, /*min_history=*/2), kSeed);
  EXPECT_EQ(ds.num_users(), 4);
  EXPECT_EQ(ds.num_items(), 2);
  try {
    load_dataset(tiny_config(dir, /*kcore=*/3, /*min_history=*/2), kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("k-core"), std::string::npos) << e.what();
  }
}

TEST(Errors, MalformedLineNamesFileAndLine) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t10\n1\t2\t5\n1\t3\t5\t30\n", 3);
  try {
    load_dataset(tiny_config(dir), kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("u.data:2:"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  write_ml100k(dir, "1\t1\t5\t10\n1\t2\tfive\t20\n", 3);
  EXPECT_THROW(load_dataset(tiny_config(dir), kSeed), DataError);
}

TEST(Errors, SkipMalformedCountsLines) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t10\nbad line\n1\t2\t5\t20\n1\t3\tx\t25\n1\t4\t5\t30\n\n", 4);
  DataConfig d = tiny_config(dir);
  d.skip_malformed = true;
  const Dataset ds = load_dataset(d, kSeed);
  EXPECT_EQ(ds.stats.malformed_lines, 2);
  EXPECT_EQ(ds.stats.raw_interactions, 3);
  EXPECT_EQ(ds.num_interactions(), 3);
}

TEST(Errors, MissingFileIsNamed) {
  TempDir dir;
  dir.write("u.data", "1\t1\t5\t10\n1\t2\t5\t20\n1\t3\t5\t30\n");
  try {
    load_dataset(tiny_config(dir), kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("u.item"), std::string::npos) << e.what();
  }
  DataConfig d = tiny_config(dir);
  d.path = dir.file("nope");
  EXPECT_THROW(load_dataset(d, kSeed), DataError);
}

// An item file whose ids name no item of the interactions (random bytes that happen to hold the separator, another
// dataset's file) is refused by name instead of losing every title without a word.
TEST(Errors, ItemFileOfAnotherDatasetIsRefused) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t5\t10\n1\t2\t5\t20\n1\t3\t5\t30\n", 3);
  dir.write("u.item", std::string("\x8f\x01|\xfe\x7f\x03|\xc8\x1b binary") + "\n");
  try {
    load_dataset(tiny_config(dir), kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("u.item: none of its 1 item ids is an item of the interactions"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (unsigned char c : msg) EXPECT_TRUE(std::isprint(c)) << msg;
  }
}

TEST(Errors, EmptyAfterFilteringNamesTheFilter) {
  TempDir dir;
  write_ml100k(dir, "1\t1\t2\t10\n1\t2\t2\t20\n1\t3\t2\t30\n", 3);
  DataConfig d = tiny_config(dir);
  d.min_rating = 3;
  try {
    load_dataset(d, kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("min_rating"), std::string::npos) << e.what();
  }
  d.min_rating = 0;
  d.min_history = 4;
  try {
    load_dataset(d, kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("min_history"), std::string::npos) << e.what();
  }
  d.format = "no-such-format";
  EXPECT_THROW(load_dataset(d, kSeed), ConfigError);
}

TEST(Lastfm, LoadsWithSeededOrder) {
  DataConfig d;
  d.format = "lastfm-hetrec";
  d.path = data_dir() + "/lastfm-hetrec2011";
  d.kcore = 0;
  d.min_history = 3;
  const Dataset a = load_dataset(d, kSeed);
  EXPECT_EQ(a.stats.raw_users, 1892);
  EXPECT_EQ(a.stats.raw_items, 17632);
  EXPECT_EQ(a.stats.raw_interactions, 92834);
  EXPECT_EQ(a.stats.items_without_title, 0);
  EXPECT_EQ(a.item_titles[0], "MALICE MIZER");  // artist id 1
  const Dataset b = load_dataset(d, kSeed);
  const Dataset c = load_dataset(d, kSeed + 1);
  EXPECT_EQ(a.sequence_items, b.sequence_items);
  EXPECT_NE(a.sequence_items, c.sequence_items);
  d.kcore = 5;
  d.min_history = 5;
  const Dataset f = load_dataset(d, kSeed);
  EXPECT_LT(f.num_items(), 17632);
  RecordProperty("lastfm_filtered", describe(f.stats));
  std::cout << "lastfm: " << describe(f.stats) << "\n";
}

TEST(Amazon, LlmrankSequencesLoad) {
  DataConfig d;
  d.format = "recbole-llmrank";
  d.path = data_dir() + "/amazon-games-llmrank";
  d.kcore = 0;
  d.min_history = 3;
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset ds = load_dataset(d, kSeed);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // 440k lines in under 2 s; instrumented code (GCC defines these under -fsanitize) runs several times slower.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  EXPECT_LT(s, 10.0);
#else
  EXPECT_LT(s, 2.0);
#endif
  EXPECT_EQ(ds.stats.raw_users, 50546);
  EXPECT_EQ(ds.stats.raw_items, 16859);
  EXPECT_EQ(ds.stats.raw_interactions, 440264);
  EXPECT_EQ(ds.stats.items_without_title, 0);
  // User "0": 0 1 ... 13 then 14.
  ASSERT_EQ(ds.user_tokens[0], "0");
  ASSERT_EQ(ds.sequence(0).size, 15);
  for (int k = 0; k < 15; ++k) EXPECT_EQ(ds.item_tokens[ds.sequence(0)[k]], std::to_string(k));
  EXPECT_EQ(ds.item_titles[0], "Fire Emblem: The Sacred Stones");
  d.kcore = 5;
  d.min_history = 5;
  const Dataset f = load_dataset(d, kSeed);
  std::cout << "amazon: " << describe(f.stats) << " load " << s << " s\n";
}

TEST(Recbole, HeaderInAnyColumnOrder) {
  TempDir dir("r2rec-recbole");
  const std::string folder = dir.path() + "/mini";
  dir.write("mini/mini.inter",
            "timestamp:float\titem_id:token\trating:float\tuser_id:token\n"
            "30\tb\t4\tu1\n10\ta\t5\tu1\n20\tc\t1\tu1\n5\ta\t5\tu2\n6\tb\t5\tu2\n7\tc\t5\tu2\n");
  dir.write("mini/mini.item", "item_id:token\tname:token_seq\na\tAlpha\nb\tBeta\nc\tGamma\n");
  DataConfig d;
  d.format = "recbole";
  d.path = folder;
  d.title_field = "name";
  d.kcore = 0;
  d.min_history = 3;
  const Dataset ds = load_dataset(d, kSeed);
  ASSERT_EQ(ds.num_users(), 2);
  std::vector<std::string> titles;
  for (int32_t i : ds.sequence(0)) titles.push_back(ds.item_titles[i]);
  EXPECT_EQ(titles, (std::vector<std::string>{"Alpha", "Gamma", "Beta"}));
  d.min_rating = 2;
  EXPECT_EQ(load_dataset(d, kSeed).num_users(), 1);  // u1 is left with 2 < min_history items
  d.min_rating = 0;
  d.title_field = "title";
  try {
    load_dataset(d, kSeed);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("mini.item:1: header lacks field 'title'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace r2rec::testing
