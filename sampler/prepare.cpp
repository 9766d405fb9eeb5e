#include "sampler/prepare.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/rng.h"
#include "sampler/chain_vote.h"
#include "sampler/hdf5_io.h"

namespace r2rec {
namespace fs = std::filesystem;

std::string prepare_config_hash(const Config& c) {
  // Every field that changes the bytes prepare writes, as text; FNV-1a 64 over it.
  std::string text;
  auto add = [&](const std::string& key, const std::string& value) { text += key + "=" + value + "\n"; };
  add("data.name", c.data.name);
  add("data.format", c.data.format);
  add("data.path", c.data.path);
  add("data.prefix", c.data.prefix);
  add("data.title_field", c.data.title_field);
  add("data.min_rating", std::to_string(c.data.min_rating));
  add("data.kcore", std::to_string(c.data.kcore));
  add("data.min_history", std::to_string(c.data.min_history));
  add("data.skip_malformed", std::to_string(c.data.skip_malformed));
  add("sampler.history_len", std::to_string(c.sampler.history_len));
  add("sampler.num_candidates", std::to_string(c.sampler.num_candidates));
  add("sampler.chains_per_example", std::to_string(c.sampler.chains_per_example));
  add("sampler.max_hops", std::to_string(c.sampler.max_hops));
  for (const auto& t : c.sampler.chain_types) add("sampler.chain_types", t);
  add("sampler.min_shared_items", std::to_string(c.sampler.min_shared_items));
  // Only where transition (neighbour) chains are drawn, so that folders written before the key existed stay current.
  const auto& types = c.sampler.chain_types;
  if (std::find(types.begin(), types.end(), "transition") != types.end())
    add("sampler.transition_window", std::to_string(c.sampler.transition_window));
  if (std::find(types.begin(), types.end(), "neighbour") != types.end())
    add("sampler.neighbours", std::to_string(c.sampler.neighbours));
  add("sampler.train_examples_per_user", std::to_string(c.sampler.train_examples_per_user));
  add("sampler.num_shards", std::to_string(c.sampler.num_shards));
  add("sampler.compression", std::to_string(c.sampler.compression));
  add("run.seed", std::to_string(c.run.seed));
  add("schema_version", std::to_string(kShardSchemaVersion));
  // FNV-1a from offset 1469598103934665603 (one digit short of the standard basis): kept, so that shard folders
  // written by earlier versions keep their hash and stay current.
  return hex64(fnv1a(text, 1469598103934665603ull));
}

PreparedData build_prepared_data(const Config& config) {
  if (config.data.path.empty()) {
    throw ConfigError((config.source.empty() ? std::string("config") : config.source) +
                      ": data.path: prepare needs a dataset folder (set data.path)");
  }
  PreparedData d;
  const uint64_t seed = static_cast<uint64_t>(config.run.seed);
  d.dataset = load_dataset(config.data, seed);
  d.examples = make_examples(d.dataset, config.sampler, seed);
  d.graph = build_train_graph(d.dataset);
  // The leakage guarantee of the graph (no validation/test edge) is an invariant of build_train_graph.
  const std::string graph_problem = check_train_graph(d.graph, d.dataset);
  CHECK(graph_problem.empty()) << "train graph: " << graph_problem;
  for (const auto& e : d.examples) ++d.split_counts[static_cast<int>(e.split)];
  return d;
}

ShardResult build_shard(const PreparedData& data, const Config& config, int64_t index, int64_t count,
                        const std::string& dir, std::atomic<int64_t>* progress) {
  const ChainOptions options = chain_options(config.sampler);
  ChainSampler sampler(data.graph, data.dataset, options, static_cast<uint64_t>(config.run.seed));
  ShardResult result;
  result.chains_per_example_histogram.assign(options.chains_per_example + 1, 0);
  ExampleColumns columns;
  columns.num_candidates = config.sampler.num_candidates;
  ChainBuffer buffer;
  const int64_t n = static_cast<int64_t>(data.examples.size());
  for (int64_t id = index; id < n; id += count) {
    buffer.clear();
    const int made = sampler.sample(data.examples[id], &buffer);
    columns.append(data.examples[id], buffer, 0, made);
    ++result.chains_per_example_histogram[made];
    if (progress) progress->fetch_add(1, std::memory_order_relaxed);
  }
  result.stats = sampler.stats();
  const std::string name = shard_file_name(index, count);
  const std::string path = (fs::path(dir) / name).string();
  const std::string tmp = temp_path_for(path);
  ShardMeta meta{config.data.name, prepare_config_hash(config), static_cast<uint64_t>(config.run.seed), index, count};
  try {
    write_shard(tmp, meta, columns, static_cast<int>(config.sampler.compression));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, path);
  result.file = checksum_file(dir, name);
  result.file.examples = columns.size();
  result.file.chains = columns.chains.size();
  return result;
}

int shard_writer_threads(int wanted) { return h5::library_threadsafe() ? std::max(1, wanted) : 1; }

Catalog make_catalog(const PreparedData& data) {
  Catalog c;
  c.item_titles = data.dataset.item_titles;
  c.item_tokens = data.dataset.item_tokens;
  c.user_tokens = data.dataset.user_tokens;
  c.item_train_count = item_popularity(data.graph);
  for (int32_t u = 0; u < data.dataset.num_users(); ++u) {
    const ItemSpan seq = data.dataset.sequence(u);
    // The train split: everything before the validation target s[n-2] (build_train_graph's edges, in order).
    c.user_train_items.insert(c.user_train_items.end(), seq.begin(), seq.begin() + std::max<int64_t>(0, seq.size - 2));
    c.user_train_offsets.push_back(static_cast<int64_t>(c.user_train_items.size()));
  }
  return c;
}

}  // namespace r2rec

