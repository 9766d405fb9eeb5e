// `r2rec prepare`: dataset -> filtered interactions -> examples + candidates -> train graph -> chains ->
// HDF5 shards + item catalog + manifest, written by every rank in parallel (rank r writes shards r, r+W, ...).
//
// Nothing half-written is ever left in the output folder: all files go to <out>.staging first; rank 0 writes
// the manifest last and then swaps the staging folder in (the previous output survives any failure before
// that). A re-run whose config hash matches a complete output is a no-op unless run.force.
#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/owned_dir.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "distributed/agreement.h"
#include "launch/commands.h"
#include "sampler/prepare.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool output_is_current(const std::string& out, const std::string& hash) {
  try {
    const Manifest m = read_manifest(out);
    if (m.config_hash != hash) return false;
    verify_manifest_files(out, m, /*checksums=*/false);
    return true;
  } catch (const DataError&) {
    return false;
  }
}

std::string fixed2(const nlohmann::json& seconds) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", seconds.get<double>());
  return buf;
}

std::string summary_text(const Manifest& m, const nlohmann::json& s, const std::string& out) {
  std::ostringstream o;
  const auto& d = s["dataset"];
  o << "prepare: " << m.dataset << " -> " << out << "\n"
    << "  raw        " << d["raw_users"] << " users / " << d["raw_items"] << " items / " << d["raw_interactions"]
    << " interactions (" << d["malformed_lines"] << " malformed lines skipped, " << d["duplicates"] << " duplicates)\n"
    << "  filtered   " << m.num_users << " users / " << m.num_items << " items / " << d["interactions"]
    << " interactions (k-core " << s["kcore"] << ", " << d["kcore_rounds"] << " rounds)\n"
    << "  examples   train " << m.examples[0] << " / valid " << m.examples[1] << " / test " << m.examples[2] << ", "
    << m.num_candidates << " candidates each\n";
  const auto& c = s["chains"];
  o << "  chains     " << c["produced"] << " of " << c["requested"] << " requested (closed " << c["by_kind"][0]
    << ", bridge " << c["by_kind"][1] << ", walk " << c["by_kind"][2];
  if (c["by_kind"].size() > 3) o << ", transition " << c["by_kind"][3];  // manifests before the kind hold three
  if (c["by_kind"].size() > 4) o << ", neighbour " << c["by_kind"][4];
  o << ")\n"
    << "  chains per example:";
  const auto& h = c["histogram"];
  for (size_t k = 0; k < h.size(); ++k) o << " " << k << ":" << h[k];
  o << "\n  shards     " << m.shards.size() << " files, " << s["bytes"] << " bytes\n"
    << "  time       " << fixed2(s["seconds"]["total"]) << " s (read+filter " << fixed2(s["seconds"]["load"])
    << " s, chains+write " << fixed2(s["seconds"]["shards"]) << " s)\n";
  return o.str();
}

// Names prepare writes in its output folder (for folders written before ownership markers).
bool data_dir_name(const std::string& n) {
  return n == kManifestName || n == kCatalogName ||
         (n.rfind("shard-", 0) == 0 && n.size() > 3 && n.compare(n.size() - 3, 3, ".h5") == 0);
}

}  // namespace

