// The r2rec command line end to end: help, info --json on 1 and 2 ranks, check, exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::CommandResult;
using testing::run_command;

const char* kCommands[] = {"prepare", "annotate", "sft",      "rl",   "eval",  "baseline",  "run",
                           "explain", "generate", "tokenize", "info", "check", "config-doc"};

TEST(Cli, HelpForEveryCommand) {
  CommandResult top = run_command({testing::r2rec_binary(), "--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* c : kCommands) {
    EXPECT_NE(top.out.find(c), std::string::npos) << c;
    CommandResult r = run_command({testing::r2rec_binary(), c, "--help"});
    EXPECT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.out.find("--config"), std::string::npos) << c;
    EXPECT_NE(r.out.find("--run-dir"), std::string::npos) << c;
  }
  CommandResult v = run_command({testing::r2rec_binary(), "--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("r2rec ", 0), 0u) << v.out;
}

TEST(Cli, CompareSaysWhatIsMissing) {
  testing::TempDir d;
  CommandResult r = run_command({testing::r2rec_binary(), "compare", "llm-rl-gen", "bpr", "--run-dir", d.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(d.file("examples.jsonl") + ": not found"), std::string::npos) << r.err;
  r = run_command({testing::r2rec_binary(), "compare", "a", "b", "c", "--run-dir", d.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("name two methods"), std::string::npos) << r.err;
  r = run_command({testing::r2rec_binary(), "compare", "--run-dir", d.path()});  // the table reads report.json
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("report.json"), std::string::npos) << r.err;
}

// Two configurations, one run per seed each: --against-run-dir reads B from the second set, pairs the examples
// scored on the same list, and skips the one whose list differs. By hand: seed 1, A hits ids 1 and 2, B hits 2
// and 3 (id 4 is on another list in B's run) -> +0/3; seed 2, A hits 1, 2, 3, B hits 1 -> +2/3.
TEST(Cli, CompareTwoConfigurationsSeedBySeed) {
  testing::TempDir d;
  const auto line = [](int id, const char* list, double hit) {
    return "{\"split\":\"valid\",\"id\":" + std::to_string(id) + ",\"user\":" + std::to_string(id) + ",\"list\":\"" +
           list + "\",\"methods\":{\"llm-rl-gen\":{\"hit\":" + std::to_string(hit) + "}}}\n";
  };
  const char* l = "00000000000000a1";
  const char* other = "00000000000000b2";
  d.write("a1/examples.jsonl", line(1, l, 1) + line(2, l, 1) + line(3, l, 0) + line(4, l, 1));
  d.write("b1/examples.jsonl", line(1, l, 0) + line(2, l, 1) + line(3, l, 1) + line(4, other, 0));
  d.write("a2/examples.jsonl", line(1, l, 1) + line(2, l, 1) + line(3, l, 1));
  d.write("b2/examples.jsonl", line(1, l, 1) + line(2, l, 0) + line(3, l, 0));
  CommandResult r = run_command({testing::r2rec_binary(), "compare", "llm-rl-gen", "llm-rl-gen", "--split", "valid",
                                 "--json", "--run-dir", d.file("a1"), "--run-dir", d.file("a2"), "--against-run-dir",
                                 d.file("b1"), "--against-run-dir", d.file("b2")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["examples"], 3);
  EXPECT_NEAR(j["runs"][0]["a"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(j["runs"][0]["b"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(j["runs"][1]["difference"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_EQ(j["runs"][1]["against_run_dir"], d.file("b2"));
  EXPECT_NEAR(j["mean_difference"]["mean"].get<double>(), 1.0 / 3, 1e-12);
  // Each example's difference averaged over the seeds: id 1 (1 + 0)/2, id 2 (0 + 1)/2, id 3 (-1 + 1)/2.
  EXPECT_EQ(j["bootstrap_examples"], 3);
  EXPECT_NEAR(j["bootstrap"]["mean"].get<double>(), 1.0 / 3, 1e-12);

  r = run_command({testing::r2rec_binary(), "compare", "llm-rl-gen", "llm-rl-gen", "--split", "valid", "--run-dir",
                   d.file("a1"), "--run-dir", d.file("a2"), "--against-run-dir", d.file("b1")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--against-run-dir: 1 given for 2 --run-dir"), std::string::npos) << r.err;
  r = run_command({testing::r2rec_binary(), "compare", "--run-dir", d.file("a1"), "--against-run-dir", d.file("b1")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--against-run-dir needs two methods"), std::string::npos) << r.err;
}

void expect_info_object(const nlohmann::json& j, int world) {
  for (const char* key : {"version", "torch_version", "blas", "blas_library", "intra_op_threads", "cuda_available",
                          "nccl_compiled", "rank", "world_size", "local_rank", "role", "mpi_library"}) {
    EXPECT_TRUE(j.contains(key)) << key << " in " << j.dump();
  }
  EXPECT_EQ(j["world_size"], world);
  EXPECT_EQ(j["role"], "learner+rollout");
  EXPECT_GE(j["intra_op_threads"].get<int>(), 1);
}

TEST(Cli, InfoJsonSingleProcess) {
  CommandResult r = run_command({testing::r2rec_binary(), "info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = testing::lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const auto j = nlohmann::json::parse(lines[0]);
  expect_info_object(j, 1);
  EXPECT_EQ(j["rank"], 0);
  EXPECT_EQ(j["launcher"], "none");
}

TEST(Cli, InfoJsonTwoRanksUnderMpirun) {
  CommandResult r = run_command({testing::mpiexec(), "-np", "2", testing::r2rec_binary(), "info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = testing::lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  std::set<int> ranks;
  for (const auto& line : lines) {
    const auto j = nlohmann::json::parse(line);  // throws (test fails) on anything but one JSON object
    expect_info_object(j, 2);
    ranks.insert(j["rank"].get<int>());
    EXPECT_EQ(j["launcher"], "mpirun");
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1}));
}

TEST(Cli, InfoThreadsFollowConfig) {
  CommandResult r = run_command({testing::r2rec_binary(), "info", "--json", "distributed.threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(testing::lines_of(r.out).at(0))["intra_op_threads"], 1);
}

TEST(Cli, CheckPrintsTheResolvedConfigOnRankZeroOnly) {
  CommandResult r = run_command({testing::mpiexec(), "-np", "2", testing::r2rec_binary(), "check", "--config",
                                 testing::source_dir() + "/configs/ml-100k.yaml", "sft.epochs=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t first = r.out.find("# r2rec resolved config");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(r.out.find("# r2rec resolved config", first + 1), std::string::npos) << "printed twice";
  EXPECT_NE(r.out.find("  epochs: 2\n"), std::string::npos);
}

TEST(Cli, TokenizeEncodesAndDecodesLines) {
  const std::string gpt2 = testing::data_dir() + "/tokenizers/gpt2";
  CommandResult enc = run_command({testing::r2rec_binary(), "tokenize", "--tokenizer", gpt2}, "Hello world\nHi\n");
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  EXPECT_EQ(enc.out, "15496 995\n17250\n");  // GPT-2's ids for "Hello", " world", "Hi"
  CommandResult dec = run_command({testing::r2rec_binary(), "tokenize", "--tokenizer", gpt2, "--decode"}, enc.out);
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  EXPECT_EQ(dec.out, "Hello world\nHi\n");
  CommandResult bad =
      run_command({testing::r2rec_binary(), "tokenize", "--tokenizer", "/no/such/tokenizer.json"}, "x\n");
  EXPECT_EQ(bad.exit_code, 2);
  ASSERT_EQ(testing::lines_of(bad.err).size(), 1u) << bad.err;
  EXPECT_NE(bad.err.find("/no/such/tokenizer.json"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace r2rec
