#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/model/lora.h"
#include "core/model/safetensors.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/buckets.h"
#include "distributed/param_broadcast.h"
#include "distributed/trajectory.h"
#include "sampler/chain_vote.h"
#include "sampler/manifest.h"
#include "sampler/raw_log.h"
#include "sampler/shard.h"
#include "tests/core/model/tiny_model.h"
#include "trainers/lm/checkpoint_plan.h"
#include "trainers/lm/train_state.h"

namespace r2rec::fuzz {
namespace {
namespace fs = std::filesystem;

// One scratch folder per process, on tmpfs where there is one; emptied before each input, removed at exit.
class Scratch {
 public:
  Scratch() {
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir_ = (base / ("r2rec-fuzz-" + std::to_string(::getpid()))).string();
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& fresh() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_);
    return dir_;
  }

 private:
  std::string dir_;
};

const std::string& fresh_dir() {
  static Scratch scratch;
  return scratch.fresh();
}

void put(const std::string& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
}
void put(const std::string& path, const std::string& s) { put(path, s.data(), s.size()); }

// `data` as text, and the two parts of it around the first NUL (the second empty when there is none).
std::pair<std::string, std::string> split_at_nul(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const size_t nul = s.find('\0');
  if (nul == std::string::npos) return {s, ""};
  return {s.substr(0, nul), s.substr(nul + 1)};
}

void config(const uint8_t* data, size_t size) {
  const std::string path = fresh_dir() + "/r2rec.yaml";
  put(path, reinterpret_cast<const char*>(data), size);
  try {
    const Config c = load_config(path);
    (void)to_yaml(c);
  } catch (const Error&) {
  }
}

void overrides(const uint8_t* data, size_t size) {
  const std::string dir = fresh_dir();
  put(dir + "/r2rec.yaml", "");
  std::vector<std::string> lines;
  std::string line;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += static_cast<char>(data[i]);
    }
  }
  lines.push_back(line);
  try {
    (void)to_yaml(load_config(dir + "/r2rec.yaml", lines));
  } catch (const Error&) {
  }
}

void dataset(const uint8_t* data, size_t size) {
  if (size == 0) return;
  static const char* const kFormats[] = {"ml-100k", "lastfm-hetrec", "recbole", "recbole-llmrank"};
  const char* format = kFormats[data[0] % 4];
  const auto [interactions, items] = split_at_nul(data + 1, size - 1);
  const std::string dir = fresh_dir();
  const std::string f = format;
  if (f == "ml-100k") {
    put(dir + "/u.data", interactions);
    put(dir + "/u.item", items);
  } else if (f == "lastfm-hetrec") {
    put(dir + "/user_artists.dat", interactions);
    put(dir + "/artists.dat", items);
  } else if (f == "recbole") {
    put(dir + "/f.inter", interactions);
    put(dir + "/f.item", items);
  } else {
    put(dir + "/f.test.inter", interactions);
    put(dir + "/f.item", items);
  }
  DataConfig d;
  d.format = format;
  d.path = dir;
  d.prefix = f == "recbole" || f == "recbole-llmrank" ? "f" : "";
  try {
    (void)read_raw_log(d, 1234);
  } catch (const Error&) {
  }
}

void manifest(const uint8_t* data, size_t size) {
  const std::string dir = fresh_dir();
  put(dir + "/manifest.json", reinterpret_cast<const char*>(data), size);
  try {
    const Manifest m = read_manifest(dir);
    verify_manifest_files(dir, m, /*checksums=*/true);
  } catch (const Error&) {
  }
}

