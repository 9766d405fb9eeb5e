// Invalid configs, end to end through the r2rec binary: each must give exactly one line on stderr that
// names the offending key (or file), exit status 2, print nothing on stdout, and never a trace or abort.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::CommandResult;
using testing::TempDir;

struct BadConfig {
  const char* name;
  const char* yaml;                    // file contents ("" = no file content beyond defaults)
  std::vector<std::string> overrides;  // after the file
  const char* must_mention;            // the key (or file/line) the message must name
};

const std::vector<BadConfig>& cases() {
  static const std::vector<BadConfig> all = {
      {"unknown_section", "trainer:\n  epochs: 3\n", {}, "trainer"},
      {"typo_with_suggestion", "sft:\n  learnig_rate: 0.1\n", {}, "did you mean 'sft.learning_rate'"},
      {"int_wrong_type", "sampler:\n  num_candidates: twenty\n", {}, "sampler.num_candidates"},
      {"int_given_float", "sft:\n  epochs: 1.5\n", {}, "sft.epochs"},
      {"float_wrong_type", "sft:\n  learning_rate: fast\n", {}, "sft.learning_rate"},
      {"float_nan", "sft:\n  learning_rate: .nan\n", {}, "sft.learning_rate"},
      {"below_range", "sampler:\n  num_candidates: 1\n", {}, "sampler.num_candidates"},
      {"negative_clip", "rl:\n  clip_low: -0.1\n", {}, "rl.clip_low"},
      {"zero_exclusive", "sft:\n  learning_rate: 0\n", {}, "sft.learning_rate"},
      {"bool_wrong", "run:\n  force: maybe\n", {}, "run.force"},
      {"enum_wrong", "distributed:\n  backend: gloo\n", {}, "distributed.backend"},
      {"compact_chains_with_titles", "task:\n  chain_layout: compact\n  item_text: title\n", {}, "task.chain_layout"},
      {"compact_chains_without_user_tokens",
       "task:\n  chain_layout: compact\n  user_tokens: false\n",
       {},
       "task.chain_layout"},
      {"grouped_chains_with_titles", "task:\n  chain_layout: grouped\n  item_text: title\n", {}, "task.chain_layout"},
      {"grouped_chains_for_the_model_teacher",
       "task:\n  chain_layout: grouped\nannotate:\n  teacher: model\n  teacher_model: /tmp\n",
       {},
       "task.chain_layout: grouped lists a chain"},
      {"support_order_in_the_forward_layout",
       "task:\n  candidate_order: support\n",
       {},
       "task.candidate_order: support"},
      {"support_order_for_the_model_teacher",
       "task:\n  chain_layout: compact\n  candidate_order: support\nannotate:\n  teacher: model\n  teacher_model: "
       "/tmp\n",
       {},
       "task.candidate_order: support orders"},
      {"transition_chains_with_two_hops",
       "sampler:\n  chain_types: [transition]\n  max_hops: 2\n",
       {},
       "sampler.max_hops: transition chains need 3 hops"},
      {"transition_window_without_transition_chains",
       "sampler:\n  transition_window: 20\n",
       {},
       "sampler.transition_window: is 20 but sampler.chain_types draws no transition chains"},
      {"neighbours_without_neighbour_chains", "sampler:\n  neighbours: 50\n", {}, "sampler.neighbours: is 50"},
      {"min_shared_items_without_closed_chains",
       "sampler:\n  chain_types: [bridge]\n  min_shared_items: 3\n",
       {},
       "sampler.min_shared_items"},
      {"neighbour_chains_with_two_hops",
       "sampler:\n  chain_types: [neighbour]\n  max_hops: 2\n",
       {},
       "sampler.max_hops: neighbour chains need 3 hops"},
      {"nccl_for_cpu_trainers", "distributed:\n  backend: nccl\n", {}, "distributed.backend: nccl: the trainers"},
      {"reward_without_weight", "rl:\n  rewards: [answer]\n", {}, "rl.rewards"},
      {"enum_typo", "data:\n  format: ml100k\n", {}, "did you mean 'ml-100k'"},
      {"missing_data_path", "data:\n  path: /nonexistent/ml-100k\n", {}, "data.path"},
      {"missing_model_path", "model:\n  path: no/such/checkpoint\n", {}, "model.path"},
      {"smeared_keys_on_a_checkpoint", "model:\n  path: /tmp\n  smeared_keys: true\n", {}, "model.smeared_keys"},
      {"copy_lookup_on_a_checkpoint", "model:\n  path: /tmp\n  copy_lookup: 3\n", {}, "model.copy_lookup"},
      {"model_teacher_without_folder", "annotate:\n  teacher: model\n", {}, "annotate.teacher_model: is required"},
      {"teacher_folder_without_model_teacher", "annotate:\n  teacher_model: /tmp\n", {}, "annotate.teacher_model"},
      {"heads_do_not_divide", "model:\n  hidden_size: 256\n  num_heads: 3\n", {}, "model.num_heads"},
      {"kv_heads_do_not_divide", "model:\n  num_heads: 4\n  num_kv_heads: 3\n", {}, "model.num_kv_heads"},
      {"batch_vs_micro", "sft:\n  batch_size: 30\n  micro_batch_size: 4\n", {}, "sft.batch_size"},
      {"roles_vs_world",
       "distributed:\n  colocated: false\n  learner_ranks: 1\n  rollout_ranks: 1\n",
       {},
       "distributed.learner_ranks"},
      {"colocated_with_roles", "distributed:\n  learner_ranks: 2\n", {}, "distributed.learner_ranks"},
      {"ks_beyond_candidates", "sampler:\n  num_candidates: 5\neval:\n  ks: [1, 10]\n", {}, "eval.ks"},
      {"list_given_scalar", "eval:\n  ks: 5\n", {}, "eval.ks"},
      {"chain_type_unknown", "sampler:\n  chain_types: [closed, spiral]\n", {}, "sampler.chain_types"},
      {"closed_needs_4_hops", "sampler:\n  max_hops: 3\n", {}, "sampler.max_hops"},
      {"seq_beyond_positions", "sft:\n  max_seq_len: 4096\nmodel:\n  max_position: 2048\n", {}, "sft.max_seq_len"},
      {"section_is_scalar", "sft: 5\n", {}, "sft"},
      {"duplicate_key", "sft:\n  epochs: 1\n  epochs: 2\n", {}, "duplicate key"},
      {"yaml_syntax", "sft:\n  epochs: [1, 2\n", {}, "YAML syntax error"},
      {"top_level_list", "- a\n- b\n", {}, "expected a mapping"},
      {"override_no_equals", "", {"sft.epochs"}, "key.sub=value"},
      {"override_unknown", "", {"sft.epoch=3"}, "did you mean 'sft.epochs'"},
      {"override_bad_value", "", {"sft.epochs=many"}, "sft.epochs"},
      {"override_out_of_range", "", {"data.kcore=-1"}, "data.kcore"},
      {"value_missing", "sft:\n  epochs:\n", {}, "sft.epochs"},
  };
  return all;
}

