// `r2rec annotate`: the train split's prompts and SFT traces into <run.dir>/traces/traces.h5 + traces.json
// (trainers/task/traces.h). Each train example gets the direct form (answer only) with probability
// task.direct_share, drawn from a stream keyed by (seed, example id), else the reasoning form, written by
// annotate.teacher:
//   template  the string formatter of trainers/task/task.h (docs/design.md §1). Rank 0 renders and writes
//             (ML-100K's 4715 traces take well under a second); other ranks wait for the agreed outcome.
//   model     a checkpoint prompted hop by hop (trainers/task/teacher.h, trainers/lm/model_teacher.h,
//             docs/teacher.md). The examples it is sent are cut into fixed batches of annotate.batch_size, dealt
//             to the ranks in turn (batch j on rank j mod world), so the traces do not depend on the rank count;
//             each finished batch is saved as traces/teacher/batch-J.json, so an interrupted run resumes where it
//             stopped. Rank 0 gathers the batches and writes the trace file; examples the teacher is not sent (no
//             chain reaches the target, the direct form, past annotate.max_examples) keep the template's trace.
// Up to date — same shards, same settings (the teacher's identity included) — is a no-op unless run.force.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/progress.h"
#include "core/rng.h"
#include "distributed/agreement.h"
#include "launch/commands.h"
#include "sampler/manifest.h"
#include "sampler/shard_reader.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/model_teacher.h"
#include "trainers/task/task.h"
#include "trainers/task/traces.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

// What the model teacher's generations depend on besides the task: its identity (folder, and the CRC-32 of every
// file in it — config, weight shards, tokenizer — and of tokenizer.path when set) and its sampling settings.
std::string teacher_generation(const Config& c) {
  const AnnotateConfig& a = c.annotate;
  const fs::path dir = fs::absolute(a.teacher_model);
  std::vector<std::string> files;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_regular_file()) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  std::string identity = dir.string();
  for (const std::string& name : files)
    identity += " " + name + ":" + std::to_string(checksum_file(dir.string(), name).crc32);
  if (!c.tokenizer.path.empty() && fs::is_regular_file(c.tokenizer.path)) {
    const fs::path t = fs::absolute(c.tokenizer.path);
    identity += " tokenizer:" + std::to_string(checksum_file(t.parent_path().string(), t.filename().string()).crc32);
  }
  return " teacher=model:" + identity + " samples=" + std::to_string(a.samples) +
         " temperature=" + std::to_string(a.temperature) + " top_p=" + std::to_string(a.top_p) +
         " thought_tokens=" + std::to_string(a.thought_tokens) + " batch=" + std::to_string(a.batch_size);
}

// The task settings the traces depend on besides the shards and the teacher.
std::string task_settings(const Config& c) {
  const TaskFormat f = task_format(c);
  return "items=" + std::to_string(static_cast<int>(f.items)) + " users=" + std::to_string(f.user_tokens) +
         " cited=" + std::to_string(f.cited_chains) + " form=" + c.task.trace_form + " layout=" + c.task.chain_layout +
         (f.support_order ? " order=support" : "") + " direct=" + std::to_string(c.task.direct_share) +
         " skip_unreached=" + std::to_string(c.sft.skip_unreached) + " seed=" + std::to_string(c.run.seed) +
         " schema=" + std::to_string(kTraceSchemaVersion);
}

// One train example as annotate sees it: its prompt and template trace rendered while reading; its chains kept
// only when it goes to the model teacher.
struct Item {
  Example example;
  ChainBuffer chains;  // empty unless .teacher
  std::string prompt;  // the ChatML prompt of its form
  Trace trace;         // the template teacher's
  bool direct = false;
  bool teacher = false;  // sent to the model teacher
};