void tokenizer(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const std::string dir = fresh_dir();
  std::string path;
  if (data[0] % 2 == 0) {
    path = dir + "/tokenizer.json";
    put(path, reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    const auto [vocab, merges] = split_at_nul(data + 1, size - 1);
    put(dir + "/vocab.json", vocab);
    put(dir + "/merges.txt", merges);
    path = dir;
  }
  try {
    const Tokenizer t = Tokenizer::load(path);
    const std::string text = "Toy Story (1995) <item_1> caf\xc3\xa9\n<|im_start|>user";
    // tokenizer.h's promise for any tokenizer it loads; a broken one is a finding (not an r2rec::Error).
    if (t.decode(t.encode(text)) != text) throw std::logic_error("tokenizer: decode(encode(x)) != x");
  } catch (const Error&) {
  }
}

void safetensors(const uint8_t* data, size_t size) {
  const std::string path = fresh_dir() + "/model.safetensors";
  put(path, reinterpret_cast<const char*>(data), size);
  try {
    const SafetensorsFile f(path);
    for (const auto& [name, info] : f.tensors()) (void)f.load(name);
  } catch (const Error&) {
  }
}

// The bytes of a .safetensors file holding `tensors` (written through a scratch file, then removed).
std::string safetensors_bytes(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  const std::string p = fs::temp_directory_path() / ("r2rec-fuzz-st-" + std::to_string(::getpid()));
  write_safetensors(p, tensors, {{"format", "pt"}});
  std::string bytes = read_file(p);
  fs::remove(p);
  return bytes;
}

// A sharded checkpoint's model.safetensors.index.json beside two small shards (a.safetensors: "x" f32[2, 3] and
// "y" bf16[4]; b.safetensors: "z" f32[1]); every tensor it maps is then loaded.
void safetensors_index(const uint8_t* data, size_t size) {
  const std::string dir = fresh_dir();
  static const std::pair<std::string, std::string> shards = {
      safetensors_bytes(
          {{"x", torch::arange(6, torch::kFloat).view({2, 3})}, {"y", torch::ones({4}, torch::kBFloat16)}}),
      safetensors_bytes({{"z", torch::full({1}, 2.5f)}})};
  put(dir + "/a.safetensors", shards.first);
  put(dir + "/b.safetensors", shards.second);
  put(dir + "/model.safetensors.index.json", reinterpret_cast<const char*>(data), size);
  try {
    const SafetensorsCheckpoint c(dir);
    for (const std::string& name : c.names()) (void)c.load(name);
  } catch (const Error&) {
  }
}

void model_config(const uint8_t* data, size_t size) {
  const std::string path = fresh_dir() + "/config.json";
  put(path, reinterpret_cast<const char*>(data), size);
  try {
    (void)TransformerConfig::from_hf_json(path);
  } catch (const Error&) {
  }
}

void adapter_config(const uint8_t* data, size_t size) {
  const std::string dir = fresh_dir();
  put(dir + "/adapter_config.json", reinterpret_cast<const char*>(data), size);
  Transformer model(testing::tiny(/*qwen=*/true));
  try {
    (void)load_lora_adapter(*model, dir);
  } catch (const Error&) {
  }
}

void trajectory(const uint8_t* data, size_t size) {
  try {
    (void)deserialize(data, size);
  } catch (const Error&) {
  }
  // Mutations almost never keep the checksum right, which stops the decoder before its structural checks; so the
  // same bytes again with the checksum resealed (the wire header's u64 at byte 32: FNV-1a words over bytes 0..31,
  // then the payload; distributed/trajectory.cpp).
  if (size < 40) return;
  std::vector<uint8_t> sealed(data, data + size);
  const uint64_t sum = fnv1a_words(fnv1a_words(kFnvOffset, sealed.data(), 32), sealed.data() + 40, size - 40);
  std::memcpy(sealed.data() + 32, &sum, 8);
  try {
    (void)deserialize(sealed.data(), sealed.size());
  } catch (const Error&) {
  }
}

// Values drawn from the input in order; past its end every draw is 0 (so any input is a complete recipe).
class Draw {
 public:
  Draw(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  template <typename T>
  T value() {
    T v{};
    const size_t n = std::min(sizeof(T), static_cast<size_t>(end_ - p_));
    std::memcpy(&v, p_, n);
    p_ += n;
    return v;
  }
  // A small count: mostly `usual` (the consistent length), sometimes off by a few (a length that disagrees).
  size_t count(size_t usual) {
    const uint8_t b = byte();
    if (b < 224) return usual;
    return static_cast<size_t>(std::max<int64_t>(0, static_cast<int64_t>(usual) + (b & 7) - 3));
  }
  template <typename T>
  std::vector<T> column(size_t usual, int64_t lo, int64_t span) {  // values lo + (draw mod span), some raw
    std::vector<T> v(count(usual));
    for (auto& x : v) {
      const uint8_t how = byte();
      x = how < 240 && span > 0 ? static_cast<T>(lo + static_cast<int64_t>(value<uint16_t>() % span)) : value<T>();
    }
    return v;
  }
  // Non-decreasing offsets from 0 to `total` over `rows` rows, unless the draw says otherwise.
  std::vector<int64_t> offsets(size_t rows, int64_t total) {
    std::vector<int64_t> v(count(rows + 1), 0);
    for (size_t i = 1; i < v.size(); ++i) v[i] = std::min<int64_t>(total, v[i - 1] + byte() % 5);
    if (!v.empty() && byte() < 240) v.back() = total;
    if (byte() >= 250 && !v.empty()) v[byte() % v.size()] = value<int64_t>();
    return v;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// The shard's columns as drawn: lengths that mostly agree with num_examples, ids mostly within the bounds, offsets
// mostly well formed. read_shard must accept them or refuse by name; what it accepts must be usable (every example
// and its chains read back, the chain vote over them).
void shard(const uint8_t* data, size_t size) {
  Draw d(data, size);
  const int32_t items = 1 + d.byte() % 40, users = 1 + d.byte() % 40;
  const int64_t E = d.byte() % 6, C = d.byte() % 5;
  ExampleColumns c;
  c.num_candidates = C;
  c.id.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) c.id[static_cast<size_t>(e)] = e * 7 + d.byte() % 3;
  c.user = d.column<int32_t>(E, 0, users);
  c.target = d.column<int32_t>(E, 0, items);
  c.split = d.column<int8_t>(E, 0, 3);
  c.position = d.column<int32_t>(E, 1, 12);
  c.target_index = d.column<int32_t>(E, 0, std::max<int64_t>(C, 1));
  c.candidates.resize(static_cast<size_t>(E * C));
  for (auto& x : c.candidates) x = d.byte() % items;
  for (size_t e = 0; e < c.target.size() && e < c.target_index.size(); ++e) {  // mostly a true target index
    const size_t at = e * static_cast<size_t>(C) + static_cast<size_t>(c.target_index[e]);
    if (C > 0 && c.target_index[e] >= 0 && c.target_index[e] < C && at < c.candidates.size() && d.byte() < 240)
      c.candidates[at] = c.target[e];
  }
  c.history_items = d.column<int32_t>(d.byte() % 12, 0, items);
  c.history_offsets = d.offsets(static_cast<size_t>(E), static_cast<int64_t>(c.history_items.size()));
  const size_t chains = d.byte() % 10;
  c.chains.kinds = d.column<uint8_t>(chains, 0, kNumChainKinds);
  c.chains.nodes = d.column<int32_t>(d.byte() % 24, 0, std::min(items, users));
  c.chains.types = d.column<uint8_t>(c.chains.nodes.size(), 0, 2);
  c.chains.offsets = d.offsets(c.chains.kinds.size(), static_cast<int64_t>(c.chains.nodes.size()));
  c.chain_offsets = d.offsets(static_cast<size_t>(E), static_cast<int64_t>(c.chains.kinds.size()));
  const std::string path = fresh_dir() + "/shard-00000-of-00001.h5";
  ShardMeta meta;
  meta.dataset = "fuzz";
  try {
    write_shard(path, meta, c, /*compression=*/0);
  } catch (const std::exception&) {
    return;  // a file this harness cannot write is not an input to the reader
  }
  try {
    std::vector<int64_t> ids;
    std::vector<int8_t> splits;
    read_shard_index(path, &ids, &splits);
    const ExampleColumns got = read_shard(path, nullptr, items, users);
    for (int64_t e = 0; e < got.size(); ++e) {
      const Example ex = got.example(e);
      ChainBuffer buffer;
      const int64_t n = got.copy_chains(e, &buffer);
      (void)chain_votes(ex, buffer, 0, n);
    }
  } catch (const Error&) {
  }
}

// A checkpoint folder (trainers/lm/train_state.h) around the input: state.json, then after a NUL rng.json, beside a
// tiny model's trainable.safetensors and a settings.yaml. Where state.json lists files as an object, their sizes and
// hashes are resealed to the folder's true ones, so that mutations get past the hash check to what follows it.
void checkpoint(const uint8_t* data, size_t size) {
  const auto [state_text, rng_text] = split_at_nul(data, size);
  const std::string dir = fresh_dir() + "/checkpoints", step = dir + "/step-3";
  fs::create_directories(step);
  static Transformer model = [] {
    torch::manual_seed(7);
    return Transformer(testing::tiny(/*qwen=*/true));
  }();
  static const std::string weights = [] {
    std::vector<std::pair<std::string, at::Tensor>> t;
    for (auto& [n, w] : trainable_parameters(*model)) t.emplace_back(n, w.detach().contiguous());
    return safetensors_bytes(t);
  }();
  put(step + "/trainable.safetensors", weights);
  put(step + "/settings.yaml", "pretrain:\n  steps: 3\n");
  put(step + "/rng.json", rng_text);
  std::string state = state_text;
  try {
    nlohmann::json j = nlohmann::json::parse(state_text);
    if (j.is_object() && j.contains("files") && j["files"].is_object()) {
      for (auto& [rel, f] : j["files"].items()) {
        // The folder's own files only (the ones written above): a listed "../x" is the reader's to refuse, and
        // reading it here could meet an unreadable or endless file outside the folder.
        if (!f.is_object() || (rel != "trainable.safetensors" && rel != "settings.yaml" && rel != "rng.json")) continue;
        const std::string bytes = read_file(step + "/" + rel);
        f["bytes"] = bytes.size();
        f["fnv1a"] = hex64(fnv1a_lanes(kFnvOffset, bytes.data(), bytes.size()));
      }
      state = j.dump();
    }
  } catch (const nlohmann::json::exception&) {
  }
  put(step + "/state.json", state);
  try {
    const std::optional<CheckpointInfo> found = newest_checkpoint(dir);
    if (found) (void)load_train_state(found->path, *model, /*optimizer=*/nullptr, /*rank=*/0);
  } catch (const Error&) {
  }
}

// The weight broadcast as a receiver gets it (distributed/param_broadcast.h): byte 0 picks 1-3 tensors of a few
// sizes and dtypes, bucketed as the broadcaster does; then the header (version, bucket count, one checksum per
// bucket) and the buckets' bytes. The checksums are resealed to the true ones when the draw says so, so that both
// the mismatch and the accepted path run.
void weight_broadcast(const uint8_t* data, size_t size) {
  Draw d(data, size);
  const uint8_t shape = d.byte();
  std::vector<size_t> bytes;
  std::vector<DType> dtypes;
  for (int k = 0; k <= shape % 3; ++k) {
    const DType t = (shape >> (2 + k)) & 1 ? DType::kBF16 : DType::kF32;
    bytes.push_back(dtype_size(t) * (1 + d.byte() % 64));
    dtypes.push_back(t);
  }
  const std::vector<Bucket> buckets = assign_buckets(bytes, dtypes, /*cap_bytes=*/d.byte() % 3 * 64);
  std::vector<int64_t> header(2 + buckets.size());
  for (auto& w : header) w = d.value<int64_t>();
  const bool reseal = d.byte() % 2 == 0;
  std::vector<std::vector<uint8_t>> flat(buckets.size());
  std::vector<void*> ptrs;
  for (size_t j = 0; j < buckets.size(); ++j) {
    flat[j].resize(buckets[j].bytes());
    for (auto& b : flat[j]) b = d.byte();
    if (reseal) header[2 + j] = static_cast<int64_t>(bucket_checksum(flat[j].data(), flat[j].size()));
    ptrs.push_back(flat[j].data());
  }
  try {
    const int64_t version = check_received_broadcast(header, ptrs, buckets, /*last=*/d.value<int8_t>(), /*rank=*/1);
    if (version != header[0]) throw std::logic_error("weight_broadcast: accepted a version other than the header's");
  } catch (const Error&) {
  }
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"config", config},
      {"overrides", overrides},
      {"dataset", dataset},
      {"manifest", manifest},
      {"tokenizer", tokenizer},
      {"safetensors", safetensors},
      {"safetensors_index", safetensors_index},
      {"model_config", model_config},
      {"adapter_config", adapter_config},
      {"trajectory", trajectory},
      {"shard", shard},
      {"checkpoint", checkpoint},
      {"weight_broadcast", weight_broadcast},
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const Target& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace r2rec::fuzz
