// The language-model pipeline end to end on a small ML-100K slice, through the binary: prepare -> annotate ->
// sft (from scratch: pretrain.steps=0) -> eval, `r2rec generate` on the SFT checkpoint, rl -> eval of the RL
// checkpoint; and the same SFT under `mpirun -np 2` takes the same steps (data-parallel equivalence of the losses).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/files.h"
#include "tests/launch/pipeline_slice.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::json_file;
using testing::r2rec;
using testing::slice;
using testing::TempDir;

TEST(Pipeline, PrepareAnnotateSftEvalGenerate) {
  TempDir dir;
  const auto args = slice(dir.path());
  for (const char* stage : {"prepare", "annotate", "sft", "eval"}) {
    const auto r = r2rec(stage, args);
    ASSERT_EQ(r.exit_code, 0) << stage << "\n" << r.err;
  }
  const auto traces = json_file(dir.file("traces/traces.json"));
  EXPECT_EQ(traces["traces"], 943);  // one train example per user
  EXPECT_EQ(traces["teacher"], "template");
  const auto sft = json_file(dir.file("sft/sft.json"));
  EXPECT_EQ(sft["steps"], 12);
  EXPECT_LT(sft["last_loss"].get<double>(), sft["first_loss"].get<double>() - 0.5) << sft.dump();
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("sft/model/") + f))) << f;
  }
  const auto report = json_file(dir.file("report.json"));
  const auto& methods = report["splits"]["test"]["methods"];
  ASSERT_TRUE(methods.contains("llm-sft")) << report.dump();
  ASSERT_TRUE(methods.contains("llm-sft-gen")) << report.dump();
  EXPECT_EQ(methods["llm-sft"]["examples"], 24);
  for (const char* k : {"HR@1", "HR@10", "NDCG@10"}) {
    const double v = methods["llm-sft"][k];
    EXPECT_TRUE(v >= 0 && v <= 1) << k << " " << v;
  }
  EXPECT_LE(methods["llm-sft"]["HR@1"].get<double>(), methods["llm-sft"]["HR@10"].get<double>());
  const double valid = methods["llm-sft-gen"]["valid"];
  EXPECT_TRUE(valid >= 0 && valid <= 1);
  // The checkpoint loads in `r2rec generate`.
  const auto g = testing::run_command({testing::r2rec_binary(), "generate", "--model", dir.file("sft/model"), "--json",
                                       "--chat", "--max-new-tokens", "8"},
                                      "Toy Story (1995)\n");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const auto line = nlohmann::json::parse(g.out);
  EXPECT_FALSE(line["ids"].empty());
  // GRPO from the SFT checkpoint, then its evaluation joins the report as llm-rl.
  auto rl_args = args;
  rl_args.insert(rl_args.end(), {"rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=4", "rl.micro_batch_size=4",
                                 "rl.max_new_tokens=24"});
  const auto rl = r2rec("rl", rl_args);
  ASSERT_EQ(rl.exit_code, 0) << rl.err;
  const auto rl_json = json_file(dir.file("rl/rl.json"));
  ASSERT_EQ(rl_json["per_step"].size(), 2u);
  for (const auto& step : rl_json["per_step"]) {
    EXPECT_LT(step["old_new_gap"].get<double>(), 1e-4);  // rollout and learner log-probs agree
    EXPECT_GT(step["completion_tokens"].get<int64_t>(), 0);
  }
  EXPECT_LT(rl_json["per_step"][0]["kl"].get<double>(), 1e-6);  // the policy starts at the reference
  // The metrics stream: sft's 12 steps and rl's 2 in metrics.jsonl, the same scalars in the TensorBoard event
  // files, read back by an independent reader (tests/python/read_tfevents.py: framing, CRCs, protobufs).
  std::map<std::tuple<std::string, int64_t>, double> lines;
  std::map<std::string, int> per_stage;
  std::istringstream jsonl(read_file(dir.file("metrics.jsonl")));
  for (std::string l; std::getline(jsonl, l);) {
    const auto j = nlohmann::json::parse(l);
    ++per_stage[j["stage"].get<std::string>()];
    for (const auto& [k, v] : j.items()) {
      if (k == "stage" || k == "step" || k == "time" || !v.is_number()) continue;
      lines[{j["stage"].get<std::string>() + "/" + k, j["step"].get<int64_t>()}] = v.get<double>();
    }
  }
  EXPECT_EQ(per_stage["sft"], 12);
  EXPECT_EQ(per_stage["rl"], 2);
  EXPECT_TRUE(lines.count({"sft/grad_norm", 12}));
  // Validation HR@1 (the valid split) at the last step of each stage (sft.eval_every, rl.eval_every).
  for (const char* k : {"sft/val_hr1", "sft/val_hr1_likelihood", "rl/val_hr1"}) {
    const int64_t step = std::string(k).rfind("sft", 0) == 0 ? 12 : 2;
    const auto it = lines.find({k, step});
    ASSERT_NE(it, lines.end()) << k;
    EXPECT_TRUE(it->second >= 0 && it->second <= 1) << k;
  }
  EXPECT_FALSE(lines.count({"sft/val_hr1", 11}));
  EXPECT_TRUE(lines.count({"rl/reward/answer", 2}));
  std::vector<std::string> reader = {"/usr/bin/python3", testing::source_dir() + "/tests/python/read_tfevents.py"};
  for (const auto& e : std::filesystem::directory_iterator(dir.file("tensorboard"))) reader.push_back(e.path());
  ASSERT_GE(reader.size(), 4u) << "one event file per stage run (sft, rl)";
  const auto events = testing::run_command(reader);
  ASSERT_EQ(events.exit_code, 0) << events.err;
  size_t matched = 0;
  for (const auto& ev : nlohmann::json::parse(events.out)) {
    const auto it = lines.find({ev["tag"].get<std::string>(), ev["step"].get<int64_t>()});
    ASSERT_NE(it, lines.end()) << ev.dump();
    EXPECT_EQ(ev["value"].get<double>(), static_cast<double>(static_cast<float>(it->second))) << ev.dump();
    ++matched;
  }
  EXPECT_EQ(matched, lines.size());
  auto eval_rl = args;
  eval_rl.insert(eval_rl.end(), {"--model", dir.file("rl/model")});
  ASSERT_EQ(r2rec("eval", eval_rl).exit_code, 0);
  EXPECT_TRUE(json_file(dir.file("report.json"))["splits"]["test"]["methods"].contains("llm-rl"));
  // `r2rec explain` on the run directory alone (its config.yaml): the newest model (rl) on user 1's test
  // example, as JSON for tools and as text for a person; a user or split that does not exist is one line, exit 2.
  const std::string run_dir = dir.path();
  const auto ex = r2rec("explain", {"--run-dir", run_dir, "--user", "1", "--json"});
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  const auto j = nlohmann::json::parse(ex.out);
  EXPECT_EQ(j["model"], dir.file("rl/model"));
  EXPECT_EQ(j["split"], "test");
  ASSERT_EQ(j["candidates"].size(), 20u);
  int targets = 0;
  for (const auto& c : j["candidates"]) targets += c["target"].get<bool>();
  EXPECT_EQ(targets, 1);
  EXPECT_TRUE(j["candidates"][j["target_index"].get<size_t>()]["target"].get<bool>());
  EXPECT_FALSE(j["completion"].get<std::string>().empty());
  EXPECT_NE(j["prompt"].get<std::string>().find("Candidates:"), std::string::npos);
  EXPECT_EQ(j["correct"].get<bool>(), j["answer_index"] == j["target_index"]);
  for (const auto& ci : j["citations"]) EXPECT_EQ(ci["grounded"].get<bool>(), ci["why"].get<std::string>().empty());
  const auto text = r2rec("explain", {"--run-dir", run_dir, "--user", "1", "--model", dir.file("sft/model")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* part : {"Prompt (the user turn", "The model's reasoning", "Answer: ", "Citations: ", "sft/model"})
    EXPECT_NE(text.out.find(part), std::string::npos) << part << "\n" << text.out;
  const auto nobody = r2rec("explain", {"--run-dir", run_dir, "--user", "99999"});
  EXPECT_EQ(nobody.exit_code, 2);
  EXPECT_NE(nobody.err.find("--user: '99999' is not a user of ml-100k"), std::string::npos) << nobody.err;
  const auto no_split = r2rec("explain", {"--run-dir", run_dir, "--user", "1", "--split", "dev"});
  EXPECT_EQ(no_split.exit_code, 2);
  EXPECT_NE(no_split.err.find("--split: 'dev' is not a split"), std::string::npos) << no_split.err;
  // Re-runs: annotate and sft are no-ops when current; a changed setting retrains; a changed vocabulary size
  // relearns the tokenizer.
  const auto again = r2rec("annotate", args);
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  const auto same = r2rec("sft", args);
  EXPECT_NE(same.out.find("is up to date"), std::string::npos) << same.out << same.err;
  auto changed = args;
  changed.insert(changed.end(), {"sft.max_steps=3", "tokenizer.vocab_size=400"});
  const auto retrain = r2rec("sft", changed);
  ASSERT_EQ(retrain.exit_code, 0) << retrain.err;
  EXPECT_EQ(json_file(dir.file("sft/sft.json"))["steps"], 3);
  EXPECT_EQ(json_file(dir.file("tokenizer/source.json"))["vocab_size"], 400);
  // 400 learnt tokens + one added token per item (1349) and per user (943), rounded up to a multiple of 64.
  EXPECT_EQ(nlohmann::json::parse(read_file(dir.file("sft/model/config.json")))["vocab_size"].get<int>(),
            (400 + 1349 + 943 + 63) / 64 * 64);
  TempDir other;
  const auto no_model = r2rec("eval", slice(other.path()));
  EXPECT_EQ(no_model.exit_code, 2);
  EXPECT_NE(no_model.err.find("sft/model/config.json: not found (run `r2rec sft` first"), std::string::npos)
      << no_model.err;
}

