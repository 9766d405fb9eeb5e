#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/config.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/model/lora.h"
#include "core/model/safetensors.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/trajectory.h"
#include "sampler/manifest.h"
#include "sampler/raw_log.h"
#include "tests/core/model/tiny_model.h"

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

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"config", config},
      {"overrides", overrides},
      {"dataset", dataset},
      {"manifest", manifest},
      {"tokenizer", tokenizer},
      {"safetensors", safetensors},
      {"model_config", model_config},
      {"adapter_config", adapter_config},
      {"trajectory", trajectory},
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const Target& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace r2rec::fuzz