int command_prepare(CommandContext& ctx, const char* argv0) {
  const Clock::time_point t0 = Clock::now();
  open_run_dir(ctx, argv0, "prepare");
  const Config& config = ctx.config;
  const int rank = ctx.process->rank, world = ctx.process->world_size;
  const std::string out = ctx.layout.data();
  const std::string staging = out + ".staging";
  const std::string hash = prepare_config_hash(config);

  // 1. Up to date? (rank 0 decides for everyone)
  const bool current = agree_on_rank0(rank == 0 && !config.run.force && output_is_current(out, hash));
  if (current) {
    if (rank == 0) {
      std::cout << "prepare: " << out << " is up to date (config hash " << hash
                << "); nothing to do (run.force=true redoes it)\n";
    }
    return kExitOk;
  }

  // 2. Fresh staging folder; the output folder must be r2rec's to replace (core/owned_dir.h), checked first.
  run_agreed([&] {
    if (rank != 0) return;
    check_replaceable(out, data_dir_name);
    make_owned_dir(staging, data_dir_name);
  });
  auto cleanup = [&] {
    if (rank == 0) remove_if_owned(staging, data_dir_name);
  };

  try {
    // 3. The same data on every rank.
    PreparedData data;
    run_agreed([&] { data = build_prepared_data(config); });
    const double load_seconds = seconds_since(t0);
    LOG(INFO) << "prepare: " << describe(data.dataset.stats) << "; examples train " << data.split_counts[0]
              << " / valid " << data.split_counts[1] << " / test " << data.split_counts[2];

    // 4. This rank's shards, on its threads.
    const int64_t S = config.sampler.num_shards;
    std::vector<int64_t> mine;
    for (int64_t s = rank; s < S; s += world) mine.push_back(s);
    int64_t my_examples = 0;
    const int64_t n = static_cast<int64_t>(data.examples.size());
    for (int64_t s : mine) my_examples += (n - s + S - 1) / S;
    std::vector<ShardResult> results(mine.size());
    const Clock::time_point t_shards = Clock::now();
    run_agreed([&] {
      std::atomic<int64_t> progress{0}, next{0};
      std::atomic<int> finished{0};
      std::exception_ptr error;
      std::mutex error_mu;
      const int threads = shard_writer_threads(std::min<int>(
          choose_thread_count(config.distributed.threads, ctx.process->local_size), static_cast<int>(mine.size())));
      auto worker = [&] {
        for (int64_t k; (k = next.fetch_add(1)) < static_cast<int64_t>(mine.size());) {
          try {
            results[k] = build_shard(data, config, mine[k], S, staging, &progress);
          } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!error) error = std::current_exception();
          }
        }
        finished.fetch_add(1);
      };
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
      Progress bar("prepare", my_examples, "examples", rank == 0, 0, 10.0);
      while (finished.load() < threads) {
        bar.update(progress.load());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      for (auto& t : pool) t.join();
      bar.finish();
      if (error) std::rethrow_exception(error);
      if (rank == 0) {
        write_catalog((fs::path(staging) / kCatalogName).string(),
                      ShardMeta{config.data.name, hash, static_cast<uint64_t>(config.run.seed), 0, S},
                      make_catalog(data), static_cast<int>(config.sampler.compression));
      }
    });
    const double shard_seconds = seconds_since(t_shards);

    // 5. Rank 0 collects every shard's result, writes the manifest, swaps the folder in.
    nlohmann::json mine_json = nlohmann::json::array();
    for (size_t k = 0; k < mine.size(); ++k) mine_json.push_back(shard_result_to_json(results[k], mine[k]));
    const std::vector<std::string> all = gather_to_rank0(mine_json.dump());
    run_agreed([&] {
      if (rank != 0) return;
      std::vector<ShardResult> by_shard(S);
      for (const auto& text : all) {
        for (const auto& j : nlohmann::json::parse(text)) {
          int64_t index = 0;
          ShardResult r = shard_result_from_json(j, &index);
          by_shard[index] = std::move(r);
        }
      }
      Manifest m = make_manifest(data, config, by_shard, checksum_file(staging, kCatalogName));
      m.summary["ranks"] = world;
      m.summary["seconds"] = {{"load", load_seconds}, {"shards", shard_seconds}, {"total", seconds_since(t0)}};
      write_manifest(staging, m);
      // Swap: the old output (if any) moves aside, the staging folder moves in, the old one is removed; files in
      // it that r2rec did not write move across into the new one.
      seal_owned_dir(staging);
      replace_owned_dir(out, staging, data_dir_name);
      const std::string text = summary_text(m, m.summary, out);
      std::cout << text << std::flush;  // once: the manifest keeps the same figures (summary)
    });
  } catch (...) {
    cleanup();
    throw;
  }
  return kExitOk;
}

}  // namespace r2rec