TEST(Pipeline, SftAndRlOnTwoRanksTakeTheSameSteps) {
  TempDir one, two;
  for (const TempDir* d : {&one, &two}) {
    const auto args = slice(d->path());
    for (const char* stage : {"prepare", "annotate"}) ASSERT_EQ(r2rec(stage, args).exit_code, 0) << stage;
  }
  auto args1 = slice(one.path()), args2 = slice(two.path());
  args1.push_back("sft.max_steps=6");
  args2.push_back("sft.max_steps=6");
  const auto a = r2rec("sft", args1), b = r2rec("sft", args2, 2);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto la = json_file(one.file("sft/sft.json"))["losses"], lb = json_file(two.file("sft/sft.json"))["losses"];
  ASSERT_EQ(la.size(), 6u);
  ASSERT_EQ(lb.size(), 6u);
  EXPECT_EQ(json_file(two.file("sft/sft.json"))["ranks"], 2);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_NEAR(la[i].get<double>(), lb[i].get<double>(), 2e-4 * std::abs(la[i].get<double>())) << "step " << i;
  }
  // GRPO: rollouts are seeded by their global slot, so 2 ranks sample what 1 rank samples and take the same steps.
  const std::vector<std::string> rl = {"rl.steps=2",           "rl.prompts_per_step=2",
                                       "rl.group_size=4",      "rl.micro_batch_size=2",
                                       "rl.max_new_tokens=16", "rl.temperature=1.0"};
  args1.insert(args1.end(), rl.begin(), rl.end());
  args2.insert(args2.end(), rl.begin(), rl.end());
  const auto ra = r2rec("rl", args1), rb = r2rec("rl", args2, 2);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  const auto sa = json_file(one.file("rl/rl.json"))["per_step"], sb = json_file(two.file("rl/rl.json"))["per_step"];
  ASSERT_EQ(sa.size(), 2u);
  ASSERT_EQ(sb.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(sa[i]["completion_tokens"], sb[i]["completion_tokens"]) << "step " << i;
    EXPECT_NEAR(sa[i]["reward"].get<double>(), sb[i]["reward"].get<double>(), 1e-9) << "step " << i;
    EXPECT_NEAR(sa[i]["loss"].get<double>(), sb[i]["loss"].get<double>(),
                1e-4 + 1e-3 * std::abs(sa[i]["loss"].get<double>()));
  }
  // Split 1 learner + 1 rollout rank (np 2) takes the colocated 1-rank steps; asynchronous (staleness 1) learns
  // its second step from completions one version old. The roles do not change the result, so they are not part
  // of the stage's fingerprint: run.force=true retrains.
  for (const bool async : {false, true}) {
    auto split = args1;
    split.insert(split.end(), {"distributed.colocated=false", "distributed.learner_ranks=1",
                               "distributed.rollout_ranks=1", "run.force=true"});
    if (async) split.insert(split.end(), {"rl.async=true", "rl.max_staleness=1"});
    const auto rs = r2rec("rl", split, 2);
    ASSERT_EQ(rs.exit_code, 0) << rs.err;
    const auto j = json_file(one.file("rl/rl.json"));
    EXPECT_EQ(j["mode"], async ? "async" : "split");
    const auto ss = j["per_step"];
    ASSERT_EQ(ss.size(), 2u);
    EXPECT_EQ(ss[0]["completion_tokens"], sa[0]["completion_tokens"]);
    EXPECT_EQ(ss[1]["staleness"].contains(async ? "1" : "0"), true) << ss[1].dump();
    EXPECT_GT(ss[0]["rollout_seconds"].get<double>(), 0.0);
    if (async) continue;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(ss[i]["completion_tokens"], sa[i]["completion_tokens"]) << "step " << i;
      EXPECT_EQ(ss[i]["reward"].get<double>(), sa[i]["reward"].get<double>()) << "step " << i;
      EXPECT_EQ(ss[i]["loss"].get<double>(), sa[i]["loss"].get<double>()) << "step " << i;
    }
    EXPECT_GT(ss[0]["sync_bytes"].get<int64_t>(), 0);
  }
}