void expect_one_clean_line(const CommandResult& r, const std::string& must_mention) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const auto lines = testing::lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find(must_mention), std::string::npos) << lines[0];
  for (const char* bad : {"terminate", "Aborted", "Check failed", "*** ", "Segmentation", "backtrace"}) {
    EXPECT_EQ(r.err.find(bad), std::string::npos) << r.err;
  }
}

class InvalidConfig : public ::testing::TestWithParam<BadConfig> {};

TEST_P(InvalidConfig, OneLineNamingTheKeyAndExit2) {
  const BadConfig& c = GetParam();
  TempDir dir;
  const std::string path = dir.write("bad.yaml", c.yaml);
  std::vector<std::string> argv = {testing::r2rec_binary(), "check", "--config", path};
  argv.insert(argv.end(), c.overrides.begin(), c.overrides.end());
  const CommandResult r = testing::run_command(argv);
  expect_one_clean_line(r, c.must_mention);
  // Every message also names where it came from: the file, or the override.
  const std::string where = c.overrides.empty() ? path : "override";
  EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Cases, InvalidConfig, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<BadConfig>& info) { return std::string(info.param.name); });

TEST(InvalidConfigFile, MissingConfigFileIsNamed) {
  const CommandResult r = testing::run_command({testing::r2rec_binary(), "check", "--config", "/no/such/r2rec.yaml"});
  expect_one_clean_line(r, "/no/such/r2rec.yaml");
}

TEST(InvalidConfigFile, BatchNotDivisibleByThreeRanksUnderMpirun) {
  // 32 sequences cannot be split over 3 learner ranks x 4: every rank agrees, rank 0 alone reports.
  const CommandResult r = testing::run_command({testing::mpiexec(), "-np", "3", testing::r2rec_binary(), "check",
                                                "sft.batch_size=32", "sft.micro_batch_size=4"});
  EXPECT_NE(r.exit_code, 0);
  const auto lines = testing::lines_of(r.err);
  int ours = 0;
  for (const auto& l : lines) ours += l.rfind("r2rec check:", 0) == 0;
  EXPECT_EQ(ours, 1) << r.err;
  EXPECT_NE(r.err.find("sft.batch_size"), std::string::npos) << r.err;
}

TEST(InvalidCommandLine, UnknownOptionAndSubcommand) {
  for (const auto& argv : std::vector<std::vector<std::string>>{{testing::r2rec_binary(), "train"},
                                                                {testing::r2rec_binary(), "check", "--bogus"},
                                                                {testing::r2rec_binary(), "prepare"}}) {
    const CommandResult r = testing::run_command(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::lines_of(r.err).size(), 1u) << r.err;
  }
}

}  // namespace
}  // namespace r2rec
