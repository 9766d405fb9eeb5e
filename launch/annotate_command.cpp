// `r2rec annotate`: the train split's prompts and SFT traces (template teacher, docs/design.md §1) into
// <run.dir>/traces/traces.h5 + traces.json (trainers/traces.h). Rank 0 renders and writes (the template teacher
// is a string formatter: ML-100K's 4715 traces take well under a second); other ranks wait for the agreed
// outcome. Up to date — same shards, same teacher and sft.skip_unreached — is a no-op unless run.force.
// The model teacher (hop-by-hop prompting of a checkpoint with rejection sampling) is not in this version.
#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "launch/command.h"
#include "sampler/manifest.h"
#include "sampler/shard_reader.h"
#include "trainers/task.h"
#include "trainers/traces.h"

namespace r2rec {
namespace fs = std::filesystem;

int command_annotate(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "annotate");
  const Config& c = ctx.config;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string data_dir = ctx.layout.data(), out_dir = ctx.layout.traces();
  const std::string h5_path = ctx.layout.traces_h5(), json_path = ctx.layout.traces_json();
  bool current = false;
  run_agreed([&] {
    if (ctx.process->rank != 0) return;
    const Manifest manifest = read_manifest(data_dir);  // DataError "… not found" when prepare has not run
    if (!c.run.force && fs::exists(json_path) && fs::exists(h5_path)) {
      try {
        const auto j = nlohmann::json::parse(read_file(json_path));
        current = j.value("prepare_hash", "") == manifest.config_hash && j.value("teacher", "") == "template" &&
                  j.value("skip_unreached", !c.sft.skip_unreached) == c.sft.skip_unreached;
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
    int64_t total = 0, reached = 0, skipped = 0, prompt_chars = 0, completion_chars = 0;
    while (reader.next(&e, &chains)) {
      ++total;
      const Trace t = template_trace(e, chains, 0, chains.size(), reader.catalog());
      reached += t.reaching > 0;
      if (t.reaching == 0 && c.sft.skip_unreached) {
        ++skipped;
      } else {
        traces.example_id.push_back(e.id);
        traces.reaching.push_back(t.reaching);
        traces.prompts.push_back(render_chat_prompt(e, chains, 0, chains.size(), reader.catalog()));
        traces.completions.push_back(t.text);
        prompt_chars += static_cast<int64_t>(traces.prompts.back().size());
        completion_chars += static_cast<int64_t>(t.text.size());
      }
      chains.clear();
    }
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
    j["skip_unreached"] = c.sft.skip_unreached;
    j["train_examples"] = total;
    j["traces"] = traces.size();
    j["reached"] = reached;
    j["skipped_unreached"] = skipped;
    j["mean_prompt_chars"] = static_cast<double>(prompt_chars) / traces.size();
    j["mean_completion_chars"] = static_cast<double>(completion_chars) / traces.size();
    const ManifestFile written = checksum_file(out_dir, "traces.h5");
    j["file"] = written.name;
    j["crc32"] = written.crc32;
    j["seconds"] = seconds;
    write_file_atomic(json_path, j.dump(2) + "\n");
    std::printf(
        "annotate: %lld traces (template teacher) -> %s\n"
        "  prompt chains reach the target in %lld of %lld train examples (%.1f%%); %s\n"
        "  mean prompt %.0f chars, mean trace %.0f chars, %.2f s\n",
        static_cast<long long>(traces.size()), h5_path.c_str(), static_cast<long long>(reached),
        static_cast<long long>(total), 100.0 * reached / total,
        c.sft.skip_unreached ? ("left out " + std::to_string(skipped) + " without a reaching chain").c_str()
                             : "the others get a weak-evidence trace",
        j["mean_prompt_chars"].get<double>(), j["mean_completion_chars"].get<double>(), seconds);
    std::fflush(stdout);
  });
  return kExitOk;
}

}  // namespace r2rec