// The model teacher (annotate.teacher model) on the slice's SFT model: its batches are dealt to the ranks in turn and
// each thought is seeded by (example, sample, step), so one rank and two write byte-identical outcomes; a re-run is
// a no-op; an interrupted run resumes from its saved batches and writes what it would have written.
TEST(Pipeline, ModelTeacherWritesTheSameTracesOnOneAndTwoRanks) {
  TempDir d;
  auto args = slice(d.path());
  args.push_back("sft.max_steps=6");
  for (const char* stage : {"prepare", "annotate", "sft"}) ASSERT_EQ(r2rec(stage, args).exit_code, 0) << stage;
  auto teacher = args;
  teacher.insert(teacher.end(), {"annotate.teacher=model", "annotate.teacher_model=" + d.file("sft/model"),
                                 "annotate.max_examples=10", "annotate.batch_size=3", "annotate.samples=2",
                                 "annotate.thought_tokens=6", "annotate.temperature=1.5"});
  const auto batches = [&] {
    std::vector<std::string> out;
    for (int b = 0; b < 4; ++b) out.push_back(read_file(d.file("traces/teacher/batch-" + std::to_string(b) + ".json")));
    return out;
  };
  const auto one = r2rec("annotate", teacher);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("model teacher"), std::string::npos) << one.out;
  const auto t1 = json_file(d.file("traces/traces.json"));
  EXPECT_EQ(t1["teacher"], "model");
  const auto& m = t1["model_teacher"];
  EXPECT_EQ(m["examples_sent"], 10);
  EXPECT_EQ(m["samples"], 20);
  int64_t judged = 0;
  for (const auto& [reason, n] : m["sample_verdicts"].items()) judged += n.get<int64_t>();
  EXPECT_EQ(judged, 20);
  EXPECT_GT(m["tokens_generated"].get<int64_t>(), 0);
  EXPECT_EQ(t1["traces"], 943);  // rejected examples keep the template's trace (annotate.on_reject template)
  const std::vector<std::string> b1 = batches();
  const auto again = r2rec("annotate", teacher);
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  // Two ranks, afresh.
  auto forced = teacher;
  forced.push_back("run.force=true");
  const auto two = r2rec("annotate", forced, 2);
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_EQ(batches(), b1);
  const auto t2 = json_file(d.file("traces/traces.json"));
  EXPECT_EQ(t2["crc32"], t1["crc32"]);
  EXPECT_EQ(t2["model_teacher"]["sample_verdicts"], m["sample_verdicts"]);
  // Interrupted: the trace file and one batch lost; the re-run redoes only that batch.
  std::filesystem::remove(d.file("traces/traces.json"));
  std::filesystem::remove(d.file("traces/teacher/batch-2.json"));
  const auto resumed = r2rec("annotate", teacher);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed 3 saved teacher batch(es)"), std::string::npos) << resumed.err;
  EXPECT_EQ(batches(), b1);
  EXPECT_EQ(json_file(d.file("traces/traces.json"))["crc32"], t1["crc32"]);
  // What an example gets when every sample is rejected does not change a batch: all 4 are resumed.
  auto dropping = teacher;
  dropping.push_back("annotate.on_reject=drop");
  const auto dropped = r2rec("annotate", dropping);
  ASSERT_EQ(dropped.exit_code, 0) << dropped.err;
  EXPECT_NE(dropped.err.find("resumed 4 saved teacher batch(es)"), std::string::npos) << dropped.err;
  // New shards (another chain count): the saved batches answer other prompts, so none is resumed.
  auto other = teacher;
  other.push_back("sampler.chains_per_example=8");
  ASSERT_EQ(r2rec("prepare", other).exit_code, 0);
  const auto fresh = r2rec("annotate", other);
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_EQ(fresh.err.find("resumed"), std::string::npos) << fresh.err;
  EXPECT_NE(batches(), b1);
  // The teacher's folder must exist; the key is refused without annotate.teacher model.
  auto missing = teacher;
  missing.insert(missing.end(), {"annotate.teacher_model=" + d.file("nowhere"), "run.force=true"});
  const auto no_teacher = r2rec("annotate", missing);
  EXPECT_EQ(no_teacher.exit_code, 2);
  EXPECT_NE(no_teacher.err.find("nowhere/config.json: not found (annotate.teacher_model"), std::string::npos)
      << no_teacher.err;
  auto stray = args;
  stray.push_back("annotate.teacher_model=" + d.file("sft/model"));
  const auto refused = r2rec("annotate", stray);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("annotate.teacher_model: is read only with annotate.teacher model"), std::string::npos)
      << refused.err;
}

