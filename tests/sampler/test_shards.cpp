// HDF5 shards, catalog and manifest: round trip, byte-identical re-writes, and every kind of damage reported
// as one DataError naming the file (truncated shard, wrong schema version, checksum mismatch, bad manifest).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "sampler/hdf5_io.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

Config ml100k_prepare_config(const std::string& out, int64_t shards = 4) {
  return load_config("", {"data.path=" + testing::data_dir() + "/ml-100k", "sampler.output_dir=" + out,
                          "sampler.num_shards=" + std::to_string(shards)});
}

// One prepared ML-100K folder per test binary (0.2 s).
struct Prepared {
  TempDir dir{"r2rec-shards"};
  Config config = ml100k_prepare_config(dir.path());
  Manifest manifest = prepare_in_process(config, dir.path());
  PreparedData data = build_prepared_data(config);
};
const Prepared& prepared() {
  static const Prepared p;
  return p;
}

std::string copy_of(const TempDir& into) {
  for (const auto& e : fs::directory_iterator(prepared().dir.path())) {
    fs::copy_file(e.path(), fs::path(into.path()) / e.path().filename());
  }
  return into.path();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Shards, EveryExampleAndChainRoundTrips) {
  const Prepared& p = prepared();
  const int64_t S = p.config.sampler.num_shards;
  ASSERT_EQ(static_cast<int64_t>(p.manifest.shards.size()), S);
  int64_t total = 0;
  for (int64_t s = 0; s < S; ++s) {
    ShardMeta meta;
    const ExampleColumns cols = read_shard(fs::path(p.dir.path()) / p.manifest.shards[s].name, &meta,
                                           p.data.dataset.num_items(), p.data.dataset.num_users());
    EXPECT_EQ(meta.shard_index, s);
    EXPECT_EQ(meta.num_shards, S);
    EXPECT_EQ(meta.config_hash, prepare_config_hash(p.config));
    for (int64_t r = 0; r < cols.size(); ++r) {
      const Example got = cols.example(r);
      const Example& want = p.data.examples.at(got.id);
      EXPECT_EQ(got.id % S, s);
      EXPECT_EQ(got.user, want.user);
      EXPECT_EQ(got.target, want.target);
      EXPECT_EQ(got.split, want.split);
      EXPECT_EQ(got.position, want.position);
      EXPECT_EQ(got.history, want.history);
      EXPECT_EQ(got.candidates, want.candidates);
      EXPECT_EQ(got.target_index, want.target_index);
    }
    total += cols.size();
  }
  EXPECT_EQ(total, static_cast<int64_t>(p.data.examples.size()));
  EXPECT_EQ(p.manifest.examples[0] + p.manifest.examples[1] + p.manifest.examples[2], total);
}

TEST(Shards, ChainsInShardsAreTheSamplersChains) {
  const Prepared& p = prepared();
  ChainSampler sampler(p.data.graph, p.data.dataset, chain_options(p.config.sampler), p.config.run.seed);
  const ExampleColumns cols = read_shard(fs::path(p.dir.path()) / p.manifest.shards[1].name, nullptr,
                                         p.data.dataset.num_items(), p.data.dataset.num_users());
  for (int64_t r = 0; r < cols.size(); r += 37) {
    ChainBuffer want, got;
    const Example ex = cols.example(r);
    const int n = sampler.sample(p.data.examples[ex.id], &want);
    ASSERT_EQ(cols.copy_chains(r, &got), n);
    EXPECT_EQ(got.nodes, want.nodes);
    EXPECT_EQ(got.types, want.types);
    EXPECT_EQ(got.kinds, want.kinds);
    EXPECT_EQ(check_no_leakage(ex, got, 0, got.size(), p.data.dataset), "");
  }
}

TEST(Shards, CatalogRoundTrips) {
  const Prepared& p = prepared();
  ShardMeta meta;
  const Catalog c = read_catalog(fs::path(p.dir.path()) / kCatalogName, &meta);
  EXPECT_EQ(c.item_titles, p.data.dataset.item_titles);
  EXPECT_EQ(c.item_tokens, p.data.dataset.item_tokens);
  EXPECT_EQ(c.user_tokens, p.data.dataset.user_tokens);
  int64_t edges = 0;
  for (int64_t n : c.item_train_count) edges += n;
  EXPECT_EQ(edges, p.data.graph.num_edges());
  ASSERT_EQ(c.user_train_offsets.size(), static_cast<size_t>(p.data.dataset.num_users()) + 1);
  EXPECT_EQ(static_cast<int64_t>(c.user_train_items.size()), p.data.graph.num_edges());
  for (int32_t u = 0; u < p.data.dataset.num_users(); u += 97) {
    const ItemSpan seq = p.data.dataset.sequence(u);
    const std::vector<int32_t> got(c.user_train_items.begin() + c.user_train_offsets[u],
                                   c.user_train_items.begin() + c.user_train_offsets[u + 1]);
    EXPECT_EQ(got, std::vector<int32_t>(seq.begin(), seq.end() - 2));  // all but the valid and test targets
  }
}

