// `r2rec prepare`, `baseline` and `run` end to end through the binary: identical shards on 1 and 2 ranks,
// no-op re-runs, and bad input reported as one line with exit status 2 while nothing half-written is left
// behind and earlier output survives.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
namespace fs = std::filesystem;
using testing::CommandResult;
using testing::run_command;
using testing::TempDir;

std::string ml100k_config() { return testing::source_dir() + "/configs/ml-100k.yaml"; }

std::vector<std::string> r2rec_args(const std::string& cmd, const std::string& run_dir,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {testing::r2rec_binary(), cmd, "--config", ml100k_config(), "--run-dir", run_dir,
                                "run.log_level=warning"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

nlohmann::json manifest_of(const std::string& run_dir) {
  return nlohmann::json::parse(read_file(run_dir + "/data/manifest.json"));
}

void expect_clean_failure(const CommandResult& r, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  const auto lines = testing::r2rec_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find(must_mention), std::string::npos) << lines[0];
  for (const char* bad : {"terminate called", "Check failed", "Segmentation", "*** ", "HDF5-DIAG"}) {
    EXPECT_EQ(r.err.find(bad), std::string::npos) << r.err;
  }
}

TEST(Prepare, SameShardsOnOneAndTwoRanksAndRerunIsANoOp) {
  TempDir a, b;
  const CommandResult one = run_command(r2rec_args("prepare", a.path()));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("943 users / 1682 items / 100000 interactions"), std::string::npos) << one.out;
  std::vector<std::string> two_args = {testing::mpiexec(), "-np", "2"};
  for (const auto& s : r2rec_args("prepare", b.path())) two_args.push_back(s);
  const CommandResult two = run_command(two_args);
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const auto ma = manifest_of(a.path()), mb = manifest_of(b.path());
  EXPECT_EQ(ma["shards"], mb["shards"]);  // names, bytes, crc32, counts
  EXPECT_EQ(ma["catalog"], mb["catalog"]);
  EXPECT_EQ(ma["config_hash"], mb["config_hash"]);
  EXPECT_EQ(mb["summary"]["ranks"], 2);
  EXPECT_TRUE(fs::exists(a.file("config.yaml")));
  EXPECT_TRUE(fs::exists(a.file("logs/rank0.log")));
  EXPECT_TRUE(fs::exists(b.file("logs/rank1.log")));

  const auto before = fs::last_write_time(a.file("data/manifest.json"));
  const CommandResult again = run_command(r2rec_args("prepare", a.path()));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  EXPECT_EQ(fs::last_write_time(a.file("data/manifest.json")), before);
  // A changed setting is a different dataset: redone.
  const CommandResult changed = run_command(r2rec_args("prepare", a.path(), {"sampler.num_candidates=10"}));
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_EQ(manifest_of(a.path())["num_candidates"], 10);
}

TEST(Prepare, MissingDatasetFileIsOneLineAndWritesNothing) {
  TempDir data, run;
  data.write("u.item", "1|Toy Story (1995)|01-Jan-1995||x|0\n");  // no u.data
  const CommandResult r = run_command(r2rec_args("prepare", run.path(), {"data.path=" + data.path()}));
  EXPECT_EQ(r.exit_code, 2);
  expect_clean_failure(r, "u.data");
  EXPECT_FALSE(fs::exists(run.file("data")));
  EXPECT_FALSE(fs::exists(run.file("data.staging")));
}

TEST(Prepare, EmptyAfterFilteringIsOneLine) {
  TempDir run;
  const CommandResult r = run_command(r2rec_args("prepare", run.path(), {"data.min_history=100000"}));
  EXPECT_EQ(r.exit_code, 2);
  expect_clean_failure(r, "min_history");
  EXPECT_FALSE(fs::exists(run.file("data.staging")));
}

TEST(Prepare, FailedRerunKeepsThePreviousOutput) {
  TempDir run, broken;
  ASSERT_EQ(run_command(r2rec_args("prepare", run.path())).exit_code, 0);
  const std::string manifest = read_file(run.file("data/manifest.json"));
  broken.write("u.data", "1\t1\t5\t881250949\nnot a line\n");
  broken.write("u.item", "1|A|01-Jan-1995||x|0\n");
  const CommandResult r = run_command(r2rec_args("prepare", run.path(), {"data.path=" + broken.path()}));
  EXPECT_EQ(r.exit_code, 2);
  expect_clean_failure(r, "u.data:2");
  EXPECT_EQ(read_file(run.file("data/manifest.json")), manifest);
  EXPECT_FALSE(fs::exists(run.file("data.staging")));
}

TEST(Prepare, AgreedFailureUnderMpirun) {
  TempDir data, run;
  data.write("u.item", "1|A|01-Jan-1995||x|0\n");
  std::vector<std::string> args = {testing::mpiexec(), "-np", "2"};
  for (const auto& s : r2rec_args("prepare", run.path(), {"data.path=" + data.path()})) args.push_back(s);
  const CommandResult r = run_command(args);
  expect_clean_failure(r, "u.data");  // one line from rank 0, not one per rank
}

TEST(Baseline, DamagedShardIsOneLine) {
  TempDir run;
  ASSERT_EQ(run_command(r2rec_args("prepare", run.path())).exit_code, 0);
  const std::string shard = run.file("data/shard-00001-of-00004.h5");
  fs::resize_file(shard, 1000);
  const CommandResult r = run_command(r2rec_args("baseline", run.path(), {"--method", "popularity"}));
  EXPECT_EQ(r.exit_code, 2);
  expect_clean_failure(r, "shard-00001-of-00004.h5");
}