// The model teacher's outcome of one batch, as saved in traces/teacher/batch-J.json and gathered to rank 0.
nlohmann::json outcome_json(int64_t example_id, const TeacherOutcome& o) {
  nlohmann::json j = {{"id", example_id}, {"accepted", o.accepted}, {"tokens", o.tokens}};
  j["verdicts"] = nlohmann::json::array();
  for (TeacherVerdict v : o.verdicts) j["verdicts"].push_back(static_cast<int>(v));
  j["last_thoughts"] = o.last;
  if (o.accepted >= 0) {
    j["completion"] = o.completion;
    j["thoughts"] = nlohmann::json::array();
    for (const TeacherThought& t : o.thoughts)
      j["thoughts"].push_back({{"chain", t.mask.chain}, {"revealed", t.mask.revealed}, {"text", t.text}});
  }
  // A thought cut at its token limit may end inside a multi-byte character: such bytes become U+FFFD here, so a
  // fresh run and a resumed one hold the same text.
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Runs the model teacher over this rank's batches of `items` (those with .teacher), resuming saved batches; returns
// this rank's outcomes as a JSON array and adds the seconds it spent generating.
// A saved batch is reused only when its key (the shards' hash, the task and the teacher's generation settings)
// and its example ids are this run's.
nlohmann::json run_model_teacher(CommandContext& ctx, std::vector<Item>& items, const Catalog& catalog,
                                 const TaskFormat& format, const std::string& key, double* seconds) {
  const Config& c = ctx.config;
  const AnnotateConfig& a = c.annotate;
  std::vector<size_t> sent;
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].teacher) sent.push_back(i);
  const size_t batch = static_cast<size_t>(a.batch_size);
  const size_t batches = (sent.size() + batch - 1) / batch;
  const std::string dir = ctx.layout.traces() + "/teacher";
  fs::create_directories(dir);
  LoadedModel loaded;
  TeacherOptions options;
  options.samples = a.samples;
  options.temperature = a.temperature;
  options.top_p = a.top_p;
  options.thought_tokens = a.thought_tokens;
  options.seed = static_cast<uint64_t>(c.run.seed);
  nlohmann::json mine = nlohmann::json::array();
  int64_t mine_batches = 0, resumed = 0;
  for (size_t b = static_cast<size_t>(ctx.process->rank); b < batches;
       b += static_cast<size_t>(ctx.process->world_size))
    ++mine_batches;
  Progress progress("annotate (model teacher)", mine_batches, "batches", /*enabled=*/ctx.process->rank == 0, 0,
                    /*log_every_s=*/10.0);
  int64_t done = 0;
  for (size_t b = static_cast<size_t>(ctx.process->rank); b < batches;
       b += static_cast<size_t>(ctx.process->world_size)) {
    const std::string path = dir + "/batch-" + std::to_string(b) + ".json";
    const size_t lo = b * batch, hi = std::min(sent.size(), (b + 1) * batch);
    nlohmann::json ids = nlohmann::json::array();
    for (size_t k = lo; k < hi; ++k) ids.push_back(items[sent[k]].example.id);
    if (!c.run.force && fs::exists(path)) {  // run.force starts afresh
      try {
        const auto saved = nlohmann::json::parse(read_file(path));
        if (saved.value("key", "") == key && saved.at("ids") == ids) {
          for (const auto& o : saved.at("outcomes")) mine.push_back(o);
          ++resumed;
          progress.update(++done);
          continue;
        }
      } catch (const std::exception&) {
        // an unreadable batch file is written again
      }
    }
    if (!loaded.model) {
      if (!fs::exists(a.teacher_model + "/config.json"))
        throw DataError(a.teacher_model + "/config.json: not found (annotate.teacher_model names the teacher's " +
                        "model folder)");
      loaded = load_model_folder(a.teacher_model, c.tokenizer.path);
    }
    std::vector<Example> examples;
    std::vector<ChainBuffer> chains;
    for (size_t k = lo; k < hi; ++k) {
      examples.push_back(items[sent[k]].example);
      chains.push_back(items[sent[k]].chains);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<TeacherOutcome> outcomes =
        teach(*loaded.model, *loaded.tokenizer, examples, chains, catalog, format, options);
    *seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json saved = {{"key", key}, {"batch", b}, {"ids", ids}, {"outcomes", nlohmann::json::array()}};
    for (size_t k = 0; k < outcomes.size(); ++k) {
      saved["outcomes"].push_back(outcome_json(examples[k].id, outcomes[k]));
      mine.push_back(saved["outcomes"].back());
    }
    write_file_atomic(path, saved.dump() + "\n");
    progress.update(++done);
  }
  progress.finish();
  if (resumed > 0)
    LOG(INFO) << "annotate: rank " << ctx.process->rank << " resumed " << resumed << " saved teacher batch(es)";
  return mine;
}

