// Config: defaults, files, overrides, relative paths, round trip, generated docs, world-size rules.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.h"
#include "core/config_schema.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
namespace fs = std::filesystem;
using r2rec::testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Config, DefaultsAreValid) {
  Config c = load_config("");
  EXPECT_EQ(c.sampler.num_candidates, 20);
  EXPECT_EQ(c.eval.ks, (std::vector<int64_t>{1, 3, 5, 10}));
  EXPECT_TRUE(c.distributed.colocated);
  EXPECT_NO_THROW(validate_for_world(c, 1));
  EXPECT_NO_THROW(validate_for_world(c, 4));
}

TEST(Config, FileValuesAndRelativePaths) {
  TempDir dir;
  fs::create_directories(dir.file("sub/data"));
  const std::string path = dir.write("sub/c.yaml",
                                     "data:\n  path: data\n  kcore: 3\n"
                                     "sft:\n  learning_rate: 1e-3\n  skip_unreached: yes\n"
                                     "sampler:\n  chain_types: [closed, walk]\n"
                                     "model:\n  lora:\n    rank: 8\n    targets: [q_proj]\n"
                                     "eval:\n  ks: [1, 5]\n"
                                     "run:\n  dir: out\n");
  Config c = load_config(path);
  EXPECT_EQ(c.data.path, fs::path(dir.file("sub/data")).lexically_normal().string());
  EXPECT_EQ(c.run.dir, fs::path(dir.file("sub/out")).lexically_normal().string());
  EXPECT_EQ(c.data.kcore, 3);
  EXPECT_DOUBLE_EQ(c.sft.learning_rate, 1e-3);
  EXPECT_TRUE(c.sft.skip_unreached);
  EXPECT_EQ(c.sampler.chain_types, (std::vector<std::string>{"closed", "walk"}));
  EXPECT_EQ(c.model.lora.rank, 8);
  EXPECT_EQ(c.model.lora.targets, (std::vector<std::string>{"q_proj"}));
  EXPECT_EQ(c.eval.ks, (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(c.source, path);
}

TEST(Config, OverridesApplyInOrderAfterTheFile) {
  TempDir dir;
  const std::string path = dir.write("c.yaml", "sft:\n  epochs: 3\n");
  Config c = load_config(path, {"sft.epochs=5", "sft.epochs=7", "eval.ks=[1,2]", "run.dir=rel/out",
                                "distributed.backend=mpi", "data.name=a:b # not a comment"});
  EXPECT_EQ(c.sft.epochs, 7);
  EXPECT_EQ(c.eval.ks, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.run.dir, fs::absolute("rel/out").string());  // overrides are relative to the current directory
  EXPECT_EQ(c.distributed.backend, "mpi");
  EXPECT_EQ(c.data.name, "a:b # not a comment");
}

TEST(Config, EmptyFileAndEmptySectionKeepDefaults) {
  TempDir dir;
  EXPECT_EQ(load_config(dir.write("a.yaml", "")).sft.epochs, 1);
  EXPECT_EQ(load_config(dir.write("b.yaml", "sft:\n")).sft.epochs, 1);
}

TEST(Config, ResolvedYamlRoundTrips) {
  TempDir dir;
  Config c = load_config("", {"sft.learning_rate=0.000123456789", "sampler.chain_types=[bridge]", "sampler.max_hops=3",
                              "model.lora.rank=4", "rl.top_p=0.9", "run.force=true", "data.name=a \"quoted\" \\ name"});
  const std::string yaml = to_yaml(c);
  Config back = load_config(dir.write("resolved.yaml", yaml));
  auto body = [](const std::string& y) { return y.substr(y.find('\n')); };  // the first line names the source
  EXPECT_EQ(body(to_yaml(back)), body(yaml));
  EXPECT_DOUBLE_EQ(back.sft.learning_rate, 0.000123456789);
  EXPECT_EQ(back.data.name, "a \"quoted\" \\ name");
}

TEST(Config, EveryKeyHasDocsAndAppearsInTheTemplate) {
  const std::string tmpl = config_template_yaml();
  for (const auto& f : config_detail::schema()) {
    EXPECT_FALSE(f.doc.empty()) << f.key;
    const std::string leaf = f.key.substr(f.key.rfind('.') + 1);
    EXPECT_NE(tmpl.find(" " + leaf + ": "), std::string::npos) << f.key;
  }
  // The template itself is a valid config equal to the defaults (paths aside: they resolve against its folder).
  TempDir dir;
  Config back = load_config(dir.write("t.yaml", tmpl));
  const Config defaults;
  for (const auto& f : config_detail::schema()) {
    if (f.kind == config_detail::Kind::kPath) continue;
    EXPECT_EQ(config_detail::value_text(f, back), config_detail::value_text(f, defaults)) << f.key;
  }
}

TEST(Config, CommittedDocsMatchTheSchema) {
  // Regenerate with: build/r2rec config-doc > docs/config.md; build/r2rec config-doc --yaml > configs/defaults.yaml
  EXPECT_EQ(slurp(testing::source_dir() + "/docs/config.md"), config_reference_markdown());
  EXPECT_EQ(slurp(testing::source_dir() + "/configs/defaults.yaml"), config_template_yaml());
}

TEST(Config, ShippedConfigsLoad) {
  for (const auto& entry : fs::directory_iterator(testing::source_dir() + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path().string()));
  }
}

TEST(Config, WorldSizeRules) {
  Config c = load_config("", {"distributed.colocated=false", "distributed.learner_ranks=2",
                              "distributed.rollout_ranks=1", "sft.batch_size=8", "sft.micro_batch_size=4",
                              "rl.prompts_per_step=2", "rl.group_size=4", "rl.micro_batch_size=2"});
  EXPECT_NO_THROW(validate_for_world(c, 3));
  EXPECT_THROW(validate_for_world(c, 4), ConfigError);  // 2 + 1 != 4
  Config d = load_config("", {"sft.batch_size=32", "sft.micro_batch_size=4"});
  EXPECT_NO_THROW(validate_for_world(d, 2));            // 32 % (2*4) == 0
  EXPECT_THROW(validate_for_world(d, 3), ConfigError);  // 32 % (3*4) != 0
}

TEST(Config, SuggestionsFindTypos) {
  EXPECT_EQ(config_detail::suggest("sft.learnig_rate", config_keys()), "sft.learning_rate");
  EXPECT_EQ(config_detail::suggest("sampler.num_candidate", config_keys()), "sampler.num_candidates");
  EXPECT_EQ(config_detail::suggest("completely.unrelated.thing", config_keys()), "");
}

// The typed JSON fields every JSON reader shares: right types pass, wrong ones are one DataError naming file and key.
TEST(JsonFields, TypedFieldsNameTheFileAndTheKey) {
  const nlohmann::json j = nlohmann::json::parse(
      R"({"n": 7, "big": 18446744073709551615, "f": 2.5, "s": "x", "b": true, "neg": -1, "huge": 1099511627777,
          "null": null})");
  auto message = [](auto&& call) {
    try {
      call();
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(json_field::integer(j, "n", "a.json: "), 7);
  EXPECT_EQ(message([&] { json_field::integer(j, "f", "a.json: "); }), "a.json: f: expected an integer, got 2.5");
  EXPECT_EQ(message([&] { json_field::integer(j, "big", "a.json: "); }),
            "a.json: big: expected an integer, got 18446744073709551615");
  EXPECT_EQ(message([&] { json_field::integer(j, "gone", "a.json: x."); }), "a.json: x.gone: missing");
  EXPECT_EQ(json_field::count(j, "n", "a.json: "), 7);
  EXPECT_EQ(message([&] { json_field::count(j, "neg", "a.json: "); }), "a.json: neg: -1 is outside [0, 2^40]");
  EXPECT_EQ(message([&] { json_field::count(j, "huge", "a.json: "); }),
            "a.json: huge: 1099511627777 is outside [0, 2^40]");
  EXPECT_EQ(json_field::optional(j, "s", std::string("d"), "a.json: "), "x");
  EXPECT_EQ(json_field::optional(j, "gone", std::string("d"), "a.json: "), "d");
  EXPECT_EQ(json_field::optional(j, "null", int64_t{3}, "a.json: "), 3);
  EXPECT_TRUE(json_field::optional(j, "b", false, "a.json: "));
  EXPECT_DOUBLE_EQ(json_field::optional(j, "n", 0.0, "a.json: "), 7.0);  // an integer is a number
  EXPECT_EQ(message([&] { json_field::optional(j, "s", false, "a.json: "); }),
            "a.json: s: has the wrong type (string)");
  EXPECT_EQ(message([&] { json_field::optional(j, "f", int64_t{0}, "a.json: "); }),
            "a.json: f: has the wrong type (number)");
  EXPECT_EQ(message([&] { json_field::optional(j, "big", int64_t{0}, "a.json: "); }),
            "a.json: big: has the wrong type (number)");
}

}  // namespace
}  // namespace r2rec