TEST(Shards, SameSeedSameBytesOtherSeedOtherBytes) {
  TempDir a, b, c;
  const Manifest ma = prepare_in_process(ml100k_prepare_config(a.path()), a.path());
  const Manifest mb = prepare_in_process(ml100k_prepare_config(b.path()), b.path());
  Config other = ml100k_prepare_config(c.path());
  other.run.seed = 99;
  const Manifest mc = prepare_in_process(other, c.path());
  for (size_t s = 0; s < ma.shards.size(); ++s) {
    EXPECT_EQ(ma.shards[s].crc32, mb.shards[s].crc32);
    EXPECT_EQ(ma.shards[s].bytes, mb.shards[s].bytes);
    EXPECT_NE(ma.shards[s].crc32, mc.shards[s].crc32);
  }
  EXPECT_EQ(ma.catalog.crc32, mb.catalog.crc32);
}

TEST(Shards, TruncatedShardIsNamed) {
  TempDir t;
  const std::string dir = copy_of(t);
  const std::string victim = (fs::path(dir) / prepared().manifest.shards[2].name).string();
  fs::resize_file(victim, fs::file_size(victim) / 2);
  const std::string msg = error_of([&] { ShardReader r({dir}); });
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  // Opening the damaged file directly is a clean DataError too, never a crash.
  const std::string direct = error_of([&] { read_shard(victim, nullptr, 1 << 20, 1 << 20); });
  EXPECT_NE(direct.find(victim), std::string::npos) << direct;
}

TEST(Shards, ChecksumMismatchIsNamed) {
  TempDir t;
  const std::string dir = copy_of(t);
  const std::string victim = (fs::path(dir) / prepared().manifest.shards[0].name).string();
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) - 100));
    f.put('\x5a');
  }
  const std::string msg = error_of([&] { ShardReader r({dir}); });
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
}

TEST(Shards, WrongSchemaVersionIsNamed) {
  TempDir t;
  const std::string path = t.file("future.h5");
  {
    h5::File f = h5::File::create(path);
    f.set_attr("format", std::string(kShardFormat));
    f.set_attr("schema_version", int64_t{kShardSchemaVersion + 1});
    f.close();
  }
  const std::string msg = error_of([&] { read_shard(path, nullptr, 10, 10); });
  EXPECT_NE(msg.find("schema version " + std::to_string(kShardSchemaVersion + 1)), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  const std::string not_ours = error_of([&] {
    h5::File f = h5::File::create(t.file("other.h5"));
    f.close();
    read_shard(t.file("other.h5"), nullptr, 10, 10);
  });
  EXPECT_NE(not_ours.find("not an r2rec"), std::string::npos) << not_ours;
}

TEST(Shards, ManifestProblemsAreNamed) {
  TempDir empty;
  EXPECT_NE(error_of([&] { read_manifest(empty.path()); }).find("no manifest"), std::string::npos);
  TempDir t;
  const std::string dir = copy_of(t);
  t.write(kManifestName, "{\"format\": \"r2rec.shards\", \"schema_version\": 7}");
  EXPECT_NE(error_of([&] { read_manifest(dir); }).find("schema_version: 7"), std::string::npos);
  {
    nlohmann::json j = nlohmann::json::parse(read_file(prepared().dir.path() + "/" + kManifestName));
    j["shards"][0]["crc32"] = "12zz";
    t.write(kManifestName, j.dump());
    EXPECT_NE(error_of([&] { read_manifest(dir); }).find("not 1-8 hexadecimal digits"), std::string::npos);
  }
  t.write(kManifestName, "{not json");
  EXPECT_NE(error_of([&] { read_manifest(dir); }).find("not valid JSON"), std::string::npos);
  TempDir u;
  const std::string dir2 = copy_of(u);
  fs::remove(fs::path(dir2) / prepared().manifest.shards[3].name);
  EXPECT_NE(error_of([&] { ShardReader r({dir2}); }).find("missing"), std::string::npos);
}

TEST(Shards, InconsistentOffsetsAreCaught) {
  // A structurally valid HDF5 shard whose offsets point past its data must be rejected, not read out of bounds.
  TempDir t;
  const Prepared& p = prepared();
  ExampleColumns cols = read_shard(fs::path(p.dir.path()) / p.manifest.shards[0].name, nullptr,
                                   p.data.dataset.num_items(), p.data.dataset.num_users());
  cols.history_offsets.back() += 5;
  ShardMeta meta{"x", "h", 1, 0, 1};
  write_shard(t.file("bad.h5"), meta, cols, 1);
  const std::string msg =
      error_of([&] { read_shard(t.file("bad.h5"), nullptr, p.data.dataset.num_items(), p.data.dataset.num_users()); });
  EXPECT_NE(msg.find("history_offsets"), std::string::npos) << msg;
}

}  // namespace
}  // namespace r2rec
