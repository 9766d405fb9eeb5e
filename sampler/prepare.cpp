#include "sampler/prepare.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "sampler/chain_vote.h"
#include "sampler/rng.h"

namespace r2rec {
namespace fs = std::filesystem;

std::string shard_output_dir(const Config& config) {
  return config.sampler.output_dir.empty() ? (fs::path(config.run.dir) / "data").string() : config.sampler.output_dir;
}

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
  add("sampler.train_examples_per_user", std::to_string(c.sampler.train_examples_per_user));
  add("sampler.num_shards", std::to_string(c.sampler.num_shards));
  add("sampler.compression", std::to_string(c.sampler.compression));
  add("run.seed", std::to_string(c.run.seed));
  add("schema_version", std::to_string(kShardSchemaVersion));
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
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

Catalog make_catalog(const PreparedData& data) {
  Catalog c;
  c.item_titles = data.dataset.item_titles;
  c.item_tokens = data.dataset.item_tokens;
  c.user_tokens = data.dataset.user_tokens;
  c.item_train_count = item_popularity(data.graph);
  return c;
}

}  // namespace r2rec
