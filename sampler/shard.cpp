#include "sampler/shard.h"

#include <cstdio>
#include <limits>

#include "core/error.h"
#include "sampler/hdf5_io.h"

namespace r2rec {

std::string shard_file_name(int64_t index, int64_t count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "shard-%05lld-of-%05lld.h5", static_cast<long long>(index),
                static_cast<long long>(count));
  return buf;
}

void ExampleColumns::append(const Example& ex, const ChainBuffer& buffer, int64_t first, int64_t count) {
  if (num_candidates == 0) num_candidates = static_cast<int64_t>(ex.candidates.size());
  id.push_back(ex.id);
  user.push_back(ex.user);
  target.push_back(ex.target);
  split.push_back(static_cast<int8_t>(ex.split));
  position.push_back(ex.position);
  target_index.push_back(ex.target_index);
  candidates.insert(candidates.end(), ex.candidates.begin(), ex.candidates.end());
  history_items.insert(history_items.end(), ex.history.begin(), ex.history.end());
  history_offsets.push_back(static_cast<int64_t>(history_items.size()));
  for (int64_t c = first; c < first + count; ++c) {
    const int64_t b = buffer.offsets[c], e = buffer.offsets[c + 1];
    chains.nodes.insert(chains.nodes.end(), buffer.nodes.begin() + b, buffer.nodes.begin() + e);
    chains.types.insert(chains.types.end(), buffer.types.begin() + b, buffer.types.begin() + e);
    chains.offsets.push_back(static_cast<int64_t>(chains.nodes.size()));
    chains.kinds.push_back(buffer.kinds[c]);
  }
  chain_offsets.push_back(chains.size());
}

Example ExampleColumns::example(int64_t e) const {
  Example ex;
  ex.id = id[e];
  ex.user = user[e];
  ex.target = target[e];
  ex.split = static_cast<Split>(split[e]);
  ex.position = position[e];
  ex.target_index = target_index[e];
  ex.candidates.assign(candidates.begin() + e * num_candidates, candidates.begin() + (e + 1) * num_candidates);
  ex.history.assign(history_items.begin() + history_offsets[e], history_items.begin() + history_offsets[e + 1]);
  return ex;
}

int64_t ExampleColumns::copy_chains(int64_t e, ChainBuffer* out) const {
  for (int64_t c = chain_offsets[e]; c < chain_offsets[e + 1]; ++c) {
    const int64_t b = chains.offsets[c], end = chains.offsets[c + 1];
    out->nodes.insert(out->nodes.end(), chains.nodes.begin() + b, chains.nodes.begin() + end);
    out->types.insert(out->types.end(), chains.types.begin() + b, chains.types.begin() + end);
    out->offsets.push_back(static_cast<int64_t>(out->nodes.size()));
    out->kinds.push_back(chains.kinds[c]);
  }
  return chain_offsets[e + 1] - chain_offsets[e];
}

namespace {

void write_meta(h5::File& f, const char* format, const ShardMeta& meta) {
  f.set_attr("format", std::string(format));
  f.set_attr("schema_version", kShardSchemaVersion);
  f.set_attr("dataset", meta.dataset);
  f.set_attr("config_hash", meta.config_hash);
  f.set_attr("seed", static_cast<int64_t>(meta.seed));
  f.set_attr("shard_index", meta.shard_index);
  f.set_attr("num_shards", meta.num_shards);
}

ShardMeta read_meta(const h5::File& f, const char* format) {
  const std::string got = f.has_attr("format") ? f.attr_string("format") : "";
  if (got != format) {
    throw DataError(f.path() + ": not an r2rec " + std::string(format) + " file (format attribute '" + got + "')");
  }
  const int64_t version = f.attr_int("schema_version");
  if (version != kShardSchemaVersion) {
    throw DataError(f.path() + ": schema version " + std::to_string(version) + ", this r2rec reads version " +
                    std::to_string(kShardSchemaVersion) + " (re-run prepare with run.force=true)");
  }
  ShardMeta meta;
  meta.dataset = f.attr_string("dataset");
  meta.config_hash = f.attr_string("config_hash");
  meta.seed = static_cast<uint64_t>(f.attr_int("seed"));
  meta.shard_index = f.attr_int("shard_index");
  meta.num_shards = f.attr_int("num_shards");
  return meta;
}

// Offsets must start at 0, never decrease, and end at the size of the array they index.
void check_offsets(const std::string& path, const char* name, const std::vector<int64_t>& offsets, size_t rows,
                   size_t target_size) {
  if (offsets.size() != rows + 1 || offsets.front() != 0 || static_cast<size_t>(offsets.back()) != target_size) {
    throw DataError(path + ": " + name + ": inconsistent offsets (" + std::to_string(offsets.size()) + " for " +
                    std::to_string(rows) + " rows)");
  }
  for (size_t i = 1; i < offsets.size(); ++i) {
    if (offsets[i] < offsets[i - 1])
      throw DataError(path + ": " + name + ": offsets decrease at row " + std::to_string(i));
  }
}

template <class T>
void check_range(const std::string& path, const char* name, const std::vector<T>& v, int64_t lo, int64_t hi) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < lo || v[i] >= hi) {
      throw DataError(path + ": " + name + ": value " + std::to_string(static_cast<int64_t>(v[i])) + " at " +
                      std::to_string(i) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }
}