// The first `n` accepted traces with their masked prompts, hop by hop (traces/teacher_examples.txt).
std::string teacher_examples(const std::vector<Item>& items, const std::map<int64_t, nlohmann::json>& outcomes,
                             const Catalog& catalog, const TaskFormat& format, size_t n) {
  std::string s;
  size_t shown = 0;
  for (const Item& item : items) {
    const auto it = outcomes.find(item.example.id);
    if (shown == n || it == outcomes.end() || it->second.value("accepted", -1) < 0) continue;
    ++shown;
    const Example& e = item.example;
    s += "=== train example " + std::to_string(e.id) + " (sample " + std::to_string(it->second["accepted"].get<int>()) +
         " accepted)\n";
    for (const auto& t : it->second["thoughts"]) {
      const ChainMask mask{t["chain"].get<int64_t>(), t["revealed"].get<int64_t>()};
      s += "--- masked prompt: chain " + std::to_string(mask.chain + 1) + " revealed up to node " +
           std::to_string(mask.revealed) + "\n" +
           teacher_user_turn(e, item.chains, 0, item.chains.size(), catalog, format, mask) +
           "\n--- thought: " + t["text"].get<std::string>() + "\n";
    }
    s += "--- accepted trace:\n" + it->second["completion"].get<std::string>() + "\n\n";
  }
  return s;
}

}  // namespace

