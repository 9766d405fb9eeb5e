// `r2rec annotate`: the train split's prompts and SFT traces (template teacher, docs/design.md §1) into
// <run.dir>/traces/traces.h5 + traces.json (trainers/task/traces.h). Rank 0 renders and writes (the template teacher
// is a string formatter: ML-100K's 4715 traces take well under a second); other ranks wait for the agreed
// outcome. Each train example gets the direct form (answer only) with probability task.direct_share, drawn
// from a stream keyed by (seed, example id), else the reasoning form. Up to date — same shards and the same
// task.* and sft.skip_unreached settings — is a no-op unless run.force.
// The model teacher (hop-by-hop prompting of a checkpoint with rejection sampling) is not in this version.
#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/progress.h"
#include "core/rng.h"
#include "launch/commands.h"
#include "sampler/manifest.h"
#include "sampler/shard_reader.h"
#include "trainers/task/task.h"
#include "trainers/task/traces.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

// Every setting the traces depend on besides the shards.
std::string annotate_settings(const Config& c) {
  const TaskFormat f = task_format(c);
  return "items=" + std::to_string(static_cast<int>(f.items)) + " users=" + std::to_string(f.user_tokens) +
         " cited=" + std::to_string(f.cited_chains) + " form=" + c.task.trace_form + " layout=" + c.task.chain_layout +
         " direct=" + std::to_string(c.task.direct_share) + " skip_unreached=" + std::to_string(c.sft.skip_unreached) +
         " seed=" + std::to_string(c.run.seed) + " schema=" + std::to_string(kTraceSchemaVersion);
}

}  // namespace

int command_annotate(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "annotate");
  const Config& c = ctx.config;
  const TaskFormat format = task_format(c);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string data_dir = ctx.layout.data(), out_dir = ctx.layout.traces();
  const std::string h5_path = ctx.layout.traces_h5(), json_path = ctx.layout.traces_json();
  const std::string settings = hex64(fnv1a(annotate_settings(c)));
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    const Manifest manifest = read_manifest(data_dir);  // DataError "… not found" when prepare has not run
    bool current = false;
    if (!c.run.force && fs::exists(json_path) && fs::exists(h5_path)) {
      try {
        const auto j = nlohmann::json::parse(read_file(json_path));
        current = j.value("prepare_hash", "") == manifest.config_hash && j.value("teacher", "") == "template" &&
                  j.value("settings", "") == settings;
      } catch (const std::exception&) {
        current = false;
      }
    }
    if (current) {
      std::cout << "annotate: " << h5_path << " is up to date; nothing to do (run.force=true redoes it)\n"
                << std::flush;
      return;
    }
    ShardReader reader(reader_options(ctx, Split::kTrain, /*rank_share=*/false, /*for_eval=*/false));
    TraceSet traces;
    traces.dataset = manifest.dataset;
    traces.prepare_hash = manifest.config_hash;
    Example e;
    ChainBuffer chains;
    int64_t total = 0, reached = 0, top = 0, skipped = 0, direct = 0, prompt_chars = 0, completion_chars = 0;
    int64_t shapes[3] = {0, 0, 0};  // reasoning-form traces by TraceShape
    Progress progress("annotate", reader.total(), "examples", /*enabled=*/true, 0, /*log_every_s=*/10.0);
    while (reader.next(&e, &chains)) {
      ++total;
      if (total % 256 == 0) progress.update(total);
      const Trace t = template_trace(e, chains, 0, chains.size(), reader.catalog(), format);
      reached += t.reaching > 0;
      top += t.target_top;
      if (t.reaching == 0 && c.sft.skip_unreached) {
        ++skipped;
        chains.clear();
        continue;
      }
      Rng rng(stream_key(static_cast<uint64_t>(c.run.seed), static_cast<uint64_t>(Stream::kTraceForm),
                         static_cast<uint64_t>(e.id)));
      const bool is_direct = rng.uniform() < c.task.direct_share;
      direct += is_direct;
      if (!is_direct) ++shapes[static_cast<int>(t.shape)];
      const PromptForm form = is_direct ? PromptForm::kDirect : PromptForm::kReason;
      traces.example_id.push_back(e.id);
      traces.reaching.push_back(t.reaching);
      traces.target_top.push_back(t.target_top ? 1 : 0);
      traces.direct.push_back(is_direct ? 1 : 0);
      traces.prompts.push_back(render_chat_prompt(e, chains, 0, chains.size(), reader.catalog(), format, form));
      traces.completions.push_back(is_direct ? answer_text(e, e.target_index, reader.catalog(), format) : t.text);
      prompt_chars += static_cast<int64_t>(traces.prompts.back().size());
      completion_chars += static_cast<int64_t>(traces.completions.back().size());
      chains.clear();
    }
    progress.update(total);
    progress.finish();
    if (traces.size() == 0)
      throw DataError(data_dir + ": no train example left to annotate (sft.skip_unreached drops all " +
                      std::to_string(total) + ")");
    fs::create_directories(out_dir);
    write_traces(h5_path, traces, static_cast<int>(c.sampler.compression));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::ordered_json j;
    j["schema_version"] = kTraceSchemaVersion;
    j["dataset"] = traces.dataset;
    j["prepare_hash"] = traces.prepare_hash;
    j["teacher"] = "template";
    j["settings"] = settings;
    j["train_examples"] = total;
    j["traces"] = traces.size();
    j["direct"] = direct;
    j["reached"] = reached;
    j["target_top"] = top;
    j["skipped_unreached"] = skipped;
    for (TraceShape shape : {TraceShape::kVotes, TraceShape::kEvidence, TraceShape::kNoChain})
      j["shapes"][trace_shape_name(shape)] = shapes[static_cast<int>(shape)];
    j["mean_prompt_chars"] = static_cast<double>(prompt_chars) / traces.size();
    j["mean_completion_chars"] = static_cast<double>(completion_chars) / traces.size();
    const ManifestFile written = checksum_file(out_dir, "traces.h5");
    j["file"] = written.name;
    j["crc32"] = written.crc32;
    j["seconds"] = seconds;
    write_file_atomic(json_path, j.dump(2) + "\n");
    std::printf(
        "annotate: %lld traces (template teacher, %lld in the direct form) -> %s\n"
        "  the prompt's chains reach the target in %lld of %lld train examples (%.1f%%), with the most votes in "
        "%lld (%.1f%%); %s\n"
        "  reasoning traces by shape: %lld votes, %lld evidence (chains reaching the answer), %lld no chain\n"
        "  mean prompt %.0f chars, mean completion %.0f chars, %.2f s\n",
        static_cast<long long>(traces.size()), static_cast<long long>(direct), h5_path.c_str(),
        static_cast<long long>(reached), static_cast<long long>(total), 100.0 * reached / total,
        static_cast<long long>(top), 100.0 * top / total,
        c.sft.skip_unreached ? ("left out " + std::to_string(skipped) + " the chains do not reach").c_str()
                             : "those no chain reaches are kept (\"No chain reaches it.\")",
        static_cast<long long>(shapes[0]), static_cast<long long>(shapes[1]), static_cast<long long>(shapes[2]),
        j["mean_prompt_chars"].get<double>(), j["mean_completion_chars"].get<double>(), seconds);
    std::fflush(stdout);
  });
  return kExitOk;
}

}  // namespace r2rec