template <class T>
void check_rows(const std::string& path, const char* name, const std::vector<T>& v, size_t rows) {
  if (v.size() != rows) {
    throw DataError(path + ": " + name + ": " + std::to_string(v.size()) + " rows, expected " + std::to_string(rows));
  }
}

// Flat UTF-8 strings: bytes + offsets.
void write_strings(h5::File& f, const std::string& prefix, const std::vector<std::string>& strings, int compression) {
  std::vector<int64_t> offsets = {0};
  std::vector<uint8_t> bytes;
  for (const auto& s : strings) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    offsets.push_back(static_cast<int64_t>(bytes.size()));
  }
  f.write(prefix + "_offsets", offsets, compression);
  f.write(prefix + "_bytes", bytes, compression);
}

std::vector<std::string> read_strings(const h5::File& f, const std::string& prefix) {
  const auto offsets = f.read<int64_t>(prefix + "_offsets");
  const auto bytes = f.read<uint8_t>(prefix + "_bytes");
  if (offsets.empty()) throw DataError(f.path() + ": " + prefix + "_offsets: empty");
  check_offsets(f.path(), (prefix + "_offsets").c_str(), offsets, offsets.size() - 1, bytes.size());
  std::vector<std::string> out;
  out.reserve(offsets.size() - 1);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    out.emplace_back(reinterpret_cast<const char*>(bytes.data()) + offsets[i], offsets[i + 1] - offsets[i]);
  }
  return out;
}

}  // namespace

void write_shard(const std::string& path, const ShardMeta& meta, const ExampleColumns& c, int compression) {
  h5::File f = h5::File::create(path);
  write_meta(f, kShardFormat, meta);
  f.set_attr("num_examples", c.size());
  f.set_attr("num_chains", c.chains.size());
  f.set_attr("num_candidates", c.num_candidates);
  f.create_group("examples");
  f.write("examples/id", c.id, compression);
  f.write("examples/user", c.user, compression);
  f.write("examples/target", c.target, compression);
  f.write("examples/split", c.split, compression);
  f.write("examples/position", c.position, compression);
  f.write("examples/target_index", c.target_index, compression);
  f.write("examples/candidates", c.candidates, {static_cast<hsize_t>(c.size()), static_cast<hsize_t>(c.num_candidates)},
          compression);
  f.write("examples/history_offsets", c.history_offsets, compression);
  f.write("examples/history_items", c.history_items, compression);
  f.write("examples/chain_offsets", c.chain_offsets, compression);
  f.create_group("chains");
  f.write("chains/node_offsets", c.chains.offsets, compression);
  f.write("chains/nodes", c.chains.nodes, compression);
  f.write("chains/node_types", c.chains.types, compression);
  f.write("chains/kind", c.chains.kinds, compression);
  f.close();
}