// `r2rec run` end to end with a small model: 10 pretraining steps, a 6-step SFT, 2 GRPO steps, eval of the three
// checkpoints (the full default run is README command 1).
TEST(Run, PreparesTrainsAndScoresEverything) {
  TempDir run;
  // LightGCN (~1 min; its own tests) is left out of run.baselines: BPR-MF is then the best classical baseline.
  const std::vector<std::string> small = {"tokenizer.vocab_size=512",
                                          "model.hidden_size=32",
                                          "model.num_layers=1",
                                          "model.num_heads=2",
                                          "model.num_kv_heads=1",
                                          "model.intermediate_size=64",
                                          "sft.batch_size=8",
                                          "sft.micro_batch_size=4",
                                          "sft.max_steps=6",
                                          "eval.max_new_tokens=40",
                                          "distributed.threads=1",
                                          "pretrain.steps=10",
                                          "pretrain.batch_size=8",
                                          "pretrain.micro_batch_size=4",
                                          "pretrain.seq_len=64",
                                          "rl.steps=2",
                                          "rl.prompts_per_step=2",
                                          "rl.group_size=4",
                                          "rl.micro_batch_size=4",
                                          "rl.max_new_tokens=24",
                                          "sampler.chains_per_example=8",
                                          "run.baselines=[itemknn,bpr]"};
  const CommandResult r = run_command(r2rec_args("run", run.path(), small));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(read_file(run.file("report.json")));
  const auto& methods = report["splits"]["test"]["methods"];
  for (const char* m : {"random", "popularity", "chainvote", "itemknn", "bpr", "llm-base", "llm-base-gen", "llm-sft",
                        "llm-sft-gen", "llm-rl", "llm-rl-gen"})
    EXPECT_TRUE(methods.contains(m)) << m;
  EXPECT_FALSE(methods["bpr"].value("fingerprint", std::string()).empty());
  // examples.jsonl: one line per test example, every method's outcome on it, adding up to the report's HR@1.
  const std::string examples = read_file(run.file("examples.jsonl"));
  EXPECT_EQ(std::count(examples.begin(), examples.end(), '\n'), 943);
  double bpr_hits = 0;
  for (size_t at = 0; (at = examples.find("\"bpr\":{\"hit\":", at)) != std::string::npos; ++at) {
    bpr_hits += std::stod(examples.substr(at + 13, 24));
  }
  EXPECT_NEAR(bpr_hits / 943, methods["bpr"]["HR@1"].get<double>(), 1e-9);
  EXPECT_NE(r.out.find("llm-rl-gen   - bpr  HR@1"), std::string::npos) << r.out;  // the paired line
  EXPECT_EQ(methods["popularity"]["examples"], 943);
  EXPECT_EQ(methods["llm-sft"]["examples"], 943);
  // Popularity is far above random on ML-100K; random is near 1/C = 0.05.
  EXPECT_GT(methods["popularity"]["HR@1"].get<double>(), 0.15);
  EXPECT_NEAR(methods["random"]["HR@1"].get<double>(), 0.05, 0.03);
  EXPECT_NEAR(methods["random"]["HR@10"].get<double>(), 0.5, 0.08);
  EXPECT_NE(r.out.find("popularity"), std::string::npos);
  EXPECT_NE(r.out.find("llm-sft"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(run.file("sft/model/model.safetensors")));
  // report.md: the protocol in words and one table per split; the plot; the DONE marker.
  const std::string md = read_file(run.file("report.md"));
  EXPECT_NE(md.find("## Protocol"), std::string::npos) << md;
  EXPECT_NE(md.find("Leave-one-out split"), std::string::npos) << md;
  EXPECT_NE(md.find("## test (943 examples, 20 candidates)"), std::string::npos) << md;
  EXPECT_NE(md.find("| method | HR@1 | HR@3 | HR@5 | HR@10 | NDCG@1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| llm-rl-gen | "), std::string::npos) << md;
  EXPECT_NE(md.find("Paired against the best classical baseline"), std::string::npos) << md;
  EXPECT_TRUE(std::filesystem::exists(run.file("DONE")));
  if (testing::run_command({"/usr/bin/python3", "-c", "import matplotlib"}).exit_code == 0) {
    EXPECT_GT(std::filesystem::file_size(run.file("training.svg")), 1000u);
    EXPECT_TRUE(std::filesystem::exists(run.file("training.png")));
  }
  // A second run redoes nothing but the scoring (the trained baselines' entries hold their fingerprints).
  const CommandResult again = run_command(r2rec_args("run", run.path(), small));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  for (const char* m : {"itemknn", "bpr"}) {
    EXPECT_NE(again.out.find(std::string(m) + ": report entry is up to date"), std::string::npos) << again.out;
  }
  for (const char* stage : {"prepare:", "annotate:", "pretrain:", "sft:", "rl:"}) {
    EXPECT_NE(again.out.find(std::string(stage) + " "), std::string::npos) << stage;
  }
  for (const char* stage : {"pretrain", "sft", "rl"}) {
    EXPECT_NE(again.out.find(std::string(stage) + ": " + run.file(std::string(stage) + "/model") + " is up to date"),
              std::string::npos)
        << again.out;
  }
}

}  // namespace
}  // namespace r2rec