// A folder r2rec would replace (the shards, a stage's model) that holds a file r2rec did not write: if r2rec did
// not write the folder, the command stops with one line naming it (exit 2) and touches nothing; if it did, the
// new output replaces r2rec's files and the user's file survives.
TEST(Pipeline, NeverDeletesFilesItDidNotWrite) {
  TempDir d, elsewhere;
  const auto args = slice(d.path());
  auto plant = [](const std::string& dir, const std::string& name) {
    std::filesystem::create_directories(dir);
    write_file_atomic(dir + "/" + name, "mine\n");
  };
  auto refused = [](const testing::CommandResult& r, const std::string& dir, const std::string& name) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(dir + ": holds '" + name + "', which r2rec did not write"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(dir + "/" + name), "mine\n");
  };
  // prepare: into a folder of the user's, then into r2rec's own folder with a user's file added.
  plant(d.file("data"), "notes.txt");
  refused(r2rec("prepare", args), d.file("data"), "notes.txt");
  EXPECT_FALSE(std::filesystem::exists(d.file("data/manifest.json")));
  std::filesystem::remove(d.file("data/notes.txt"));
  ASSERT_EQ(r2rec("prepare", args).exit_code, 0);
  plant(d.file("data"), "notes.txt");
  auto force = args;
  force.push_back("run.force=true");
  ASSERT_EQ(r2rec("prepare", force).exit_code, 0);
  EXPECT_EQ(read_file(d.file("data/notes.txt")), "mine\n");
  EXPECT_TRUE(std::filesystem::exists(d.file("data/manifest.json")));
  auto other = args;
  other.push_back("sampler.output_dir=" + elsewhere.path());
  plant(elsewhere.path(), "mine.txt");
  refused(r2rec("prepare", other), elsewhere.path(), "mine.txt");
  // sft and rl: the stage's model folder.
  ASSERT_EQ(r2rec("annotate", args).exit_code, 0);
  auto sft = args;
  sft.push_back("sft.max_steps=2");
  plant(d.file("sft/model"), "mine.txt");
  refused(r2rec("sft", sft), d.file("sft/model"), "mine.txt");
  std::filesystem::remove(d.file("sft/model/mine.txt"));
  ASSERT_EQ(r2rec("sft", sft).exit_code, 0);
  plant(d.file("sft/model"), "mine.txt");
  sft.push_back("run.force=true");
  ASSERT_EQ(r2rec("sft", sft).exit_code, 0);
  EXPECT_EQ(read_file(d.file("sft/model/mine.txt")), "mine\n");
  EXPECT_TRUE(std::filesystem::exists(d.file("sft/model/config.json")));
  auto rl = args;
  rl.insert(rl.end(),
            {"rl.steps=1", "rl.prompts_per_step=2", "rl.group_size=2", "rl.micro_batch_size=2", "rl.max_new_tokens=8"});
  plant(d.file("rl/model"), "mine.txt");
  refused(r2rec("rl", rl), d.file("rl/model"), "mine.txt");
  std::filesystem::remove(d.file("rl/model/mine.txt"));
  ASSERT_EQ(r2rec("rl", rl).exit_code, 0);
  plant(d.file("rl/model"), "mine.txt");
  rl.push_back("run.force=true");
  ASSERT_EQ(r2rec("rl", rl).exit_code, 0);
  EXPECT_EQ(read_file(d.file("rl/model/mine.txt")), "mine\n");
  EXPECT_TRUE(std::filesystem::exists(d.file("rl/model/model.safetensors")));
}

}  // namespace
}  // namespace r2rec