ExampleColumns read_shard(const std::string& path, ShardMeta* meta, int32_t num_items, int32_t num_users) {
  h5::File f = h5::File::open_read(path);
  ShardMeta m = read_meta(f, kShardFormat);
  if (meta) *meta = m;
  ExampleColumns c;
  const int64_t rows = f.attr_int("num_examples");
  c.num_candidates = f.attr_int("num_candidates");
  c.id = f.read<int64_t>("examples/id");
  c.user = f.read<int32_t>("examples/user");
  c.target = f.read<int32_t>("examples/target");
  c.split = f.read<int8_t>("examples/split");
  c.position = f.read<int32_t>("examples/position");
  c.target_index = f.read<int32_t>("examples/target_index");
  std::vector<hsize_t> dims;
  c.candidates = f.read<int32_t>("examples/candidates", &dims);
  c.history_offsets = f.read<int64_t>("examples/history_offsets");
  c.history_items = f.read<int32_t>("examples/history_items");
  c.chain_offsets = f.read<int64_t>("examples/chain_offsets");
  c.chains.offsets = f.read<int64_t>("chains/node_offsets");
  c.chains.nodes = f.read<int32_t>("chains/nodes");
  c.chains.types = f.read<uint8_t>("chains/node_types");
  c.chains.kinds = f.read<uint8_t>("chains/kind");

  const size_t e = static_cast<size_t>(rows);
  if (rows < 0) throw DataError(path + ": num_examples is negative");
  for (auto* col : {&c.user, &c.target, &c.position, &c.target_index}) check_rows(path, "examples/*", *col, e);
  check_rows(path, "examples/id", c.id, e);
  check_rows(path, "examples/split", c.split, e);
  if (dims.size() != 2 || dims[0] != e || static_cast<int64_t>(dims[1]) != c.num_candidates) {
    throw DataError(path + ": examples/candidates: shape does not match num_examples x num_candidates");
  }
  check_offsets(path, "examples/history_offsets", c.history_offsets, e, c.history_items.size());
  check_offsets(path, "examples/chain_offsets", c.chain_offsets, e, c.chains.kinds.size());
  check_offsets(path, "chains/node_offsets", c.chains.offsets, c.chains.kinds.size(), c.chains.nodes.size());
  check_rows(path, "chains/node_types", c.chains.types, c.chains.nodes.size());
  check_range(path, "examples/user", c.user, 0, num_users);
  check_range(path, "examples/target", c.target, 0, num_items);
  check_range(path, "examples/split", c.split, 0, 3);
  check_range(path, "examples/target_index", c.target_index, 0, c.num_candidates);
  check_range(path, "examples/position", c.position, 1, std::numeric_limits<int32_t>::max());
  for (size_t r = 0; r < e; ++r) {
    if (c.history_offsets[r + 1] - c.history_offsets[r] > c.position[r]) {
      throw DataError(path + ": example " + std::to_string(c.id[r]) + ": history longer than its position");
    }
  }
  check_range(path, "examples/candidates", c.candidates, 0, num_items);
  check_range(path, "examples/history_items", c.history_items, 0, num_items);
  check_range(path, "chains/node_types", c.chains.types, 0, 2);
  check_range(path, "chains/kind", c.chains.kinds, 0, kNumChainKinds);
  for (size_t i = 0; i < c.chains.nodes.size(); ++i) {
    const int64_t bound = c.chains.types[i] == static_cast<uint8_t>(NodeType::kUser) ? num_users : num_items;
    if (c.chains.nodes[i] < 0 || c.chains.nodes[i] >= bound) {
      throw DataError(path + ": chains/nodes: id " + std::to_string(c.chains.nodes[i]) + " at " + std::to_string(i) +
                      " out of range");
    }
  }
  for (size_t r = 0; r < e; ++r) {
    if (c.candidates[r * c.num_candidates + c.target_index[r]] != c.target[r]) {
      throw DataError(path + ": example " + std::to_string(c.id[r]) + ": candidates[target_index] is not the target");
    }
  }
  return c;
}

void read_shard_index(const std::string& path, std::vector<int64_t>* ids, std::vector<int8_t>* splits) {
  h5::File f = h5::File::open_read(path);
  read_meta(f, kShardFormat);
  *ids = f.read<int64_t>("examples/id");
  *splits = f.read<int8_t>("examples/split");
  if (ids->size() != splits->size() || static_cast<int64_t>(ids->size()) != f.attr_int("num_examples")) {
    throw DataError(path + ": examples/id and examples/split disagree with num_examples");
  }
  check_range(path, "examples/split", *splits, 0, 3);
}

void write_catalog(const std::string& path, const ShardMeta& meta, const Catalog& catalog, int compression) {
  h5::File f = h5::File::create(path);
  write_meta(f, kCatalogFormat, meta);
  f.set_attr("num_items", static_cast<int64_t>(catalog.num_items()));
  f.set_attr("num_users", static_cast<int64_t>(catalog.num_users()));
  f.create_group("items");
  write_strings(f, "items/title", catalog.item_titles, compression);
  write_strings(f, "items/token", catalog.item_tokens, compression);
  f.write("items/train_count", catalog.item_train_count, compression);
  f.create_group("users");
  write_strings(f, "users/token", catalog.user_tokens, compression);
  f.write("users/train_offsets", catalog.user_train_offsets, compression);
  f.write("users/train_items", catalog.user_train_items, compression);
  f.close();
}

Catalog read_catalog(const std::string& path, ShardMeta* meta) {
  h5::File f = h5::File::open_read(path);
  ShardMeta m = read_meta(f, kCatalogFormat);
  if (meta) *meta = m;
  Catalog c;
  c.item_titles = read_strings(f, "items/title");
  c.item_tokens = read_strings(f, "items/token");
  c.user_tokens = read_strings(f, "users/token");
  c.item_train_count = f.read<int64_t>("items/train_count");
  const auto items = static_cast<size_t>(f.attr_int("num_items"));
  check_rows(path, "items/title_offsets", c.item_titles, items);
  check_rows(path, "items/token_offsets", c.item_tokens, items);
  check_rows(path, "items/train_count", c.item_train_count, items);
  const auto users = static_cast<size_t>(f.attr_int("num_users"));
  check_rows(path, "users/token_offsets", c.user_tokens, users);
  c.user_train_offsets = f.read<int64_t>("users/train_offsets");
  c.user_train_items = f.read<int32_t>("users/train_items");
  check_offsets(path, "users/train_offsets", c.user_train_offsets, users, c.user_train_items.size());
  check_range(path, "users/train_items", c.user_train_items, 0, static_cast<int64_t>(items));
  return c;
}

}  // namespace r2rec