int command_annotate(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "annotate");
  const Config& c = ctx.config;
  const bool model_teacher = c.annotate.teacher == "model";
  const TaskFormat format = task_format(c);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string data_dir = ctx.layout.data(), out_dir = ctx.layout.traces();
  const std::string h5_path = ctx.layout.traces_h5(), json_path = ctx.layout.traces_json();
  std::string settings, batch_key;
  bool current = false;
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    const Manifest manifest = read_manifest(data_dir);  // DataError "… not found" when prepare has not run
    // The teacher's folder is checksummed once: its generation settings key the saved batches; with max_examples
    // and on_reject (which do not change a batch) they make the trace file's settings.
    const std::string task = task_settings(c), generation = model_teacher ? teacher_generation(c) : "";
    settings =
        hex64(fnv1a(task + (model_teacher ? generation + " max_examples=" + std::to_string(c.annotate.max_examples) +
                                                " on_reject=" + c.annotate.on_reject
                                          : "")));
    if (model_teacher) batch_key = hex64(fnv1a(manifest.config_hash + " " + task + generation));
    if (!c.run.force && fs::exists(json_path) && fs::exists(h5_path)) {
      try {
        const auto j = nlohmann::json::parse(read_file(json_path));
        current = j.value("prepare_hash", "") == manifest.config_hash && j.value("teacher", "") == c.annotate.teacher &&
                  j.value("settings", "") == settings;
      } catch (const std::exception&) {
        current = false;
      }
    }
  });
  if (agree_on_rank0(current)) {
    if (ctx.process->rank == 0)
      std::cout << "annotate: " << h5_path << " is up to date; nothing to do (run.force=true redoes it)\n"
                << std::flush;
    return kExitOk;
  }
  settings = broadcast_from_rank0(settings);
  batch_key = broadcast_from_rank0(batch_key);
  // Every rank reads the train split (the model teacher deals batches of it to the ranks; the template teacher's
  // work is rank 0's alone).
  std::vector<Item> items;
  Manifest manifest;
  std::unique_ptr<ShardReader> reader;
  int64_t skipped = 0, total = 0;
  run_agreed([&] {
    if (!model_teacher && ctx.process->rank != 0) return;
    manifest = read_manifest(data_dir);
    reader =
        std::make_unique<ShardReader>(reader_options(ctx, Split::kTrain, /*rank_share=*/false, /*for_eval=*/false));
    Item item;
    int64_t sent = 0;
    Progress progress("annotate", reader->total(), "examples", /*enabled=*/ctx.process->rank == 0, 0,
                      /*log_every_s=*/10.0);
    while (reader->next(&item.example, &item.chains)) {
      if (++total % 256 == 0) progress.update(total);
      item.trace = template_trace(item.example, item.chains, 0, item.chains.size(), reader->catalog(), format);
      if (item.trace.reaching == 0 && c.sft.skip_unreached) {
        ++skipped;
        item.chains.clear();
        continue;
      }
      Rng rng(stream_key(static_cast<uint64_t>(c.run.seed), static_cast<uint64_t>(Stream::kTraceForm),
                         static_cast<uint64_t>(item.example.id)));
      item.direct = rng.uniform() < c.task.direct_share;
      item.teacher = model_teacher && !item.direct && item.trace.reaching > 0 &&
                     (c.annotate.max_examples == 0 || sent < c.annotate.max_examples);
      sent += item.teacher;
      item.prompt = render_chat_prompt(item.example, item.chains, 0, item.chains.size(), reader->catalog(), format,
                                       item.direct ? PromptForm::kDirect : PromptForm::kReason);
      if (!item.teacher) item.chains.clear();
      items.push_back(item);
      item.chains.clear();
    }
    progress.update(total);
    progress.finish();
  });
  double teacher_seconds = 0;
  std::map<int64_t, nlohmann::json> outcomes;  // rank 0: the model teacher's, by example id
  if (model_teacher) {
    nlohmann::json mine;
    run_agreed([&] { mine = run_model_teacher(ctx, items, reader->catalog(), format, batch_key, &teacher_seconds); });
    const std::vector<std::string> all = gather_to_rank0(mine.dump());
    for (const std::string& part : all)
      for (const auto& o : nlohmann::json::parse(part)) outcomes[o["id"].get<int64_t>()] = o;
  }
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    const Catalog& catalog = reader->catalog();
    TraceSet traces;
    traces.dataset = manifest.dataset;
    traces.prepare_hash = manifest.config_hash;
    traces.teacher = c.annotate.teacher;
    int64_t reached = 0, top = 0, direct = 0, prompt_chars = 0, completion_chars = 0;
    int64_t shapes[3] = {0, 0, 0};  // template reasoning-form traces by TraceShape
    int64_t sent = 0, accepted = 0, dropped = 0, fell_back = 0, tokens = 0, samples = 0;
    int64_t verdicts[kTeacherVerdicts] = {};
    for (const Item& item : items) {
      const Example& e = item.example;
      reached += item.trace.reaching > 0;
      top += item.trace.target_top;
      direct += item.direct;
      std::string completion = item.direct ? answer_text(e, e.target_index, catalog, format) : item.trace.text;
      bool from_template = !item.direct;
      if (item.teacher) {
        ++sent;
        const nlohmann::json& o = outcomes.at(e.id);
        tokens += o["tokens"].get<int64_t>();
        for (const auto& v : o["verdicts"]) {
          ++verdicts[v.get<int>()];
          ++samples;
        }
        if (o["accepted"].get<int>() >= 0) {
          ++accepted;
          completion = o["completion"].get<std::string>();
          from_template = false;
        } else if (c.annotate.on_reject == "drop") {
          ++dropped;
          continue;
        } else {
          ++fell_back;
        }
      }
      if (from_template) ++shapes[static_cast<int>(item.trace.shape)];
      traces.example_id.push_back(e.id);
      traces.reaching.push_back(item.trace.reaching);
      traces.target_top.push_back(item.trace.target_top ? 1 : 0);
      traces.direct.push_back(item.direct ? 1 : 0);
      traces.prompts.push_back(item.prompt);
      traces.completions.push_back(completion);
      prompt_chars += static_cast<int64_t>(traces.prompts.back().size());
      completion_chars += static_cast<int64_t>(traces.completions.back().size());
    }
    if (traces.size() == 0)
      throw DataError(data_dir + ": no train example left to annotate (" + std::to_string(total) +
                      " train examples; sft.skip_unreached drops " + std::to_string(skipped) +
                      (dropped > 0 ? ", annotate.on_reject drop " + std::to_string(dropped) : std::string()) + ")");
    fs::create_directories(out_dir);
    write_traces(h5_path, traces, static_cast<int>(c.sampler.compression));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::ordered_json j;
    j["schema_version"] = kTraceSchemaVersion;
    j["dataset"] = traces.dataset;
    j["prepare_hash"] = traces.prepare_hash;
    j["teacher"] = c.annotate.teacher;
    j["settings"] = settings;
    j["train_examples"] = total;
    j["traces"] = traces.size();
    j["direct"] = direct;
    j["reached"] = reached;
    j["target_top"] = top;
    j["skipped_unreached"] = skipped;
    for (TraceShape shape : {TraceShape::kVotes, TraceShape::kEvidence, TraceShape::kNoChain})
      j["shapes"][trace_shape_name(shape)] = shapes[static_cast<int>(shape)];
    if (model_teacher) {
      nlohmann::ordered_json t;
      t["model"] = fs::absolute(c.annotate.teacher_model).string();
      t["samples_per_example"] = c.annotate.samples;
      t["temperature"] = c.annotate.temperature;
      t["top_p"] = c.annotate.top_p;
      t["thought_tokens"] = c.annotate.thought_tokens;
      t["max_examples"] = c.annotate.max_examples;
      t["batch_size"] = c.annotate.batch_size;
      t["on_reject"] = c.annotate.on_reject;
      t["examples_sent"] = sent;
      t["examples_accepted"] = accepted;
      t["acceptance_rate"] = sent > 0 ? static_cast<double>(accepted) / sent : 0.0;
      t["samples"] = samples;
      for (int v = 0; v < kTeacherVerdicts; ++v)
        t["sample_verdicts"][teacher_verdict_name(static_cast<TeacherVerdict>(v))] = verdicts[v];
      t["fell_back_to_template"] = fell_back;
      t["dropped"] = dropped;
      t["tokens_generated"] = tokens;
      t["seconds_generating_rank0"] = teacher_seconds;
      j["model_teacher"] = t;
      write_file_atomic(out_dir + "/teacher_examples.txt", teacher_examples(items, outcomes, catalog, format, 3));
    }
    j["mean_prompt_chars"] = static_cast<double>(prompt_chars) / traces.size();
    j["mean_completion_chars"] = static_cast<double>(completion_chars) / traces.size();
    const ManifestFile written = checksum_file(out_dir, "traces.h5");
    j["file"] = written.name;
    j["crc32"] = written.crc32;
    j["seconds"] = seconds;
    write_file_atomic(json_path, j.dump(2) + "\n");
    std::printf(
        "annotate: %lld traces (%s teacher, %lld in the direct form) -> %s\n"
        "  the prompt's chains reach the target in %lld of %lld train examples (%.1f%%), with the most votes in "
        "%lld (%.1f%%); %s\n"
        "  template reasoning traces by shape: %lld votes, %lld evidence (chains reaching the answer), %lld no chain\n",
        static_cast<long long>(traces.size()), c.annotate.teacher.c_str(), static_cast<long long>(direct),
        h5_path.c_str(), static_cast<long long>(reached), static_cast<long long>(total), 100.0 * reached / total,
        static_cast<long long>(top), 100.0 * top / total,
        c.sft.skip_unreached ? ("left out " + std::to_string(skipped) + " the chains do not reach").c_str()
        : c.task.chain_layout == "grouped" ? "those no chain reaches are kept (\"Candidate <item_ID> 0\")"
                                           : "those no chain reaches are kept (\"No chain reaches it.\")",
        static_cast<long long>(shapes[0]), static_cast<long long>(shapes[1]), static_cast<long long>(shapes[2]));
    if (model_teacher) {
      std::string why;
      for (int v = 1; v < kTeacherVerdicts; ++v)
        why += std::string(v > 1 ? ", " : "") + teacher_verdict_name(static_cast<TeacherVerdict>(v)) + " " +
               std::to_string(verdicts[v]);
      std::printf(
          "  model teacher %s: %lld examples sent, %lld accepted (%.1f%%); %lld samples: %lld accepted, rejected: "
          "%s; %lld to the template, %lld dropped; %lld tokens generated\n",
          c.annotate.teacher_model.c_str(), static_cast<long long>(sent), static_cast<long long>(accepted),
          sent > 0 ? 100.0 * accepted / sent : 0.0, static_cast<long long>(samples),
          static_cast<long long>(verdicts[0]), why.c_str(), static_cast<long long>(fell_back),
          static_cast<long long>(dropped), static_cast<long long>(tokens));
    }
    std::printf("  mean prompt %.0f chars, mean completion %.0f chars, %.2f s\n", j["mean_prompt_chars"].get<double>(),
                j["mean_completion_chars"].get<double>(), seconds);
    std::fflush(stdout);
  });
  return kExitOk;
}

}  // namespace r2rec