namespace r2rec {

nlohmann::json shard_result_to_json(const ShardResult& r, int64_t index) {
  return {{"index", index},
          {"file", r.file.name},
          {"bytes", r.file.bytes},
          {"crc32", r.file.crc32},
          {"examples", r.file.examples},
          {"chains", r.file.chains},
          {"requested", r.stats.requested},
          {"produced", r.stats.produced},
          {"missing", r.stats.missing},
          {"examples_sampled", r.stats.examples},
          {"by_kind", std::vector<int64_t>(r.stats.by_kind, r.stats.by_kind + kNumChainKinds)},
          {"attempts", r.stats.attempts},
          {"histogram", r.chains_per_example_histogram}};
}

ShardResult shard_result_from_json(const nlohmann::json& j, int64_t* index) {
  ShardResult r;
  *index = j.at("index").get<int64_t>();
  r.file.name = j.at("file").get<std::string>();
  r.file.bytes = j.at("bytes").get<int64_t>();
  r.file.crc32 = j.at("crc32").get<uint32_t>();
  r.file.examples = j.at("examples").get<int64_t>();
  r.file.chains = j.at("chains").get<int64_t>();
  r.stats.requested = j.at("requested").get<int64_t>();
  r.stats.produced = j.at("produced").get<int64_t>();
  r.stats.missing = j.at("missing").get<int64_t>();
  r.stats.examples = j.at("examples_sampled").get<int64_t>();
  // Results written before the transition kind hold three counts; the missing ones are 0.
  const nlohmann::json& by_kind = j.at("by_kind");
  for (int k = 0; k < kNumChainKinds && k < static_cast<int>(by_kind.size()); ++k)
    r.stats.by_kind[k] = by_kind.at(k).get<int64_t>();
  r.stats.attempts = j.at("attempts").get<int64_t>();
  r.chains_per_example_histogram = j.at("histogram").get<std::vector<int64_t>>();
  return r;
}

Manifest make_manifest(const PreparedData& data, const Config& config, const std::vector<ShardResult>& results,
                       const ManifestFile& catalog) {
  Manifest m;
  m.schema_version = kShardSchemaVersion;
  m.dataset = config.data.name;
  m.config_hash = prepare_config_hash(config);
  m.seed = static_cast<uint64_t>(config.run.seed);
  m.num_candidates = config.sampler.num_candidates;
  m.num_users = data.dataset.num_users();
  m.num_items = data.dataset.num_items();
  for (int k = 0; k < 3; ++k) m.examples[k] = data.split_counts[k];
  m.catalog = catalog;
  int64_t requested = 0, produced = 0, attempts = 0, bytes = catalog.bytes;
  std::vector<int64_t> by_kind(kNumChainKinds, 0), histogram(config.sampler.chains_per_example + 1, 0);
  for (const ShardResult& r : results) {
    m.shards.push_back(r.file);
    requested += r.stats.requested;
    produced += r.stats.produced;
    attempts += r.stats.attempts;
    bytes += r.file.bytes;
    for (int k = 0; k < kNumChainKinds; ++k) by_kind[k] += r.stats.by_kind[k];
    for (size_t k = 0; k < histogram.size() && k < r.chains_per_example_histogram.size(); ++k) {
      histogram[k] += r.chains_per_example_histogram[k];
    }
  }
  const DatasetStats& st = data.dataset.stats;
  m.summary["dataset"] = {{"raw_users", st.raw_users},
                          {"raw_items", st.raw_items},
                          {"raw_interactions", st.raw_interactions},
                          {"malformed_lines", st.malformed_lines},
                          {"dropped_by_rating", st.dropped_by_rating},
                          {"duplicates", st.duplicates},
                          {"kcore_rounds", st.kcore_rounds},
                          {"items_without_title", st.items_without_title},
                          {"users", st.users},
                          {"items", st.items},
                          {"interactions", st.interactions}};
  m.summary["kcore"] = config.data.kcore;
  m.summary["chains"] = {{"requested", requested},
                         {"produced", produced},
                         {"by_kind", by_kind},
                         {"histogram", histogram},
                         {"attempts", attempts}};
  m.summary["bytes"] = bytes;
  return m;
}

Manifest prepare_in_process(const Config& config, const std::string& dir) {
  const PreparedData data = build_prepared_data(config);
  const int64_t S = config.sampler.num_shards;
  std::vector<ShardResult> results;
  for (int64_t s = 0; s < S; ++s) results.push_back(build_shard(data, config, s, S, dir, nullptr));
  const ShardMeta meta{config.data.name, prepare_config_hash(config), static_cast<uint64_t>(config.run.seed), 0, S};
  write_catalog((fs::path(dir) / kCatalogName).string(), meta, make_catalog(data),
                static_cast<int>(config.sampler.compression));
  Manifest m = make_manifest(data, config, results, checksum_file(dir, kCatalogName));
  write_manifest(dir, m);
  return m;
}

}  // namespace r2rec
